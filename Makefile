.PHONY: lint typecheck test bench ci

lint:
	ruff check src tests benchmarks examples
	ruff format --check src tests benchmarks examples

typecheck:
	mypy src

test:
	./scripts/test

bench:
	python benchmarks/evaluate.py

ci:
	bash .ci/run
