# Everything runs from a local virtual environment (.venv) that `make install` creates.
# torch/torchvision are pinned to the builds this project is developed and tested with.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.14.1 torchvision==0.29.1
# PyPI's torch is the CUDA build: with the package, .venv takes ~6 GB, 4.1 GB of it NVIDIA
# libraries and triton (measured: `du -sh .venv`). `CPU=1` takes PyTorch's CPU build from its own
# index instead (needs download.pytorch.org), for machines without an NVIDIA GPU.
TORCH_INDEX := $(if $(CPU),--index-url https://download.pytorch.org/whl/cpu)

.PHONY: install runtime serve test lint bench docker-test soak clean

# Everything: the service, the tests and the benchmarks (+ MMSegmentation, Ray...: ~7.5 GB).
install: $(VENV)/.installed-dev
# The package alone: what `make serve` needs.
runtime: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "Installing into $(VENV): torch ($(if $(CPU),CPU build,CUDA build: ~6 GB with the package; CPU=1 for the CPU build)), then the package"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH) $(TORCH_INDEX)
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# CPU serving: glibc keeps freed memory (25-45% faster forward passes), one torch thread per batch
# worker (models/demo.yaml runs two), two preprocessing threads. docs/benchmarks.md has the figures.
CPU_SERVICE_ENV := MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 SEGMENTER_TORCH_THREADS=1 SEGMENTER_PREPROCESS_THREADS=2

# The service on this machine with the bundled demo models: http://127.0.0.1:8000 (web page at /).
# `make serve HOST=0.0.0.0 PORT=8080` to listen elsewhere; SEGMENTER_MODELS=file.yaml for other models.
serve: runtime
	$(CPU_SERVICE_ENV) $(BIN)/segmenter serve --host $(or $(HOST),127.0.0.1) --port $(or $(PORT),8000)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/hadolint docker/Dockerfile docker/Dockerfile.cpu

# The Docker tests build an image: `make docker-test` (and .ci/run) runs them, not `make test`.
test: lint
	$(BIN)/python -m pytest --ignore=tests/docker

# Builds the CPU image, runs `docker compose` with the CPU override, checks /segment and /metrics.
docker-test: install
	SEGMENTER_DOCKER_TEST=1 $(BIN)/python -m pytest tests/docker -s

soak: install
	$(BIN)/python benchmarks/soak.py --minutes $(or $(MINUTES),10) --concurrency $(or $(CONCURRENCY),16)

bench: install
	$(BIN)/python benchmarks/official_speedup.py
	$(BIN)/python benchmarks/model_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache
