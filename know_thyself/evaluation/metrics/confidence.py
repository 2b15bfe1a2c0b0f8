"""The confidence score: a judge's label probabilities collapsed into one probability of a correct answer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from know_thyself.data.labels import CAN, CANNOT, UNCERTAIN
from know_thyself.evaluation.metrics.core import _check_labels, _flags, _ranks

# Nominal share of correct answers implied by each ability label (its definition over trials):
# ``can`` = every trial correct, ``cannot`` = fewer than half. ``uncertain`` (half or more, not
# all) has no exact value; 0.5 is only a placeholder. Used by :func:`confidence_score` when no
# measured rates are given and by :func:`label_correctness_rates` for a label absent from train.
ANSWER_RATE: dict[str, float] = {CAN: 1.0, UNCERTAIN: 0.5, CANNOT: 0.0}


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
