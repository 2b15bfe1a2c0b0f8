"""The metric object every metric is, and the input checks they share.

A :class:`Metric` is a name, a ``prepare`` step that validates ``(predictions, targets)`` and turns
them into arrays, and a vectorised ``kernel`` that evaluates the metric under many sets of
per-question weights at once (weight 1 each for the point estimate, bootstrap counts for the
intervals). The underscored helpers are shared by the metric families of this package.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: A metric's vectorised core: ``kernel(predictions, targets, weights)`` with prepared 1-D
#: arrays of length ``n`` and ``weights`` of shape ``(n_sets, n)`` (non-negative integer
#: counts); returns one value per weight set, NaN where the metric is undefined.
Kernel = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]



@dataclass(frozen=True)
class Metric:
    """A named metric of ``(predictions, targets)`` that returns a float, or ``None`` when undefined.

    Note the argument order: predictions first, targets second (the reverse of
    scikit-learn's ``(y_true, y_pred)``).

    Args:
        name: Key under which the value is reported (e.g. in MLflow).
        prepare: Validates raw ``(predictions, targets)`` and returns them as two 1-D numpy
            arrays of equal length; raises ``ValueError`` on bad input.
        kernel: See :data:`Kernel`.
    """

    name: str
    prepare: Callable[[Any, Any], tuple[np.ndarray, np.ndarray]]
    kernel: Kernel

    def __call__(self, predictions: Any, targets: Any) -> float | None:
        """Evaluate the metric on ``predictions`` against ``targets`` (every question weight 1)."""
        prepared, truth = self.prepare(predictions, targets)
        return _finite_or_none(self.kernel(prepared, truth, np.ones((1, truth.size)))[0])

    def weighted(self, predictions: Any, targets: Any, weights: np.ndarray) -> np.ndarray:
        """The metric under each row of ``weights`` (shape ``(n_sets, n)``, integer counts); NaN where undefined."""
        prepared, truth = self.prepare(predictions, targets)
        return self.kernel(prepared, truth, _check_weights(weights, truth.size))



def _check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """Return ``labels`` as a tuple after checking it is non-empty and free of repeats."""
    ordered = tuple(labels)
    if not ordered:
        raise ValueError("labels must not be empty")
    if len(set(ordered)) != len(ordered):
        raise ValueError(f"labels must not repeat, got {ordered!r}")
    return ordered


def _ranks(values: Sequence[str], labels: tuple[str, ...], what: str) -> np.ndarray:
    """Turn label words into integer ranks (position in ``labels``); unknown words raise."""
    index = {label: i for i, label in enumerate(labels)}
    ranks = np.empty(len(values), dtype=int)
    for i, value in enumerate(values):
        try:
            ranks[i] = index[value]
        except (KeyError, TypeError):
            raise ValueError(
                f"{what} contains unknown label {value!r}; expected one of {labels!r}"
            ) from None
    return ranks


def _paired_ranks(
    actual: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Validate a pair of label sequences and return their ranks plus the checked labels."""
    ordered = _check_labels(labels)
    if len(actual) != len(predicted):
        raise ValueError(
            f"actual and predicted differ in length: {len(actual)} vs {len(predicted)}"
        )
    if len(actual) == 0:
        raise ValueError("actual and predicted are empty; need at least one example")
    return _ranks(actual, ordered, "actual"), _ranks(predicted, ordered, "predicted"), ordered


def _flags(values: Sequence[Any], what: str) -> np.ndarray:
    """Return a 1-D boolean array from booleans (or 0/1 integers); anything else raises."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {array.shape}")
    if array.dtype == bool:
        return array
    if array.size and (
        array.dtype.kind not in "iu" or not np.isin(array, (0, 1)).all()
    ):
        raise ValueError(f"{what} must hold booleans (or 0/1), got dtype {array.dtype}")
    return array.astype(bool)


def _scores(values: Sequence[float], what: str) -> np.ndarray:
    """Return a 1-D float array of finite values within [0, 1]; anything else raises."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers in [0, 1]") from None
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise ValueError(
            f"{what} must lie in [0, 1], got range [{array.min()}, {array.max()}]"
        )
    return array


def _aligned(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Two per-example arrays, checked to have the same, non-zero length."""
    if first.shape != second.shape:
        raise ValueError(f"{names[0]} and {names[1]} differ in length: {first.size} vs {second.size}")
    if first.size == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty; need at least one example")
    return first, second


def _confidence_and_correct(
    confidence: Sequence[float], correct: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (confidence, correct) pair: same non-zero length, scores in [0, 1]."""
    return _aligned(_scores(confidence, "confidence"), _flags(correct, "correct"), ("confidence", "correct"))


def _finite_or_none(value: float) -> float | None:
    """Map NaN/inf (an undefined metric) to ``None`` and anything else to a plain float."""
    value = float(value)
    return value if math.isfinite(value) else None


def _check_weights(weights: np.ndarray, n: int) -> np.ndarray:
    """Weights as a float array of shape ``(n_sets, n)`` holding non-negative integer counts."""
    array = np.asarray(weights, dtype=float)
    if array.ndim != 2 or array.shape[1] != n:
        raise ValueError(f"weights must have shape (n_sets, {n}), got {array.shape}")
    if not np.isfinite(array).all() or (array < 0).any() or not np.array_equal(array, np.rint(array)):
        raise ValueError("weights must be non-negative integer counts (e.g. from bootstrap_weights)")
    if (array.sum(axis=1) <= 0).any():
        raise ValueError("every row of weights must have a positive sum")
    return array


def _one_hot(index: np.ndarray, size: int) -> np.ndarray:
    """``(n, size)`` float matrix with a 1 in column ``index[i]`` of row ``i``."""
    matrix = np.zeros((index.size, size))
    matrix[np.arange(index.size), index] = 1.0
    return matrix


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ``numerator / denominator``, NaN where the denominator is 0."""
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator != 0)
