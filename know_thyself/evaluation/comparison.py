"""A registered judge scored on a question set of the user's choice: headlines, tags, the paired comparison.

Plain data in, plain data out; the evaluate_registered step (:mod:`know_thyself.steps.evaluate_registered`)
fetches the runs and logs what these functions return.

* :func:`headline` picks the judge's headline numbers (balanced accuracy, QWK, AUROC, each with
  its 95% bootstrap interval) out of an evaluation's metrics, and :func:`describe` writes them
  as one line (run descriptions, model-version tags, what the command prints).
* :func:`paired_comparison` scores two judges on the same questions: every headline metric of
  each, and the difference first minus second with its 95% paired bootstrap interval (the same
  resampled questions on both sides). Each judge is scored against its own base model's labels,
  since a judge predicts what its own model knows.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from know_thyself.evaluation import metrics
from know_thyself.evaluation.methods import HEADLINE

_NAMES = {"balanced_accuracy": "balanced accuracy", "qwk": "QWK", "auroc": "AUROC", "exact_match": "exact match"}
# What paired_comparison scores: label metrics against the measured ability, AUROC against the
# greedy answers' correctness.
COMPARED = ("balanced_accuracy", "qwk", "auroc", "exact_match")


def headline(values: dict[str, float], split: str, method: str = "judge") -> dict[str, float]:
    """``metric``, ``metric_low``, ``metric_high`` of the headline metrics that ``values`` holds."""
    out = {}
    for metric in HEADLINE:
        for suffix in ("", "_low", "_high"):
            key = f"{split}/{method}/{metric}{suffix}"
            if key in values:
                out[f"{metric}{suffix}"] = values[key]
    return out


def describe(numbers: dict[str, float]) -> str:
    """``balanced accuracy 0.41 [0.33, 0.49], QWK ...``: each headline metric with its interval."""
    parts = []
    for metric in HEADLINE:
        if metric not in numbers:
            parts.append(f"{_NAMES[metric]} undefined")
            continue
        interval = ""
        if f"{metric}_low" in numbers:
            interval = f" [{numbers[f'{metric}_low']:.2f}, {numbers[f'{metric}_high']:.2f}]"
        parts.append(f"{_NAMES[metric]} {numbers[metric]:.2f}{interval}")
    return ", ".join(parts)


def dataset_label(dataset: str, split: str, single_file: bool) -> str:
    """A short name of the scored questions, usable in a tag key: ``questions.parquet`` or ``bundled.validation``."""
    name = dataset.rstrip("/").rsplit("/", 1)[-1] if single_file or "/" in dataset else dataset
    label = name if single_file else f"{name}.{split}"
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", label).strip(".") or "questions"


def confidence(predictions: list[dict], labels: tuple[str, ...], rates: dict[str, float]) -> np.ndarray:
    """The confidence score sum_k P(k) rate_k of each prediction (``predictions.jsonl`` records)."""
    probabilities = np.array([[p["probabilities"][label] for label in labels] for p in predictions], dtype=float)
    return metrics.confidence_score(probabilities, labels, rates)


def paired_comparison(
    first: list[dict], second: list[dict], labels: tuple[str, ...],
    first_rates: dict[str, float], second_rates: dict[str, float], names: tuple[str, str],
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Two judges on the same questions: each one's metrics and the paired difference, with 95% intervals.

    Args:
        first: The first judge's ``predictions.jsonl`` records of one split.
        second: The second judge's records of the same questions (any order).
        labels: The label scheme both judges use.
        first_rates: Per-label correctness rates behind the first judge's confidence score.
        second_rates: The same for the second judge.
        names: How the table names the two judges (e.g. ``judgment_v1/2``).

    Returns:
        The table (one row per metric: each judge's value and interval, the difference first
        minus second and its interval) and the same numbers as metrics
        (``first/<metric>``, ``second/<metric>``, ``first_minus_second/<metric>``, with
        ``_low``/``_high``).
    """
    ids = [p["question_id"] for p in first]
    by_id = {p["question_id"]: p for p in second}
    if sorted(ids) != sorted(by_id):
        raise ValueError("the two judges were scored on different questions; a paired comparison needs the same ones")
    second = [by_id[i] for i in ids]
    registry = {m.name: m for m in metrics.classification_registry(labels)}
    registry["auroc"] = next(m for m in metrics.CONFIDENCE_METRICS if m.name == "auroc")
    inputs = {}
    for side, records, rates in (("first", first, first_rates), ("second", second, second_rates)):
        inputs[side] = {
            "labels": ([p["predicted"] for p in records], [p["actual"] for p in records]),
            "confidence": (confidence(records, labels, rates), [bool(p["greedy_correct"]) for p in records]),
        }
    rows, values = [], {}
    for metric in COMPARED:
        kind = "confidence" if metric == "auroc" else "labels"
        (pred_a, target_a), (pred_b, target_b) = inputs["first"][kind], inputs["second"][kind]
        a = metrics.bootstrap_interval(registry[metric], pred_a, target_a)
        b = metrics.bootstrap_interval(registry[metric], pred_b, target_b)
        diff = metrics.bootstrap_interval(registry[metric], pred_a, target_a, baseline=pred_b, baseline_targets=target_b)
        row: dict[str, Any] = {"metric": metric}
        for side, interval in ((names[0], a), (names[1], b), (f"{names[0]} - {names[1]}", diff)):
            row[side], row[f"{side} low"], row[f"{side} high"] = interval.as_tuple()
        row["interval excludes 0"] = diff.excludes(0.0)
        rows.append(row)
        for key, interval in (("first", a), ("second", b), ("first_minus_second", diff)):
            for suffix, value in zip(("", "_low", "_high"), interval.as_tuple()):
                if value is not None:
                    values[f"{key}/{metric}{suffix}"] = float(value)
    return pd.DataFrame(rows), values


def comparison_markdown(table: pd.DataFrame, names: tuple[str, str], questions: int) -> str:
    """The paired table as markdown (a run description): values with intervals, the difference last."""
    def cell(row: Any, side: str) -> str:
        value = row[side]
        if value is None or pd.isna(value):
            return "undefined"
        low, high = row[f"{side} low"], row[f"{side} high"]
        return f"{value:.3f}" + ("" if low is None or pd.isna(low) else f" [{low:.3f}, {high:.3f}]")

    difference = f"{names[0]} - {names[1]}"
    lines = [
        f"**{names[0]} vs {names[1]}** on the same {questions} questions (95% paired bootstrap intervals)",
        "",
        f"| metric | {names[0]} | {names[1]} | {difference} |",
        "|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        lines.append(f"| {_NAMES[row['metric']]} | {cell(row, names[0])} | {cell(row, names[1])} | {cell(row, difference)} |")
    return "\n".join(lines)
