"""Evaluation metrics for self-knowledge predictions.

Three families, all thin wrappers around scikit-learn where it has the metric:

* **Classification**: how well a predicted ability label (``can`` / ``uncertain`` / ``cannot``,
  or the binary ``can`` / ``cannot``) matches the label measured from graded trials.
* **Confidence**: how well a score in [0, 1] ranks and calibrates against whether an answer
  was actually correct (AUROC, Brier score, expected calibration error, reliability bins).
* **Selective answering**: what happens when the model answers only the questions it is most
  confident about (risk-coverage curve, AURC, prediction rejection ratio) or follows a hard
  answer/abstain decision.

A metric that is mathematically undefined for the given input (for example Cohen's kappa when
both sides hold a single, identical class, or AUROC when every answer is correct) is reported
as ``None``, never as NaN. Malformed input (empty, mismatched lengths, unknown labels, values
out of range) raises :class:`ValueError` with a message naming the problem.

:class:`Metric` pairs a name with a function of ``(predictions, targets)`` so callers can
iterate over :data:`CONFIDENCE_METRICS`, :data:`SELECTIVE_METRICS` or
:func:`classification_registry` and log each value under its name.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from sklearn.metrics import (
    balanced_accuracy_score,
    brier_score_loss,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
)

from know_thyself.labels import CAN, CANNOT, UNCERTAIN

# Expected share of correct answers implied by each ability label. ``uncertain`` covers
# questions answered correctly in 50-99% of trials, so its midpoint-ish value is 0.5.
ANSWER_RATE: dict[str, float] = {CAN: 1.0, UNCERTAIN: 0.5, CANNOT: 0.0}


# --------------------------------------------------------------------------------------------
# Metric objects
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A named metric: a function of ``(predictions, targets)`` returning a float or ``None``.

    Note the argument order: predictions first, targets second (the reverse of
    scikit-learn's ``(y_true, y_pred)``).

    Args:
        name: Key under which the value is reported (e.g. in MLflow).
        fn: Callable taking ``(predictions, targets)``; returns ``None`` when undefined.
    """

    name: str
    fn: Callable[[Any, Any], float | None]

    def __call__(self, predictions: Any, targets: Any) -> float | None:
        """Evaluate the metric on ``predictions`` against ``targets``."""
        return self.fn(predictions, targets)


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


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


def _confidence_and_correct(
    confidence: Sequence[float], correct: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (confidence, correct) pair: same non-zero length, scores in [0, 1]."""
    scores = _scores(confidence, "confidence")
    flags = _flags(correct, "correct")
    if scores.shape != flags.shape:
        raise ValueError(
            f"confidence and correct differ in length: {scores.size} vs {flags.size}"
        )
    if scores.size == 0:
        raise ValueError("confidence and correct are empty; need at least one example")
    return scores, flags


def _finite_or_none(value: float) -> float | None:
    """Map NaN/inf (an undefined metric) to ``None`` and anything else to a plain float."""
    value = float(value)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------
# Classification of ability labels
# --------------------------------------------------------------------------------------------


def _exact_match(truth: np.ndarray, guess: np.ndarray, n_labels: int) -> float | None:
    """Share of examples whose predicted label equals the actual one."""
    return float(np.mean(truth == guess))


def _balanced_accuracy(truth: np.ndarray, guess: np.ndarray, n_labels: int) -> float | None:
    """Mean recall over the classes present in ``truth`` (scikit-learn's definition)."""
    with warnings.catch_warnings():
        # Predicting a class absent from ``truth`` is legitimate here; sklearn warns about it.
        warnings.simplefilter("ignore")
        return _finite_or_none(balanced_accuracy_score(truth, guess))


def _macro_f1(truth: np.ndarray, guess: np.ndarray, n_labels: int) -> float | None:
    """Unweighted mean F1 over the classes present in ``truth`` or ``guess``.

    Classes that appear on neither side are left out rather than counted as F1 = 0, so a
    binary-looking sample scored under the three-label scheme is not penalised for the label
    nobody used. A class with no predicted (or no actual) examples gets F1 = 0.
    """
    present = np.union1d(truth, guess)
    return _finite_or_none(
        f1_score(truth, guess, labels=present, average="macro", zero_division=0)
    )


def _qwk(truth: np.ndarray, guess: np.ndarray, n_labels: int) -> float | None:
    """Quadratic-weighted Cohen's kappa on the label ranks; ``None`` when undefined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = cohen_kappa_score(
            truth, guess, labels=np.arange(n_labels), weights="quadratic"
        )
    return _finite_or_none(kappa)


_CLASSIFICATION: dict[str, Callable[[np.ndarray, np.ndarray, int], float | None]] = {
    "exact_match": _exact_match,
    "balanced_accuracy": _balanced_accuracy,
    "macro_f1": _macro_f1,
    "qwk": _qwk,
}


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
    truth, guess, ordered = _paired_ranks(actual, predicted, labels)
    return {name: fn(truth, guess, len(ordered)) for name, fn in _CLASSIFICATION.items()}


def _registered_classification(
    name: str, labels: tuple[str, ...], predictions: Sequence[str], targets: Sequence[str]
) -> float | None:
    """Evaluate one classification metric with the :class:`Metric` argument order."""
    truth, guess, ordered = _paired_ranks(targets, predictions, labels)
    return _CLASSIFICATION[name](truth, guess, len(ordered))


def classification_registry(labels: Sequence[str]) -> tuple[Metric, ...]:
    """The classification metrics as :class:`Metric` objects bound to a label scheme.

    Each object is called as ``metric(predicted_labels, actual_labels)``.

    Args:
        labels: The label scheme, ordered from most to least able.
    """
    ordered = _check_labels(labels)
    return tuple(
        Metric(name, partial(_registered_classification, name, ordered))
        for name in _CLASSIFICATION
    )


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
    return confusion_matrix(truth, guess, labels=np.arange(len(ordered)))


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


# --------------------------------------------------------------------------------------------
# Confidence scores and their quality
# --------------------------------------------------------------------------------------------


def confidence_score(probabilities: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Collapse per-label probabilities into one confidence in [0, 1] per question.

    The score is the expected probability of answering correctly implied by the label
    distribution: each label contributes its probability times the share of correct trials it
    stands for (:data:`ANSWER_RATE`): ``can`` -> 1.0, ``uncertain`` -> 0.5 (it covers 50-99%
    correct trials), ``cannot`` -> 0.0. So for the three-label scheme the score is
    ``P(can) + 0.5 * P(uncertain)`` and for the binary scheme it is ``P(can)``. Rows are
    renormalised to sum to 1 first, so unnormalised (but non-negative) weights are accepted.

    Args:
        probabilities: Array of shape ``(n_questions, len(labels))``, columns in ``labels``
            order; non-negative and finite, with a positive sum in every row.
        labels: The label scheme; each label must be one of ``can``, ``uncertain``, ``cannot``.
    """
    ordered = _check_labels(labels)
    unknown = [label for label in ordered if label not in ANSWER_RATE]
    if unknown:
        raise ValueError(
            f"confidence_score has no answer rate for labels {unknown!r}; "
            f"known: {sorted(ANSWER_RATE)}"
        )
    try:
        probs = np.asarray(probabilities, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("probabilities must be a numeric array") from None
    if probs.ndim != 2 or probs.shape[1] != len(ordered):
        raise ValueError(
            f"probabilities must have shape (n, {len(ordered)}) for labels {ordered!r}, "
            f"got {probs.shape}"
        )
    if probs.shape[0] == 0:
        raise ValueError("probabilities has no rows; need at least one question")
    if not np.isfinite(probs).all():
        raise ValueError("probabilities contains NaN or infinite values")
    if (probs < 0).any():
        raise ValueError("probabilities must be non-negative")
    totals = probs.sum(axis=1)
    if (totals <= 0).any():
        raise ValueError(
            f"probabilities rows must have a positive sum; rows "
            f"{np.flatnonzero(totals <= 0).tolist()} sum to zero"
        )
    rates = np.array([ANSWER_RATE[label] for label in ordered])
    # Clip guards against tiny floating-point excursions beyond [0, 1].
    return np.clip((probs / totals[:, None]) @ rates, 0.0, 1.0)


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width confidence bins for a reliability diagram.

    Bin ``i`` covers ``[edges[i], edges[i + 1])``; the last bin also includes 1.0. Empty bins
    have ``count == 0`` and NaN ``mean_confidence`` / ``accuracy`` (matplotlib skips NaN);
    :meth:`rows` gives a JSON-friendly view with ``None`` instead.

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

    def rows(self) -> list[dict[str, float | int | None]]:
        """One dict per bin (``lower``, ``upper``, ``count``, ``mean_confidence``, ``accuracy``)."""
        return [
            {
                "lower": float(self.edges[i]),
                "upper": float(self.edges[i + 1]),
                "count": int(self.counts[i]),
                "mean_confidence": _finite_or_none(self.mean_confidence[i]),
                "accuracy": _finite_or_none(self.accuracy[i]),
            }
            for i in range(len(self.counts))
        ]


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
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    which = _bin_index(scores, int(n_bins))
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


def expected_calibration_error(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10
) -> float:
    """ECE: bin-size-weighted mean of ``|mean confidence - accuracy|`` over equal-width bins.

    Args:
        confidence: Predicted probability of being correct, one per example, in [0, 1].
        correct: Whether each example was actually answered correctly.
        n_bins: Number of equal-width bins over [0, 1].
    """
    bins = reliability_bins(confidence, correct, n_bins)
    used = bins.counts > 0
    gaps = np.abs(bins.mean_confidence[used] - bins.accuracy[used])
    return float(np.sum(bins.counts[used] * gaps) / bins.counts.sum())


def auroc(confidence: Sequence[float], correct: Sequence[bool]) -> float | None:
    """Area under the ROC curve of ``confidence`` separating correct from wrong answers.

    ``None`` when ``correct`` holds a single class (the ROC curve is undefined).

    Args:
        confidence: Predicted probability of being correct, one per example, in [0, 1].
        correct: Whether each example was actually answered correctly.
    """
    scores, flags = _confidence_and_correct(confidence, correct)
    if flags.all() or not flags.any():
        return None
    return _finite_or_none(roc_auc_score(flags, scores))


def brier(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """Brier score: mean squared difference between confidence and the 0/1 outcome.

    Args:
        confidence: Predicted probability of being correct, one per example, in [0, 1].
        correct: Whether each example was actually answered correctly.
    """
    scores, flags = _confidence_and_correct(confidence, correct)
    # Explicit labels keep sklearn from guessing the positive class when only one occurs.
    return float(brier_score_loss(flags.astype(int), scores, labels=[0, 1], pos_label=1))


def probabilistic_metrics(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10
) -> dict[str, float | None]:
    """Ranking and calibration quality of a confidence score.

    Returns ``auroc`` (``None`` when every answer is correct or every answer is wrong),
    ``brier`` and ``ece`` (see :func:`expected_calibration_error`).

    Args:
        confidence: Predicted probability of being correct, one per example, in [0, 1].
        correct: Whether each example was actually answered correctly.
        n_bins: Number of equal-width bins for the ECE.
    """
    return {
        "auroc": auroc(confidence, correct),
        "brier": brier(confidence, correct),
        "ece": expected_calibration_error(confidence, correct, n_bins),
    }


# --------------------------------------------------------------------------------------------
# Selective answering
# --------------------------------------------------------------------------------------------


def risk_coverage_curve(
    confidence: Sequence[float], correct: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Error rate when answering only the ``k`` most confident questions, for ``k = 1..n``.

    Questions are sorted by confidence, highest first; ties keep their input order (stable
    sort), so the curve is deterministic but, within a tie, depends on that order.

    Returns ``(coverage, risk)``, each of length ``n``: ``coverage[k-1] = k / n`` and
    ``risk[k-1]`` = share of wrong answers among the first ``k``.

    Args:
        confidence: Score per question; higher means more willing to answer.
        correct: Whether each question is answered correctly.
    """
    scores, flags = _confidence_and_correct(confidence, correct)
    order = np.argsort(-scores, kind="stable")
    answered = np.arange(1, scores.size + 1)
    errors = np.cumsum(~flags[order])
    return answered / scores.size, errors / answered


def aurc(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """Area under the risk-coverage curve (lower is better).

    Computed as the mean of the risks at the ``n`` coverage levels ``1/n, 2/n, ..., 1``, i.e.
    a right-endpoint Riemann sum with step ``1/n``, with no interpolation to coverage 0.

    Args:
        confidence: Score per question; higher means more willing to answer.
        correct: Whether each question is answered correctly.
    """
    _, risk = risk_coverage_curve(confidence, correct)
    return float(risk.mean())


def _oracle_aurc(flags: np.ndarray) -> float:
    """AURC of the ideal ordering: every correct answer before every wrong one."""
    n_correct = int(flags.sum())
    answered = np.arange(1, flags.size + 1)
    return float(np.mean(np.maximum(answered - n_correct, 0) / answered))


def prediction_rejection_ratio(
    confidence: Sequence[float], correct: Sequence[bool]
) -> float | None:
    """Share of the gap between random and ideal abstention that ``confidence`` closes.

    ``PRR = (AURC_random - AURC) / (AURC_random - AURC_oracle)``, where the random ordering's
    expected risk equals the overall error rate at every coverage and the oracle answers every
    correct question before any wrong one. 1 is ideal, 0 is no better than chance, negative is
    worse than chance. ``None`` when every answer is correct or every answer is wrong (random
    and oracle coincide).

    Args:
        confidence: Score per question; higher means more willing to answer.
        correct: Whether each question is answered correctly.
    """
    scores, flags = _confidence_and_correct(confidence, correct)
    if flags.all() or not flags.any():
        return None
    random_aurc = float(np.mean(~flags))
    oracle = _oracle_aurc(flags)
    return _finite_or_none((random_aurc - aurc(scores, flags)) / (random_aurc - oracle))


def _selective_pair(
    answered: Sequence[bool], correct: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate an (answered, correct) pair of flag sequences of the same non-zero length."""
    took, right = _flags(answered, "answered"), _flags(correct, "correct")
    if took.shape != right.shape:
        raise ValueError(
            f"answered and correct differ in length: {took.size} vs {right.size}"
        )
    if took.size == 0:
        raise ValueError("answered and correct are empty; need at least one example")
    return took, right


def coverage(answered: Sequence[bool], correct: Sequence[bool]) -> float:
    """Share of questions the model chose to answer.

    Args:
        answered: Whether the model answered (rather than abstained) on each question.
        correct: Whether its answer is (or would have been) correct.
    """
    took, _ = _selective_pair(answered, correct)
    return float(took.mean())


def answered_accuracy(answered: Sequence[bool], correct: Sequence[bool]) -> float | None:
    """Accuracy over the answered questions only; ``None`` when nothing was answered.

    Args:
        answered: Whether the model answered (rather than abstained) on each question.
        correct: Whether its answer is (or would have been) correct.
    """
    took, right = _selective_pair(answered, correct)
    if not took.any():
        return None
    return float(right[took].mean())


def handled_well(answered: Sequence[bool], correct: Sequence[bool]) -> float:
    """Share of questions handled well: answered and correct, or abstained and would be wrong.

    Args:
        answered: Whether the model answered (rather than abstained) on each question.
        correct: Whether its answer is (or would have been) correct.
    """
    took, right = _selective_pair(answered, correct)
    return float(np.mean(took == right))


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


# --------------------------------------------------------------------------------------------
# Registries
# --------------------------------------------------------------------------------------------

#: Metrics of a confidence score, each called as ``metric(confidence, correct)``.
CONFIDENCE_METRICS: tuple[Metric, ...] = (
    Metric("auroc", auroc),
    Metric("brier", brier),
    Metric("ece", expected_calibration_error),
    Metric("aurc", aurc),
    Metric("prr", prediction_rejection_ratio),
)

#: Metrics of a hard answer/abstain decision, each called as ``metric(answered, correct)``.
SELECTIVE_METRICS: tuple[Metric, ...] = (
    Metric("coverage", coverage),
    Metric("answered_accuracy", answered_accuracy),
    Metric("handled_well", handled_well),
)
