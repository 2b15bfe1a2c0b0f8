"""Validating question records: every record checked as it is read, in one canonical shape.

Whatever the source, a record leaves here as::

    {"question_id": str, "question": str,
     "answer": {"value": str, "aliases": list[str], "normalized_aliases": list[str]}}

Other keys (TriviaQA's ``entity_pages``, ``search_results``, ``answer.matched_wiki_entity_name``
and so on) are dropped. The first bad record stops loading with a :class:`DataError` that names
the file, the line (JSONL) or row (everything else, both 1-based) and the offending field. A
question or id that is blank once invisible characters (Unicode format and control characters) are
removed is rejected, and so is a record none of whose aliases survives answer normalisation (no response could ever
be graded correct); aliases that normalise to nothing beside usable ones are kept in ``aliases``
(grading ignores them) but left out of ``normalized_aliases``. A record may follow TriviaQA's
nested schema (``answer: {value, aliases, normalized_aliases}``) or its flat form
(``answer.value``, ``answer.aliases``, ``answer.normalized_aliases`` as top-level keys).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from know_thyself.data.grading import normalize_answer

if TYPE_CHECKING:  # imported lazily at run time: ``datasets`` is slow to import
    import datasets


# The columns a question needs (and the flat schema's ``answer.*`` columns); anything else in a
# Hub dataset or Parquet file is not read.
_KEPT_COLUMNS = ("question_id", "question", "answer")
# The longest question the pipeline samples answers for or judges: trivia questions are short, and
# a runaway one would blow up every batch it lands in (and, far longer, the model's context).
MAX_QUESTION_CHARS = 1000


class DataError(ValueError):
    """A dataset could not be found, read or validated; the message says where and why."""



def records_from_dataset(table: datasets.Dataset, source: str) -> list[dict[str, Any]]:
    """Convert and validate the rows of a Hugging Face ``datasets.Dataset``.

    This is the one conversion used both for the Hub and for local Parquet files, so a Parquet
    file in the Hub's nested schema behaves exactly like the Hub dataset.

    Args:
        table: Rows with (at least) ``question_id``, ``question`` and a struct column ``answer``.
        source: How to name the data in error messages (a file path or Hub id).

    Returns:
        The validated records, in row order.
    """
    kept = [column for column in table.column_names if column in _KEPT_COLUMNS or column.startswith("answer.")]
    rows = table.select_columns(kept).to_list()
    return validate_records(enumerate(rows, start=1), source, "row")


def validate_records(
    items: Iterable[tuple[int, Any]], source: str, unit: str
) -> list[dict[str, Any]]:
    """Validate numbered raw records, rejecting duplicates and an empty result.

    Args:
        items: ``(1-based number, raw record)`` pairs.
        source: The file path (or Hub id) for error messages.
        unit: ``"line"`` or ``"row"``, for error messages.
    """
    records: list[dict[str, Any]] = []
    first_seen: dict[str, int] = {}
    for number, raw in items:
        where = f"{source}, {unit} {number}"
        record = _validate_record(raw, where)
        question_id = record["question_id"]
        if question_id in first_seen:
            raise DataError(
                f"{where}: field 'question_id' repeats {question_id!r}, "
                f"already used on {unit} {first_seen[question_id]}"
            )
        first_seen[question_id] = number
        records.append(record)
    if not records:
        raise DataError(f"{source} has no questions")
    return records


def _validate_record(raw: Any, where: str) -> dict[str, Any]:
    """Check one raw record and return it in the canonical shape.

    Args:
        raw: The record as read (extra keys are allowed and dropped).
        where: ``"<file>, line N"`` or ``"<file>, row N"``, prefixed to error messages.
    """
    if not isinstance(raw, Mapping):
        raise DataError(f"{where}: expected an object, got {type(raw).__name__}")
    raw = _nest_flat_answer(raw)
    question_id = _require(raw, "question_id", where)
    if not isinstance(question_id, str) or not visible_text(question_id):
        raise DataError(
            f"{where}: field 'question_id' must be a non-empty string, got {question_id!r}"
        )
    question = _require(raw, "question", where)
    if not isinstance(question, str):
        raise DataError(
            f"{where}: field 'question' must be a string, got {type(question).__name__}"
        )
    if not visible_text(question):
        shown = f" (it holds only invisible or control characters: {question!r})" if question.strip() else ""
        raise DataError(f"{where}: field 'question' is empty{shown}; write the question text")
    answer = _require(raw, "answer", where)
    if not isinstance(answer, Mapping):
        raise DataError(
            f"{where}: field 'answer' must be an object, got {type(answer).__name__}"
        )
    value = _require(answer, "value", where, prefix="answer.")
    if not isinstance(value, str):
        raise DataError(
            f"{where}: field 'answer.value' must be a string, got {type(value).__name__}"
        )
    aliases = _string_list(_require(answer, "aliases", where, prefix="answer."),
                           "answer.aliases", where)
    usable = [alias for alias in aliases if _usable_alias(alias)]
    if not usable:
        raise DataError(
            f"{where}: field 'answer.aliases' has no usable alias: {aliases!r} all normalise "
            "to an empty string (only punctuation, spaces, articles or invisible characters), "
            "so every answer would be graded wrong; give at least one alias with a letter or digit"
        )
    normalized = answer.get("normalized_aliases")
    if normalized is None or (isinstance(normalized, (list, tuple)) and not normalized):
        # Absent, null or (as a Parquet struct field that was left unfilled) empty: derive it.
        normalized = _normalized(usable)
    else:
        normalized = _string_list(normalized, "answer.normalized_aliases", where)
        # Given ones are kept as written, less any that normalise to nothing; if none is
        # left, they are derived from the (usable) aliases instead.
        normalized = [alias for alias in normalized if _usable_alias(alias)] or _normalized(usable)
    return {
        "question_id": question_id,
        "question": question,
        "answer": {"value": value, "aliases": aliases, "normalized_aliases": normalized},
    }


def _nest_flat_answer(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """A record in the flat schema (``answer.value`` etc. as top-level keys) in the nested one.

    A record with an ``answer`` object, or without any ``answer.*`` key, is returned as it is.
    """
    flat = {key[len("answer."):]: value for key, value in raw.items() if key.startswith("answer.")}
    if not flat or raw.get("answer") is not None:
        return raw
    return {**{k: v for k, v in raw.items() if not k.startswith("answer.")}, "answer": flat}


# Characters that show nothing: Unicode format characters (Cf: zero-width spaces and joiners, BOMs,
# direction marks) and control characters (Cc: NUL, the other C0 and C1 controls, DEL).
_INVISIBLE_CATEGORIES = ("Cf", "Cc")


def visible_text(text: str) -> str:
    """``text`` without the characters that show nothing (Unicode format and control characters:
    zero-width spaces, BOMs, NUL, escapes, ...) and surrounding whitespace: empty when nothing in it
    would show."""
    return "".join(ch for ch in text if unicodedata.category(ch) not in _INVISIBLE_CATEGORIES).strip()


def _usable_alias(alias: str) -> str:
    """The graded form of an alias (:func:`normalize_answer` of its visible characters);
    empty when no response could ever match it."""
    return normalize_answer(visible_text(alias))


def _normalized(aliases: list[str]) -> list[str]:
    """The distinct normalised forms of ``aliases``, in order."""
    return list(dict.fromkeys(normalize_answer(alias) for alias in aliases))


def _require(mapping: Mapping[str, Any], key: str, where: str, prefix: str = "") -> Any:
    """Return ``mapping[key]``, raising :class:`DataError` if it is absent or null."""
    value = mapping.get(key)
    if value is None:
        raise DataError(f"{where}: missing field '{prefix}{key}'")
    return value


def _string_list(value: Any, field: str, where: str) -> list[str]:
    """Check that ``value`` is a non-empty list of strings and return a copy of it."""
    if not isinstance(value, (list, tuple)):
        raise DataError(
            f"{where}: field '{field}' must be a list of strings, got {type(value).__name__}"
        )
    if not value:
        raise DataError(f"{where}: field '{field}' is an empty list; give at least one alias")
    for position, item in enumerate(value):
        if not isinstance(item, str):
            raise DataError(
                f"{where}: field '{field}' item {position} must be a string, "
                f"got {type(item).__name__}"
            )
    return list(value)
