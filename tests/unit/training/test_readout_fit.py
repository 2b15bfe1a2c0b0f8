"""Fitting the stacked readout: the folded weights give the fitted regression's probabilities, it learns the
first token where that is what separates the labels, and it refuses a dev split without every label."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from know_thyself.inference.readout import readout_features
from know_thyself.training.readout import fit_readout

LABELS = ("can", "uncertain", "cannot")


def _dev(n=90, seed=0):
    """The judge's probabilities carry nothing; the first token's probability alone tells the labels apart."""
    rng = np.random.default_rng(seed)
    actual = [LABELS[i % 3] for i in range(n)]
    centre = {"can": 0.9, "uncertain": 0.5, "cannot": 0.1}
    first = np.array([np.clip(centre[a] + rng.normal(0, 0.05), 0.01, 0.99) for a in actual])
    probs = rng.dirichlet(np.ones(3), size=n)
    return probs, first, actual


def test_the_readout_learns_the_first_token_when_it_alone_separates_the_labels():
    probs, first, actual = _dev()
    readout = fit_readout(probs, first, actual, LABELS)
    new_probs, new_first, new_actual = _dev(seed=1)
    predicted = [LABELS[i] for i in readout.probabilities(new_probs, new_first).argmax(axis=1)]
    assert np.mean([p == a for p, a in zip(predicted, new_actual)]) > 0.9
    # The first token's weight orders the labels: up for can, down for cannot.
    assert readout.coef[0, -1] > readout.coef[1, -1] > readout.coef[2, -1]


def test_the_folded_weights_give_the_regression_fitted_on_standardised_features():
    probs, first, actual = _dev(n=60, seed=3)
    readout = fit_readout(probs, first, actual, LABELS, c=0.5)
    x = readout_features(probs, first)
    standardised = (x - x.mean(axis=0)) / x.std(axis=0)
    reference = LogisticRegression(C=0.5, class_weight="balanced", max_iter=5000, random_state=0).fit(standardised, actual)
    expected = reference.predict_proba(standardised)[:, [list(reference.classes_).index(label) for label in LABELS]]
    assert np.allclose(readout.probabilities(probs, first), expected, atol=1e-8)


def test_two_labels_fit_a_two_row_readout():
    probs, first, actual = _dev(n=60)
    keep = [i for i, a in enumerate(actual) if a != "uncertain"]
    binary = np.column_stack([probs[keep, 0], probs[keep, 1] + probs[keep, 2]])
    labels = ("can", "cannot")
    readout = fit_readout(binary, first[keep], [actual[i] for i in keep], labels)
    assert readout.coef.shape == (2, 3)
    predicted = [labels[i] for i in readout.probabilities(binary, first[keep]).argmax(axis=1)]
    assert predicted == [actual[i] for i in keep]


def test_a_dev_split_without_every_label_is_refused():
    probs, first, actual = _dev(n=30)
    actual = ["cannot" if a == "uncertain" else a for a in actual]
    with pytest.raises(ValueError, match="holds no 'uncertain' question"):
        fit_readout(probs, first, actual, LABELS)


def test_sample_weights_replace_the_label_weights():
    probs, first, actual = _dev(n=60, seed=4)
    weights = np.linspace(0.5, 2.0, 60)
    readout = fit_readout(probs, first, actual, LABELS, sample_weight=weights)
    x = readout_features(probs, first)
    standardised = (x - x.mean(axis=0)) / x.std(axis=0)
    reference = LogisticRegression(max_iter=5000, random_state=0).fit(standardised, actual, sample_weight=weights)
    expected = reference.predict_proba(standardised)[:, [list(reference.classes_).index(label) for label in LABELS]]
    assert np.allclose(readout.probabilities(probs, first), expected, atol=1e-8)
    assert not np.allclose(fit_readout(probs, first, actual, LABELS).probabilities(probs, first), expected, atol=1e-4)
