# make run   install, then run the embedded demo DAG (results/demo/); CONFIG=... CORES=... for another run
# make test  install, then run the quick tests; make test-all: every test (CI)
# make test-cpus  the quick tests with 2 threads, then with torch's portable kernels (TIER=all: every test)
# make bench install the benchmark's own environment, then print the speed table
# make gpu-check  on a machine with CUDA: the paper's workload measured (benchmarks/gpu_check.py)
# make report  the run's Snakemake report: results/<run_name>/report.html (CONFIG: the run's config files)
PYTHON ?= python3
VENV   ?= .venv
CORES  ?= 2
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: install run test test-all test-cpus lint lock bench gpu-check report clean

install: $(STAMP)

# Byte-compiled once, here, in parallel (pip's own compiling is serial: 55 s of a 2-minute
# install): with PYTHONDONTWRITEBYTECODE set, as on many shared machines and CI, nothing
# compiled on first use is kept, and every job would compile torch's Python again
# (import torch 4.2 s against 2.1-2.4 s from bytecode, measured; docs/performance.md)
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-compile --no-deps -e .
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true  # some packages ship files that do not compile
	touch $(STAMP)

# CONFIG: config files layered on config.yaml (make run CONFIG=configs/resnet-demo.yaml CORES=8)
# (the config files are checked first: Snakemake's loader stops at one that is empty, not a
# mapping or not YAML without naming the file or the line)
run: $(STAMP)
	$(if $(strip $(CONFIG)),$(BIN)/python -m featevo.config.settings $(CONFIG))
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) $(if $(strip $(CONFIG)),--configfile $(CONFIG))

# every figure, table and metric of a run with its caption, in one HTML file beside the run's
# results; CONFIG: the config files the run was made with after config.yaml, e.g.
# make report CONFIG="configs/paper.yaml site.yaml" -> results/paper/report.html
CONFIG ?=
# the run's folder: the run_name of the last of config.yaml and CONFIG that sets one
RUN_NAME = $(shell $(BIN)/python -c 'import sys, yaml; names = [(yaml.safe_load(open(f)) or {}).get("run_name") \
	for f in sys.argv[1:]]; print([n for n in names if n][-1])' config.yaml $(CONFIG))

report: $(STAMP)
	$(if $(strip $(CONFIG)),$(BIN)/python -m featevo.config.settings $(CONFIG))
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake $(if $(strip $(CONFIG)),--configfile $(CONFIG)) \
		--report results/$(RUN_NAME)/report.html

# the quick tier (under 10 minutes on 2 cores); test-all: every test (CI's)
test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest -m "not slow"

test-all: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest

# the suite as other CPUs run it: 2 threads per test, then torch's portable kernels (ATen's
# scalar code and oneDNN limited to SSE4.1: other sums than AVX-512's, in the jobs the tests
# start too), so that a test whose outcome turns on float rounding fails here before CI;
# TIER=all for the slow tier as well (about 3x make test-all)
TIER ?= quick
TIER_MARK = $(if $(filter all,$(TIER)),,-m "not slow")
test-cpus: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pytest $(TIER_MARK) --torch-threads 2
	PATH="$(abspath $(BIN)):$$PATH" ATEN_CPU_CAPABILITY=default DNNL_MAX_CPU_ISA=SSE41 $(BIN)/pytest $(TIER_MARK)

$(BENCH_STAMP): pyproject.toml requirements-bench.lock
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet --no-compile --require-hashes -r requirements-bench.lock
	$(BENCH_VENV)/bin/pip install --quiet --no-compile --no-deps -e .
	$(BENCH_VENV)/bin/python -m compileall -q -j 0 $(BENCH_VENV)/lib > /dev/null || true
	touch $(BENCH_STAMP)

# one table of side-by-side ratios -> results/bench/bench.md (about 10 min on 2 cores)
bench: $(BENCH_STAMP)
	PATH="$(abspath $(BENCH_VENV)/bin):$$PATH" $(BENCH_VENV)/bin/python benchmarks/bench.py --out results/bench

# the first GPU's check (docs/performance.md): <= 8 min on CUDA; writes results/gpu_check/check.md
gpu-check: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/gpu_check.py --out results/gpu_check

# the locked install: every package pinned with its hashes, from pyproject.toml's direct
# requirements (Linux x86_64, Python 3.11); after changing those, refresh with `make lock`
LOCK_ARGS = --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 -q
lock:
	$(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install --quiet uv
	.venv-lock/bin/uv pip compile pyproject.toml --extra workflow --extra test $(LOCK_ARGS) -o requirements.lock
	.venv-lock/bin/uv pip compile pyproject.toml --extra workflow --extra bench $(LOCK_ARGS) -o requirements-bench.lock
	rm -rf .venv-lock

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow

# the demo's run and Snakemake's bookkeeping only: another run's folder (the paper's checkpoints
# are tens of GB) is named and kept; delete it by hand, knowing what it holds
clean:
	rm -rf results/demo results/bench results/gpu_check .snakemake
	@for d in results/*/; do [ -d "$$d" ] && echo "kept $$d (a run of its own: rm -r $$d deletes it)"; done; true
