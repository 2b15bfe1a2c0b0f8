"""The grading rule: TriviaQA normalisation, whole-word alias match, empty answers never correct."""

import pytest

from know_thyself.data.grading import is_correct, is_exact_match, normalize_answer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  A  cat, an apple! ", "cat apple"),
        ("U.K.", "u k"),  # punctuation becomes a space, as in TriviaQA's evaluation
        ("Théâtre", "théâtre"),
        ("Rock-and-roll", "rock and roll"),
        ("", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("response", "aliases", "expected"),
    [
        ("Paris", ["Paris"], True),
        ("It is PARIS, of course.", ["paris"], True),  # case and punctuation
        ("The Nile", ["Nile"], True),  # articles in the response
        ("Nile", ["The Nile"], True),  # articles in the alias
        ("an apple", ["Apple"], True),
        ("8", ["8", "eight"], True),  # numbers as digits
        ("It has eight legs", ["8", "eight"], True),  # and as words
        ("18", ["8"], False),  # a number inside a longer number is not the number
        ("Parisian", ["Paris"], False),  # alias only part of a longer word
        ("Rome is not Paris", ["Paris"], True),  # whole words anywhere in the response
        ("da Vinci", ["Leonardo da Vinci", "da Vinci"], True),
        ("Leonardo", ["Leonardo da Vinci"], False),  # part of a multi-word alias is not enough
        ("", ["Paris"], False),  # empty response
        ("   \n\t", ["Paris"], False),  # whitespace only
        ("the", ["The"], False),  # an alias that normalises to nothing never matches
        ("St. Louis", ["St Louis"], True),
    ],
)
def test_is_correct(response, aliases, expected):
    assert is_correct(response, aliases) is expected


@pytest.mark.parametrize(
    ("response", "aliases", "contains", "strict"),
    [
        ("Paris", ["Paris"], True, True),
        ("The Paris.", ["paris"], True, True),  # normalisation applies to both sides
        ("St. Louis", ["St Louis"], True, True),
        ("Not Paris", ["Paris"], True, False),  # a hedge: contains the alias, is not the alias
        ("London or Paris", ["Paris"], True, False),
        ("It is Paris", ["Paris"], True, False),
        ("Paris", ["Paris, France", "Paris"], True, True),  # any one alias suffices
        ("da Vinci", ["Leonardo da Vinci"], False, False),
        ("", ["Paris"], False, False),
        ("the", ["The"], False, False),  # both normalise to nothing: never a match
    ],
)
def test_strict_match_beside_containment(response, aliases, contains, strict):
    assert is_correct(response, aliases) is contains
    assert is_exact_match(response, aliases) is strict
