"""Classification metrics: how well predicted ability labels match the labels measured from graded trials."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from know_thyself.evaluation.metrics.core import Metric, _check_labels, _one_hot, _paired_ranks, _ranks, _ratio


def _confusion_counts(guess: np.ndarray, truth: np.ndarray, weights: np.ndarray, n_labels: int) -> np.ndarray:
    """Weighted confusion matrices, shape ``(n_sets, n_labels, n_labels)``: rows actual, columns predicted."""
    cells = _one_hot(truth * n_labels + guess, n_labels * n_labels)
    return (weights @ cells).reshape(-1, n_labels, n_labels)


def _exact_match(guess: np.ndarray, truth: np.ndarray, weights: np.ndarray, n_labels: int) -> np.ndarray:
    """Share of examples whose predicted label equals the actual one."""
    counts = _confusion_counts(guess, truth, weights, n_labels)
    return np.trace(counts, axis1=1, axis2=2) / counts.sum(axis=(1, 2))


def _balanced_accuracy(guess: np.ndarray, truth: np.ndarray, weights: np.ndarray, n_labels: int) -> np.ndarray:
    """Mean recall over the classes present in ``truth`` (scikit-learn's definition)."""
    counts = _confusion_counts(guess, truth, weights, n_labels)
    actual = counts.sum(axis=2)
    recall = np.nan_to_num(_ratio(np.diagonal(counts, axis1=1, axis2=2), actual))
    return recall.sum(axis=1) / (actual > 0).sum(axis=1)


def _macro_f1(guess: np.ndarray, truth: np.ndarray, weights: np.ndarray, n_labels: int) -> np.ndarray:
    """Unweighted mean F1 over the classes present in ``truth`` or ``guess``.

    Classes that appear on neither side are left out rather than counted as F1 = 0, so a
    binary-looking sample scored under the three-label scheme is not penalised for the label
    nobody used. A class with no predicted (or no actual) examples gets F1 = 0.
    """
    counts = _confusion_counts(guess, truth, weights, n_labels)
    either = counts.sum(axis=2) + counts.sum(axis=1)
    f1 = np.nan_to_num(_ratio(2.0 * np.diagonal(counts, axis1=1, axis2=2), either))
    return f1.sum(axis=1) / (either > 0).sum(axis=1)


def _qwk(guess: np.ndarray, truth: np.ndarray, weights: np.ndarray, n_labels: int) -> np.ndarray:
    """Quadratic-weighted Cohen's kappa on the label ranks; NaN when undefined."""
    counts = _confusion_counts(guess, truth, weights, n_labels)
    ranks = np.arange(n_labels)
    cost = (ranks[:, None] - ranks[None, :]) ** 2.0
    observed = np.einsum("bij,ij->b", counts, cost)
    expected = np.einsum("bi,bj,ij->b", counts.sum(axis=2), counts.sum(axis=1), cost) / counts.sum(axis=(1, 2))
    return 1.0 - _ratio(observed, expected)


_CLASSIFICATION: dict[str, Callable[..., np.ndarray]] = {
    "exact_match": _exact_match,
    "balanced_accuracy": _balanced_accuracy,
    "macro_f1": _macro_f1,
    "qwk": _qwk,
}


def _prepare_labels(
    labels: tuple[str, ...], predictions: Sequence[str], targets: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and actual label words as ranks in ``labels`` (the :class:`Metric` argument order)."""
    truth, guess, _ = _paired_ranks(targets, predictions, labels)
    return guess, truth


def classification_registry(labels: Sequence[str]) -> tuple[Metric, ...]:
    """The classification metrics as :class:`Metric` objects bound to a label scheme.

    Each object is called as ``metric(predicted_labels, actual_labels)`` with label words; see
    :func:`classification_metrics` for the definitions.

    Args:
        labels: The label scheme, ordered from most to least able.
    """
    ordered = _check_labels(labels)
    prepare = partial(_prepare_labels, ordered)
    return tuple(
        Metric(name, prepare, partial(kernel, n_labels=len(ordered)))
        for name, kernel in _CLASSIFICATION.items()
    )


def classification_metrics(
    actual: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, float | None]:
    """Score predicted ability labels against the measured ones.

    Returns ``exact_match`` (accuracy), ``balanced_accuracy`` (mean per-class recall over the
    classes present in ``actual``), ``macro_f1`` (mean F1 over the classes that occur in either
    sequence) and ``qwk`` (quadratic-weighted Cohen's kappa on the position of each label in
    ``labels``, so confusing ``can`` with ``cannot`` costs four times as much as confusing it
    with ``uncertain``). ``qwk`` is ``None`` when undefined, i.e. when both sequences hold one
    and the same single label.

    Args:
        actual: Measured labels, one per question.
        predicted: Predicted labels, aligned with ``actual``.
        labels: The label scheme, ordered from most to least able (e.g. ``labels_for("three")``).
    """
    return {metric.name: metric(predicted, actual) for metric in classification_registry(labels)}


def confusion(
    actual: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> np.ndarray:
    """Confusion matrix of counts: rows are actual labels, columns predicted, both in ``labels`` order.

    Args:
        actual: Measured labels, one per question.
        predicted: Predicted labels, aligned with ``actual``.
        labels: The label scheme; fixes the row and column order.
    """
    truth, guess, ordered = _paired_ranks(actual, predicted, labels)
    counts = _confusion_counts(guess, truth, np.ones((1, truth.size)), len(ordered))[0]
    return counts.astype(int)


def distribution(values: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Fraction of ``values`` carrying each label, keyed in ``labels`` order (sums to 1).

    Args:
        values: Label words; must not be empty and must all belong to ``labels``.
        labels: The label scheme; every label gets a key, even when its fraction is 0.
    """
    ordered = _check_labels(labels)
    if len(values) == 0:
        raise ValueError("values is empty; a distribution needs at least one label")
    counts = np.bincount(_ranks(values, ordered, "values"), minlength=len(ordered))
    return {label: float(count) / len(values) for label, count in zip(ordered, counts)}
