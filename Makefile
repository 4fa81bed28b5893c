# One place for every command developers and CI run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test test-fast check lint typecheck demo bench clean

$(BIN)/lookalike: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of PyTorch, pinned: a looser requirement pulls several GB of CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,lite12,milvus,ray,report,train,copies,feeds,archive]'
	touch $(BIN)/lookalike

setup: $(BIN)/lookalike

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m 'not heavy' -n 2

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

check: lint typecheck test

demo: setup
	bash scripts/demo.sh

bench: setup
	cd benchmarks && ../$(BIN)/python indexing_speed.py && ../$(BIN)/python query_latency.py

clean:
	rm -rf $(VENV) demo-data
