"""Checks on the bundled trivia set (know_thyself/data/trivia), built from datasets_src/trivia.

These read the shipped files as they are, so they fail when someone edits a source file and
forgets to rerun ``python tools/build_bundled_trivia.py`` (see the reproducibility test).
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import ROOT

from know_thyself.data.grading import normalize_answer
from know_thyself.data.questions import BUNDLED, BUNDLED_DIR, load_split

BUILD_SCRIPT = ROOT / "tools" / "build_bundled_trivia.py"
SPLITS = ("train", "validation")
TOPICS = ("geography", "history", "science", "literature", "arts", "sport", "language", "general")
DIFFICULTIES = ("easy", "medium", "hard")
SMALL_NUMBERS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
]
# Normalised aliases that would also match wrong or evasive answers: common words, and the
# pieces contractions leave after normalisation ("don't" -> "don t", "I'm" -> "i m").
GENERIC = {"the", "new", "old", "king", "man", "day", "us", "we", "it", "not", "no", "yes",
           "don", "isn", "didn", "can", "ll", "re", "ve", "hundred", "thousand", "million",
           "open", "great", "city", "river", "sea", "eclipse", "solstice"}


def _raw(split: str) -> list[dict[str, Any]]:
    path = BUNDLED_DIR / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


@pytest.fixture(scope="module")
def raw() -> dict[str, list[dict[str, Any]]]:
    return {split: _raw(split) for split in SPLITS}


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[dict[str, Any]]]:
    return {split: load_split(BUNDLED, split) for split in SPLITS}


def _all(records: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [record for split in SPLITS for record in records[split]]


def _load_build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_bundled_trivia", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------
# Size and loading
# --------------------------------------------------------------------------------------------


def test_sizes(loaded: dict[str, list[dict[str, Any]]]) -> None:
    train, validation = len(loaded["train"]), len(loaded["validation"])
    assert train + validation >= 1200
    assert 900 <= train <= 1150
    assert 180 <= validation <= 260


def test_loader_returns_the_raw_records(raw, loaded) -> None:
    for split in SPLITS:
        assert [r["question_id"] for r in loaded[split]] == [r["question_id"] for r in raw[split]]
        for got, stored in zip(loaded[split], raw[split]):
            assert got["question"] == stored["question"]
            assert got["answer"] == {
                key: stored["answer"][key] for key in ("value", "aliases", "normalized_aliases")
            }


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


def test_raw_schema(raw) -> None:
    for record in _all(raw):
        where = record.get("question_id")
        assert set(record) == {"question_id", "question", "answer", "topic", "difficulty"}, where
        assert isinstance(record["question_id"], str) and record["question_id"].strip(), where
        assert isinstance(record["question"], str) and record["question"].strip(), where
        answer = record["answer"]
        assert set(answer) == {"value", "aliases", "normalized_aliases"}, where
        assert isinstance(answer["value"], str) and answer["value"].strip(), where
        aliases = answer["aliases"]
        assert isinstance(aliases, list) and aliases, where
        assert all(isinstance(a, str) and a.strip() for a in aliases), where
        assert isinstance(answer["normalized_aliases"], list) and answer["normalized_aliases"], where
        assert all(isinstance(a, str) for a in answer["normalized_aliases"]), where
        assert isinstance(record["topic"], str) and record["topic"], where
        assert record["difficulty"] in DIFFICULTIES, where


def test_normalized_aliases_follow_the_build_rule(raw) -> None:
    for record in _all(raw):
        aliases = record["answer"]["aliases"]
        expected = list(dict.fromkeys(n for n in (normalize_answer(a) for a in aliases) if n))
        assert record["answer"]["normalized_aliases"] == expected, record["question_id"]
        # No alias vanishes under normalisation (it would silently accept nothing).
        assert all(normalize_answer(a) for a in aliases), record["question_id"]


def test_answer_value_is_an_accepted_alias(raw) -> None:
    for record in _all(raw):
        answer = record["answer"]
        assert normalize_answer(answer["value"]) in answer["normalized_aliases"], record["question_id"]


# --------------------------------------------------------------------------------------------
# Uniqueness and splits
# --------------------------------------------------------------------------------------------


def test_question_ids_are_unique(raw) -> None:
    ids = Counter(record["question_id"] for record in _all(raw))
    assert not [i for i, n in ids.items() if n > 1]


def test_no_duplicate_questions_within_or_across_splits(raw) -> None:
    for split in SPLITS:
        counts = Counter(normalize_answer(r["question"]) for r in raw[split])
        assert not [q for q, n in counts.items() if n > 1], split
    train = {normalize_answer(r["question"]) for r in raw["train"]}
    validation = {normalize_answer(r["question"]) for r in raw["validation"]}
    assert not train & validation


def test_splits_are_disjoint(raw) -> None:
    train_ids = {r["question_id"] for r in raw["train"]}
    assert not train_ids & {r["question_id"] for r in raw["validation"]}


def test_every_topic_is_in_both_splits(raw) -> None:
    for split in SPLITS:
        topics = {r["topic"] for r in raw[split]}
        missing = set(TOPICS) - topics
        assert not missing, (split, missing)
    assert {r["topic"] for r in raw["train"]} == {r["topic"] for r in raw["validation"]}


def test_validation_has_every_difficulty(raw) -> None:
    counts = Counter(r["difficulty"] for r in raw["validation"])
    total = len(raw["validation"])
    for difficulty in DIFFICULTIES:
        assert counts[difficulty] >= 0.10 * total, (difficulty, counts)


# --------------------------------------------------------------------------------------------
# Question and alias quality
# --------------------------------------------------------------------------------------------


def test_every_question_ends_with_a_question_mark(raw) -> None:
    for record in _all(raw):
        assert record["question"].endswith("?"), record["question"]
        assert record["question"] == record["question"].strip(), record["question"]


def test_no_question_contains_its_own_answer(raw) -> None:
    for record in _all(raw):
        question = f" {normalize_answer(record['question'])} "
        value = normalize_answer(record["answer"]["value"])
        assert f" {value} " not in question, (record["question"], record["answer"]["value"])
        for alias in record["answer"]["normalized_aliases"]:
            assert f" {alias} " not in question, (record["question"], alias)


def test_no_alias_is_too_generic(raw) -> None:
    for record in _all(raw):
        for alias in record["answer"]["normalized_aliases"]:
            assert alias not in GENERIC, (record["question"], alias)
            assert not re.fullmatch(r"[a-z]", alias), (record["question"], alias)


def test_small_numbers_have_both_digit_and_word_aliases(raw) -> None:
    for record in _all(raw):
        aliases = set(record["answer"]["normalized_aliases"])
        for alias in aliases:
            if alias.isdigit() and int(alias) <= 20:
                assert SMALL_NUMBERS[int(alias)] in aliases, (record["question"], sorted(aliases))
            if alias in SMALL_NUMBERS:
                assert str(SMALL_NUMBERS.index(alias)) in aliases, (record["question"], sorted(aliases))


# --------------------------------------------------------------------------------------------
# Reproducibility
# --------------------------------------------------------------------------------------------


def test_build_is_reproducible(tmp_path: Path) -> None:
    build = _load_build_module().build
    counts = build(tmp_path)
    for split in SPLITS:
        shipped = (BUNDLED_DIR / f"{split}.jsonl").read_bytes()
        rebuilt = (tmp_path / f"{split}.jsonl").read_bytes()
        assert rebuilt == shipped, f"{split}.jsonl is stale: rerun tools/build_bundled_trivia.py"
        assert counts[split] == len(_raw(split))
