"""Loading, validating and sampling TriviaQA-style question sets.

Every loader returns validated records in one shape, whatever the source
(:mod:`~know_thyself.data.records`); files are read by :mod:`~know_thyself.data.files`.

A dataset is named in one of four ways (see :func:`load_split`): ``"bundled"`` for the small
set shipped inside the package, a TriviaQA Hub id such as ``"trivia_qa"`` (needs network
access), a local directory holding ``train.<ext>`` and ``validation.<ext>``, or a single
``.jsonl``/``.json``/``.parquet``/``.csv`` file, which is one split on its own: asking it for any
split gives its questions (:func:`single_file` tells such a dataset apart).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from know_thyself.data.files import FORMATS, not_a_readable_file, read_jsonl, read_split_file, write_jsonl
from know_thyself.data.records import DataError, records_from_dataset

__all__ = ["BUNDLED", "DATASET_FORMS", "SPLITS", "DataError", "draw_disjoint", "load_split", "read_jsonl",
           "sample_questions", "single_file", "write_jsonl"]

BUNDLED = "bundled"
HUB_ID = "mandarjoshi/trivia_qa"
HUB_CONFIG = "rc.nocontext"
HUB_ALIASES = {"trivia_qa", "triviaqa", "mandarjoshi/trivia_qa"}
SPLITS = ("train", "validation")
BUNDLED_DIR = Path(__file__).parent / "trivia"
# What a dataset argument may be, for the error that refuses an empty one.
DATASET_FORMS = (
    f"give {BUNDLED!r} (the questions shipped in the package), 'trivia_qa' (the Hub, online), a folder holding "
    "train and validation .jsonl/.json/.parquet/.csv files, or one such file"
)


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
        DataError: for an empty or unknown dataset name, a missing directory or split file, an
            unreadable file, an empty split, or any invalid record.
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {list(SPLITS)}, got {split!r}")
    name = os.fspath(dataset)
    if not name.strip():  # Path("") is the working folder: never what an empty value meant
        raise DataError(f"dataset is empty ({name!r}); {DATASET_FORMS}")
    if name == BUNDLED:
        if not BUNDLED_DIR.is_dir():
            raise DataError(
                f"the bundled question set is missing: no directory {BUNDLED_DIR}"
            )
        return read_split_file(_find_split_file(BUNDLED_DIR, split))
    if name.strip().lower() in HUB_ALIASES:
        return _load_from_hub(split)
    file = single_file(name)
    if file is not None:
        problem = not_a_readable_file(file)
        if problem == "":
            raise DataError(f"dataset file {file.resolve()} does not exist; check the path (or give "
                            f"a folder holding train/validation files)")
        if problem:
            raise DataError(f"dataset {file} exists but is not a readable file: {problem}; put the "
                            "questions in a regular file at that path")
        return read_split_file(file)
    directory = Path(name).expanduser()
    if not directory.is_dir():
        reason = (
            f"{directory.resolve()} is a file, not a directory"
            if directory.exists()
            else f"no directory exists at {directory.resolve()}"
        )
        raise DataError(f"{_accepted_forms(name)}: {reason}")
    return read_split_file(_find_split_file(directory, split))


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
        problem = not_a_readable_file(path)
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


def _load_from_hub(split: str) -> list[dict[str, Any]]:
    """Download one split of TriviaQA (``rc.nocontext``) from the Hugging Face Hub."""
    import datasets

    try:
        table = datasets.load_dataset(HUB_ID, HUB_CONFIG, split=split)
    except Exception as exc:  # network, auth and cache errors all land here
        raise DataError(
            f"could not load {HUB_ID} ({HUB_CONFIG}, split {split}) from the Hugging Face Hub "
            f"(this needs network access; offline, use 'bundled' or a local directory): {exc}"
        ) from exc
    return records_from_dataset(table, f"{HUB_ID} ({HUB_CONFIG}, split {split})")
