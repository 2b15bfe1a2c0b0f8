"""Loading, validating and sampling TriviaQA-style question sets.

Every loader returns plain dicts in one shape, whatever the source::

    {"question_id": str, "question": str,
     "answer": {"value": str, "aliases": list[str], "normalized_aliases": list[str]}}

Other keys in the source (TriviaQA's ``entity_pages``, ``search_results``, ``question_source``,
``answer.matched_wiki_entity_name`` and so on) are dropped. Every record is checked as it is
read, and the first bad one stops loading with a :class:`DataError` that names the file, the
line (JSONL) or row (everything else, both 1-based) and the offending field. A question or id
that is blank once invisible (Unicode format) characters are removed is rejected, and so is a
record none of whose aliases survives answer normalisation (no response could ever be graded
correct); aliases that normalise to nothing beside usable ones are kept in ``aliases`` (grading
ignores them) but left out of ``normalized_aliases``.

A dataset is named in one of four ways (see :func:`load_split`): ``"bundled"`` for the small
set shipped inside the package, a TriviaQA Hub id such as ``"trivia_qa"`` (needs network
access), a local directory holding ``train.<ext>`` and ``validation.<ext>``, or a single
``.jsonl``/``.json``/``.parquet``/``.csv`` file, which is one split on its own: asking it for any
split gives its questions (:func:`single_file` tells such a dataset apart). A record may follow
TriviaQA's nested schema (``answer: {value, aliases, normalized_aliases}``) or its flat form
(``answer.value``, ``answer.aliases``, ``answer.normalized_aliases`` as top-level keys, as a
flattened table stores them).
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import random
import stat
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from know_thyself.grading import normalize_answer

if TYPE_CHECKING:  # imported lazily at run time: ``datasets`` is slow to import
    import datasets

BUNDLED = "bundled"
HUB_ID = "mandarjoshi/trivia_qa"
HUB_CONFIG = "rc.nocontext"
HUB_ALIASES = {"trivia_qa", "triviaqa", "mandarjoshi/trivia_qa"}
SPLITS = ("train", "validation")
FORMATS = ("jsonl", "json", "parquet", "csv")
BUNDLED_DIR = Path(__file__).parent / "trivia"

# The columns a question needs (and the flat schema's ``answer.*`` columns); anything else in a
# Hub dataset or Parquet file is not read.
_KEPT_COLUMNS = ("question_id", "question", "answer")


class DataError(ValueError):
    """A dataset could not be found, read or validated; the message says where and why."""


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def load_split(dataset: str | os.PathLike[str], split: str) -> list[dict[str, Any]]:
    """Load and validate one split of a question set.

    Args:
        dataset: ``"bundled"`` (the set shipped in ``know_thyself/trivia``); a TriviaQA Hub id
            (one of :data:`HUB_ALIASES`, loaded as ``mandarjoshi/trivia_qa``, config
            ``rc.nocontext``; needs network access); or a local directory holding
            ``train.<ext>`` and ``validation.<ext>`` with ``<ext>`` one of jsonl, json,
            parquet, csv.
        split: ``"train"`` or ``"validation"``. A single file is one split: its questions are
            returned whatever ``split`` asks for.

    Returns:
        The split's questions in file order, each in the shape described in the module doc.

    Raises:
        DataError: for an unknown dataset name, a missing directory or split file, an
            unreadable file, an empty split, or any invalid record.
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {list(SPLITS)}, got {split!r}")
    name = os.fspath(dataset)
    if name == BUNDLED:
        if not BUNDLED_DIR.is_dir():
            raise DataError(
                f"the bundled question set is missing: no directory {BUNDLED_DIR}"
            )
        return _load_split_file(_find_split_file(BUNDLED_DIR, split))
    if name.strip().lower() in HUB_ALIASES:
        return _load_from_hub(split)
    file = single_file(name)
    if file is not None:
        problem = _not_a_readable_file(file)
        if problem == "":
            raise DataError(f"dataset file {file.resolve()} does not exist; check the path (or give "
                            f"a folder holding train/validation files)")
        if problem:
            raise DataError(f"dataset {file} exists but is not a readable file: {problem}; put the "
                            "questions in a regular file at that path")
        return _load_split_file(file)
    directory = Path(name).expanduser()
    if not directory.is_dir():
        reason = (
            f"{directory.resolve()} is a file, not a directory"
            if directory.exists()
            else f"no directory exists at {directory.resolve()}"
        )
        raise DataError(f"{_accepted_forms(name)}: {reason}")
    return _load_split_file(_find_split_file(directory, split))


def single_file(dataset: str | os.PathLike[str]) -> Path | None:
    """The file a dataset argument names when it is one question file, else ``None``.

    A name ending in one of :data:`FORMATS` (``.jsonl``, ``.json``, ``.parquet``, ``.csv``) that is
    not a folder is a single file, whether or not it exists yet (loading says when it does not).
    """
    name = os.fspath(dataset)
    if name == BUNDLED or name.strip().lower() in HUB_ALIASES:
        return None
    path = Path(name).expanduser()
    if path.suffix.lower().lstrip(".") in FORMATS and not path.is_dir():
        return path
    return None


def draw_disjoint(
    records: list[dict[str, Any]], sizes: Mapping[str, int], seed: int, source: str
) -> dict[str, list[dict[str, Any]]]:
    """Draw several samples of one pool of records without overlap, reproducibly.

    One seeded draw of ``sum(sizes)`` records is dealt out in the order of ``sizes`` (the first
    ``sizes[first]`` to the first key, and so on); each sample keeps the records' original order.
    A single question file gives a collect run its train and validation questions this way.

    Args:
        records: The pool.
        sizes: Key -> how many records (0 for none).
        seed: Seed of the draw.
        source: How to name the pool in errors (the file).

    Raises:
        DataError: if the sizes add up to more records than the pool holds.
    """
    total = sum(sizes.values())
    if total > len(records):
        wanted = " + ".join(f"{n} {key}" for key, n in sizes.items())
        raise DataError(
            f"{source} holds {len(records)} questions, fewer than the {wanted} = {total} asked for (a single "
            f"file is one pool: its train and validation questions are drawn from it without overlap); "
            f"lower num_samples/test_samples so that they add up to <= {len(records)}"
        )
    order = random.Random(seed).sample(range(len(records)), total)
    drawn: dict[str, list[dict[str, Any]]] = {}
    start = 0
    for key, n in sizes.items():
        drawn[key] = [records[i] for i in sorted(order[start:start + n])]
        start += n
    return drawn


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
    return _validate_records(enumerate(rows, start=1), source, "row")


def sample_questions(
    records: list[dict[str, Any]], n: int, seed: int
) -> list[dict[str, Any]]:
    """Pick ``n`` records at random, reproducibly.

    The choice depends only on ``seed``, ``n`` and the number of records (``random.Random``
    is seeded explicitly, so it does not vary between processes), and the chosen records are
    returned in their original order.

    Args:
        records: The records to choose from (e.g. the output of :func:`load_split`).
        n: How many to choose; at least 1 and at most ``len(records)``.
        seed: Seed for the random choice.

    Raises:
        DataError: if ``n`` is below 1 or larger than the number of records.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise DataError(f"number of questions to sample must be an integer, got {n!r}")
    if n < 1:
        raise DataError(f"number of questions to sample must be at least 1, got {n}")
    available = len(records)
    if n > available:
        raise DataError(
            f"asked for {n} questions but only {available} exist; "
            f"lower num_samples/test_samples to <= {available}"
        )
    chosen = random.Random(seed).sample(range(available), n)
    return [records[index] for index in sorted(chosen)]


def write_jsonl(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write records as JSON Lines (UTF-8, one object per line), creating parent folders.

    Args:
        records: JSON-serialisable mappings.
        path: Destination file; overwritten if it exists.

    Returns:
        The path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(dict(record), ensure_ascii=False) + "\n")
    return target


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON Lines file of objects; blank lines are skipped.

    Args:
        path: The file to read.

    Raises:
        DataError: if the file is missing, a line is not valid JSON, or a line is not an object.
    """
    return [record for _, record in _iter_jsonl(Path(path))]


# --------------------------------------------------------------------------------------------
# Locating files
# --------------------------------------------------------------------------------------------


def _accepted_forms(name: str) -> str:
    """The start of an error message listing the ways a dataset may be named."""
    hub_ids = ", ".join(sorted(HUB_ALIASES))
    return (
        f"dataset {name!r} is not {BUNDLED!r}, a TriviaQA hub id ({hub_ids}), a directory "
        f"holding train.jsonl/validation.jsonl (or .json/.parquet/.csv), or one .jsonl/.json/.parquet/.csv file"
    )


def _find_split_file(directory: Path, split: str) -> Path:
    """Return the single ``<split>.<ext>`` file in ``directory``.

    Args:
        directory: An existing directory.
        split: ``train`` or ``validation``.

    Raises:
        DataError: if the directory cannot be listed, there is no such file or more than one
            (e.g. both .jsonl and .csv), or the path exists but is not a readable file (a
            folder, a dangling or looping symbolic link, a file without read permission).
    """
    if not os.access(directory, os.R_OK | os.X_OK):
        raise DataError(
            f"dataset folder {directory.resolve()} is not readable by this user (permission "
            f"denied); make it readable (chmod a+rx {directory.resolve()}) or copy the files "
            "to a folder you can read"
        )
    candidates = [directory / f"{split}.{ext}" for ext in FORMATS]
    found = []
    for path in candidates:
        problem = _not_a_readable_file(path)
        if problem is None:
            found.append(path)
        elif problem:
            raise DataError(
                f"{path} exists but is not a readable file: {problem}; put the {split} "
                f"questions in a regular file at that path (or remove what is there)"
            )
    if not found:
        wanted = "/".join(f".{ext}" for ext in FORMATS)
        raise DataError(
            f"no {split} split in {directory.resolve()}: expected {split}.jsonl "
            f"(or {wanted}) at {directory.resolve() / (split + '.jsonl')}"
        )
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise DataError(
            f"ambiguous {split} split in {directory.resolve()}: found {names}; keep only one"
        )
    return found[0]


def _not_a_readable_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as a data file: ``None`` if it can, ``""`` if nothing is there."""
    try:
        info = path.stat()
    except FileNotFoundError:
        # Nothing at all, or a symbolic link whose target is missing.
        return "it is a symbolic link to a missing target" if path.is_symlink() else ""
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "it is a symbolic link loop"
        return f"it cannot be inspected ({exc.strerror or exc})"
    if stat.S_ISDIR(info.st_mode):
        return "it is a folder"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    if not os.access(path, os.R_OK):
        return f"permission denied (make it readable: chmod a+r {path})"
    return None


def _load_split_file(path: Path) -> list[dict[str, Any]]:
    """Read and validate one split file, choosing the reader by its extension."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix == "jsonl":
        return _validate_records(_iter_jsonl(path), str(path), "line")
    if suffix == "json":
        return _validate_records(_iter_json(path), str(path), "row")
    if suffix == "csv":
        return _validate_records(_iter_csv(path), str(path), "row")
    if suffix == "parquet":
        return records_from_dataset(_read_parquet(path), str(path))
    raise DataError(f"{path}: unsupported file type; use one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------------------------
# Readers: each yields (1-based line/row number, raw record)
# --------------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    """Read a UTF-8 file, turning I/O failures into :class:`DataError`."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot be read: {exc}") from exc


def _iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSON Lines file."""
    # Split on "\n" only: str.splitlines would also break at U+2028 and friends, which
    # json.dumps(ensure_ascii=False) leaves unescaped inside strings.
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: invalid JSON: {exc.msg}") from None
        if not isinstance(value, dict):
            raise DataError(
                f"{path}, line {number}: expected a JSON object, got {type(value).__name__}"
            )
        yield number, value


def _iter_json(path: Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(row number, item)`` from a JSON list, or from the list under ``data``/``Data``."""
    text = _read_text(path)
    if not text.strip():
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if isinstance(document, dict):
        key = next((k for k in ("data", "Data") if k in document), None)
        if key is None:
            raise DataError(
                f"{path}: expected a JSON list of questions or an object with a 'data' list, "
                f"got an object with keys {sorted(document)[:10]}"
            )
        document = document[key]
    if not isinstance(document, list):
        raise DataError(
            f"{path}: expected a JSON list of questions, got {type(document).__name__}"
        )
    yield from enumerate(document, start=1)


def _iter_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(row number, nested record)`` from a CSV file with flat ``answer.*`` columns.

    Row 1 is the first row after the header. ``answer.aliases`` and (optional)
    ``answer.normalized_aliases`` hold JSON-encoded lists; an empty cell counts as absent.
    """
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    has_answer_columns = any(
        name.startswith("answer.") for name in (reader.fieldnames or [])
    )
    for number, row in enumerate(reader, start=1):
        record: dict[str, Any] = {}
        answer: dict[str, Any] = {}
        for column in ("question_id", "question"):
            if row.get(column) is not None:
                record[column] = row[column]
        if row.get("answer.value") is not None:
            answer["value"] = row["answer.value"]
        for field in ("aliases", "normalized_aliases"):
            cell = row.get(f"answer.{field}")
            if cell is None or (field == "normalized_aliases" and not cell.strip()):
                continue
            try:
                answer[field] = json.loads(cell)
            except json.JSONDecodeError:
                raise DataError(
                    f"{path}, row {number}: field 'answer.{field}' must be a JSON-encoded "
                    f"list of strings, got {cell!r}"
                ) from None
        if answer or has_answer_columns:  # else validation reports 'answer' itself missing
            record["answer"] = answer
        yield number, record


def _read_parquet(path: Path) -> datasets.Dataset:
    """Open a Parquet file as a ``datasets.Dataset`` (the same type the Hub loader returns)."""
    import datasets
    import pyarrow.parquet

    try:
        # Checked first: ``load_dataset`` refuses a file with no rows with an obscure message.
        empty = pyarrow.parquet.read_metadata(path).num_rows == 0
        table = None if empty else datasets.load_dataset(
            "parquet", data_files=str(path), split="train"
        )
    except Exception as exc:  # noqa: BLE001 - any reader failure means an unreadable file
        raise DataError(f"{path}: cannot be read as Parquet: {exc}") from exc
    if table is None:
        raise DataError(f"{path} has no questions")
    return table


def _load_from_hub(split: str) -> list[dict[str, Any]]:
    """Download one split of TriviaQA (``rc.nocontext``) from the Hugging Face Hub."""
    import datasets

    try:
        table = datasets.load_dataset(HUB_ID, HUB_CONFIG, split=split)
    except Exception as exc:  # noqa: BLE001 - network, auth and cache errors all land here
        raise DataError(
            f"could not load {HUB_ID} ({HUB_CONFIG}, split {split}) from the Hugging Face Hub "
            f"(this needs network access; offline, use 'bundled' or a local directory): {exc}"
        ) from exc
    return records_from_dataset(table, f"{HUB_ID} ({HUB_CONFIG}, split {split})")


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _validate_records(
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
    if not isinstance(question_id, str) or not _visible(question_id):
        raise DataError(
            f"{where}: field 'question_id' must be a non-empty string, got {question_id!r}"
        )
    question = _require(raw, "question", where)
    if not isinstance(question, str):
        raise DataError(
            f"{where}: field 'question' must be a string, got {type(question).__name__}"
        )
    if not _visible(question):
        shown = f" (it holds only invisible characters: {question!r})" if question else ""
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


def _visible(text: str) -> str:
    """``text`` without Unicode format characters (zero-width spaces and joiners, BOMs, ...) and
    surrounding whitespace: empty when nothing in it would show."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf").strip()


def _usable_alias(alias: str) -> str:
    """The graded form of an alias (:func:`normalize_answer` of its visible characters);
    empty when no response could ever match it."""
    return normalize_answer(_visible(alias))


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
