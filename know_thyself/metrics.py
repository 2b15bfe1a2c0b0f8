"""Evaluation metrics for self-knowledge predictions, with paired bootstrap confidence intervals.

Three families:

* **Classification**: how well a predicted ability label (``can`` / ``uncertain`` / ``cannot``,
  or the binary ``can`` / ``cannot``) matches the label measured from graded trials.
* **Confidence**: how well a score in [0, 1] ranks and calibrates against whether an answer
  was actually correct (AUROC, Brier score, expected calibration error, AURC, PRR).
* **Selective answering**: what happens when the model follows a hard answer/abstain decision.

Every metric is a :class:`Metric`: a name, a ``prepare`` step that validates ``(predictions,
targets)`` and turns them into arrays, and a vectorised ``kernel`` that evaluates the metric
under many sets of per-question weights at once. Calling a metric uses weight 1 for every
question; :func:`bootstrap_interval` uses the resampling counts of :func:`bootstrap_weights`, so
a point estimate and its confidence interval always come from the same code. The kernels agree
with scikit-learn's metrics given the same counts as ``sample_weight`` (the tests check this).

The registries to iterate over, logging each value under its name:
:func:`classification_registry` (``metric(predicted_labels, actual_labels)``),
:data:`CONFIDENCE_METRICS` (``metric(confidence, correct)``) and :data:`SELECTIVE_METRICS`
(``metric(answered, correct)``).

A metric that is mathematically undefined for the given input (for example Cohen's kappa when
both sides hold a single, identical class, or AUROC when every answer is correct) is reported
as ``None``, never as NaN. Malformed input (empty, mismatched lengths, unknown labels, values
out of range) raises :class:`ValueError` with a message naming the problem.

Tied confidence scores are averaged over, never broken by input order: AUROC counts a tied
(correct, wrong) pair as half, and the risk-coverage curve, AURC and PRR are the expected values
over a uniformly random order within each group of tied scores (so a constant score has PRR 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import numpy as np

from know_thyself.labels import CAN, CANNOT, UNCERTAIN

# Nominal share of correct answers implied by each ability label (its definition over trials):
# ``can`` = every trial correct, ``cannot`` = fewer than half. ``uncertain`` (half or more, not
# all) has no exact value; 0.5 is only a placeholder. Used by :func:`confidence_score` when no
# measured rates are given and by :func:`label_correctness_rates` for a label absent from train.
ANSWER_RATE: dict[str, float] = {CAN: 1.0, UNCERTAIN: 0.5, CANNOT: 0.0}

#: A metric's vectorised core: ``kernel(predictions, targets, weights)`` with prepared 1-D
#: arrays of length ``n`` and ``weights`` of shape ``(n_sets, n)`` (non-negative integer
#: counts); returns one value per weight set, NaN where the metric is undefined.
Kernel = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


# --------------------------------------------------------------------------------------------
# Metric objects
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Classification of ability labels
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# From label probabilities to a confidence score
# --------------------------------------------------------------------------------------------


def label_correctness_rates(
    actual_labels: Sequence[str], greedy_correct: Sequence[bool], labels: Sequence[str]
) -> dict[str, float]:
    """Per label, the share of questions carrying it whose greedy answer was correct.

    Measure this on the train split and pass it to :func:`confidence_score`, so that the score
    means "probability that the greedy answer is right" instead of assuming what each label is
    worth. ``rate[k] = #(actual == k and greedy correct) / #(actual == k)``.

    Fallback: a label that no question carries has no measured rate; it gets its nominal value
    from :data:`ANSWER_RATE` (``can`` 1.0, ``uncertain`` 0.5, ``cannot`` 0.0), the value its
    definition over trials suggests. A label outside :data:`ANSWER_RATE` with no questions
    raises ``ValueError``.

    Args:
        actual_labels: Measured ability label per question (train split).
        greedy_correct: Whether each question's greedy answer was graded correct, aligned.
        labels: The label scheme; every label gets a key.
    """
    ordered = _check_labels(labels)
    flags = _flags(greedy_correct, "greedy_correct")
    if len(actual_labels) != flags.size:
        raise ValueError(
            f"actual_labels and greedy_correct differ in length: {len(actual_labels)} vs {flags.size}"
        )
    if flags.size == 0:
        raise ValueError("actual_labels is empty; need the train split's labels to measure rates")
    ranks = _ranks(actual_labels, ordered, "actual_labels")
    totals = np.bincount(ranks, minlength=len(ordered))
    rights = np.bincount(ranks, weights=flags.astype(float), minlength=len(ordered))
    rates = {}
    for i, label in enumerate(ordered):
        if totals[i]:
            rates[label] = float(rights[i] / totals[i])
        elif label in ANSWER_RATE:
            rates[label] = ANSWER_RATE[label]
        else:
            raise ValueError(f"no question carries label {label!r} and it has no nominal rate to fall back on")
    return rates


def confidence_score(
    probabilities: np.ndarray, labels: Sequence[str], rates: Mapping[str, float] | None = None
) -> np.ndarray:
    """Collapse per-label probabilities into one confidence in [0, 1] per question.

    The score is ``sum_k P(k) * rates[k]``: the probability of a correct greedy answer implied by
    the label distribution, when ``rates`` are the per-label correctness rates measured on train
    (:func:`label_correctness_rates`). Rows are renormalised to sum to 1 first, so unnormalised
    (but non-negative) weights are accepted.

    Without ``rates`` the nominal :data:`ANSWER_RATE` is used (``P(can) + 0.5 P(uncertain)``,
    ``P(can)`` for the binary scheme); that assumes what ``uncertain`` is worth, so callers
    should pass measured rates.

    Args:
        probabilities: Array of shape ``(n_questions, len(labels))``, columns in ``labels``
            order; non-negative and finite, with a positive sum in every row.
        labels: The label scheme.
        rates: Label -> correctness rate in [0, 1], one key per label and no others.
    """
    ordered = _check_labels(labels)
    if rates is None:
        unknown = [label for label in ordered if label not in ANSWER_RATE]
        if unknown:
            raise ValueError(
                f"confidence_score has no answer rate for labels {unknown!r}; "
                f"known: {sorted(ANSWER_RATE)}; pass rates"
            )
        rates = ANSWER_RATE
    else:
        missing = [label for label in ordered if label not in rates]
        extra = sorted(set(rates) - set(ordered))
        if missing or extra:
            raise ValueError(f"rates must have exactly the keys {ordered!r}; missing {missing!r}, unknown {extra!r}")
        bad = {label: rates[label] for label in ordered if not 0.0 <= float(rates[label]) <= 1.0}
        if bad:
            raise ValueError(f"rates must lie in [0, 1], got {bad!r}")
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
    values = np.array([float(rates[label]) for label in ordered])
    # Clip guards against tiny floating-point excursions beyond [0, 1].
    return np.clip((probs / totals[:, None]) @ values, 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# Confidence scores and their quality
# --------------------------------------------------------------------------------------------


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


def brier(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """Brier score: mean squared difference between confidence and the 0/1 outcome.

    Args:
        confidence: Predicted probability of being correct, one per example, in [0, 1].
        correct: Whether each example was actually answered correctly.
    """
    return _BRIER(confidence, correct)


def probabilistic_metrics(
    confidence: Sequence[float], correct: Sequence[bool], n_bins: int = 10
) -> dict[str, float | None]:
    """Ranking and calibration quality of a confidence score.

    Returns ``auroc`` (``None`` when every answer is correct or every answer is wrong),
    ``brier`` and ``ece`` (see :func:`expected_calibration_error`). :func:`confidence_metrics`
    adds AURC and PRR.

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


# --------------------------------------------------------------------------------------------
# Selective answering
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Registries
# --------------------------------------------------------------------------------------------

_AUROC = Metric("auroc", _confidence_and_correct, _auroc_kernel)
_BRIER = Metric("brier", _confidence_and_correct, _brier_kernel)
_AURC = Metric("aurc", _confidence_and_correct, _aurc_kernel)
_PRR = Metric("prr", _confidence_and_correct, _prr_kernel)
_COVERAGE = Metric("coverage", _selective_pair, _coverage_kernel)
_ANSWERED_ACCURACY = Metric("answered_accuracy", _selective_pair, _answered_accuracy_kernel)
_HANDLED_WELL = Metric("handled_well", _selective_pair, _handled_well_kernel)

#: Metrics of a confidence score, each called as ``metric(confidence, correct)``: AUROC,
#: Brier score, ECE (10 equal-width bins), AURC and PRR. The one list an evaluation needs for
#: its confidence metrics (and for their bootstrap intervals).
CONFIDENCE_METRICS: tuple[Metric, ...] = (
    _AUROC,
    _BRIER,
    Metric("ece", _confidence_and_correct, _ece_kernel),
    _AURC,
    _PRR,
)

#: Metrics of a hard answer/abstain decision, each called as ``metric(answered, correct)``.
SELECTIVE_METRICS: tuple[Metric, ...] = (_COVERAGE, _ANSWERED_ACCURACY, _HANDLED_WELL)


# --------------------------------------------------------------------------------------------
# Paired bootstrap confidence intervals
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _cached_weights(n: int, n_resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(n_resamples, n))
    picks += np.arange(n_resamples)[:, None] * n
    weights = np.bincount(picks.ravel(), minlength=n_resamples * n).reshape(n_resamples, n).astype(float)
    weights.setflags(write=False)
    return weights


def bootstrap_weights(n: int, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """How often each of ``n`` questions is drawn in each bootstrap resample.

    Resample ``b`` draws ``n`` questions uniformly with replacement; ``weights[b, i]`` counts
    the draws of question ``i`` (each row sums to ``n``). Deterministic in ``(n, n_resamples,
    seed)``: every metric and every method scored on the same questions with the same seed sees
    the same resamples, which is what makes differences between methods paired. The result is
    cached and read-only.

    Args:
        n: Number of questions.
        n_resamples: Number of resamples (rows).
        seed: Seed of numpy's default generator.
    """
    for name, value, least in (("n", n, 1), ("n_resamples", n_resamples, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return _cached_weights(int(n), int(n_resamples), int(seed))


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile-bootstrap confidence interval.

    Args:
        estimate: The metric on the full data (for a paired difference: method minus
            baseline); ``None`` when undefined there.
        low: Lower end of the interval, ``None`` when no resample was defined.
        high: Upper end of the interval, ``None`` when no resample was defined.
        n_resamples: Resamples drawn.
        n_undefined: Resamples dropped because the metric (or, for a difference, either side)
            was undefined on them; the interval comes from the other ``n_resamples - n_undefined``.
        level: Nominal coverage, e.g. 0.95.
    """

    estimate: float | None
    low: float | None
    high: float | None
    n_resamples: int
    n_undefined: int
    level: float

    def as_tuple(self) -> tuple[float | None, float | None, float | None]:
        """``(estimate, low, high)``."""
        return self.estimate, self.low, self.high

    def excludes(self, value: float = 0.0) -> bool:
        """Whether the interval lies entirely above or below ``value`` (False when undefined)."""
        if self.low is None or self.high is None:
            return False
        return self.low > value or self.high < value


def bootstrap_interval(
    metric: Metric,
    predictions: Any,
    targets: Any,
    baseline: Any = None,
    *,
    baseline_targets: Any = None,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile-bootstrap confidence interval of a metric, or of a paired difference.

    Questions are resampled with replacement (:func:`bootstrap_weights`), ``n_resamples``
    times. Without ``baseline`` the statistic is ``metric(predictions, targets)``; with it, the
    statistic is ``metric(predictions, targets) - metric(baseline, targets)`` computed on the
    same resampled questions (a paired bootstrap: the question-to-question variation both
    methods share cancels). The interval is the percentile method: the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles (numpy's linear interpolation) of the resampled statistics.
    It is centred on the resampling distribution, not on the estimate, and can cover less than
    ``level`` for small samples or metrics near a bound; BCa would correct that at the price of
    a jackknife per interval.

    Resamples on which the statistic is undefined (e.g. AUROC when a resample holds only
    correct answers, or PRR with one class) are dropped, and their number is returned as
    ``n_undefined``; the interval is then conditional on the metric being defined. When the
    estimate itself is undefined the interval is ``(None, None, None)``.

    Args:
        metric: A :class:`Metric`, e.g. from :data:`CONFIDENCE_METRICS`,
            :data:`SELECTIVE_METRICS` or :func:`classification_registry`.
        predictions: The method's per-question predictions, in the metric's input form.
        targets: Per-question targets, aligned with ``predictions``.
        baseline: Optional second method's predictions, aligned with the same questions.
        baseline_targets: The baseline's own targets when they differ from ``targets`` on the
            same questions (two judges of different base models, each scored against its own
            model's labels); default ``targets``. The pairing is by question either way.
        n_resamples: Number of bootstrap resamples.
        level: Nominal coverage of the interval, strictly between 0 and 1.
        seed: Seed of the resampling; the same seed pairs every call on the same questions.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    prepared, truth = metric.prepare(predictions, targets)
    weights = bootstrap_weights(truth.size, n_resamples, seed)
    ones = np.ones((1, truth.size))
    estimate = metric.kernel(prepared, truth, ones)[0]
    resampled = metric.kernel(prepared, truth, weights)
    if baseline is not None:
        other, other_truth = metric.prepare(baseline, targets if baseline_targets is None else baseline_targets)
        if other_truth.size != truth.size:
            raise ValueError(
                f"baseline_targets cover {other_truth.size} questions, targets {truth.size}; a paired "
                "difference needs the same questions on both sides"
            )
        estimate = estimate - metric.kernel(other, other_truth, ones)[0]
        resampled = resampled - metric.kernel(other, other_truth, weights)
    defined = np.isfinite(resampled)
    n_undefined = int(n_resamples - defined.sum())
    if not math.isfinite(estimate) or not defined.any():
        return Interval(_finite_or_none(estimate), None, None, n_resamples, n_undefined, level)
    low, high = np.quantile(resampled[defined], [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Interval(float(estimate), float(low), float(high), n_resamples, n_undefined, level)


def bootstrap_intervals(
    metrics: Iterable[Metric],
    predictions: Any,
    targets: Any,
    baseline: Any = None,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """:func:`bootstrap_interval` for each metric of a registry, keyed by metric name.

    Args:
        metrics: Metrics sharing one input form (e.g. :data:`CONFIDENCE_METRICS`).
        predictions: The method's per-question predictions.
        targets: Per-question targets, aligned with ``predictions``.
        baseline: Optional second method's predictions for paired differences.
        n_resamples: Number of bootstrap resamples.
        level: Nominal coverage of each interval.
        seed: Seed of the resampling (the same for every metric, so all are paired).
    """
    return {
        metric.name: bootstrap_interval(
            metric, predictions, targets, baseline, n_resamples=n_resamples, level=level, seed=seed
        )
        for metric in metrics
    }
