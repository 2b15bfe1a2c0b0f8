"""Fitting the judge's stacked readout (:mod:`know_thyself.inference.readout`) on its dev split.

The dev questions are the ones the judge did not train on, so its label probabilities there are
what it gives new questions; fitted on its training questions instead, the readout would learn
to trust a judge that has memorised their labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from know_thyself.inference.readout import Readout, readout_features


class MissingLabelError(ValueError):
    """The dev split lacks a label: a readout fitted on it could never predict that label."""


def fit_readout(
    label_probabilities: np.ndarray, first_token: np.ndarray, actual: Sequence[str], labels: Sequence[str],
    balanced: bool = True, c: float = 1.0, seed: int = 0, sample_weight: Sequence[float] | None = None,
) -> Readout:
    """A logistic regression from :func:`readout_features` to the measured labels, as a :class:`Readout`.

    The features are standardised for the fit and the scaling folded into the weights, so the
    readout applies to raw features.

    Args:
        label_probabilities: (n, n_labels) the judge's label probabilities on the dev questions.
        first_token: (n,) the base model's first answer token probabilities on them.
        actual: Their measured labels.
        labels: The label scheme, in the judge's order.
        balanced: Weigh each label by the inverse of its frequency (as the judge's loss does).
        c: Inverse regularisation strength.
        sample_weight: Each question's weight in the fit, in place of ``balanced``'s label weights
            (the judge's own example weights, :func:`know_thyself.training.judge.example_weights`).

    Raises:
        MissingLabelError: when a label is missing from ``actual`` (the readout could never predict it).
    """
    from sklearn.linear_model import LogisticRegression

    labels = tuple(labels)
    missing = [label for label in labels if label not in set(actual)]
    if missing:
        raise MissingLabelError(
            f"the dev split holds no {missing[0]!r} question ({len(actual)} questions), so the stacked readout "
            "cannot learn it"
        )
    x = readout_features(label_probabilities, first_token)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    by_label = "balanced" if balanced and sample_weight is None else None
    model = LogisticRegression(C=c, class_weight=by_label, max_iter=5000, random_state=seed)
    model.fit((x - mean) / scale, list(actual), sample_weight=None if sample_weight is None else np.asarray(sample_weight))
    order = [list(model.classes_).index(label) for label in labels]
    if len(labels) == 2:  # sklearn keeps one row for two classes: P(classes_[1]) = sigmoid(w.x + b)
        weights = np.vstack([np.zeros_like(model.coef_[0]), model.coef_[0]])
        bias = np.array([0.0, model.intercept_[0]])
    else:
        weights, bias = model.coef_, model.intercept_
    weights, bias = weights[order], bias[order]
    coef = weights / scale
    return Readout(labels, coef, bias - coef @ mean)
