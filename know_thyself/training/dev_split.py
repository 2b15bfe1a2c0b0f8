"""Choosing training settings on a dev split: carving it from train, and picking the best grid point.

Every setting of the judge's training (learning rate, epochs, balancing, LoRA rank) is chosen on a
dev split carved from the collect run's train questions, never on validation, which stays for
reporting. :func:`dev_split` carves it, label-stratified and seeded; :func:`best_point` picks the
grid point with the best dev metric. The sweep step (:mod:`know_thyself.steps.sweep`) trains
and scores one judge per grid point and logs each as a child run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from know_thyself.config.grid import SELECT_BY_LOWER


def dev_split(rows: Sequence[dict], fraction: float, seed: int, key: str = "ability") -> tuple[list[dict], list[dict]]:
    """Split labelled questions into a fit part and a dev part, stratified by ability label.

    The dev part holds ``round(fraction * n)`` questions. Each label gets its proportional share
    of them, rounded down, and the questions left over go one each to the labels with the largest
    remainders (ties: label name order), so the dev label mix follows the whole split's as
    closely as whole questions allow. Within each label the questions are drawn with a
    ``random.Random(seed)``; both parts keep the rows' original order.

    Args:
        rows: ``responses.jsonl`` rows of one split (each with ``ability``), or judgment examples.
        fraction: Share of the questions for the dev part, in (0, 1).
        seed: Seed of the draw.
        key: The field that holds each row's label (``label`` for judgment examples).

    Returns:
        ``(fit, dev)``, disjoint, together all of ``rows``.

    Raises:
        ValueError: when either part would be empty.
    """
    n = len(rows)
    size = round(fraction * n)
    if not 1 <= size <= n - 1:
        raise ValueError(
            f"dev_fraction {fraction} of {n} train questions leaves {size} for dev and {n - size} for training; "
            f"both need at least one: choose dev_fraction so that 1 <= dev_fraction x {n} <= {n - 1}, "
            "or collect more train questions (num_samples)"
        )
    by_label: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_label.setdefault(row[key], []).append(index)
    quotas = {label: size * len(indices) / n for label, indices in by_label.items()}
    counts = {label: math.floor(quota) for label, quota in quotas.items()}
    by_remainder = sorted(by_label, key=lambda label: (-(quotas[label] - counts[label]), label))
    for label in by_remainder[: size - sum(counts.values())]:
        counts[label] += 1
    rng = random.Random(seed)
    chosen: set[int] = set()
    for label in sorted(by_label):
        chosen.update(rng.sample(by_label[label], counts[label]))
    fit = [row for index, row in enumerate(rows) if index not in chosen]
    dev = [row for index, row in enumerate(rows) if index in chosen]
    return fit, dev


def best_point(scores: Sequence[dict[str, float]], metric: str) -> int | None:
    """The index of the grid point with the best value of ``metric`` (``None`` if no point has it).

    Higher is better except for the error metrics (brier, ece, aurc); a tie goes to the earlier
    point. A point whose metric was undefined (absent) is not a candidate.

    Args:
        scores: Each grid point's metrics, in grid order.
        metric: The metric's key in ``scores`` (e.g. ``dev/judge/balanced_accuracy``).
    """
    sign = -1.0 if metric.rsplit("/", 1)[-1] in SELECT_BY_LOWER else 1.0
    candidates = [(sign * point[metric], -index) for index, point in enumerate(scores) if metric in point]
    return -max(candidates)[1] if candidates else None
