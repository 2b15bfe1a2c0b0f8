"""Evaluation figures: confusion matrix, label distributions, reliability, risk-coverage, metric bars.

Every function builds a fresh :class:`matplotlib.figure.Figure` on an Agg canvas, without
touching pyplot's global state or the process-wide backend. Nothing is shown or saved here;
the caller logs or saves the figure (e.g. ``mlflow.log_figure``) and may close it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from know_thyself.evaluation.metrics import ReliabilityBins


def _new_figure(nrows: int = 1, **subplot_kw: object) -> tuple[Figure, list]:
    """A figure on an Agg canvas with ``nrows`` stacked axes."""
    figure = Figure(figsize=(6.0, 4.5 if nrows == 1 else 6.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, 1, squeeze=False, **subplot_kw)[:, 0]
    return figure, list(axes)


def confusion_matrix_figure(matrix: np.ndarray, labels: Sequence[str], title: str) -> Figure:
    """Heat map of a confusion matrix with each cell's value written in it.

    Args:
        matrix: Square array, rows actual labels and columns predicted labels, both in
            ``labels`` order (as returned by :func:`know_thyself.evaluation.metrics.confusion`).
        labels: Tick labels for rows and columns.
        title: Figure title.
    """
    values = np.asarray(matrix)
    if values.ndim != 2 or values.shape != (len(labels), len(labels)):
        raise ValueError(
            f"matrix must be square with one row per label ({len(labels)}), got {values.shape}"
        )
    figure, (ax,) = _new_figure()
    integral = np.issubdtype(values.dtype, np.integer)
    ConfusionMatrixDisplay(values, display_labels=list(labels)).plot(
        ax=ax, colorbar=False, cmap="Blues", values_format="d" if integral else ".2f"
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    return figure


def distribution_figure(
    actual_dist: Mapping[str, float],
    predicted_dist: Mapping[str, float],
    labels: Sequence[str],
    title: str,
    names: tuple[str, str] = ("actual", "predicted"),
) -> Figure:
    """Side-by-side bars of the actual and predicted share of each label.

    Args:
        actual_dist: Fraction per label of the measured labels; a missing label counts as 0.
        predicted_dist: Fraction per label of the predicted labels; a missing label counts as 0.
        labels: Label order along the x axis.
        title: Figure title.
        names: Legend names of the two series (e.g. ``("train", "validation")``).
    """
    for name, dist in (("actual_dist", actual_dist), ("predicted_dist", predicted_dist)):
        unknown = sorted(set(dist) - set(labels))
        if unknown:
            raise ValueError(f"{name} has labels not in {tuple(labels)!r}: {unknown!r}")
    figure, (ax,) = _new_figure()
    positions = np.arange(len(labels))
    width = 0.4
    for offset, name, dist in ((-width / 2, names[0], actual_dist),
                               (width / 2, names[1], predicted_dist)):
        heights = [float(dist.get(label, 0.0)) for label in labels]
        bars = ax.bar(positions + offset, heights, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(positions, list(labels))
    ax.set_ylabel("fraction of questions")
    ax.set_ylim(0.0, 1.05)
    ax.legend()
    ax.set_title(title)
    return figure


def reliability_figure(bins: ReliabilityBins, title: str) -> Figure:
    """Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration.

    The top axes shows one bar per non-empty bin (height = accuracy) and a marker at each
    bin's mean confidence; the bottom axes shows how many examples fall in every bin.

    Args:
        bins: Output of :func:`know_thyself.evaluation.metrics.reliability_bins`.
        title: Figure title.
    """
    figure, (top, bottom) = _new_figure(2, sharex=True)
    lower, upper = bins.edges[:-1], bins.edges[1:]
    widths = upper - lower
    used = bins.counts > 0
    top.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", label="perfect calibration")
    top.bar(lower[used], bins.accuracy[used], widths[used], align="edge",
            edgecolor="black", alpha=0.7, label="accuracy")
    top.plot(bins.mean_confidence[used], bins.accuracy[used], "o", color="black",
             label="mean confidence")
    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.0)
    top.set_ylabel("accuracy")
    top.legend(loc="upper left")
    top.set_title(title)
    bottom.bar(lower, bins.counts, widths, align="edge", edgecolor="black", color="grey")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("examples")
    return figure


def risk_coverage_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str
) -> Figure:
    """Risk-coverage curves of several confidence methods on one axes.

    Each legend entry shows the method's AURC (mean risk over its coverage points, matching
    :func:`know_thyself.evaluation.metrics.aurc`).

    Args:
        curves: Method name -> ``(coverage, risk)`` as returned by
            :func:`know_thyself.evaluation.metrics.risk_coverage_curve`.
        title: Figure title.
    """
    if not curves:
        raise ValueError("curves is empty; need at least one (coverage, risk) pair")
    figure, (ax,) = _new_figure()
    for name, (cov, risk) in curves.items():
        cov, risk = np.asarray(cov, dtype=float), np.asarray(risk, dtype=float)
        if cov.shape != risk.shape or cov.ndim != 1 or cov.size == 0:
            raise ValueError(
                f"curve {name!r} needs coverage and risk of the same non-zero length, "
                f"got shapes {cov.shape} and {risk.shape}"
            )
        ax.plot(cov, risk, label=f"{name} (AURC {risk.mean():.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel("coverage (share answered)")
    ax.set_ylabel("risk (error rate among answered)")
    ax.legend()
    ax.set_title(title)
    return figure


def before_after_figure(values: Mapping[str, float], splits: Sequence[str]) -> Figure:
    """QA accuracy before and after knowledge training: one group of bars per split and measure.

    Args:
        values: Metrics named ``{before|after}/{split}/qa_accuracy_{trials|greedy}``.
        splits: Splits to show, in order.
    """
    groups = [(split, kind) for split in splits for kind in ("trials", "greedy")]
    figure, (ax,) = _new_figure()
    positions = np.arange(len(groups))
    width = 0.4
    for offset, when in ((-width / 2, "before"), (width / 2, "after")):
        heights = [float(values[f"{when}/{split}/qa_accuracy_{kind}"]) for split, kind in groups]
        bars = ax.bar(positions + offset, heights, width, label=when)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(positions, [f"{split}\n{kind}" for split, kind in groups])
    ax.set_ylabel("QA accuracy")
    ax.set_ylim(0.0, 1.05)
    ax.legend()
    ax.set_title("knowledge training: QA accuracy before and after")
    return figure
