"""Ability labels: how a question's N graded trials become ``can`` / ``uncertain`` / ``cannot``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

CAN, UNCERTAIN, CANNOT = "can", "uncertain", "cannot"
SCHEMES: dict[str, tuple[str, ...]] = {
    # Ordered from most to least able; evaluation and plots keep this order.
    "three": (CAN, UNCERTAIN, CANNOT),
    "binary": (CAN, CANNOT),
}
DEFAULT_SCHEME = "three"


def scheme_of(params: Mapping[str, str]) -> str:
    """The label scheme a run's parameters (or a logged judge's config) name; the default where they do not."""
    return params.get("label_scheme", DEFAULT_SCHEME)


def labels_for(scheme: str) -> tuple[str, ...]:
    """The ordered label words of a labelling scheme (``three`` or ``binary``)."""
    try:
        return SCHEMES[scheme]
    except KeyError:
        raise ValueError(
            f"label_scheme must be one of {sorted(SCHEMES)}, got {scheme!r}"
        ) from None


def ability_from_trials(correct: Sequence[bool], scheme: str = DEFAULT_SCHEME) -> str:
    """Label one question from the correctness of its trials.

    ``three``: every trial correct -> ``can``; at least half correct -> ``uncertain``;
    fewer than half -> ``cannot``. ``binary``: every trial correct -> ``can``, else ``cannot``.

    Args:
        correct: One flag per trial; must not be empty.
        scheme: ``three`` (default) or ``binary``.
    """
    labels_for(scheme)
    if len(correct) == 0:
        raise ValueError("ability_from_trials needs at least one trial, got none")
    n_correct = sum(bool(c) for c in correct)
    if n_correct == len(correct):
        return CAN
    if scheme == "three" and 2 * n_correct >= len(correct):
        return UNCERTAIN
    return CANNOT
