"""The judge's stacked readout: its features, its probabilities and predictions against hand-computed values,
and its JSON form (what it refuses to load)."""

import json
import math

import numpy as np
import pytest

from know_thyself.inference.judgments import Judgments
from know_thyself.inference.readout import FEATURES, Readout, readout_features

LABELS = ("can", "uncertain", "cannot")


def _judged(probabilities):
    probabilities = np.array(probabilities, dtype=float)
    n = len(probabilities)
    return Judgments(LABELS, ["cannot"] * n, probabilities, [True] * n, np.full(n, 0.9))


def test_the_features_are_the_log_label_probabilities_then_the_log_first_token_probability():
    features = readout_features(np.array([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]]), np.array([0.125, 1.0]))
    expected = [[math.log(0.5), math.log(0.25), math.log(0.25), math.log(0.125)],
                [0.0, math.log(1e-12), math.log(1e-12), 0.0]]
    assert np.allclose(features, expected)


def test_features_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="2 judgments but 1 first-token"):
        readout_features(np.full((2, 3), 1 / 3), np.array([0.5]))


def test_the_probabilities_are_a_softmax_of_the_linear_scores():
    # Only the first token counts: score(can) = log p_first, score(cannot) = -log p_first, uncertain 0.
    coef = np.zeros((3, 4))
    coef[0, 3], coef[2, 3] = 1.0, -1.0
    readout = Readout(LABELS, coef, np.zeros(3))
    probs = readout.probabilities(np.full((2, 3), 1 / 3), np.array([0.5, 1.0]))
    # p_first 0.5: scores (log .5, 0, log 2) -> (0.5, 1, 2) / 3.5; p_first 1: all zero -> a third each.
    assert np.allclose(probs, [[0.5 / 3.5, 1 / 3.5, 2 / 3.5], [1 / 3, 1 / 3, 1 / 3]])


def test_applying_a_readout_predicts_its_most_probable_label_from_the_greedy_tokens_judgments():
    coef = np.zeros((3, 4))
    coef[0, 3], coef[2, 3] = 4.0, -4.0
    readout = Readout(LABELS, coef, np.array([1.0, 0.5, 0.0]))
    judged = _judged([[0.1, 0.1, 0.8], [0.1, 0.1, 0.8]])
    out = readout.apply(judged, np.array([0.95, 0.05]))
    assert out.predicted == ["can", "cannot"]
    assert out.off_label == [False, False]
    assert np.allclose(out.probabilities.sum(axis=1), 1.0)
    assert np.array_equal(out.label_mass, judged.label_mass)  # what the label tokens held is kept


def test_a_readout_for_other_labels_is_refused():
    readout = Readout(("can", "cannot"), np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="fitted for labels"):
        readout.apply(_judged([[1 / 3] * 3]), np.array([0.5]))


def test_the_json_form_round_trips(tmp_path):
    readout = Readout(LABELS, np.arange(12.0).reshape(3, 4) / 10, np.array([0.1, -0.2, 0.3]))
    loaded = Readout.load(readout.save(tmp_path / "readout.json"))
    assert loaded.labels == LABELS
    assert np.array_equal(loaded.coef, readout.coef) and np.array_equal(loaded.intercept, readout.intercept)
    assert json.loads((tmp_path / "readout.json").read_text())["features"] == list(FEATURES)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "not a judge readout"),
        ({"features": ["x"], "labels": list(LABELS), "coef": [], "intercept": []}, "not a judge readout"),
        ({"features": list(FEATURES), "labels": "can", "coef": [], "intercept": []}, "list of label names"),
        ({"features": list(FEATURES), "labels": list(LABELS), "coef": [["a"] * 4] * 3, "intercept": [0] * 3},
         "not numbers"),
        ({"features": list(FEATURES), "labels": list(LABELS), "coef": [[0] * 3] * 3, "intercept": [0] * 3},
         r"coef of shape \(3, 4\)"),
        ({"features": list(FEATURES), "labels": list(LABELS), "coef": [[float("nan")] * 4] * 3, "intercept": [0] * 3},
         "not all finite"),
    ],
    ids=["not-an-object", "other-features", "labels-not-a-list", "not-numbers", "wrong-shape", "nan"],
)
def test_what_is_not_a_readout_is_refused_with_one_line(data, message):
    with pytest.raises(ValueError, match=message):
        Readout.from_dict(data)


def test_a_file_that_is_not_json_is_refused(tmp_path):
    (tmp_path / "readout.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON"):
        Readout.load(tmp_path / "readout.json")
