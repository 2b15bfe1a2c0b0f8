"""Helpers the test tiers share (fixtures live in conftest.py): paths, entry points, small runs."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import shutil
from pathlib import Path

import mlflow
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINTS = ROOT / "entrypoints"
# The smallest chain that exercises every step on the tiny model, as command-line options.
SMALL_CHAIN = ["--num_samples", "6", "--test_samples", "4", "--num_trials", "2", "--max_new_tokens", "4",
               "--max_steps", "2", "--batch_size", "2", "--inference_batch_size", "4"]


def command(name: str):
    """The ``main`` click command of ``entrypoints/<name>.py`` (a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"entrypoint_{name}", ENTRYPOINTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def invoke(name: str, *args):
    """Run an entry point's click command with ``args`` (each turned into a string); exceptions propagate."""
    from click.testing import CliRunner

    return CliRunner().invoke(command(name), [str(a) for a in args], catch_exceptions=False)


def ids_of(result) -> dict[str, str]:
    """The ``step: run id`` lines a command prints (progress bars may share the output)."""
    return dict(re.findall(r"(\w+): ([0-9a-f]{32})\b", result.output))


def labelled_rows(train: int, validation: int) -> list[dict]:
    """``responses.jsonl`` rows of two trials each: ``train`` and ``validation`` rounds of can / uncertain / cannot."""
    correct = {"can": [True, True], "uncertain": [True, False], "cannot": [False, False]}
    return [{"split": split, "question_id": f"{split[0]}{i}", "question": f"Which river flows through town {split} {i}?",
             "ability": label, "correct": correct[label], "aliases": ["yes"], "greedy_response": "x",
             "greedy_correct": label != "cannot", "greedy_mean_logprob": -1.0}
            for split, count in (("train", train), ("validation", validation))
            for i, label in enumerate(("can", "uncertain", "cannot") * count)]


def fake_collect_run(rows: list[dict], params: dict | None = None) -> str:
    """A finished run that looks like a collect run holding ``rows`` as its ``responses.jsonl``."""
    from know_thyself.tracking import TAG_STEP

    with mlflow.start_run(tags={TAG_STEP: "collect"}) as run:
        mlflow.log_params({"label_scheme": "three", **(params or {})})
        mlflow.log_text("".join(json.dumps(r) + "\n" for r in rows), "responses.jsonl")
    return run.info.run_id


def fixed_judge_split(predicted: dict[str, list[str]], split_of):
    """A stand-in for :func:`know_thyself.evaluation.judgment.judge_split` whose judge predicts ``predicted[split]``.

    The probe features and first-token probabilities are the tiny model's real ones;
    ``split_of(questions)`` names the split asked for.
    """
    from dataclasses import replace

    from know_thyself.evaluation import judgment
    from know_thyself.inference.judgments import Judgments

    real = judgment.judge_split

    def judge_split(model, tokenizer, questions, scheme, batch_size, with_adapter, readout=None):
        labels = ("can", "uncertain", "cannot")
        chosen = predicted[split_of(questions)]
        probs = np.array([[1.0 if label == p else 0.0 for label in labels] for p in chosen])
        judged = Judgments(labels, chosen, probs, [False] * len(questions), np.ones(len(questions)))
        return replace(real(model, tokenizer, questions, scheme, batch_size, with_adapter), judged=judged, prompt_only=None)

    return judge_split


@contextlib.contextmanager
def serving_judge(folder: Path, tiny_model_dir: str, precision: str = "float32"):
    """judgment_v1/1 (the tiny model and an untrained adapter, answering in ``precision``) behind the real
    ``mlflow models serve`` on a free loopback port; yields ``(port, store URI, model URI)``, then stops it."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import pytest
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from know_thyself.tracking.registry import JUDGE_ARTIFACT, log_judge, register

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")).save_pretrained(folder / "adapter")
    mlflow.set_experiment("serve")
    with mlflow.start_run() as run:
        log_judge(str(folder / "adapter"), tiny_model_dir, "three", precision=precision)
    version = register(run.info.run_id, JUDGE_ARTIFACT, "judgment_v1", {})
    mlflow.set_tracking_uri(None)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with open(folder / "serve.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/judgment_v1/{version}", "--env-manager",
             "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )
    try:
        for _ in range(360):
            if server.poll() is not None:
                pytest.fail(f"mlflow models serve ended: {(folder / 'serve.log').read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow models serve did not answer /ping within 3 minutes")
        yield port, uri, f"models:/judgment_v1/{version}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@contextlib.contextmanager
def untrained_judge_store(folder: Path, tiny_model_dir: str, empty_store: Path):
    """A fresh tracking store in ``folder`` (the working folder meanwhile) and a LoRA adapter on the tiny
    model, made without training: yields the adapter's folder, for a judge logged as train_judgment logs it."""
    import pytest
    from peft import LoraConfig, get_peft_model

    from know_thyself.inference.models import load_model
    from know_thyself.tracking import configure_tracking

    shutil.copyfile(empty_store, folder / "mlflow.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
            patch.delenv(var, raising=False)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        configure_tracking()
        model, _ = load_model(tiny_model_dir, dtype="float32", device="cpu")
        adapter = folder / "adapter"
        get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")).save_pretrained(adapter)
        try:
            yield adapter
        finally:
            mlflow.set_tracking_uri(None)
