# make run   install, then run the embedded demo DAG (results/demo/)
# make test  install, then run the test suite
# make bench install the benchmark's own environment, then print the speed table
# make gpu-check  on a machine with CUDA: the paper's workload measured (benchmarks/gpu_check.py)
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= 2
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: install run test lint bench gpu-check clean

install: $(STAMP)

# Byte-compiled once, here, in parallel (pip's own compiling is serial: 55 s of a 2-minute
# install): with PYTHONDONTWRITEBYTECODE set, as on many shared machines and CI, nothing
# compiled on first use is kept, and every job would compile torch's Python again
# (import torch 4.2 s against 2.1-2.4 s from bytecode, measured; docs/performance.md)
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e '.[workflow,test]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true  # some packages ship files that do not compile
	touch $(STAMP)

run: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES)

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet --no-compile -e '.[workflow,bench]'
	$(BENCH_VENV)/bin/python -m compileall -q -j 0 $(BENCH_VENV)/lib > /dev/null || true
	touch $(BENCH_STAMP)

# one table of side-by-side ratios -> results/bench/bench.md (about 10 min on 2 cores)
bench: $(BENCH_STAMP)
	PATH="$(abspath $(BENCH_VENV)/bin):$$PATH" $(BENCH_VENV)/bin/python benchmarks/bench.py --out results/bench

# the first GPU's check (docs/performance.md): <= 8 min on CUDA; writes results/gpu_check/check.md
gpu-check: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/gpu_check.py --out results/gpu_check

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow

clean:
	rm -rf results .snakemake
