# Everything runs from a local virtual environment (.venv) that `make install` creates.
# torch/torchvision are pinned to the builds this project is developed and tested with.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: install test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/official_speedup.py
	$(BIN)/python benchmarks/model_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache
