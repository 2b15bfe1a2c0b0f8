"""Selective answering: what happens when the model answers exactly when it judges it can."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from know_thyself.evaluation.metrics.core import Metric, _aligned, _flags, _ratio


def _selective_pair(
    answered: Sequence[bool], correct: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate an (answered, correct) pair of flag sequences of the same non-zero length."""
    return _aligned(_flags(answered, "answered"), _flags(correct, "correct"), ("answered", "correct"))


def _coverage_kernel(took: np.ndarray, right: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return (weights @ took.astype(float)) / weights.sum(axis=1)


def _answered_accuracy_kernel(took: np.ndarray, right: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return _ratio(weights @ (took & right).astype(float), weights @ took.astype(float))


def _handled_well_kernel(took: np.ndarray, right: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return (weights @ (took == right).astype(float)) / weights.sum(axis=1)


def coverage(answered: Sequence[bool], correct: Sequence[bool]) -> float:
    """Share of questions the model chose to answer.

    Args:
        answered: Whether the model answered (rather than abstained) on each question.
        correct: Whether its answer is (or would have been) correct.
    """
    return _COVERAGE(answered, correct)


def answered_accuracy(answered: Sequence[bool], correct: Sequence[bool]) -> float | None:
    """Accuracy over the answered questions only; ``None`` when nothing was answered.

    Args:
        answered: Whether the model answered (rather than abstained) on each question.
        correct: Whether its answer is (or would have been) correct.
    """
    return _ANSWERED_ACCURACY(answered, correct)


def handled_well(answered: Sequence[bool], correct: Sequence[bool]) -> float:
    """Share of questions handled well: answered and correct, or abstained and would be wrong.

    Args:
        answered: Whether the model answered (rather than abstained) on each question.
        correct: Whether its answer is (or would have been) correct.
    """
    return _HANDLED_WELL(answered, correct)


def selective_metrics(
    answered: Sequence[bool], correct: Sequence[bool]
) -> dict[str, float | None]:
    """Outcome of a hard answer-or-abstain decision.

    Returns ``coverage``, ``answered_accuracy`` (``None`` when nothing was answered) and
    ``handled_well``.

    Args:
        answered: Whether the model answered (rather than abstained) on each question.
        correct: Whether its answer is (or would have been) correct, for every question.
    """
    return {metric.name: metric(answered, correct) for metric in SELECTIVE_METRICS}


_COVERAGE = Metric("coverage", _selective_pair, _coverage_kernel)
_ANSWERED_ACCURACY = Metric("answered_accuracy", _selective_pair, _answered_accuracy_kernel)
_HANDLED_WELL = Metric("handled_well", _selective_pair, _handled_well_kernel)

#: Metrics of a hard answer/abstain decision, each called as ``metric(answered, correct)``.
SELECTIVE_METRICS: tuple[Metric, ...] = (_COVERAGE, _ANSWERED_ACCURACY, _HANDLED_WELL)
