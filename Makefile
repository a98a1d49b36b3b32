.PHONY: lint typecheck test bench ci

lint:
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks

typecheck:
	mypy src

test:
	./scripts/test

bench:
	python benchmarks/evaluate.py

ci:
	bash .ci/run
