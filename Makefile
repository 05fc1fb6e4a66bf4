# The two commands of a fresh clone: `make demo` (real llama-server, before and after, one report)
# and `make test` (the whole suite). Both run scripts/setup.sh first, which is idempotent.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-fast lint bench bench-gpu bench-peer clean

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/orpheus-bench demo $(DEMO_ARGS)

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check orpheus_bench tests benchmarks locustfiles scripts
	$(VENV)/bin/mypy

bench: setup
	$(PY) benchmarks/decode_throughput.py
	$(PY) benchmarks/harness_overhead.py
	$(PY) benchmarks/max_streams.py
	$(PY) benchmarks/parse_throughput.py

bench-gpu: setup
	bash benchmarks/gpu_subset.sh $(or $(GPU_OUT),runs/gpu-subset)

# orpheus-bench and AIPerf side by side on one real llama-server (AIPerf from setup's .venv/peer).
bench-peer: setup
	$(PY) benchmarks/peer_check.py $(PEER_ARGS)

clean:
	rm -rf runs reports/*.html .pytest_cache .mypy_cache .ruff_cache
