# make run   install, then run the embedded demo DAG (results/demo/)
# make test  install, then run the test suite
# make bench install the benchmark's own environment, then print the speed table
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= 2
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: install run test lint bench clean

install: $(STAMP)

# --no-compile: byte-compiling every installed module (torch has thousands) took
# 55 s of a 2-minute install here; Python compiles what it imports on first use
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e '.[workflow,test]'
	touch $(STAMP)

run: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES)

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest

$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet --no-compile -e '.[workflow,bench]'
	touch $(BENCH_STAMP)

# one table of side-by-side ratios -> results/bench/bench.md (about 10 min on 2 cores)
bench: $(BENCH_STAMP)
	PATH="$(abspath $(BENCH_VENV)/bin):$$PATH" $(BENCH_VENV)/bin/python benchmarks/bench.py --out results/bench

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow

clean:
	rm -rf results .snakemake
