.PHONY: lint typecheck test fuzz bench ci

lint:
	ruff check src tests benchmarks examples
	ruff format --check src tests benchmarks examples

typecheck:
	mypy src

test:
	./scripts/test

# the fuzz tests with many more examples than the suite's bounded run (and a random seed)
FUZZ_EXAMPLES ?= 500
fuzz:
	MLSLO_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) python -m pytest -m fuzz -p no:cacheprovider -q

bench:
	python benchmarks/evaluate.py

ci:
	bash .ci/run
