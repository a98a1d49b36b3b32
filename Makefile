.PHONY: lint typecheck test bench bench-scale ci

lint:
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks

typecheck:
	mypy src

test:
	./scripts/test

bench:
	python benchmarks/evaluate.py

# the scale curve in docs/benchmarks.md (needs pip install -e '.[bench,spark]'); data is
# generated into $(BENCH_DATA), 100M rows take about 5 GiB
BENCH_DATA ?= bench-data/anchors
SCALE_SIZES ?= 1e6 1e7 3e7 1e8
bench-scale:
	python benchmarks/scale.py --data-dir $(BENCH_DATA) --sizes $(SCALE_SIZES)

ci:
	bash .ci/run
