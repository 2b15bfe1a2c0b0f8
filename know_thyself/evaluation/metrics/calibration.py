"""Calibration of a confidence score: reliability bins, expected calibration error, Brier score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from know_thyself.evaluation.metrics.core import Metric, _confidence_and_correct, _one_hot


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width confidence bins for a reliability diagram.

    Bin ``i`` covers ``[edges[i], edges[i + 1])``; the last bin also includes 1.0. Empty bins
    have ``count == 0`` and NaN ``mean_confidence`` / ``accuracy`` (matplotlib skips NaN).

    Args:
        edges: ``n_bins + 1`` bin boundaries from 0 to 1.
        counts: Number of examples per bin.
        mean_confidence: Mean confidence of the examples in each bin.
        accuracy: Share of correct examples in each bin.
    """

    edges: np.ndarray
    counts: np.ndarray
    mean_confidence: np.ndarray
    accuracy: np.ndarray


def _check_n_bins(n_bins: Any) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def _bin_index(scores: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each score; ``floor(score * n_bins)`` with 1.0 put in the last bin."""
    return np.minimum((scores * n_bins).astype(int), n_bins - 1)


def reliability_bins(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10
) -> ReliabilityBins:
    """Group examples into ``n_bins`` equal-width confidence bins over [0, 1].

    Args:
        confidence: Predicted probability of being correct, one per example, in [0, 1].
        correct: Whether each example was actually answered correctly.
        n_bins: Number of bins; a positive integer.
    """
    scores, flags = _confidence_and_correct(confidence, correct)
    n_bins = _check_n_bins(n_bins)
    which = _bin_index(scores, n_bins)
    counts = np.bincount(which, minlength=n_bins)
    confidence_sums = np.bincount(which, weights=scores, minlength=n_bins)
    correct_sums = np.bincount(which, weights=flags.astype(float), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.where(counts > 0, confidence_sums / counts, np.nan)
        accuracy = np.where(counts > 0, correct_sums / counts, np.nan)
    return ReliabilityBins(
        edges=np.linspace(0.0, 1.0, n_bins + 1),
        counts=counts,
        mean_confidence=mean_confidence,
        accuracy=accuracy,
    )


def _ece_kernel(scores: np.ndarray, flags: np.ndarray, weights: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """ECE = sum over bins of ``|sum(confidence) - sum(correct)|`` / number of examples."""
    gaps = _one_hot(_bin_index(scores, n_bins), n_bins) * (scores - flags)[:, None]
    return np.abs(weights @ gaps).sum(axis=1) / weights.sum(axis=1)


def _brier_kernel(scores: np.ndarray, flags: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean squared difference between confidence and the 0/1 outcome."""
    return (weights @ (scores - flags) ** 2) / weights.sum(axis=1)


def expected_calibration_error(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10
) -> float:
    """ECE: bin-size-weighted mean of ``|mean confidence - accuracy|`` over equal-width bins.

    Args:
        confidence: Predicted probability of being correct, one per example, in [0, 1].
        correct: Whether each example was actually answered correctly.
        n_bins: Number of equal-width bins over [0, 1].
    """
    scores, flags = _confidence_and_correct(confidence, correct)
    return float(_ece_kernel(scores, flags, np.ones((1, scores.size)), _check_n_bins(n_bins))[0])


def brier(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """Brier score: mean squared difference between confidence and the 0/1 outcome.

    Args:
        confidence: Predicted probability of being correct, one per example, in [0, 1].
        correct: Whether each example was actually answered correctly.
    """
    return _BRIER(confidence, correct)


_BRIER = Metric("brier", _confidence_and_correct, _brier_kernel)
_ECE = Metric("ece", _confidence_and_correct, _ece_kernel)
