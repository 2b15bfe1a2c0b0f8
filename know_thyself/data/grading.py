"""Grading of free-text answers against TriviaQA-style aliases.

This module is the only place the grading rules live. Label collection, the knowledge test and
every evaluation call :func:`is_correct` (alias containment); :func:`is_exact_match` is the
stricter rule reported beside it, so that hedged answers that merely contain an alias show up.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation + "‘’´`“”–—…")


def normalize_answer(text: str) -> str:
    """Normalise text the way TriviaQA's official evaluation does.

    Lower-cases, removes punctuation, removes the articles ``a``, ``an`` and ``the`` as whole
    words, and collapses runs of whitespace to single spaces (stripping both ends). Accented
    letters are kept as they are; underscores count as punctuation.
    """
    text = unicodedata.normalize("NFC", text).lower()
    text = "".join(" " if ch in _PUNCTUATION else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def is_correct(response: str, aliases: Iterable[str]) -> bool:
    """Return whether a free-text ``response`` answers a question whose accepted answers are ``aliases``.

    The rule: both the response and every alias are passed through :func:`normalize_answer`;
    the response is correct when at least one non-empty normalised alias occurs in the
    normalised response as a run of whole words (``"paris"`` matches ``"it is paris france"``
    but ``"par"`` does not match ``"paris"``). An empty or whitespace-only response is never
    correct, and neither is any response when no alias survives normalisation.

    Args:
        response: The model's answer, as generated.
        aliases: Accepted answers, raw or already normalised (normalising twice is harmless).
    """
    normalized_response, normalized_aliases = _normalized(response, aliases)
    padded = f" {normalized_response} "
    return bool(normalized_response) and any(f" {alias} " in padded for alias in normalized_aliases)


def is_exact_match(response: str, aliases: Iterable[str]) -> bool:
    """Return whether the whole normalised ``response`` equals one normalised alias (strict match).

    The rule: the response and every alias are passed through :func:`normalize_answer`; the
    response is correct when it is identical to at least one non-empty normalised alias. So
    ``"The Paris."`` matches ``"Paris"``, but a hedge that merely contains an alias, such as
    ``"Not Paris"`` or ``"London or Paris"``, does not (while :func:`is_correct` accepts both).
    An empty or whitespace-only response is never correct, and neither is any response when no
    alias survives normalisation.

    Args:
        response: The model's answer, as generated.
        aliases: Accepted answers, raw or already normalised (normalising twice is harmless).
    """
    normalized_response, normalized_aliases = _normalized(response, aliases)
    return bool(normalized_response) and normalized_response in normalized_aliases


def _normalized(response: str, aliases: Iterable[str]) -> tuple[str, list[str]]:
    """The normalised response and the aliases that survive normalisation (empty ones dropped)."""
    return normalize_answer(response), [a for a in map(normalize_answer, aliases) if a]
