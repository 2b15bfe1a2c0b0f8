"""Helpers the test tiers share (fixtures live in conftest.py): paths, entry points, small runs."""

from __future__ import annotations

import importlib.util
import json
import re
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
