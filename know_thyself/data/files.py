"""Question files on disk: JSON Lines, JSON, CSV and Parquet, each read into validated records.

Each reader yields ``(1-based line or row number, raw record)`` and :mod:`~know_thyself.data.records`
validates them, so an error names the file and the line or row.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from know_thyself.data.records import DataError, records_from_dataset, validate_records

if TYPE_CHECKING:  # imported lazily at run time: ``datasets`` is slow to import
    import datasets

FORMATS = ("jsonl", "json", "parquet", "csv")
TOO_DEEP = "the JSON is nested too deeply to read (a question record is an object a few levels deep); fix the file"


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


def not_a_readable_file(path: Path) -> str | None:
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


def read_split_file(path: Path) -> list[dict[str, Any]]:
    """Read and validate one split file, choosing the reader by its extension."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix == "jsonl":
        return validate_records(_iter_jsonl(path), str(path), "line")
    if suffix == "json":
        return validate_records(_iter_json(path), str(path), "row")
    if suffix == "csv":
        return validate_records(_iter_csv(path), str(path), "row")
    if suffix == "parquet":
        return records_from_dataset(_read_parquet(path), str(path))
    raise DataError(f"{path}: unsupported file type; use one of {', '.join(FORMATS)}")


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
        except RecursionError:
            raise DataError(f"{path}, line {number}: {TOO_DEEP}") from None
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
    except RecursionError:
        raise DataError(f"{path}: {TOO_DEEP}") from None
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
        name.startswith("answer.") for name in (_csv_read(path, lambda: reader.fieldnames, 0) or [])
    )
    number = 0
    while (row := _csv_read(path, lambda: next(reader, None), number + 1)) is not None:
        number += 1
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
            except (json.JSONDecodeError, RecursionError):
                raise DataError(
                    f"{path}, row {number}: field 'answer.{field}' must be a JSON-encoded "
                    f"list of strings, got {cell!r}"
                ) from None
        if answer or has_answer_columns:  # else validation reports 'answer' itself missing
            record["answer"] = answer
        yield number, record


def _csv_read(path: Path, read: Any, number: int) -> Any:
    """``read()`` from a CSV reader, its errors (a cell over the csv module's size limit, a NUL byte) as :class:`DataError`."""
    try:
        return read()
    except csv.Error as exc:
        where = f"{path}, row {number}" if number else f"{path}, header"
        if "field limit" in str(exc):
            raise DataError(
                f"{where}: a cell is longer than {csv.field_size_limit():,} characters, the csv module's limit "
                "(questions are far shorter); close the quote that runs on, or split the cell"
            ) from None
        raise DataError(f"{where}: cannot be read as CSV ({exc})") from None


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
    except Exception as exc:  # any reader failure means an unreadable file
        raise DataError(f"{path}: cannot be read as Parquet: {exc}") from exc
    if table is None:
        raise DataError(f"{path} has no questions")
    return table
