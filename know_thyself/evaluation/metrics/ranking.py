"""Ranking quality of a confidence score: AUROC, the risk-coverage curve, AURC and PRR.

Tied scores are averaged over, never broken by input order: AUROC counts a tied (correct, wrong)
pair as half, and the risk-coverage curve, AURC and PRR are the expected values over a uniformly
random order within each group of tied scores (so a constant score has PRR 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from know_thyself.evaluation.metrics.calibration import _BRIER, _ECE
from know_thyself.evaluation.metrics.core import Metric, _confidence_and_correct, _ratio


def _tie_groups(scores: np.ndarray, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sort order of ``scores`` and the start of each run of equal scores in that order."""
    order = np.argsort(-scores if descending else scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, starts


def _group_sums(scores: np.ndarray, flags: np.ndarray, weights: np.ndarray, descending: bool):
    """Per group of tied scores (in score order): total weight and weight of correct examples."""
    order, starts = _tie_groups(scores, descending)
    sorted_weights = weights[:, order]
    count = np.add.reduceat(sorted_weights, starts, axis=1)
    right = np.add.reduceat(sorted_weights * flags[order], starts, axis=1)
    return count, right


def _auroc_kernel(scores: np.ndarray, flags: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """P(score of a correct example > score of a wrong one), ties counted as 1/2."""
    count, right = _group_sums(scores, flags, weights, descending=False)
    wrong = count - right
    wrong_below = np.cumsum(wrong, axis=1) - wrong
    pairs = right.sum(axis=1) * wrong.sum(axis=1)
    return _ratio((right * (wrong_below + 0.5 * wrong)).sum(axis=1), pairs)


@lru_cache(maxsize=4)
def _harmonic(n: int) -> np.ndarray:
    """``H[k] = 1 + 1/2 + ... + 1/k`` for ``k = 0..n`` (``H[0] = 0``)."""
    return np.r_[0.0, np.cumsum(1.0 / np.arange(1, n + 1))]


def _aurc_parts(scores: np.ndarray, flags: np.ndarray, weights: np.ndarray):
    """Expected AURC over random orders within ties, plus the totals PRR needs.

    Answering in decreasing score order, a tie group of ``m`` examples with ``e`` errors,
    preceded by ``K`` examples with ``E`` errors, has expected cumulative errors ``E + j e / m``
    after its ``j``-th example (any order of the group is equally likely). Its share of
    ``sum_i risk_i`` is therefore ``sum_{j=1..m} (E + j e/m) / (K + j)
    = (E - K e/m) (H[K+m] - H[K]) + e`` with ``H`` the harmonic numbers.
    """
    count, right = _group_sums(scores, flags, weights, descending=True)
    errors = count - right
    before = np.rint(np.cumsum(count, axis=1) - count).astype(int)
    errors_before = np.cumsum(errors, axis=1) - errors
    total = np.rint(count.sum(axis=1)).astype(int)
    harmonic = _harmonic(int(total.max()))
    share = np.nan_to_num(_ratio(errors, count))
    size = np.rint(count).astype(int)
    risk_sum = ((errors_before - before * share) * (harmonic[before + size] - harmonic[before]) + errors).sum(axis=1)
    return risk_sum / total, errors.sum(axis=1), total, harmonic


def _aurc_kernel(scores: np.ndarray, flags: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Mean risk over coverages ``1/n .. 1``, expected over random orders within ties."""
    return _aurc_parts(scores, flags, weights)[0]


def _prr_kernel(scores: np.ndarray, flags: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``(AURC_random - AURC) / (AURC_random - AURC_oracle)``; NaN with a single class."""
    value, errors, total, harmonic = _aurc_parts(scores, flags, weights)
    right = total - np.rint(errors).astype(int)
    random = errors / total
    oracle = (errors - right * (harmonic[total] - harmonic[right])) / total
    single_class = (right == 0) | (right == total)
    return np.where(single_class, np.nan, _ratio(random - value, np.where(single_class, 1.0, random - oracle)))


def auroc(confidence: Sequence[float], correct: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``confidence`` separating correct from wrong answers.

    Equals the probability that a random correct answer scores above a random wrong one, a
    tie counting 1/2 (scikit-learn's ``roc_auc_score``). ``None`` when ``correct`` holds a
    single class (the ROC curve is undefined).

    Args:
        confidence: Predicted probability of being correct, one per example, in [0, 1].
        correct: Whether each example was actually answered correctly.
    """
    return _AUROC(confidence, correct)


def risk_coverage_curve(
    confidence: Sequence[float], correct: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Expected error rate when answering only the ``k`` most confident questions, ``k = 1..n``.

    Questions are answered in decreasing order of confidence. Within a group of tied scores
    every order is taken as equally likely and the curve is the expected risk over those
    orders (cumulative errors grow linearly through the group), so it does not depend on the
    input order.

    Returns ``(coverage, risk)``, each of length ``n``: ``coverage[k-1] = k / n`` and
    ``risk[k-1]`` = expected share of wrong answers among the first ``k``.

    Args:
        confidence: Score per question; higher means more willing to answer.
        correct: Whether each question is answered correctly.
    """
    scores, flags = _confidence_and_correct(confidence, correct)
    count, right = _group_sums(scores, flags, np.ones((1, scores.size)), descending=True)
    size = np.rint(count[0]).astype(int)
    errors = size - np.rint(right[0]).astype(int)
    before = np.repeat(np.cumsum(size) - size, size)
    errors_before = np.repeat(np.cumsum(errors) - errors, size)
    group_size, group_errors = np.repeat(size, size), np.repeat(errors, size)
    answered = np.arange(1, scores.size + 1)
    # E + (i - K) e / m over i, kept in integers until the one division.
    expected_errors = errors_before * group_size + (answered - before) * group_errors
    return answered / scores.size, expected_errors / (group_size * answered)


def aurc(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """Area under the risk-coverage curve (lower is better).

    The mean of the expected risks at the ``n`` coverage levels ``1/n, 2/n, ..., 1`` (a
    right-endpoint Riemann sum with step ``1/n``, no interpolation to coverage 0), averaged over
    random orders within tied scores as in :func:`risk_coverage_curve`.

    Args:
        confidence: Score per question; higher means more willing to answer.
        correct: Whether each question is answered correctly.
    """
    return _AURC(confidence, correct)


def prediction_rejection_ratio(
    confidence: Sequence[float], correct: Sequence[bool]
) -> float | None:
    """Share of the gap between random and ideal abstention that ``confidence`` closes.

    ``PRR = (AURC_random - AURC) / (AURC_random - AURC_oracle)``, where the random ordering's
    expected risk equals the overall error rate at every coverage and the oracle answers every
    correct question before any wrong one; AURC is tie-averaged (:func:`aurc`), so a constant
    score gives exactly 0. 1 is ideal, 0 is no better than chance, negative is worse than
    chance. ``None`` when every answer is correct or every answer is wrong (random and oracle
    coincide).

    Args:
        confidence: Score per question; higher means more willing to answer.
        correct: Whether each question is answered correctly.
    """
    return _PRR(confidence, correct)


def confidence_metrics(confidence: Sequence[float], correct: Sequence[bool]) -> dict[str, float | None]:
    """Every metric of :data:`CONFIDENCE_METRICS`, keyed by name (``None`` where undefined).

    Args:
        confidence: Predicted probability of being correct, one per example, in [0, 1].
        correct: Whether each example was actually answered correctly.
    """
    return {metric.name: metric(confidence, correct) for metric in CONFIDENCE_METRICS}


_AUROC = Metric("auroc", _confidence_and_correct, _auroc_kernel)
_AURC = Metric("aurc", _confidence_and_correct, _aurc_kernel)
_PRR = Metric("prr", _confidence_and_correct, _prr_kernel)


#: Metrics of a confidence score, each called as ``metric(confidence, correct)``: AUROC,
#: Brier score, ECE (10 equal-width bins), AURC and PRR. The one list an evaluation needs for
#: its confidence metrics (and for their bootstrap intervals).
CONFIDENCE_METRICS: tuple[Metric, ...] = (
    _AUROC,
    _BRIER,
    _ECE,
    _AURC,
    _PRR,
)
