.PHONY: lint typecheck test bench bench-ops soak crash groups ci

lint:
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks

typecheck:
	mypy src

test:
	./scripts/test

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

ci:
	bash .ci/run
