"""Tests for know_thyself.evaluation.metrics and know_thyself.evaluation.plots.

Expected values are worked out by hand in the comments next to each check, so the tests pin
down the definitions rather than merely echoing scikit-learn.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import balanced_accuracy_score, brier_score_loss, cohen_kappa_score, f1_score, roc_auc_score

from know_thyself.data.labels import CAN, CANNOT, UNCERTAIN, labels_for
from know_thyself.evaluation.metrics import (
    CONFIDENCE_METRICS,
    SELECTIVE_METRICS,
    Metric,
    aurc,
    auroc,
    bootstrap_interval,
    bootstrap_intervals,
    bootstrap_weights,
    brier,
    classification_metrics,
    classification_registry,
    confidence_metrics,
    confidence_score,
    confusion,
    distribution,
    expected_calibration_error,
    label_correctness_rates,
    prediction_rejection_ratio,
    reliability_bins,
    risk_coverage_curve,
    selective_metrics,
)
from know_thyself.evaluation.plots import (
    confusion_matrix_figure,
    distribution_figure,
    reliability_figure,
    risk_coverage_figure,
)

THREE = labels_for("three")
BINARY = labels_for("binary")

# Shared three-label example. Ranks (can=0, uncertain=1, cannot=2):
#   actual    = [0, 0, 0, 1, 1, 2, 2, 2]
#   predicted = [0, 0, 1, 1, 2, 2, 2, 1]
ACTUAL = [CAN, CAN, CAN, UNCERTAIN, UNCERTAIN, CANNOT, CANNOT, CANNOT]
PREDICTED = [CAN, CAN, UNCERTAIN, UNCERTAIN, CANNOT, CANNOT, CANNOT, UNCERTAIN]

# Shared confidence example: sorted by confidence it reads 0.9 T, 0.6 F, 0.4 T, 0.3 F.
CONF = [0.9, 0.4, 0.3, 0.6]
RIGHT = [True, True, False, False]


def _no_nan(values: dict) -> bool:
    """True when no value in the dict is a float NaN (``None`` is fine)."""
    return not any(isinstance(v, float) and math.isnan(v) for v in values.values())


# ------------------------------------------------------------------------------------------
# Classification
# ------------------------------------------------------------------------------------------


def test_classification_three_labels_by_hand():
    got = classification_metrics(ACTUAL, PREDICTED, THREE)
    # exact match: positions 0, 1, 3, 5, 6 agree -> 5 / 8.
    assert got["exact_match"] == pytest.approx(5 / 8)
    # recall: can 2/3, uncertain 1/2, cannot 2/3 -> mean = (11/6) / 3 = 11/18.
    assert got["balanced_accuracy"] == pytest.approx(11 / 18)
    # can: precision 2/2, recall 2/3 -> F1 4/5.
    # uncertain: predicted at 2, 3, 7 (one right) -> precision 1/3, recall 1/2 -> F1 2/5.
    # cannot: predicted at 4, 5, 6 (two right) -> precision 2/3, recall 2/3 -> F1 2/3.
    # macro = (4/5 + 2/5 + 2/3) / 3 = (28/15) / 3 = 28/45.
    assert got["macro_f1"] == pytest.approx(28 / 45)
    # Observed counts O (rows actual) = [[2,1,0],[0,1,1],[0,1,2]], weights (i-j)^2.
    # Weighted observed = 1 + 1 + 1 = 3.
    # Rows r = [3,2,3], columns c = [2,3,3]; weighted expected = sum r_i c_j (i-j)^2 / 8
    #   = (3*(3+12) + 2*(2+3) + 3*(8+3)) / 8 = (45 + 10 + 33) / 8 = 11.
    # kappa = 1 - 3/11 = 8/11.
    assert got["qwk"] == pytest.approx(8 / 11)


def test_classification_binary_by_hand():
    actual = [CAN, CAN, CANNOT, CANNOT]
    predicted = [CAN, CANNOT, CANNOT, CANNOT]
    got = classification_metrics(actual, predicted, BINARY)
    assert got["exact_match"] == pytest.approx(3 / 4)
    # recall can 1/2, cannot 2/2 -> 3/4.
    assert got["balanced_accuracy"] == pytest.approx(3 / 4)
    # can: P 1, R 1/2 -> F1 2/3; cannot: P 2/3, R 1 -> F1 4/5; macro = 22/30 = 11/15.
    assert got["macro_f1"] == pytest.approx(11 / 15)
    # O = [[1,1],[0,2]]: observed disagreement 1; r = [2,2], c = [1,3];
    # expected disagreement = (2*3 + 2*1) / 4 = 2; kappa = 1 - 1/2 = 1/2.
    assert got["qwk"] == pytest.approx(0.5)


def test_classification_single_identical_class_gives_none_not_nan():
    got = classification_metrics([CAN, CAN, CAN], [CAN, CAN, CAN], THREE)
    assert got["exact_match"] == 1.0
    assert got["balanced_accuracy"] == 1.0
    assert got["macro_f1"] == 1.0
    # Expected disagreement is 0, so kappa = 1 - 0/0 is undefined.
    assert got["qwk"] is None
    assert _no_nan(got)


def test_classification_constant_but_different_classes():
    got = classification_metrics([CAN, CAN], [CANNOT, CANNOT], THREE)
    # Every answer wrong; kappa = 1 - observed/expected = 1 - 4/4 = 0 (defined).
    assert got == {"exact_match": 0.0, "balanced_accuracy": 0.0, "macro_f1": 0.0, "qwk": 0.0}


def test_macro_f1_ignores_labels_nobody_used():
    # "uncertain" appears on neither side, so it is left out of the average: F1 = (1 + 1) / 2.
    got = classification_metrics([CAN, CANNOT], [CAN, CANNOT], THREE)
    assert got["macro_f1"] == 1.0
    assert got["qwk"] == pytest.approx(1.0)


def test_qwk_follows_label_order():
    # Same words, but with "uncertain" moved to the end the can/cannot mistake is only one
    # step away instead of two, so kappa changes.
    actual, predicted = [CAN, UNCERTAIN, CANNOT], [CANNOT, UNCERTAIN, CANNOT]
    natural = classification_metrics(actual, predicted, THREE)["qwk"]
    shuffled = classification_metrics(actual, predicted, (CAN, CANNOT, UNCERTAIN))["qwk"]
    assert natural != pytest.approx(shuffled)


@pytest.mark.parametrize(
    "actual, predicted, labels, message",
    [
        ([], [], THREE, "empty"),
        ([CAN], [CAN, CAN], THREE, "length"),
        ([CAN, "maybe"], [CAN, CAN], THREE, "'maybe'"),
        ([CAN], [UNCERTAIN], BINARY, "'uncertain'"),
        ([CAN], [CAN], (), "labels"),
        ([CAN], [CAN], (CAN, CAN), "repeat"),
    ],
)
def test_classification_bad_input(actual, predicted, labels, message):
    with pytest.raises(ValueError, match=message):
        classification_metrics(actual, predicted, labels)


def test_confusion_rows_actual_columns_predicted():
    # Counted from the rank lists above.
    expected = np.array([[2, 1, 0], [0, 1, 1], [0, 1, 2]])
    np.testing.assert_array_equal(confusion(ACTUAL, PREDICTED, THREE), expected)
    with pytest.raises(ValueError, match="'nope'"):
        confusion([CAN], ["nope"], THREE)


def test_distribution():
    assert distribution(ACTUAL, THREE) == pytest.approx(
        {CAN: 3 / 8, UNCERTAIN: 2 / 8, CANNOT: 3 / 8}
    )
    # Unused labels still get a key.
    assert distribution([CAN, CAN], THREE) == {CAN: 1.0, UNCERTAIN: 0.0, CANNOT: 0.0}
    assert list(distribution([CANNOT], BINARY)) == [CAN, CANNOT]
    with pytest.raises(ValueError, match="empty"):
        distribution([], THREE)
    with pytest.raises(ValueError, match="'x'"):
        distribution(["x"], THREE)


# ------------------------------------------------------------------------------------------
# Confidence score
# ------------------------------------------------------------------------------------------


def test_confidence_score_three_labels():
    probs = np.array(
        [
            [0.2, 0.6, 0.2],  # 0.2 + 0.5 * 0.6 = 0.5
            [1.0, 0.0, 0.0],  # 1.0
            [0.0, 0.0, 2.0],  # renormalised to [0, 0, 1] -> 0.0
            [2.0, 2.0, 0.0],  # renormalised to [0.5, 0.5, 0] -> 0.5 + 0.25 = 0.75
        ]
    )
    np.testing.assert_allclose(confidence_score(probs, THREE), [0.5, 1.0, 0.0, 0.75])


def test_confidence_score_binary_and_column_order():
    np.testing.assert_allclose(confidence_score(np.array([[0.3, 0.7]]), BINARY), [0.3])
    # Columns follow `labels`, so with (cannot, can) the second column is P(can).
    np.testing.assert_allclose(confidence_score(np.array([[0.3, 0.7]]), (CANNOT, CAN)), [0.7])


@pytest.mark.parametrize(
    "probs, labels, message",
    [
        (np.array([[0.5, 0.5]]), THREE, "shape"),
        (np.array([0.2, 0.3, 0.5]), THREE, "shape"),
        (np.zeros((0, 3)), THREE, "no rows"),
        (np.array([[0.5, -0.1, 0.6]]), THREE, "non-negative"),
        (np.array([[0.0, 0.0, 0.0]]), THREE, "positive sum"),
        (np.array([[np.nan, 0.5, 0.5]]), THREE, "NaN"),
        (np.array([[0.5, 0.5]]), (CAN, "maybe"), "maybe"),
    ],
)
def test_confidence_score_bad_input(probs, labels, message):
    with pytest.raises(ValueError, match=message):
        confidence_score(probs, labels)


def test_label_correctness_rates_by_hand():
    actual = [CAN, CAN, UNCERTAIN, UNCERTAIN, UNCERTAIN, CANNOT, CANNOT, CANNOT, CANNOT]
    greedy = [True, True, True, False, False, False, False, False, True]
    # can: 2 of 2 right; uncertain: 1 of 3; cannot: 1 of 4.
    assert label_correctness_rates(actual, greedy, THREE) == pytest.approx(
        {CAN: 1.0, UNCERTAIN: 1 / 3, CANNOT: 1 / 4}
    )
    assert list(label_correctness_rates(actual, greedy, THREE)) == list(THREE)


def test_label_correctness_rates_fallback_for_an_absent_label():
    # No uncertain question in train: its nominal rate 0.5 stands in; the others are measured.
    got = label_correctness_rates([CAN, CANNOT, CANNOT], [False, True, False], THREE)
    assert got == pytest.approx({CAN: 0.0, UNCERTAIN: 0.5, CANNOT: 0.5})
    assert label_correctness_rates([CANNOT], [False], BINARY) == {CAN: 1.0, CANNOT: 0.0}
    with pytest.raises(ValueError, match="'maybe'"):
        label_correctness_rates([CAN], [True], (CAN, "maybe"))


@pytest.mark.parametrize(
    "actual, greedy, message",
    [([], [], "empty"), ([CAN], [True, False], "length"), (["x"], [True], "'x'"), ([CAN], ["yes"], "booleans")],
)
def test_label_correctness_rates_bad_input(actual, greedy, message):
    with pytest.raises(ValueError, match=message):
        label_correctness_rates(actual, greedy, THREE)


def test_confidence_score_with_measured_rates():
    rates = {CAN: 0.9, UNCERTAIN: 0.4, CANNOT: 0.1}
    probs = np.array([[0.2, 0.6, 0.2], [0.0, 0.0, 4.0]])
    # 0.2 * 0.9 + 0.6 * 0.4 + 0.2 * 0.1 = 0.18 + 0.24 + 0.02 = 0.44; second row is all cannot -> 0.1.
    np.testing.assert_allclose(confidence_score(probs, THREE, rates), [0.44, 0.1])
    # Without rates, the nominal ones (1, 0.5, 0) are used, as before.
    np.testing.assert_allclose(confidence_score(probs, THREE), [0.5, 0.0])
    with pytest.raises(ValueError, match="missing"):
        confidence_score(probs, THREE, {CAN: 1.0, CANNOT: 0.0})
    with pytest.raises(ValueError, match="unknown"):
        confidence_score(probs, THREE, {**rates, "maybe": 0.2})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        confidence_score(probs, THREE, {**rates, CAN: 1.5})


# ------------------------------------------------------------------------------------------
# Probabilistic metrics and reliability bins
# ------------------------------------------------------------------------------------------


def probabilistic_metrics(confidence, correct, n_bins=10):
    """AUROC, Brier score and ECE of one score, as the tests below check them by hand."""
    return {"auroc": auroc(confidence, correct), "brier": brier(confidence, correct),
            "ece": expected_calibration_error(confidence, correct, n_bins)}


def test_probabilistic_metrics_by_hand():
    got = probabilistic_metrics(CONF, RIGHT)
    # Correct {0.9, 0.4} vs wrong {0.3, 0.6}: pairs ranked right (0.9>0.3), (0.9>0.6),
    # (0.4>0.3); wrong (0.4<0.6) -> 3/4.
    assert got["auroc"] == pytest.approx(0.75)
    # (0.1^2 + 0.6^2 + 0.3^2 + 0.6^2) / 4 = (0.01 + 0.36 + 0.09 + 0.36) / 4 = 0.205.
    assert got["brier"] == pytest.approx(0.205)
    # Ten bins: each example alone in its bin, gaps 0.1, 0.6, 0.3, 0.6 -> mean 0.4.
    assert got["ece"] == pytest.approx(0.4)
    # Two bins: [0, .5) holds 0.4 T, 0.3 F -> |0.35 - 0.5| = 0.15;
    #           [.5, 1] holds 0.9 T, 0.6 F -> |0.75 - 0.5| = 0.25; ECE = (0.15 + 0.25) / 2 = 0.2.
    assert probabilistic_metrics(CONF, RIGHT, n_bins=2)["ece"] == pytest.approx(0.2)


def test_probabilistic_metrics_all_correct_and_all_wrong():
    all_right = probabilistic_metrics([1.0, 0.5], [True, True])
    # AUROC undefined with one class; Brier (0 + 0.25) / 2; ECE gaps 0 and 0.5 -> 0.25.
    assert all_right == pytest.approx({"auroc": None, "brier": 0.125, "ece": 0.25})
    all_wrong = probabilistic_metrics([0.0, 0.5], [False, False])
    assert all_wrong == pytest.approx({"auroc": None, "brier": 0.125, "ece": 0.25})
    assert _no_nan(all_right) and _no_nan(all_wrong)


def test_reliability_bins():
    bins = reliability_bins(CONF, RIGHT, n_bins=2)
    np.testing.assert_allclose(bins.edges, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(bins.counts, [2, 2])
    np.testing.assert_allclose(bins.mean_confidence, [0.35, 0.75])
    np.testing.assert_allclose(bins.accuracy, [0.5, 0.5])
    # 0.5 starts the upper bin; 1.0 belongs to the last bin.
    edge = reliability_bins([0.0, 0.5, 1.0], [False, True, True], n_bins=2)
    np.testing.assert_array_equal(edge.counts, [1, 2])


def test_reliability_bins_empty_bins():
    bins = reliability_bins([0.1, 0.9], [False, True], n_bins=4)
    np.testing.assert_array_equal(bins.counts, [1, 0, 0, 1])
    assert np.isnan(bins.accuracy[1]) and np.isnan(bins.mean_confidence[2])
    assert bins.accuracy[3] == 1.0


@pytest.mark.parametrize(
    "confidence, correct, n_bins, message",
    [
        ([], [], 10, "empty"),
        ([0.5, 0.5], [True], 10, "length"),
        ([1.5], [True], 10, r"\[0, 1\]"),
        ([-0.1], [True], 10, r"\[0, 1\]"),
        ([float("nan")], [True], 10, "NaN"),
        ([0.5], ["yes"], 10, "booleans"),
        ([0.5], [2], 10, "booleans"),
        ([0.5], [True], 0, "n_bins"),
        ([0.5], [True], 2.5, "n_bins"),
    ],
)
def test_probabilistic_bad_input(confidence, correct, n_bins, message):
    with pytest.raises(ValueError, match=message):
        probabilistic_metrics(confidence, correct, n_bins)


# ------------------------------------------------------------------------------------------
# Selective answering
# ------------------------------------------------------------------------------------------


def test_risk_coverage_curve_and_aurc_by_hand():
    coverage, risk = risk_coverage_curve(CONF, RIGHT)
    np.testing.assert_allclose(coverage, [0.25, 0.5, 0.75, 1.0])
    # Sorted: 0.9 T, 0.6 F, 0.4 T, 0.3 F -> cumulative errors 0, 1, 1, 2 over k = 1..4.
    np.testing.assert_allclose(risk, [0.0, 1 / 2, 1 / 3, 2 / 4])
    # (0 + 1/2 + 1/3 + 1/2) / 4 = (4/3) / 4 = 1/3.
    assert aurc(CONF, RIGHT) == pytest.approx(1 / 3)


def test_risk_coverage_ties_are_averaged_not_ordered():
    # All tied, one error in three: any position is equally likely for it, so the expected
    # errors after k answers are k/3 and the risk is 1/3 at every coverage.
    _, risk = risk_coverage_curve([0.5, 0.5, 0.5], [False, True, True])
    np.testing.assert_allclose(risk, [1 / 3, 1 / 3, 1 / 3])


# Tied example: sorted by score it reads 0.8 T, {0.5 T, 0.5 F}, 0.2 F.
TIED_CONF = [0.5, 0.2, 0.8, 0.5]
TIED_RIGHT = [False, False, True, True]


def test_ties_by_hand():
    # Expected errors after k answers: 0; 0 + 1/2 (the tied pair holds one error); 1; 2.
    _, risk = risk_coverage_curve(TIED_CONF, TIED_RIGHT)
    np.testing.assert_allclose(risk, [0.0, 0.25, 1 / 3, 0.5])
    # Equals the mean over the two orders of the tie: T first gives risks 0, 0, 1/3, 1/2
    # (sum 5/6), F first gives 0, 1/2, 1/3, 1/2 (sum 4/3); mean sum 13/12 -> AURC 13/48.
    assert aurc(TIED_CONF, TIED_RIGHT) == pytest.approx(13 / 48)
    # Random AURC 1/2 = 24/48; oracle (T first) 5/24 = 10/48 -> PRR = (24 - 13) / (24 - 10).
    assert prediction_rejection_ratio(TIED_CONF, TIED_RIGHT) == pytest.approx(11 / 14)
    # AUROC: (0.8 > 0.5), (0.8 > 0.2), (0.5 = 0.5 counts 1/2), (0.5 > 0.2) -> 3.5 / 4.
    assert auroc(TIED_CONF, TIED_RIGHT) == pytest.approx(0.875)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_selective_curve_does_not_depend_on_input_order(seed):
    rng = np.random.default_rng(seed)
    confidence = rng.choice([0.1, 0.4, 0.4, 0.7, 0.9], size=40)  # many ties
    correct = rng.random(40) < 0.5
    before = confidence_metrics(confidence, correct)
    curve = risk_coverage_curve(confidence, correct)
    for _ in range(5):
        shuffle = rng.permutation(40)
        after = confidence_metrics(confidence[shuffle], correct[shuffle])
        # Rank metrics only use integer counts per tie group, so they are identical; Brier
        # and ECE sum floats in another order and may differ in the last bit.
        assert {k: after[k] for k in ("auroc", "aurc", "prr")} == {k: before[k] for k in ("auroc", "aurc", "prr")}
        assert after == pytest.approx(before, rel=1e-12)
        np.testing.assert_array_equal(risk_coverage_curve(confidence[shuffle], correct[shuffle])[1], curve[1])


@pytest.mark.parametrize("correct", [[True, False, False], [False, True, True, False, True, True, True]])
def test_constant_score_gives_prr_exactly_zero(correct):
    assert prediction_rejection_ratio([0.3] * len(correct), correct) == 0.0
    # and its AURC is the overall error rate, that of a random order
    assert aurc([0.3] * len(correct), correct) == pytest.approx(1 - np.mean(correct))


def test_prediction_rejection_ratio_by_hand():
    # Random AURC = error rate = 1/2. Oracle order T, T, F, F -> risks 0, 0, 1/3, 1/2,
    # AURC = (5/6) / 4 = 5/24. Score AURC = 1/3 = 8/24.
    # PRR = (12/24 - 8/24) / (12/24 - 5/24) = 4/7.
    assert prediction_rejection_ratio(CONF, RIGHT) == pytest.approx(4 / 7)
    # Perfect ranking reaches the oracle -> 1.
    assert prediction_rejection_ratio([0.9, 0.8, 0.2, 0.1], RIGHT) == pytest.approx(1.0)
    # Fully reversed ranking: risks 1, 1, 2/3, 1/2 -> AURC 19/24;
    # PRR = (12/24 - 19/24) / (7/24) = -1.
    assert prediction_rejection_ratio([0.1, 0.2, 0.9, 0.8], RIGHT) == pytest.approx(-1.0)


def test_selective_curve_all_correct_and_all_wrong():
    assert aurc([0.2, 0.8], [True, True]) == 0.0
    assert aurc([0.2, 0.8], [False, False]) == 1.0
    assert prediction_rejection_ratio([0.2, 0.8], [True, True]) is None
    assert prediction_rejection_ratio([0.2, 0.8], [False, False]) is None


def test_selective_metrics_by_hand():
    answered = [True, True, False, False, True]
    correct = [True, False, False, True, True]
    got = selective_metrics(answered, correct)
    # 3 of 5 answered; of those (T, F, T) 2 correct; handled well: #0 (answered, right),
    # #2 (abstained, wrong), #4 (answered, right) -> 3/5.
    assert got == pytest.approx(
        {"coverage": 0.6, "answered_accuracy": 2 / 3, "handled_well": 0.6}
    )


def test_selective_metrics_degenerate():
    nothing = selective_metrics([False, False], [True, False])
    # Abstaining on the wrong one is good, on the right one is not -> 1/2.
    assert nothing == {"coverage": 0.0, "answered_accuracy": None, "handled_well": 0.5}
    everything = selective_metrics(np.array([1, 1]), np.array([1, 1]))
    assert everything == {"coverage": 1.0, "answered_accuracy": 1.0, "handled_well": 1.0}
    with pytest.raises(ValueError, match="empty"):
        selective_metrics([], [])
    with pytest.raises(ValueError, match="length"):
        selective_metrics([True], [True, False])


# ------------------------------------------------------------------------------------------
# Registries
# ------------------------------------------------------------------------------------------


def _as_arrays(predictions, targets):
    return np.asarray(predictions, dtype=float), np.asarray(targets, dtype=float)


def _weighted_mean_gap(predictions, targets, weights):
    return weights @ (predictions - targets) / weights.sum(axis=1)


def test_metric_is_frozen_and_callable():
    metric = Metric("mean_gap", _as_arrays, _weighted_mean_gap)
    assert metric([3, 1], [1, 1]) == 1.0  # (2 + 0) / 2
    # weights: question 0 twice -> 2; question 1 twice -> 0
    np.testing.assert_allclose(metric.weighted([3, 1], [1, 1], np.array([[2, 0], [0, 2]])), [2.0, 0.0])
    with pytest.raises(ValueError, match="integer counts"):
        metric.weighted([3, 1], [1, 1], np.array([[0.5, 1.5]]))
    with pytest.raises(ValueError, match="shape"):
        metric.weighted([3, 1], [1, 1], np.ones(2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        metric.name = "other"  # type: ignore[misc]


def test_registries_match_the_dict_functions():
    registry = classification_registry(THREE)
    # Registry metrics take (predictions, targets).
    by_name = {metric.name: metric(PREDICTED, ACTUAL) for metric in registry}
    assert by_name == classification_metrics(ACTUAL, PREDICTED, THREE)

    names = [metric.name for metric in CONFIDENCE_METRICS]
    assert names == ["auroc", "brier", "ece", "aurc", "prr"]
    values = confidence_metrics(CONF, RIGHT)
    assert values == pytest.approx(
        {**probabilistic_metrics(CONF, RIGHT), "aurc": 1 / 3, "prr": 4 / 7}
    )
    assert [metric.name for metric in SELECTIVE_METRICS] == [
        "coverage", "answered_accuracy", "handled_well",
    ]


# ------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------


def test_confusion_matrix_figure():
    figure = confusion_matrix_figure(confusion(ACTUAL, PREDICTED, THREE), THREE, "confusion")
    assert isinstance(figure, Figure)
    (ax,) = figure.axes  # no colour bar
    assert len(ax.texts) == 9  # one count per cell
    assert sorted(text.get_text() for text in ax.texts) == sorted("210011012")
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "actual"
    with pytest.raises(ValueError, match="square"):
        confusion_matrix_figure(np.zeros((2, 2), dtype=int), THREE, "bad")


def test_distribution_figure():
    figure = distribution_figure(
        distribution(ACTUAL, THREE), distribution(PREDICTED, THREE), THREE, "labels"
    )
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    assert len(ax.patches) == 2 * len(THREE)  # one actual and one predicted bar per label
    binary = distribution_figure({CAN: 1.0}, {CAN: 0.5, CANNOT: 0.5}, BINARY, "binary")
    assert len(binary.axes[0].patches) == 4
    with pytest.raises(ValueError, match="maybe"):
        distribution_figure({"maybe": 1.0}, {}, THREE, "bad")


def test_reliability_figure():
    bins = reliability_bins([0.1, 0.15, 0.9], [False, True, True], n_bins=5)
    figure = reliability_figure(bins, "reliability")
    assert isinstance(figure, Figure)
    top, bottom = figure.axes
    assert len(top.patches) == 2  # bars only for the two non-empty bins
    assert len(bottom.patches) == 5  # one count bar per bin
    assert top.lines[0].get_xydata().tolist() == [[0.0, 0.0], [1.0, 1.0]]  # the diagonal


def test_risk_coverage_figure():
    curves = {
        "score": risk_coverage_curve(CONF, RIGHT),
        "oracle": risk_coverage_curve([0.9, 0.8, 0.2, 0.1], RIGHT),
    }
    figure = risk_coverage_figure(curves, "risk-coverage")
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    assert len(ax.lines) == 2
    assert ax.get_legend().get_texts()[0].get_text() == "score (AURC 0.333)"
    with pytest.raises(ValueError, match="empty"):
        risk_coverage_figure({}, "bad")
    with pytest.raises(ValueError, match="same non-zero length"):
        risk_coverage_figure({"x": (np.ones(2), np.ones(3))}, "bad")


# ------------------------------------------------------------------------------------------
# Weighted kernels and the bootstrap
# ------------------------------------------------------------------------------------------


def _random_case(seed: int, n: int = 30):
    rng = np.random.default_rng(seed)
    actual = [THREE[i] for i in rng.integers(0, 3, n)]
    predicted = [THREE[i] for i in rng.integers(0, 3, n)]
    confidence = rng.choice([0.0, 0.2, 0.5, 0.5, 0.9, 1.0], size=n)  # ties on purpose
    correct = rng.random(n) < 0.5
    return actual, predicted, confidence, correct


@pytest.mark.parametrize("seed", [0, 1])
def test_weighted_kernels_equal_the_metric_on_the_resampled_questions(seed):
    actual, predicted, confidence, correct = _random_case(seed)
    answered = np.array([p == CAN for p in predicted])
    weights = bootstrap_weights(len(actual), 25, seed)
    cases = [
        (classification_registry(THREE), predicted, actual),
        (CONFIDENCE_METRICS, confidence, correct),
        (SELECTIVE_METRICS, answered, correct),
    ]
    for registry, predictions, targets in cases:
        for metric in registry:
            batch = metric.weighted(predictions, targets, weights)
            for row, value in zip(weights, batch):
                picks = np.repeat(np.arange(len(actual)), row.astype(int))
                plain = metric([predictions[i] for i in picks], [targets[i] for i in picks])
                if plain is None:
                    assert np.isnan(value), metric.name
                else:
                    assert value == pytest.approx(plain, abs=1e-12), metric.name


def test_weighted_kernels_agree_with_scikit_learn_sample_weight():
    actual, predicted, confidence, correct = _random_case(3, n=50)
    weights = bootstrap_weights(50, 5, 3)
    registry = {metric.name: metric for metric in classification_registry(THREE)}
    confidence_registry = {metric.name: metric for metric in CONFIDENCE_METRICS}
    for row in weights:
        one = row[None, :]
        used = np.union1d(np.array(actual)[row > 0], np.array(predicted)[row > 0])
        expected = {
            "balanced_accuracy": balanced_accuracy_score(actual, predicted, sample_weight=row),
            "macro_f1": f1_score(actual, predicted, labels=used, average="macro", sample_weight=row, zero_division=0),
            "qwk": cohen_kappa_score(
                [THREE.index(a) for a in actual], [THREE.index(p) for p in predicted],
                weights="quadratic", sample_weight=row,
            ),
        }
        for name, value in expected.items():
            assert registry[name].weighted(predicted, actual, one)[0] == pytest.approx(value), name
        assert confidence_registry["auroc"].weighted(confidence, correct, one)[0] == pytest.approx(
            roc_auc_score(correct, confidence, sample_weight=row)
        )
        assert confidence_registry["brier"].weighted(confidence, correct, one)[0] == pytest.approx(
            brier_score_loss(correct, confidence, sample_weight=row)
        )


def test_bootstrap_weights_resample_questions_with_replacement():
    weights = bootstrap_weights(7, 300, seed=5)
    assert weights.shape == (300, 7)
    assert (weights.sum(axis=1) == 7).all()
    assert np.array_equal(weights, np.rint(weights)) and weights.min() >= 0
    # Each count is Binomial(7, 1/7): mean 1.
    assert weights.mean() == pytest.approx(1.0)
    assert np.array_equal(bootstrap_weights(7, 300, seed=5), weights)  # deterministic
    assert not np.array_equal(bootstrap_weights(7, 300, seed=6), weights)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_weights(7, 0)
    with pytest.raises(ValueError, match="n must"):
        bootstrap_weights(0)


def test_bootstrap_interval_of_a_proportion_by_hand():
    # 50 of 100 answered. The resampled coverage is Binomial(100, 1/2) / 100, whose 2.5% and
    # 97.5% quantiles are 40 and 60 (P(X <= 39) = 0.018, P(X <= 40) = 0.028, symmetric).
    answered = [True] * 50 + [False] * 50
    coverage_metric = SELECTIVE_METRICS[0]
    got = bootstrap_interval(coverage_metric, answered, [True] * 100, n_resamples=20000, seed=1)
    assert got.estimate == 0.5
    assert got.low == pytest.approx(0.40, abs=0.0101)
    assert got.high == pytest.approx(0.60, abs=0.0101)
    assert (got.n_resamples, got.n_undefined, got.level) == (20000, 0, 0.95)
    # The same call again gives the same interval.
    assert bootstrap_interval(coverage_metric, answered, [True] * 100, n_resamples=20000, seed=1) == got


def test_bootstrap_paired_difference_by_hand():
    # Two methods agree on 99 of 100 questions and the first is right on the remaining one.
    # Per resample the difference in exact match is (draws of that question) / 100, which is
    # Binomial(100, 1/100): P(0) = 0.366 and P(<= 2) = 0.921 < 0.975 < P(<= 3) = 0.982, so the
    # interval is [0, 3/100]. Unpaired, the two accuracies would each vary by about +-0.09.
    actual = [CAN] * 50 + [CANNOT] * 50
    first = list(actual)
    second = list(actual)
    second[0] = CANNOT
    exact = classification_registry(THREE)[0]
    got = bootstrap_interval(exact, first, actual, baseline=second, n_resamples=20000, seed=2)
    assert got.estimate == pytest.approx(0.01)
    assert (got.low, got.high) == (0.0, pytest.approx(0.03))
    assert got.excludes(0.0) is False and got.excludes(-0.01) is True
    # A method against itself: every resampled difference is exactly 0.
    same = bootstrap_interval(exact, first, actual, baseline=first, n_resamples=200)
    assert same.as_tuple() == (0.0, 0.0, 0.0)


def test_bootstrap_drops_undefined_resamples_and_counts_them():
    # Two questions, one right and one wrong: AUROC is undefined on a resample that drew the
    # same question twice (probability 1/2), and defined (= 1 here) otherwise.
    weights = bootstrap_weights(2, 1000, seed=0)
    got = bootstrap_interval(CONFIDENCE_METRICS[0], [0.9, 0.1], [True, False], n_resamples=1000, seed=0)
    assert got.n_undefined == int((weights.min(axis=1) == 0).sum())
    assert 400 < got.n_undefined < 600
    assert got.as_tuple() == (1.0, 1.0, 1.0)
    # Undefined on the full data: no estimate and no interval.
    none = bootstrap_interval(CONFIDENCE_METRICS[0], [0.9, 0.1], [True, True], n_resamples=50)
    assert none.as_tuple() == (None, None, None) and none.n_undefined == 50


def test_bootstrap_intervals_for_a_registry():
    _, _, confidence, correct = _random_case(4)
    got = bootstrap_intervals(CONFIDENCE_METRICS, confidence, correct, n_resamples=200)
    assert list(got) == ["auroc", "brier", "ece", "aurc", "prr"]
    for name, interval in got.items():
        assert interval.estimate == pytest.approx(confidence_metrics(confidence, correct)[name])
        assert interval.low <= interval.high
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(CONFIDENCE_METRICS[0], confidence, correct, level=95)


def test_paired_difference_with_each_side_against_its_own_targets():
    from know_thyself.evaluation.metrics import CONFIDENCE_METRICS, bootstrap_interval

    auroc = next(m for m in CONFIDENCE_METRICS if m.name == "auroc")
    conf_a, right_a = [0.9, 0.8, 0.3, 0.2, 0.6, 0.1], [True, True, False, False, True, False]
    conf_b, right_b = [0.2, 0.9, 0.4, 0.7, 0.5, 0.3], [True, True, False, True, False, False]
    interval = bootstrap_interval(auroc, conf_a, right_a, baseline=conf_b, baseline_targets=right_b)
    assert interval.estimate == pytest.approx(auroc(conf_a, right_a) - auroc(conf_b, right_b))
    assert interval.low <= interval.estimate <= interval.high
    with pytest.raises(ValueError, match="same questions"):
        bootstrap_interval(auroc, conf_a, right_a, baseline=conf_b[:5], baseline_targets=right_b[:5])
