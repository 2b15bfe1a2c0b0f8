"""The dev split (stratified, seeded, disjoint), the choice of the best grid point, and the sweep
step on the tiny model: one child run per grid point, dev metrics only, the best point tagged."""

from __future__ import annotations

from collections import Counter

import mlflow
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import command, fake_collect_run

from know_thyself.config import SweepConfig
from know_thyself.steps import sweep as sweep_step
from know_thyself.steps.sweep import run_sweep
from know_thyself.tracking import TAG_STEP
from know_thyself.training.dev_split import best_point, dev_split

RUN_A = "0123456789abcdef0123456789abcdef"


def _rows(labels: list[str], split: str = "train") -> list[dict]:
    return [{"split": split, "question_id": f"{split}-{i}", "ability": label} for i, label in enumerate(labels)]


# ---------------------------------------------------------------------------------------------
# The dev split
# ---------------------------------------------------------------------------------------------


def test_dev_split_counts_follow_the_label_mix():
    # 6 cannot, 3 uncertain, 1 can; 30% -> 3 dev questions. Proportional shares 1.8 / 0.9 / 0.3:
    # rounded down 1 / 0 / 0, and the 2 left go to the largest remainders (uncertain .9, cannot .8).
    rows = _rows(["cannot"] * 6 + ["uncertain"] * 3 + ["can"])
    fit, dev = dev_split(rows, 0.3, seed=0)
    assert Counter(r["ability"] for r in dev) == {"cannot": 2, "uncertain": 1}
    assert Counter(r["ability"] for r in fit) == {"cannot": 4, "uncertain": 2, "can": 1}


def test_dev_split_of_the_bundled_proportions():
    # 1,039 train questions as measured (can 109, uncertain 180, cannot 750), 20% -> 208 dev:
    # shares 21.82 / 36.03 / 150.15 -> 21 / 36 / 150 and one left over for can (remainder .82).
    rows = _rows(["can"] * 109 + ["uncertain"] * 180 + ["cannot"] * 750)
    fit, dev = dev_split(rows, 0.2, seed=0)
    assert Counter(r["ability"] for r in dev) == {"can": 22, "uncertain": 36, "cannot": 150}
    assert len(fit) == 1039 - 208


def test_dev_split_is_seeded_disjoint_and_keeps_the_order():
    rows = _rows(["cannot", "can", "uncertain"] * 20)
    fit, dev = dev_split(rows, 0.25, seed=7)
    again_fit, again_dev = dev_split(rows, 0.25, seed=7)
    assert (fit, dev) == (again_fit, again_dev)
    assert dev_split(rows, 0.25, seed=8)[1] != dev
    ids = [r["question_id"] for r in rows]
    fit_ids, dev_ids = [r["question_id"] for r in fit], [r["question_id"] for r in dev]
    assert not set(fit_ids) & set(dev_ids)
    assert sorted(fit_ids + dev_ids) == sorted(ids)
    assert fit_ids == [i for i in ids if i in set(fit_ids)] and dev_ids == [i for i in ids if i in set(dev_ids)]
    assert Counter(r["ability"] for r in dev) == {"cannot": 5, "can": 5, "uncertain": 5}


@pytest.mark.parametrize("fraction", [0.01, 0.99])
def test_dev_split_refuses_an_empty_part(fraction):
    with pytest.raises(ValueError, match=r"dev_fraction .* of 10 train questions leaves"):
        dev_split(_rows(["can", "cannot"] * 5), fraction, seed=0)


# ---------------------------------------------------------------------------------------------
# Choosing the best point, and the options
# ---------------------------------------------------------------------------------------------


def test_best_point_by_a_score_an_error_and_an_undefined_metric():
    scores_ = [{"dev/judge/qwk": 0.1, "dev/judge/brier": 0.3}, {"dev/judge/qwk": 0.4, "dev/judge/brier": 0.2},
               {"dev/judge/qwk": 0.4, "dev/judge/brier": 0.25}, {}]
    assert best_point(scores_, "dev/judge/qwk") == 1  # tie with point 2: the earlier wins
    assert best_point(scores_, "dev/judge/brier") == 1  # lower is better
    assert best_point(scores_, "dev/judge/auroc") is None


def test_sweep_grid_is_every_combination():
    cfg = SweepConfig(collect_run_id=RUN_A, learning_rate="3e-4, 1e-3", epochs="1,2", balance="none,oversample", lora_r="8",
                      lora_targets="attention,attention_mlp")
    grid = cfg.grid()
    assert len(grid) == 16
    defaults = {"loss": "label", "label_targets": "hard"}
    assert grid[0] == {"learning_rate": 3e-4, "epochs": 1.0, "balance": "none", "lora_r": 8, "lora_targets": "attention",
                       **defaults}
    assert grid[-1] == {"learning_rate": 1e-3, "epochs": 2.0, "balance": "oversample", "lora_r": 8,
                        "lora_targets": "attention_mlp", **defaults}
    # learning rates (2) x losses (2): four points
    assert len(SweepConfig(collect_run_id=RUN_A, loss="label,sft", balance="oversample", label_targets="hard",
                           epochs="1").grid()) == 4
    assert cfg.training(grid[-1]).lora_targets == "attention_mlp"
    with pytest.raises(ValueError, match="lora_targets must be one of attention, attention_mlp"):
        SweepConfig(collect_run_id=RUN_A, lora_targets="attention,mlp_only")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"learning_rate": "1e-3,,3e-3"}, "learning_rate must be a comma-separated list"),
        ({"learning_rate": "1e-3,fast"}, "learning_rate must be a number (float), got 'fast'"),
        ({"learning_rate": "1e-3,2"}, "learning_rate must be in (0, 1), got 2.0"),
        ({"epochs": "1,1"}, "epochs lists a value twice"),
        ({"balance": "oversample,undersample"}, "balance must be one of weights, taught, oversample, none, got 'undersample'"),
        ({"balance": "weights,taught"}, "the sweep reads a collect run, which does not say which questions Phase 2 taught"),
        ({"loss": "label,mse"}, "loss must be one of label, sft, got 'mse'"),
        ({"loss": "sft", "balance": "weights"}, "loss sft trains on the completion's tokens"),
        ({"epoch_select_by": "brier"}, "epoch_select_by must be one of auroc"),
        ({"lora_r": "8.5"}, "lora_r must be a number (int), got '8.5'"),
        ({"select_by": "loss"}, "select_by must be one of balanced_accuracy"),
        ({"dev_fraction": "1"}, "dev_fraction must be in (0, 1), got 1.0"),
        ({"collect_run_id": "abc"}, "collect_run_id must be an MLflow run id"),
    ],
)
def test_bad_sweep_options_are_refused_by_name(options, message):
    with pytest.raises(ValueError) as error:
        SweepConfig.from_options({"collect_run_id": RUN_A, **options})
    assert message in str(error.value)


# ---------------------------------------------------------------------------------------------
# The sweep step on the tiny model
# ---------------------------------------------------------------------------------------------

TRAIN_LABELS = ["cannot"] * 6 + ["uncertain"] * 3 + ["can"] * 3


def _fake_collect_run() -> str:
    """A finished collect run: 12 train questions, and 4 validation questions the sweep must never read."""
    return fake_collect_run([
        {"split": split, "question_id": f"{split}-{i}", "question": f"Question {split} {i}: what is {i} plus {i}?",
         "ability": label, "aliases": [str(2 * i)], "greedy_response": str(2 * i),
         "correct": {"can": [True] * 5, "uncertain": [True] * 3 + [False] * 2, "cannot": [False] * 5}[label],
         "greedy_correct": label != "cannot", "greedy_mean_logprob": float(np.log(0.2 + 0.05 * i))}
        for split, labels in (("train", TRAIN_LABELS), ("validation", ["can", "cannot", "cannot", "uncertain"]))
        for i, label in enumerate(labels)
    ])


def test_sweep_runs_each_grid_point_as_a_child_scored_on_dev(tracking, tiny_model_dir, monkeypatch):
    seen: list[str] = []  # every question the model is asked about, judged or probed
    real_judge, real_forwards = sweep_step.judge, sweep_step.judge_split
    monkeypatch.setattr(sweep_step, "judge", lambda m, t, q, *a, **k: seen.extend(q) or real_judge(m, t, q, *a, **k))
    monkeypatch.setattr(sweep_step, "judge_split", lambda m, t, q, *a, **k: seen.extend(q) or real_forwards(m, t, q, *a, **k))
    collect_id = _fake_collect_run()
    cfg = SweepConfig(
        model=tiny_model_dir, collect_run_id=collect_id, dev_fraction=0.25, learning_rate="1e-3,5e-3", epochs="1",
        max_steps=1, batch_size=4, inference_batch_size=4,
    )
    ids = run_sweep(cfg)
    parent = mlflow.get_run(ids["sweep"])
    assert parent.data.tags[TAG_STEP] == "sweep" and parent.info.status == "FINISHED"
    # 12 train questions, 25% -> 3 dev (shares 1.5 / .75 / .75 -> 1 / 0 / 0, then uncertain .75, can .75 by name)
    assert parent.data.metrics["dev/questions"] == 3 and parent.data.metrics["fit/questions"] == 9
    assert [parent.data.metrics[f"dev/label_count/{label}"] for label in ("can", "uncertain", "cannot")] == [1, 1, 1]
    children = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{ids['sweep']}'",
        output_format="list",
    )
    assert len(children) == 2
    assert sorted(c.data.params["learning_rate"] for c in children) == ["0.001", "0.005"]
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags[TAG_STEP] == "sweep_point"
        assert (child.data.params["epochs"], child.data.params["balance"], child.data.params["lora_r"]) == ("1.0", "weights", "16")
        assert (child.data.params["loss"], child.data.params["label_targets"]) == ("label", "hard")
        metrics = child.data.metrics
        assert 0.0 <= metrics["dev/judge/balanced_accuracy"] <= 1.0
        assert metrics["dev/judge/balanced_accuracy_low"] <= metrics["dev/judge/balanced_accuracy"] <= metrics["dev/judge/balanced_accuracy_high"]
        assert "dev/probe/balanced_accuracy" in metrics and "dev/judge/qwk" in metrics
        # trained on the fit part, each question once (class weights balance them): 2 can, 2 uncertain, 5 cannot
        assert [metrics[f"train/balanced_count/{label}"] for label in ("can", "uncertain", "cannot")] == [2, 2, 5]
        history = mlflow.MlflowClient().get_metric_history(child.info.run_id, "epoch/dev/judge/balanced_accuracy")
        assert [m.step for m in history] == [1] and metrics["train/best_epoch"] == 1
        assert "train/final_loss" in metrics
        assert not [k for k in metrics if k.startswith(("validation", "train/judge"))]
        assert "adapter/adapter_config.json" in {a.path for a in mlflow.MlflowClient().list_artifacts(child.info.run_id, "adapter")}
    # the best by dev balanced accuracy (ties: the earlier grid point) is tagged on both sides
    by_lr = {c.data.params["learning_rate"]: c for c in children}
    ordered = [by_lr["0.001"], by_lr["0.005"]]
    values = [c.data.metrics["dev/judge/balanced_accuracy"] for c in ordered]
    best = ordered[int(np.argmax(values))]
    assert parent.data.tags["best_run_id"] == best.info.run_id == ids["best"]
    assert {c.info.run_id: c.data.tags["best"] for c in children} == {
        c.info.run_id: "true" if c is best else "false" for c in children
    }
    assert parent.data.metrics["best/dev/judge/balanced_accuracy"] == max(values)
    assert not [k for k in parent.data.metrics if k.startswith("validation")]
    table = mlflow.load_table("sweep_grid.json", run_ids=[ids["sweep"]])
    assert table["method"].tolist() == ["judge", "judge", "probe"]
    assert table["learning_rate"].tolist()[:2] == [1e-3, 5e-3]
    assert table["balanced_accuracy"].tolist()[:2] == pytest.approx(values)
    assert table["best"].tolist() == [c is best for c in ordered] + [False]
    # validation questions were never read: only train questions reached the model
    assert seen and all(q.startswith("Question train") for q in seen)
    # the same sweep again is reused
    assert run_sweep(cfg) == ids


def test_sweep_command_refuses_a_bad_dev_fraction_before_any_run(tracking, tiny_model_dir):
    collect_id = _fake_collect_run()
    before = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    result = CliRunner().invoke(
        command("sweep"), ["--model", tiny_model_dir, "--collect_run_id", collect_id, "--dev_fraction", "0.02"]
    )
    assert result.exit_code != 0
    assert "dev_fraction 0.02 of 12 train questions leaves 0 for dev" in result.output
    assert "Traceback" not in result.output
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == before
