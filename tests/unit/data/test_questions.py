"""Tests for know_thyself.data.questions: loading every supported format, validation errors, sampling."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import datasets
import pytest
from helpers import ROOT

from know_thyself.data.grading import normalize_answer
from know_thyself.data.questions import (
    BUNDLED,
    BUNDLED_DIR,
    HUB_ALIASES,
    DataError,
    load_split,
    read_jsonl,
    sample_questions,
    write_jsonl,
)

# --------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------


def make_record(index: int, *, normalized: bool = True) -> dict[str, Any]:
    """A valid question record; ``normalized=False`` leaves out ``normalized_aliases``."""
    aliases = [f"The Answer {index}", f"answer-{index}"]
    answer: dict[str, Any] = {"value": f"The Answer {index}", "aliases": aliases}
    if normalized:
        answer["normalized_aliases"] = [normalize_answer(alias) for alias in aliases]
    return {"question_id": f"q{index}", "question": f"What is question {index}?", "answer": answer}


RECORDS = [make_record(i) for i in range(1, 4)]


def write_split(directory: Path, split: str, records: list[Any], fmt: str) -> Path:
    """Write ``records`` as ``directory/<split>.<fmt>`` and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{split}.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    elif fmt == "json":
        path.write_text(json.dumps(records), encoding="utf-8")
    elif fmt == "csv":
        columns = ["question_id", "question", "answer.value", "answer.aliases",
                   "answer.normalized_aliases"]
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for r in records:
                answer = r["answer"]
                writer.writerow({
                    "question_id": r["question_id"],
                    "question": r["question"],
                    "answer.value": answer["value"],
                    "answer.aliases": json.dumps(answer["aliases"]),
                    "answer.normalized_aliases": json.dumps(answer["normalized_aliases"])
                    if "normalized_aliases" in answer else "",
                })
    elif fmt == "parquet":
        hub_dataset([_hub_row(r) for r in records]).to_parquet(str(path))
    else:  # pragma: no cover - test helper misuse
        raise AssertionError(fmt)
    return path


# The exact feature layout of mandarjoshi/trivia_qa (rc.nocontext) on the Hub.
HUB_FEATURES = datasets.Features({
    "question": datasets.Value("string"),
    "question_id": datasets.Value("string"),
    "question_source": datasets.Value("string"),
    "entity_pages": {
        "doc_source": datasets.Sequence(datasets.Value("string")),
        "filename": datasets.Sequence(datasets.Value("string")),
        "title": datasets.Sequence(datasets.Value("string")),
        "wiki_context": datasets.Sequence(datasets.Value("string")),
    },
    "search_results": {
        "description": datasets.Sequence(datasets.Value("string")),
        "filename": datasets.Sequence(datasets.Value("string")),
        "rank": datasets.Sequence(datasets.Value("int32")),
        "title": datasets.Sequence(datasets.Value("string")),
        "url": datasets.Sequence(datasets.Value("string")),
        "search_context": datasets.Sequence(datasets.Value("string")),
    },
    "answer": {
        "aliases": datasets.Sequence(datasets.Value("string")),
        "normalized_aliases": datasets.Sequence(datasets.Value("string")),
        "matched_wiki_entity_name": datasets.Value("string"),
        "normalized_matched_wiki_entity_name": datasets.Value("string"),
        "normalized_value": datasets.Value("string"),
        "type": datasets.Value("string"),
        "value": datasets.Value("string"),
    },
})


def _hub_row(record: dict[str, Any]) -> dict[str, Any]:
    """Expand a plain record into a row with every field the Hub's TriviaQA has."""
    answer = record["answer"]
    return {
        "question": record["question"],
        "question_id": record["question_id"],
        "question_source": "http://www.quizballs.com/",
        "entity_pages": {"doc_source": ["TagMe"], "filename": ["Answer.txt"],
                         "title": ["Answer"], "wiki_context": [""]},
        "search_results": {"description": [], "filename": [], "rank": [], "title": [],
                           "url": [], "search_context": []},
        "answer": {
            "aliases": answer["aliases"],
            "normalized_aliases": answer.get("normalized_aliases", []),
            "matched_wiki_entity_name": "",
            "normalized_matched_wiki_entity_name": "",
            "normalized_value": normalize_answer(answer["value"]),
            "type": "WikipediaEntity",
            "value": answer["value"],
        },
    }


def hub_dataset(rows: list[dict[str, Any]]) -> datasets.Dataset:
    """A ``datasets.Dataset`` in exactly the Hub's nested TriviaQA schema."""
    return datasets.Dataset.from_list(rows, features=HUB_FEATURES)


def assert_data_error(path: Path, unit: str, number: int, field: str, *, exc: DataError) -> None:
    """The error names the file, the line/row number and the field."""
    message = str(exc)
    assert str(path) in message, message
    assert f"{unit} {number}" in message, message
    assert field in message, message


# --------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
@pytest.mark.parametrize("split", ["train", "validation"])
def test_each_format_round_trips(tmp_path: Path, fmt: str, split: str) -> None:
    write_split(tmp_path, split, RECORDS, fmt)
    assert load_split(str(tmp_path), split) == RECORDS


def test_accepts_path_objects(tmp_path: Path) -> None:
    write_split(tmp_path, "train", RECORDS, "jsonl")
    assert load_split(tmp_path, "train") == RECORDS


def test_json_data_wrapper(tmp_path: Path) -> None:
    (tmp_path / "train.json").write_text(json.dumps({"Version": 1.0, "data": RECORDS}))
    assert load_split(str(tmp_path), "train") == RECORDS


def test_extra_keys_are_dropped(tmp_path: Path) -> None:
    record = make_record(1)
    record["question_source"] = "somewhere"
    record["answer"]["type"] = "WikipediaEntity"
    write_split(tmp_path, "train", [record], "jsonl")
    assert load_split(str(tmp_path), "train") == [make_record(1)]


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_missing_normalized_aliases_are_computed(tmp_path: Path, fmt: str) -> None:
    write_split(tmp_path, "train", [make_record(7, normalized=False)], fmt)
    (loaded,) = load_split(str(tmp_path), "train")
    assert loaded["answer"]["normalized_aliases"] == ["answer 7"]


def test_given_normalized_aliases_are_kept(tmp_path: Path) -> None:
    record = make_record(1)
    record["answer"]["normalized_aliases"] = ["kept as is"]
    write_split(tmp_path, "train", [record], "jsonl")
    (loaded,) = load_split(str(tmp_path), "train")
    assert loaded["answer"]["normalized_aliases"] == ["kept as is"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_aliases_that_normalise_to_nothing_are_rejected(tmp_path: Path, fmt: str) -> None:
    records = [make_record(1), make_record(2, normalized=False)]
    records[1]["answer"]["aliases"] = ["", " ", "!!!"]
    path = write_split(tmp_path, "train", records, fmt)
    with pytest.raises(DataError) as caught:
        load_split(str(tmp_path), "train")
    assert_data_error(path, "line" if fmt == "jsonl" else "row", 2, "answer.aliases", exc=caught.value)
    assert "normalise to an empty string" in str(caught.value)


def test_unusable_aliases_beside_usable_ones_leave_normalized_aliases(tmp_path: Path) -> None:
    derived = make_record(1, normalized=False)
    derived["answer"]["aliases"] = ["!!!", "Paris", "", "\u200b", "paris."]
    given = make_record(2)
    given["answer"]["aliases"] = ["?", "Rome"]
    given["answer"]["normalized_aliases"] = ["", "rome"]
    only_blank_given = make_record(3)
    only_blank_given["answer"]["aliases"] = ["Oslo"]
    only_blank_given["answer"]["normalized_aliases"] = [" "]
    write_split(tmp_path, "train", [derived, given, only_blank_given], "jsonl")
    first, second, third = load_split(str(tmp_path), "train")
    assert first["answer"]["aliases"] == ["!!!", "Paris", "", "\u200b", "paris."]  # as written
    assert first["answer"]["normalized_aliases"] == ["paris"]
    assert second["answer"]["normalized_aliases"] == ["rome"]
    assert third["answer"]["normalized_aliases"] == ["oslo"]


def test_visible_text_with_format_characters_is_kept(tmp_path: Path) -> None:
    record = make_record(1)
    record["question"] = "Who wrote \u200bthis?"
    write_split(tmp_path, "train", [record], "jsonl")
    (loaded,) = load_split(str(tmp_path), "train")
    assert loaded["question"] == "Who wrote \u200bthis?"


def test_csv_without_normalized_column(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text(
        'question_id,question,answer.value,answer.aliases\r\n'
        'q1,"Capital of France,\nplease?",Paris,"[""Paris"", ""Paris, France""]"\r\n',
        encoding="utf-8",
    )
    assert load_split(str(tmp_path), "train") == [{
        "question_id": "q1",
        "question": "Capital of France,\nplease?",
        "answer": {"value": "Paris", "aliases": ["Paris", "Paris, France"],
                   "normalized_aliases": ["paris", "paris france"]},
    }]


def test_hub_schema_parquet_loads(tmp_path: Path) -> None:
    path = tmp_path / "validation.parquet"
    hub_dataset([_hub_row(r) for r in RECORDS]).to_parquet(str(path))
    loaded = load_split(str(tmp_path), "validation")
    assert loaded == RECORDS
    assert set(loaded[0]) == {"question_id", "question", "answer"}
    assert set(loaded[0]["answer"]) == {"value", "aliases", "normalized_aliases"}


# --------------------------------------------------------------------------------------------
# The Hub path
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HUB_ALIASES))
@pytest.mark.parametrize("split", ["train", "validation"])
def test_hub_aliases_load_trivia_qa(
    monkeypatch: pytest.MonkeyPatch, name: str, split: str
) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def fake_load_dataset(*args: Any, **kwargs: Any) -> datasets.Dataset:
        calls.append((args, kwargs))
        return hub_dataset([_hub_row(r) for r in RECORDS])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert load_split(name, split) == RECORDS
    assert calls == [(("mandarjoshi/trivia_qa", "rc.nocontext"), {"split": split})]


def test_hub_and_parquet_share_one_conversion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    from know_thyself.data import files, questions, records

    original = records.records_from_dataset

    def spy(table: datasets.Dataset, source: str) -> list[dict[str, Any]]:
        seen.append(source)
        return original(table, source)

    # Parquet files are read in files.py, the Hub in questions.py: both must call the one conversion.
    monkeypatch.setattr(files, "records_from_dataset", spy)
    monkeypatch.setattr(questions, "records_from_dataset", spy)
    write_split(tmp_path, "train", RECORDS, "parquet")
    from_parquet = load_split(str(tmp_path), "train")
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda *a, **k: hub_dataset([_hub_row(r) for r in RECORDS]))
    from_hub = load_split("trivia_qa", "train")
    assert from_parquet == from_hub == RECORDS
    assert len(seen) == 2


def test_hub_bad_row_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [_hub_row(r) for r in RECORDS]
    rows[1]["answer"]["aliases"] = []
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: hub_dataset(rows))
    with pytest.raises(DataError, match=r"mandarjoshi/trivia_qa.*row 2.*answer\.aliases"):
        load_split("triviaqa", "train")


def test_hub_failure_becomes_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="network access.*no network"):
        load_split("trivia_qa", "validation")


# --------------------------------------------------------------------------------------------
# Naming and locating datasets
# --------------------------------------------------------------------------------------------


def test_unknown_dataset_lists_accepted_forms() -> None:
    with pytest.raises(DataError) as caught:
        load_split("foo", "train")
    message = str(caught.value)
    for expected in ["'foo'", "'bundled'", "trivia_qa", "mandarjoshi/trivia_qa",
                     "train.jsonl/validation.jsonl", ".parquet", ".csv"]:
        assert expected in message, message


def test_missing_directory_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=str(missing)):
        load_split(str(missing), "train")


def test_file_of_another_kind_instead_of_directory(tmp_path: Path) -> None:
    path = tmp_path / "questions.txt"
    path.write_text("What?\n")
    with pytest.raises(DataError, match="is a file, not a directory"):
        load_split(str(path), "train")


def test_single_file_is_one_split(tmp_path: Path) -> None:
    path = write_split(tmp_path, "train", RECORDS, "jsonl")
    for split in ("train", "validation"):
        assert load_split(str(path), split) == load_split(str(tmp_path), "train")


def test_missing_split_file_names_path(tmp_path: Path) -> None:
    write_split(tmp_path, "train", RECORDS, "jsonl")
    with pytest.raises(DataError) as caught:
        load_split(str(tmp_path), "validation")
    assert str(tmp_path / "validation.jsonl") in str(caught.value)


def test_two_files_for_one_split_is_ambiguous(tmp_path: Path) -> None:
    write_split(tmp_path, "train", RECORDS, "jsonl")
    write_split(tmp_path, "train", RECORDS, "csv")
    with pytest.raises(DataError, match="train.jsonl, train.csv"):
        load_split(str(tmp_path), "train")


@pytest.mark.parametrize("make", [
    pytest.param(lambda path: path.mkdir(), id="folder"),
    pytest.param(lambda path: path.symlink_to(path.name), id="symlink-to-itself"),
    pytest.param(lambda path: (path.parent / "loop.b").symlink_to(path.name) or path.symlink_to("loop.b"),
                 id="symlink-loop"),
    pytest.param(lambda path: path.symlink_to(path.parent / "gone.jsonl"), id="dangling-symlink"),
])
def test_split_path_that_is_not_a_readable_file(tmp_path: Path, make: Any) -> None:
    write_split(tmp_path, "validation", RECORDS, "jsonl")
    make(tmp_path / "train.jsonl")
    with pytest.raises(DataError) as caught:
        load_split(str(tmp_path), "train")
    message = str(caught.value)
    assert f"{tmp_path / 'train.jsonl'} exists but is not a readable file" in message, message
    assert "regular file" in message, message  # what to do
    assert load_split(str(tmp_path), "validation") == RECORDS


def test_symlink_to_a_file_is_followed(tmp_path: Path) -> None:
    source = write_split(tmp_path / "elsewhere", "train", RECORDS, "jsonl")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.jsonl").symlink_to(source)
    assert load_split(str(tmp_path / "d"), "train") == RECORDS


def test_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="split must be one of"):
        load_split(str(tmp_path), "test")


def test_bundled_set_loads() -> None:
    bundled = BUNDLED_DIR
    if not ((bundled / "train.jsonl").is_file() and (bundled / "validation.jsonl").is_file()):
        pytest.skip(f"bundled set not created yet at {bundled}")
    train = load_split(BUNDLED, "train")
    validation = load_split(BUNDLED, "validation")
    assert train and validation
    train_ids = {r["question_id"] for r in train}
    assert not train_ids & {r["question_id"] for r in validation}


# --------------------------------------------------------------------------------------------
# Malformed records
# --------------------------------------------------------------------------------------------


def _broken(mutate: Any) -> list[dict[str, Any]]:
    """Three valid records with the second one passed through ``mutate``."""
    records = [make_record(i) for i in range(1, 4)]
    mutate(records[1])
    return records


MALFORMED = {
    "missing question_id": (lambda r: r.pop("question_id"), "question_id"),
    "missing question": (lambda r: r.pop("question"), "question"),
    "missing answer": (lambda r: r.pop("answer"), "answer"),
    "missing answer.value": (lambda r: r["answer"].pop("value"), "answer.value"),
    "missing answer.aliases": (lambda r: r["answer"].pop("aliases"), "answer.aliases"),
    "question_id not a string": (lambda r: r.update(question_id=12), "question_id"),
    "question not a string": (lambda r: r.update(question=["what?"]), "question"),
    "empty question": (lambda r: r.update(question="   "), "question"),
    "answer not an object": (lambda r: r.update(answer="Paris"), "answer"),
    "answer.value not a string": (lambda r: r["answer"].update(value=3), "answer.value"),
    "aliases not a list": (lambda r: r["answer"].update(aliases="Paris"), "answer.aliases"),
    "empty alias list": (lambda r: r["answer"].update(aliases=[]), "answer.aliases"),
    "alias not a string": (lambda r: r["answer"].update(aliases=["a", 1]), "answer.aliases"),
    "normalized_aliases not a list": (
        lambda r: r["answer"].update(normalized_aliases="x"), "answer.normalized_aliases"),
    "duplicate question_id": (lambda r: r.update(question_id="q1"), "question_id"),
    "question of zero-width spaces": (lambda r: r.update(question="\u200b\u200b"), "question"),
    "question of format characters": (lambda r: r.update(question=" \ufeff\u2060\u200d "), "question"),
    "question_id of a zero-width space": (lambda r: r.update(question_id="\u200b"), "question_id"),
    "aliases that are blank": (lambda r: r["answer"].update(aliases=["", " "]), "answer.aliases"),
    "aliases of punctuation": (lambda r: r["answer"].update(aliases=["!!!"]), "answer.aliases"),
    "alias of an article": (lambda r: r["answer"].update(aliases=["The", "a."]), "answer.aliases"),
    "alias of a zero-width space": (lambda r: r["answer"].update(aliases=["\u200b"]), "answer.aliases"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("fmt,unit", [("jsonl", "line"), ("json", "row")])
def test_malformed_json_records(tmp_path: Path, case: str, fmt: str, unit: str) -> None:
    mutate, field = MALFORMED[case]
    path = write_split(tmp_path, "train", _broken(mutate), fmt)
    with pytest.raises(DataError) as caught:
        load_split(str(tmp_path), "train")
    assert_data_error(path, unit, 2, field, exc=caught.value)


def test_duplicate_names_first_occurrence(tmp_path: Path) -> None:
    write_split(tmp_path, "train", _broken(lambda r: r.update(question_id="q1")), "jsonl")
    with pytest.raises(DataError, match="line 2.*'q1'.*line 1"):
        load_split(str(tmp_path), "train")


def test_jsonl_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    bad = make_record(2)
    bad["answer"]["aliases"] = []
    path.write_text(json.dumps(make_record(1)) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError) as caught:
        load_split(str(tmp_path), "train")
    assert_data_error(path, "line", 3, "answer.aliases", exc=caught.value)


def test_invalid_json_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(make_record(1)) + "\n{not json\n")
    with pytest.raises(DataError, match=r"line 2: invalid JSON") as caught:
        load_split(str(tmp_path), "train")
    assert str(path) in str(caught.value)


def test_jsonl_line_must_be_object(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps(make_record(1)) + "\n[1, 2]\n")
    with pytest.raises(DataError, match=r"line 2: expected a JSON object"):
        load_split(str(tmp_path), "train")


def test_invalid_json_document(tmp_path: Path) -> None:
    (tmp_path / "train.json").write_text('[\n  {"question_id": "q1",\n  oops\n]')
    with pytest.raises(DataError, match=r"line 3: invalid JSON"):
        load_split(str(tmp_path), "train")


def test_json_object_without_data_list(tmp_path: Path) -> None:
    (tmp_path / "train.json").write_text(json.dumps({"questions": RECORDS}))
    with pytest.raises(DataError, match="'data' list"):
        load_split(str(tmp_path), "train")


CSV_HEADER = "question_id,question,answer.value,answer.aliases\n"
CSV_GOOD_ROW = 'q1,Who?,Ann,"[""Ann""]"\n'


@pytest.mark.parametrize(
    "header,bad_row,field",
    [
        (CSV_HEADER, 'q2,Who?,Bob,"not json"\n', "answer.aliases"),
        (CSV_HEADER, 'q2,Who?,Bob,"[]"\n', "answer.aliases"),
        (CSV_HEADER, 'q2,Who?,Bob,"{""a"": 1}"\n', "answer.aliases"),
        (CSV_HEADER, 'q2,  ,Bob,"[""Bob""]"\n', "question"),
        (CSV_HEADER, ',Who?,Bob,"[""Bob""]"\n', "question_id"),
        (CSV_HEADER, 'q1,Who?,Bob,"[""Bob""]"\n', "question_id"),
        (CSV_HEADER, 'q2,Who?\n', "answer.value"),
        ("question_id,question,answer.value\n", "q2,Who?,Bob\n", "answer.aliases"),
        ("question_id,answer.value,answer.aliases\n", 'q2,Bob,"[""Bob""]"\n', "question"),
        ("question_id,question\n", "q2,Who?\n", "answer"),
    ],
)
def test_malformed_csv_rows(tmp_path: Path, header: str, bad_row: str, field: str) -> None:
    good = CSV_GOOD_ROW if header == CSV_HEADER else None
    path = tmp_path / "train.csv"
    if good is None:  # headers missing a column: the very first row is already bad
        path.write_text(header + bad_row)
        row = 1
    else:
        path.write_text(header + good + bad_row)
        row = 2
    with pytest.raises(DataError) as caught:
        load_split(str(tmp_path), "train")
    assert_data_error(path, "row", row, field, exc=caught.value)


def test_malformed_parquet_row(tmp_path: Path) -> None:
    path = write_split(tmp_path, "train", _broken(lambda r: r.update(question="")), "parquet")
    with pytest.raises(DataError) as caught:
        load_split(str(tmp_path), "train")
    assert_data_error(path, "row", 2, "question", exc=caught.value)


def test_parquet_duplicate_id(tmp_path: Path) -> None:
    path = write_split(tmp_path, "train", _broken(lambda r: r.update(question_id="q1")),
                       "parquet")
    with pytest.raises(DataError) as caught:
        load_split(str(tmp_path), "train")
    assert_data_error(path, "row", 2, "question_id", exc=caught.value)


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match="cannot be read as Parquet") as caught:
        load_split(str(tmp_path), "train")
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_empty_split_has_no_questions(tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        path = tmp_path / "train.parquet"
        empty = {column: [] for column in HUB_FEATURES}
        datasets.Dataset.from_dict(empty, features=HUB_FEATURES).to_parquet(str(path))
    else:
        path = write_split(tmp_path, "train", [], fmt)
    with pytest.raises(DataError, match="has no questions") as caught:
        load_split(str(tmp_path), "train")
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_zero_byte_file_has_no_questions(tmp_path: Path, fmt: str) -> None:
    (tmp_path / f"train.{fmt}").write_text("")
    with pytest.raises(DataError, match="has no questions"):
        load_split(str(tmp_path), "train")


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


MANY = [make_record(i) for i in range(100)]


def test_sampling_is_deterministic_and_ordered() -> None:
    first = sample_questions(MANY, 10, seed=3)
    assert first == sample_questions(MANY, 10, seed=3)
    assert len({r["question_id"] for r in first}) == 10
    positions = [MANY.index(r) for r in first]
    assert positions == sorted(positions)
    assert first != sample_questions(MANY, 10, seed=4)


def test_sampling_is_the_same_in_another_process() -> None:
    here = [r["question_id"] for r in sample_questions(MANY, 5, seed=42)]
    script = (
        "import json\n"
        "from know_thyself.data.questions import sample_questions\n"
        "records = [{'question_id': f'q{i}'} for i in range(100)]\n"
        "print(json.dumps([r['question_id'] for r in sample_questions(records, 5, 42)]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    root = ROOT
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, cwd=root, env=env)
    assert json.loads(result.stdout) == here


def test_sampling_everything_returns_all_in_order() -> None:
    assert sample_questions(RECORDS, 3, seed=0) == RECORDS


def test_sampling_too_many_says_how_to_fix() -> None:
    with pytest.raises(DataError, match=r"only 3 exist.*num_samples/test_samples to <= 3"):
        sample_questions(RECORDS, 4, seed=0)


@pytest.mark.parametrize("n", [0, -1])
def test_sampling_needs_at_least_one(n: int) -> None:
    with pytest.raises(DataError, match="at least 1"):
        sample_questions(RECORDS, n, seed=0)


# --------------------------------------------------------------------------------------------
# JSONL helpers
# --------------------------------------------------------------------------------------------


def test_write_then_read_jsonl(tmp_path: Path) -> None:
    rows = [{"question_id": "q1", "response": "Zürich — «yes»\u2028next"},
            {"n": 2, "nested": {"a": [1]}}]
    path = write_jsonl(rows, tmp_path / "deep" / "responses.jsonl")
    assert path == tmp_path / "deep" / "responses.jsonl"
    assert read_jsonl(path) == rows
    assert "Zürich" in path.read_text(encoding="utf-8")


def test_read_jsonl_reports_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "responses.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DataError, match=r"line 2: invalid JSON"):
        read_jsonl(path)


def test_read_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_jsonl(tmp_path / "absent.jsonl")
