"""Ability labels from trials: all correct -> can; at least half -> uncertain; else cannot."""

import pytest

from know_thyself.data.labels import ability_from_trials, labels_for


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([True] * 5, "can"),
        ([True, True, True, True, False], "uncertain"),
        ([True, True, True, False, False], "uncertain"),  # 3/5 >= half
        ([True, True, False, False, False], "cannot"),  # 2/5 < half
        ([True, False], "uncertain"),  # exactly half
        ([False] * 5, "cannot"),
        ([True], "can"),
        ([False], "cannot"),
    ],
)
def test_three_way(flags, expected):
    assert ability_from_trials(flags) == expected


def test_binary_scheme():
    assert ability_from_trials([True, True], "binary") == "can"
    assert ability_from_trials([True, False], "binary") == "cannot"
    assert labels_for("binary") == ("can", "cannot")


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="at least one trial"):
        ability_from_trials([])
    with pytest.raises(ValueError, match="label_scheme must be one of"):
        labels_for("five")
