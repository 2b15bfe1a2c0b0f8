"""Paired percentile-bootstrap confidence intervals of any metric, or of the difference of two methods."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from know_thyself.evaluation.metrics.core import Metric, _finite_or_none


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
