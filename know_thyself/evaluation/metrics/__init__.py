"""Evaluation metrics for self-knowledge predictions, with paired bootstrap confidence intervals.

One module per family, all re-exported here:

* :mod:`~know_thyself.evaluation.metrics.classification`: how well a predicted ability label
  (``can`` / ``uncertain`` / ``cannot``, or the binary ``can`` / ``cannot``) matches the label
  measured from graded trials;
* :mod:`~know_thyself.evaluation.metrics.confidence`: label probabilities collapsed into one
  confidence score;
* :mod:`~know_thyself.evaluation.metrics.calibration` and :mod:`~know_thyself.evaluation.metrics.ranking`:
  how well a score in [0, 1] calibrates (Brier score, expected calibration error) and ranks (AUROC,
  AURC, PRR) against whether an answer was actually correct;
* :mod:`~know_thyself.evaluation.metrics.selective`: what happens when the model follows a hard
  answer/abstain decision;
* :mod:`~know_thyself.evaluation.metrics.bootstrap`: paired bootstrap intervals of any of them.

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

from know_thyself.evaluation.metrics.bootstrap import (
    Interval,
    bootstrap_interval,
    bootstrap_intervals,
    bootstrap_weights,
)
from know_thyself.evaluation.metrics.calibration import (
    ReliabilityBins,
    brier,
    expected_calibration_error,
    reliability_bins,
)
from know_thyself.evaluation.metrics.classification import (
    classification_metrics,
    classification_registry,
    confusion,
    distribution,
)
from know_thyself.evaluation.metrics.confidence import ANSWER_RATE, confidence_score, label_correctness_rates
from know_thyself.evaluation.metrics.core import Kernel, Metric
from know_thyself.evaluation.metrics.ranking import (
    CONFIDENCE_METRICS,
    aurc,
    auroc,
    confidence_metrics,
    prediction_rejection_ratio,
    risk_coverage_curve,
)
from know_thyself.evaluation.metrics.selective import (
    SELECTIVE_METRICS,
    answered_accuracy,
    coverage,
    handled_well,
    selective_metrics,
)

__all__ = [
    "ANSWER_RATE", "CONFIDENCE_METRICS", "SELECTIVE_METRICS", "Interval", "Kernel", "Metric", "ReliabilityBins",
    "answered_accuracy", "aurc", "auroc", "bootstrap_interval", "bootstrap_intervals", "bootstrap_weights", "brier",
    "classification_metrics", "classification_registry", "confidence_metrics", "confidence_score", "confusion",
    "coverage", "distribution", "expected_calibration_error", "handled_well", "label_correctness_rates",
    "prediction_rejection_ratio", "reliability_bins", "risk_coverage_curve", "selective_metrics",
]
