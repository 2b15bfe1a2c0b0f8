"""Small pieces the steps share: presets, one-line errors, JSONL artifacts, temporary downloads,
left-padded batches, training metrics, baselines and the knowledge test's refusals."""

from __future__ import annotations

import math
from pathlib import Path

import click
import mlflow
import numpy as np
import pytest
import torch

from know_thyself import presets
from know_thyself.batching import encode_left_padded, left_pad, position_ids
from know_thyself.cli import run_cli
from know_thyself.tracking import downloaded, log_jsonl, read_jsonl_artifact

ROOT = Path(__file__).resolve().parents[1]


def test_mistyped_preset_path_gives_the_friendly_message(capsys):
    with pytest.raises(ValueError, match="preset 'presets/no-such.yaml' does not exist; presets live in presets/"):
        presets.mlflow_run_args("presets/no-such.yaml")
    assert presets.main(["presets/no-such.yaml"]) == 1
    assert "Error: preset 'presets/no-such.yaml' does not exist" in capsys.readouterr().err


def test_preset_args_of_a_real_preset():
    args = presets.mlflow_run_args(ROOT / "presets" / "offline-default.yaml")
    assert args[0] == "-P" and all(a == "-P" for a in args[::2])


@pytest.mark.parametrize("path", sorted((ROOT / "presets").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_preset_is_valid_and_names_each_option_once(path):
    """mlflow run refuses a repeated -P; every preset must validate and set each option once."""
    args = presets.mlflow_run_args(path)
    names = [a.split("=", 1)[0] for a in args[1::2]]
    assert names and len(names) == len(set(names))
    assert presets.load_preset(path).knowledge_targets in ("reference", "own_words")


def test_pyyaml_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    import yaml

    assert f'"pyyaml=={yaml.__version__}"' in text.lower()


def test_connection_errors_become_one_line(tracking):
    @run_cli
    def body():
        raise ConnectionError("the tracking server http://x is not reachable")

    with pytest.raises(click.ClickException, match="the tracking server http://x is not reachable"):
        body()


def test_jsonl_artifacts_round_trip_and_downloads_are_removed(tracking):
    records = [{"question": "Où est Zürich?", "n": 1}, {"question": "x", "n": 2}]
    with mlflow.start_run() as run:
        log_jsonl(records, "folder/records.jsonl")
    assert read_jsonl_artifact(run.info.run_id, "folder/records.jsonl") == records
    with downloaded(run.info.run_id, "folder") as folder:
        assert (folder / "records.jsonl").read_text(encoding="utf-8").splitlines()[0] == (
            '{"question": "Où est Zürich?", "n": 1}'
        )
    assert not folder.exists()


def test_left_padded_batches_start_positions_at_zero(tiny):
    _, tokenizer = tiny
    batch = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch["position_ids"].tolist() == [[0, 1, 2], [0, 0, 0]]
    encoded = encode_left_padded(tokenizer, ["a b c d", "a"], "cpu")
    assert torch.equal(encoded["position_ids"], position_ids(encoded["attention_mask"]))
    assert encoded["position_ids"][1, -1] == 0 and encoded["attention_mask"][1, 0] == 0


def test_training_names_undefined_metrics_instead_of_logging_nan(tracking, tiny_model_dir):
    from know_thyself.config import TrainConfig
    from know_thyself.prompts import judgment_completion, judgment_messages
    from know_thyself.training import train_lora

    examples = [{"prompt": judgment_messages(f"Question {i}?"), "completion": judgment_completion("can")} for i in range(4)]
    cfg = TrainConfig(model=tiny_model_dir, data_run_id="0" * 32, batch_size=2, max_steps=1)
    with mlflow.start_run() as run:
        train_lora(examples, cfg)
    result = mlflow.get_run(run.info.run_id)
    assert all(math.isfinite(v) for v in result.data.metrics.values())
    assert "train/tokens_per_s" not in result.data.metrics
    assert result.data.tags["undefined_metrics"] == "train/tokens_per_s"


def test_prior_is_scored_as_a_confidence_method_only(tracking, tiny_model_dir, monkeypatch):
    from test_evaluate import PREDICTED, _fake_collect_run

    from know_thyself import evaluate
    from know_thyself.config import EvaluateConfig
    from know_thyself.judge import Judgments
    from know_thyself.steps.evaluate_judgment import run_evaluate_judgment

    real_judge_split = evaluate.judge_split

    def fake_judge_split(model, tokenizer, questions, scheme, batch_size, with_adapter):
        # the tiny model's real probe features; the judge's labels fixed by hand
        _, _, features = real_judge_split(model, tokenizer, questions, scheme, batch_size, with_adapter)
        split = "train" if questions[0].startswith("Question train") else "validation"
        labels = ("can", "uncertain", "cannot")
        probs = np.array([[1.0 if label == p else 0.0 for label in labels] for p in PREDICTED[split]])
        return Judgments(labels, PREDICTED[split], probs, [False] * len(questions), np.ones(len(questions))), None, features

    monkeypatch.setattr(evaluate, "judge_split", fake_judge_split)
    run = run_evaluate_judgment(EvaluateConfig(model=tiny_model_dir, collect_run_id=_fake_collect_run()))
    got = mlflow.get_run(run.run_id).data.metrics
    # Its labels would be the majority's: only the confidence metrics are its own.
    assert "validation/prior/exact_match" not in got and "validation/prior/coverage" not in got
    assert "validation/majority/exact_match" in got
    assert "validation/prior/brier" in got
    assert "validation/prior/exact_match" not in mlflow.get_run(run.run_id).data.tags["undefined_metrics"]


def _collect_run(tags=None, **changes) -> str:
    from know_thyself.tracking import TAG_STEP

    params = {"dataset": "d", "num_samples": "10", "test_samples": "5", "seed": "42", "num_trials": "5",
              "temperature": "0.5", "max_new_tokens": "24", "label_scheme": "three", "model": "m"}
    with mlflow.start_run(tags={TAG_STEP: "collect", **(tags or {})}) as run:
        mlflow.log_params({**params, **changes})
        mlflow.log_metrics({f"{s}/{m}": 0.5 for s in ("train", "validation") for m in ("qa_accuracy", "greedy_qa_accuracy")})
    return run.info.run_id


def test_knowledge_test_refuses_different_question_sets(tracking):
    from know_thyself.config import TestKnowledgeConfig
    from know_thyself.steps.collect import TAG_QUESTION_SET
    from know_thyself.steps.test_knowledge import run_test_knowledge

    before = _collect_run({TAG_QUESTION_SET: "a" * 64})
    after = _collect_run({TAG_QUESTION_SET: "b" * 64}, model="merged")
    with pytest.raises(ValueError, match="sampled different questions"):
        run_test_knowledge(TestKnowledgeConfig(collect_before_run_id=before, collect_after_run_id=after))
    same = _collect_run({TAG_QUESTION_SET: "a" * 64}, model="merged")
    run = run_test_knowledge(TestKnowledgeConfig(collect_before_run_id=before, collect_after_run_id=same))
    assert mlflow.get_run(run.run_id).data.metrics["train/qa_accuracy_gain_trials"] == 0.0


def test_collect_records_its_question_set(tracking, tiny_model_dir, trivia_dir):
    from know_thyself.collect import load_questions, question_set_digest
    from know_thyself.config import CollectConfig
    from know_thyself.steps.collect import TAG_QUESTION_SET, run_collect

    cfg = CollectConfig(model=tiny_model_dir, dataset=str(trivia_dir), num_samples=3, test_samples=2, num_trials=1,
                        max_new_tokens=2)
    run = run_collect(cfg)
    expected = question_set_digest(load_questions(str(trivia_dir), 3, 2, 42))
    assert mlflow.get_run(run.run_id).data.tags[TAG_QUESTION_SET] == expected
    assert question_set_digest(load_questions(str(trivia_dir), 3, 2, 7)) != expected
