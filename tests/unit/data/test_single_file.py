"""One question file as a dataset: one split on its own, a pool for collect, both TriviaQA schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from know_thyself.data.questions import DataError, load_split
from know_thyself.evaluation.ability import load_questions


def _records(n: int) -> list[dict]:
    return [
        {"question_id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": {"value": str(2 * i), "aliases": [str(2 * i)]}}
        for i in range(n)
    ]


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_single_file_draws_disjoint_train_and_validation_samples(tmp_path):
    path = _jsonl(tmp_path / "pool.jsonl", _records(10))
    questions = load_questions(str(path), 6, 4, seed=3)
    train = [q["question_id"] for q in questions["train"]]
    validation = [q["question_id"] for q in questions["validation"]]
    assert len(train) == 6 and len(validation) == 4
    assert sorted(train + validation, key=lambda q: int(q[1:])) == [f"q{i}" for i in range(10)]
    assert questions == load_questions(str(path), 6, 4, seed=3)  # seeded
    assert train == sorted(train, key=lambda q: int(q[1:]))  # file order kept


def test_single_file_too_small_names_the_file_and_the_fix(tmp_path):
    path = _jsonl(tmp_path / "pool.jsonl", _records(5))
    with pytest.raises(DataError) as caught:
        load_questions(str(path), 4, 2, seed=0)
    message = str(caught.value)
    assert str(path) in message and "holds 5 questions" in message and "add up to <= 5" in message


def test_a_split_of_size_zero_is_left_out_unread(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    _jsonl(folder / "validation.jsonl", _records(3))  # no train file at all
    questions = load_questions(str(folder), 0, 3, seed=0)
    assert questions["train"] == [] and [q["question_id"] for q in questions["validation"]] == ["q0", "q1", "q2"]


def test_flat_schema_in_jsonl_and_parquet(tmp_path):
    import pandas as pd

    flat = [{"question_id": r["question_id"], "question": r["question"], "answer.value": r["answer"]["value"],
             "answer.aliases": r["answer"]["aliases"]} for r in _records(3)]
    nested = load_split(str(_jsonl(tmp_path / "nested.jsonl", _records(3))), "validation")
    assert load_split(str(_jsonl(tmp_path / "flat.jsonl", flat)), "validation") == nested
    pd.DataFrame(flat).to_parquet(tmp_path / "flat.parquet")
    assert load_split(str(tmp_path / "flat.parquet"), "train") == nested


def test_errors_in_a_single_file_name_file_row_and_field(tmp_path):
    records = _records(3)
    records[1]["answer"]["aliases"] = []
    path = _jsonl(tmp_path / "bad.jsonl", records)
    with pytest.raises(DataError, match=rf"{path}, line 2: field 'answer.aliases'"):
        load_split(str(path), "validation")
    with pytest.raises(DataError, match="does not exist"):
        load_split(str(tmp_path / "missing.parquet"), "validation")
