"""Judging and evaluation: label probabilities, greedy prediction, metrics equal hand-computed ones."""

import json

import mlflow
import numpy as np
import pytest

from know_thyself import evaluate
from know_thyself.config import EvaluateConfig
from know_thyself.judge import Judgments, judge, label_token_ids
from know_thyself.steps.evaluate_judgment import run_evaluate_judgment
from know_thyself.tracking import TAG_STEP

ACTUAL = {"train": ["can", "can", "uncertain", "cannot"], "validation": ["cannot", "cannot", "uncertain", "can", "can"]}
PREDICTED = {"train": ["can", "cannot", "uncertain", "cannot"], "validation": ["cannot", "can", "cannot", "can", "can"]}


GREEDY_CORRECT = {"train": [True, False, False, False], "validation": [False, True, False, True, True]}


def _fake_collect_run(greedy_correct=GREEDY_CORRECT) -> str:
    rows = [
        {"split": split, "question_id": f"{split}-{i}", "question": f"Question {split} {i}?", "ability": label,
         "aliases": ["yes"], "greedy_response": "x", "greedy_correct": greedy_correct[split][i],
         # mean token log-probability rising along the rows: exp() = .2 .375 .55 .725 .9 (validation)
         "greedy_mean_logprob": float(np.log(np.linspace(0.2, 0.9, len(labels))[i]))}
        for split, labels in ACTUAL.items()
        for i, label in enumerate(labels)
    ]
    with mlflow.start_run(tags={TAG_STEP: "collect"}) as run:
        mlflow.log_param("label_scheme", "three")
        mlflow.log_text("".join(json.dumps(r) + "\n" for r in rows), "responses.jsonl")
    return run.info.run_id


def test_judge_on_tiny_model(tiny):
    model, tokenizer = tiny
    judged = judge(model, tokenizer, ["Is this a question?", "What is the capital of Peru?", "Why?"], batch_size=2)
    assert judged.probabilities.shape == (3, 3)
    assert np.allclose(judged.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert all(0 < m <= 1 for m in judged.label_mass)
    for label, probs, off in zip(judged.predicted, judged.probabilities, judged.off_label):
        if off:  # fallback: the most probable label
            assert label == judged.labels[int(np.argmax(probs))]
    assert len(set(label_token_ids(tokenizer, judged.labels))) == 3


def test_judge_logits_are_float32_for_a_bf16_model(tiny_model_dir):
    import torch

    from know_thyself.judge import judgment_forward
    from know_thyself.models import load_model

    model, tokenizer = load_model(tiny_model_dir, dtype="bfloat16", device="cpu")
    questions = ["What is the capital of Peru?", "Who wrote Hamlet?", "Why?"]
    logits, hidden = judgment_forward(model, tokenizer, questions, batch_size=2, hidden=True)
    # the head's product redone in float32 from the (bf16) final hidden state
    with torch.no_grad():
        expected = hidden.clone() @ model.get_output_embeddings().weight.float().T
    assert logits.dtype == torch.float32
    assert torch.allclose(logits, expected, atol=1e-4)
    # not merely bf16 values cast up: many logits fall between bf16's steps
    assert (logits.bfloat16().float() != logits).float().mean() > 0.5


def test_evaluation_metrics_equal_hand_computed(tracking, tiny_model_dir, monkeypatch):
    collect_id = _fake_collect_run()

    def fake_judge(model, tokenizer, questions, scheme, batch_size):
        split = "train" if questions[0].startswith("Question train") else "validation"
        labels = ("can", "uncertain", "cannot")
        probs = np.array([[1.0 if label == p else 0.0 for label in labels] for p in PREDICTED[split]])
        return Judgments(labels, PREDICTED[split], probs, [False] * len(questions), np.ones(len(questions)))

    monkeypatch.setattr(evaluate, "judge", fake_judge)
    run = run_evaluate_judgment(EvaluateConfig(model=tiny_model_dir, collect_run_id=collect_id))
    got = mlflow.get_run(run.run_id).data.metrics
    # train: 3 of 4 right; validation: 3 of 5 right
    assert got["train/judge/exact_match"] == pytest.approx(3 / 4)
    assert got["validation/judge/exact_match"] == pytest.approx(3 / 5)
    # validation distribution: predicted can 3/5, cannot 2/5; actual can 2/5, uncertain 1/5, cannot 2/5
    assert got["validation/judge/predicted/can"] == pytest.approx(3 / 5)
    assert got["validation/judge/predicted/uncertain"] == 0
    assert got["validation/actual/uncertain"] == pytest.approx(1 / 5)
    # per-label rates of correct greedy answers on train (can T,F; uncertain F; cannot F)
    assert got["train/correct_rate/can"] == pytest.approx(0.5)
    assert got["train/correct_rate/uncertain"] == 0 and got["train/correct_rate/cannot"] == 0
    # confidence sum_k P(k) rate_k of the one-hot judge on validation: [0, .5, 0, .5, .5],
    # the greedy answers' correctness: [F, T, F, T, T] -> a perfect ranking, squared error 3 * .25 / 5
    assert got["validation/judge/auroc"] == pytest.approx(1.0)
    assert got["validation/judge/brier"] == pytest.approx(0.15)
    assert got["validation/judge/prr"] == pytest.approx(1.0)
    # the oracle predicts the measured labels: exact match 1; its confidence [0, 0, 0, .5, .5]
    # against [F, T, F, T, T]: 4 of 6 pairs ranked right, 2 tied -> AUROC 5/6
    assert got["validation/oracle/exact_match"] == 1.0
    assert got["validation/oracle/auroc"] == pytest.approx(5 / 6)
    # intervals around the estimates, and the judge's paired difference to the majority
    for key in ("validation/judge/balanced_accuracy", "validation/judge/qwk", "validation/probe/balanced_accuracy"):
        assert got[f"{key}_low"] <= got[key] <= got[f"{key}_high"]
    difference = "validation/judge_minus_majority/balanced_accuracy"
    assert got[difference] == pytest.approx(got["validation/judge/balanced_accuracy"] - got["validation/majority/balanced_accuracy"])
    assert got[f"{difference}_low"] <= got[difference] <= got[f"{difference}_high"]
    # answering exactly when the judge says "can": 3 of 5 answered, all right; abstentions all wrong
    assert got["validation/judge/coverage"] == pytest.approx(3 / 5)
    assert got["validation/judge/answered_accuracy"] == pytest.approx(1.0)
    assert got["validation/judge/handled_well"] == pytest.approx(1.0)
    # majority label of train (can, can, uncertain, cannot) is "can": right on 2 of 5 validation rows
    assert got["validation/majority/exact_match"] == pytest.approx(2 / 5)
    assert got["validation/majority/coverage"] == pytest.approx(1.0)
    assert got["validation/majority/answered_accuracy"] == pytest.approx(3 / 5)
    # after-answering score rises along the rows: [.2 .375 .55 .725 .9] vs [F T F T T] -> AUROC 5/6
    assert got["validation/answer_logprob/auroc"] == pytest.approx(5 / 6)
    assert all(np.isfinite(v) for v in got.values())
    comparison = mlflow.load_table("comparison.json", run_ids=[run.run_id])
    assert {"judge", "majority", "prior", "probe", "oracle", "answer_logprob"} <= set(comparison["method"])
    # the table carries every headline metric's interval beside its estimate, and the paired differences
    rows = comparison.set_index(["split", "method"])
    for method in ("judge", "probe", "majority"):
        for metric in ("balanced_accuracy", "qwk", "auroc"):
            key = f"validation/{method}/{metric}"
            if key not in got:
                continue
            row = rows.loc[("validation", method)]
            assert row[metric] == pytest.approx(got[key])
            assert (row[f"{metric}_low"], row[f"{metric}_high"]) == pytest.approx((got[f"{key}_low"], got[f"{key}_high"]))
    assert rows.loc[("validation", "judge"), "balanced_accuracy_low"] <= rows.loc[("validation", "judge"), "balanced_accuracy"]
    difference_row = rows.loc[("validation", "judge_minus_majority")]
    assert difference_row["balanced_accuracy"] == pytest.approx(got[difference])
    assert difference_row["balanced_accuracy_low"] == pytest.approx(got[f"{difference}_low"])
    table = mlflow.load_table("confusion_validation.json", run_ids=[run.run_id])
    # rows actual (can, uncertain, cannot) x columns predicted
    assert table["actual"].tolist() == ["can", "uncertain", "cannot"]
    assert table["predicted_can"].tolist() == [2, 0, 1]
    assert table["predicted_cannot"].tolist() == [0, 1, 1]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.run_id)}
    assert {"confusion_train.png", "confusion_validation.png", "distribution_validation.png", "predictions.jsonl",
            "reliability_validation.png", "risk_coverage_validation.png", "comparison.json"} <= artifacts


def test_undefined_metrics_are_named_not_logged_as_nan(tracking, tiny_model_dir):
    collect_id = _fake_collect_run({split: [False] * len(labels) for split, labels in ACTUAL.items()})
    run = run_evaluate_judgment(EvaluateConfig(model=tiny_model_dir, collect_run_id=collect_id))
    result = mlflow.get_run(run.run_id)
    assert "validation/judge/auroc" not in result.data.metrics  # one class only: AUROC undefined
    assert "validation/judge/auroc" in result.data.tags["undefined_metrics"]
    assert "validation/judge/prr" in result.data.tags["undefined_metrics"]
    assert result.data.metrics["validation/judge/brier"] >= 0
    assert all(np.isfinite(v) for v in result.data.metrics.values())


def test_evaluation_refuses_an_adapter_from_the_wrong_step(tracking, tiny_model_dir):
    collect_id = _fake_collect_run()
    with pytest.raises(ValueError, match="not a train_judgment run"):
        run_evaluate_judgment(
            EvaluateConfig(model=tiny_model_dir, collect_run_id=collect_id, adapter_run_id=collect_id)
        )
