.PHONY: lint typecheck test fuzz bench bench-scale bench-ops soak crash groups ci

lint:
	ruff check src tests benchmarks examples
	ruff format --check src tests benchmarks examples

typecheck:
	mypy src

test:
	./scripts/system-packages && python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test,spark]' && MLSLO_REQUIRE_SYSTEM=1 python -m pytest

# the fuzz tests with many more examples than the suite's bounded run (and a random seed)
FUZZ_EXAMPLES ?= 500
fuzz:
	MLSLO_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) python -m pytest -m fuzz -p no:cacheprovider -q

bench:
	python benchmarks/evaluate.py

# The service under operation: memory per fairness group, a 10-minute soak, 20 SIGKILLs.
bench-ops: groups soak crash

groups:
	python benchmarks/groups.py

soak:
	python benchmarks/soak.py --minutes 10

crash:
	python benchmarks/crash.py --trials 20

# the scale curve in docs/benchmarks.md (needs pip install -e '.[bench,spark]'); data is
# generated into $(BENCH_DATA), 100M rows take about 5 GiB
BENCH_DATA ?= bench-data/anchors
SCALE_SIZES ?= 1e6 1e7 3e7 1e8
bench-scale:
	python benchmarks/scale.py --data-dir $(BENCH_DATA) --sizes $(SCALE_SIZES)

ci:
	bash .ci/run
