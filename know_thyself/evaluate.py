"""The evaluate_judgment step: how well a model (optionally with a judgment adapter) predicts its ability.

For each split of a collect run: predicted ability by greedy decoding and the label
probabilities (see :mod:`know_thyself.judge`), compared with the measured ability. Logs
exact match and the other classification metrics, the confusion matrix as a figure and as an
MLflow table, predicted vs actual distributions, and ``predictions.jsonl``.
"""

from __future__ import annotations

import json

import mlflow
import pandas as pd

from know_thyself import collect, metrics, plots
from know_thyself.config import EvaluateConfig
from know_thyself.judge import Judgments, judge
from know_thyself.models import load_model
from know_thyself.tracking import StepRun, require_step_run, step_run
from know_thyself.training import load_adapter

TRAINING_STEPS = ("train_judgment",)


def split_report(rows: list[dict], judged: Judgments, split: str) -> dict[str, float]:
    """Log one split's figures and tables; return its metrics (``None`` values are left out)."""
    labels = judged.labels
    actual = [row["ability"] for row in rows]
    scores = metrics.classification_metrics(actual, judged.predicted, labels)
    result = {f"{split}/{name}": value for name, value in scores.items() if value is not None}
    result[f"{split}/off_label_rate"] = sum(judged.off_label) / len(rows)
    result[f"{split}/label_mass"] = float(judged.label_mass.mean())
    actual_dist = metrics.distribution(actual, labels)
    predicted_dist = metrics.distribution(judged.predicted, labels)
    for label in labels:
        result[f"{split}/actual/{label}"] = actual_dist[label]
        result[f"{split}/predicted/{label}"] = predicted_dist[label]
    matrix = metrics.confusion(actual, judged.predicted, labels)
    mlflow.log_figure(
        plots.confusion_matrix_figure(matrix, labels, f"{split}: exact match {scores['exact_match']:.3f}"),
        f"confusion_{split}.png",
    )
    table = pd.DataFrame(matrix, columns=[f"predicted_{label}" for label in labels])
    table.insert(0, "actual", list(labels))
    mlflow.log_table(table, f"confusion_{split}.json")
    mlflow.log_figure(
        plots.distribution_figure(actual_dist, predicted_dist, labels, f"{split}: ability, actual vs predicted"),
        f"distribution_{split}.png",
    )
    return result


def evaluate_judgment(cfg: EvaluateConfig) -> dict[str, float]:
    """Judge every question of the collect run on both splits; log everything to the active run."""
    rows = collect.read_responses(cfg.collect_run_id)
    scheme = mlflow.get_run(cfg.collect_run_id).data.params.get("label_scheme", "three")
    model, tokenizer = load_model(cfg.model, dtype=cfg.dtype)
    if cfg.adapter_run_id:
        model = load_adapter(model, cfg.adapter_run_id)
    results: dict[str, float] = {}
    predictions = []
    for split in collect.SPLITS:
        split_rows = [row for row in rows if row["split"] == split]
        judged = judge(model, tokenizer, [row["question"] for row in split_rows], scheme, cfg.inference_batch_size)
        results.update(split_report(split_rows, judged, split))
        for row, label, probs, off in zip(split_rows, judged.predicted, judged.probabilities, judged.off_label):
            predictions.append(
                {
                    "split": split,
                    "question_id": row["question_id"],
                    "actual": row["ability"],
                    "predicted": label,
                    "probabilities": dict(zip(judged.labels, map(float, probs))),
                    "off_label": off,
                }
            )
    mlflow.log_metrics(results)
    mlflow.log_text("".join(json.dumps(p) + "\n" for p in predictions), "predictions.jsonl")
    return results


def run_evaluate_judgment(cfg: EvaluateConfig, reuse: bool = True, run_name: str | None = None) -> StepRun:
    """Run evaluate_judgment in its own (possibly nested) run, or reuse an identical finished one."""
    require_step_run(cfg.collect_run_id, "collect", "collect_run_id")
    if cfg.adapter_run_id:
        require_step_run(cfg.adapter_run_id, TRAINING_STEPS, "adapter_run_id")
    with step_run(cfg.step, cfg.params(), reuse=reuse, run_name=run_name) as run:
        if not run.reused:
            evaluate_judgment(cfg)
    return run
