"""Presets, an empty dataset argument and control characters in a question file: each refused with one
line naming the problem and the fix, a non-zero exit, and nothing started (no mlflow run, no run in the
store); and a preset path with spaces or quotes that reaches the presets module whole through make."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from click.testing import CliRunner
from helpers import ROOT, command

from know_thyself.cli import presets
from know_thyself.config import CollectConfig, EvaluateRegisteredConfig, MultiphaseConfig
from know_thyself.data.questions import DataError, load_split

DATASET_FIX = "give 'bundled' (the questions shipped in the package), 'trivia_qa' (the Hub, online), a folder"


def _refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, text: str) -> str:
    """Run a preset holding ``text`` the way ``make run`` does; assert it is refused before mlflow starts."""
    preset = tmp_path / "p.yaml"
    preset.write_text(text)
    started = []
    monkeypatch.setattr(os, "execvp", lambda *args: started.append(args))
    assert presets.main(["--run", str(preset), "--"]) == 1
    assert started == []
    assert presets.main([str(preset)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 2 and lines[0] == lines[1], captured.err  # one line per call, the same each time
    assert "Traceback" not in captured.err
    return lines[0]


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------


def test_a_repeated_option_is_refused_not_silently_overwritten(tmp_path, monkeypatch, capsys):
    line = _refused(tmp_path, monkeypatch, capsys, "num_trials: 3\ndataset: bundled\nnum_trials: 7\n")
    assert line == (f"Error: preset {str(tmp_path / 'p.yaml')!r}, line 3: option 'num_trials' is set twice "
                    "(lines 1 and 3), and YAML would silently keep the last; keep one")


@pytest.mark.parametrize("value", ["", " ~", " null"], ids=["nothing", "tilde", "null"])
def test_an_option_with_no_value_is_refused(tmp_path, monkeypatch, capsys, value):
    line = _refused(tmp_path, monkeypatch, capsys, f"num_trials: 3\ndataset:{value}\n")
    assert line.endswith(", line 2: option 'dataset' has no value; write one after 'dataset:' or delete the line "
                         "to keep the default ('bundled')"), line


def test_a_number_option_with_no_value_names_its_default(tmp_path, monkeypatch, capsys):
    line = _refused(tmp_path, monkeypatch, capsys, "num_trials:\n")
    assert line.endswith("line 1: option 'num_trials' has no value; write one after 'num_trials:' or delete the "
                         "line to keep the default (5)"), line


def test_an_empty_quoted_dataset_is_refused_by_the_config(tmp_path, monkeypatch, capsys):
    line = _refused(tmp_path, monkeypatch, capsys, 'dataset: ""\n')
    assert line.startswith(f"Error: dataset is empty; {DATASET_FIX}"), line


@pytest.mark.parametrize(("text", "shown"), [
    ("dataset: yes\n", 'dataset: yes is read by YAML as the boolean true, not as text; quote it (dataset: "yes")'),
    ("model: no\n", 'model: no is read by YAML as the boolean false, not as text; quote it (model: "no")'),
    ("dataset: off\n", 'dataset: off is read by YAML as the boolean false, not as text; quote it (dataset: "off")'),
    ("model: 0123\n", "model: 0123 is read by YAML as 83, not as the text '0123'; quote it (model: \"0123\")"),
], ids=["dataset-yes", "model-no", "dataset-off", "model-octal"])
def test_a_yaml_11_boolean_or_number_for_a_text_option_is_refused(tmp_path, monkeypatch, capsys, text, shown):
    line = _refused(tmp_path, monkeypatch, capsys, text)
    assert f"p.yaml', line 1: {shown}" in line, line


def test_quoted_text_and_booleans_for_boolean_options_still_pass(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text('dataset: "yes"\nnum_trials: 3\nknowledge_fraction: 1.0\n')
    assert presets.read_preset(preset) == {"dataset": "yes", "num_trials": 3, "knowledge_fraction": 1.0}
    assert presets.mlflow_run_args(preset) == ["-P", "dataset=yes", "-P", "num_trials=3", "-P", "knowledge_fraction=1.0"]


def test_a_list_value_is_refused(tmp_path, monkeypatch, capsys):
    line = _refused(tmp_path, monkeypatch, capsys, "dataset: [a, b]\n")
    assert line.endswith("line 1: option 'dataset' must be a single value, not a list"), line


def test_a_folder_as_the_preset_names_a_file_in_it(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "mine.yaml").write_text("num_trials: 3\n")
    started = []
    monkeypatch.setattr(os, "execvp", lambda *args: started.append(args))
    assert presets.main(["--run", str(folder), "--"]) == 1
    assert started == []
    err = capsys.readouterr().err
    assert err == (f"Error: preset {str(folder)!r} is a folder, not a preset file; give one .yaml file such as "
                   f"{folder / 'mine.yaml'} (presets live in presets/*.yaml)\n")


def test_a_billion_laughs_preset_is_refused_before_it_is_expanded(tmp_path, monkeypatch, capsys):
    # Nine levels of nine aliases each: 9**9 (387 million) strings once expanded.
    levels = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    levels.append(f"dataset: [{', '.join(['*l8'] * 9)}]")
    composed = []
    real_compose = yaml.SafeLoader.compose_node
    monkeypatch.setattr(yaml.SafeLoader, "compose_node",
                        lambda self, *args: composed.append(1) or real_compose(self, *args))
    line = _refused(tmp_path, monkeypatch, capsys, "\n".join(levels) + "\n")
    assert line.endswith("line 2: the YAML alias *l0 is not accepted in a preset; write each value out "
                         "(a preset is a flat list of option: value lines)"), line
    assert composed == []  # refused from the event stream: not one node was built


def test_an_alias_of_a_single_value_is_refused_too(tmp_path, monkeypatch, capsys):
    line = _refused(tmp_path, monkeypatch, capsys, "model: &m Qwen/Qwen2.5-0.5B-Instruct\ndataset: *m\n")
    assert "line 2: the YAML alias *m is not accepted in a preset" in line


def test_invalid_yaml_is_one_line(tmp_path, monkeypatch, capsys):
    line = _refused(tmp_path, monkeypatch, capsys, "dataset: [bundled\n")
    assert "p.yaml' is not valid YAML (while parsing a flow sequence" in line and line.endswith("; fix it there")


# --------------------------------------------------------------------------------------------
# make run PRESET=... : the path reaches the presets module as one argument
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fake_venv(tmp_path: Path) -> Path:
    """A virtualenv folder for the Makefile whose python is this one and whose mlflow records its arguments."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    mlflow_cli = venv / "bin" / "mlflow"
    mlflow_cli.write_text(f"#!{sys.executable}\nimport json, sys\n"
                          f"open({str(tmp_path / 'mlflow-args.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    for script in (python, mlflow_cli):
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    installed = venv / ".installed"
    installed.touch()
    future = (ROOT / "pyproject.toml").stat().st_mtime + 10**6  # up to date: make installs nothing
    os.utime(installed, (future, future))
    return venv


def _make_run(venv: Path, *assignments: str) -> tuple[subprocess.CompletedProcess, list[str] | None]:
    result = subprocess.run(["make", "-s", "-C", str(ROOT), "run", f"VENV={venv}", "ARGS=", *assignments],
                            capture_output=True, text=True, timeout=120, check=False)
    recorded = venv.parent / "mlflow-args.json"
    return result, (json.loads(recorded.read_text()) if recorded.exists() else None)


MLFLOW_RUN = ["run", ".", "-e", "multiphase", "--env-manager", "local", "--experiment-name", "know-thyself"]


@pytest.mark.parametrize("name", ["my presets/x.yaml", "it's a *preset*/x.yaml"], ids=["space", "quote-and-stars"])
def test_make_run_with_a_preset_path_holding_spaces(fake_venv, tmp_path, name):
    preset = tmp_path / name
    preset.parent.mkdir()
    preset.write_text("num_trials: 3\ndataset: my data; *.jsonl\n")
    result, args = _make_run(fake_venv, f"PRESET={preset}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert args == [*MLFLOW_RUN, "-P", "num_trials=3", "-P", "dataset=my data; *.jsonl"]


def test_make_run_without_a_preset_runs_the_defaults(fake_venv):
    result, args = _make_run(fake_venv)
    assert result.returncode == 0, result.stdout + result.stderr
    assert args == MLFLOW_RUN


def test_make_run_with_a_bad_preset_starts_nothing(fake_venv, tmp_path):
    preset = tmp_path / "my presets" / "x.yaml"
    preset.parent.mkdir()
    preset.write_text("dataset: yes\n")
    result, args = _make_run(fake_venv, f"PRESET={preset}")
    assert result.returncode != 0 and args is None
    assert f"Error: preset {str(preset)!r}, line 1: dataset: yes is read by YAML as the boolean true" in result.stderr


# --------------------------------------------------------------------------------------------
# An empty dataset argument: -P dataset=, --dataset "", and the Python API
# --------------------------------------------------------------------------------------------


def _assert_refused_without_a_run(result, message: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines() == [f"Error: {message}"], result.output
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.parametrize("value", ["", "  "], ids=["empty", "blank"])
@pytest.mark.parametrize("entrypoint", ["collect", "phase1", "multiphase", "evaluate_registered"])
def test_an_empty_dataset_on_the_command_line(tracking, entrypoint, value):
    result = CliRunner().invoke(command(entrypoint), ["--dataset", value])
    _assert_refused_without_a_run(result, f"dataset is empty; {DATASET_FIX} holding train and validation "
                                          ".jsonl/.json/.parquet/.csv files, or one such file")


def test_mlflow_run_p_dataset_empty(tracking):
    """``mlflow run . -e multiphase -P dataset=`` hands the command ``--dataset ''``."""
    spec = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]["multiphase"]
    values = {name: shlex.quote(str(p["default"])) for name, p in spec["parameters"].items()}
    values["dataset"] = shlex.quote("")
    argv = shlex.split(spec["command"].format(**values))
    assert argv[argv.index("--dataset") + 1] == ""
    result = CliRunner().invoke(command("multiphase"), argv[2:])
    _assert_refused_without_a_run(result, f"dataset is empty; {DATASET_FIX} holding train and validation "
                                          ".jsonl/.json/.parquet/.csv files, or one such file")


def test_an_empty_dataset_through_the_python_api(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a working folder holding a valid dataset: "" must not quietly read it
    (tmp_path / "train.jsonl").write_text(json.dumps(
        {"question_id": "q", "question": "Why?", "answer": {"value": "x", "aliases": ["x"]}}) + "\n")
    with pytest.raises(DataError, match=re.escape(f"dataset is empty (''); {DATASET_FIX}")):
        load_split("", "train")
    for config in (CollectConfig, MultiphaseConfig, EvaluateRegisteredConfig):
        with pytest.raises(ValueError, match=f"^{re.escape(f'dataset is empty; {DATASET_FIX}')}"):
            config.from_options({"dataset": ""})
        assert config.from_options({"dataset": "bundled"}).dataset == "bundled"


# --------------------------------------------------------------------------------------------
# Questions and ids of only control characters in a question file
# --------------------------------------------------------------------------------------------


def _record(question_id: str = "q1", question: str = "Who wrote Hamlet?", aliases=("Shakespeare",)) -> dict:
    return {"question_id": question_id, "question": question, "answer": {"value": aliases[0], "aliases": list(aliases)}}


def _folder(tmp_path: Path, bad: dict, fmt: str) -> Path:
    folder = tmp_path / "d"
    folder.mkdir()
    good = [_record(f"g{i}", f"What is {i}?", (str(i),)) for i in range(4)]
    rows = [*good[:2], bad, *good[2:]]  # the bad record third
    if fmt == "jsonl":
        (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        (folder / "train.json").write_text(json.dumps(rows))
    else:
        import csv

        with (folder / "train.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["question_id", "question", "answer.value", "answer.aliases"])
            for r in rows:
                writer.writerow([r["question_id"], r["question"], r["answer"]["value"], json.dumps(r["answer"]["aliases"])])
    (folder / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in good))
    return folder


CONTROL_QUESTIONS = {
    "nul": "\x00",
    "nuls-and-spaces": " \x00\x00 \x00",
    "c0-controls": "\x01\x02\x1b\x7f",
    "c1-controls": "\x80\x9b",
    "controls-and-zero-width": "\x00\u200b\x1b\ufeff",
}


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
@pytest.mark.parametrize("question", CONTROL_QUESTIONS.values(), ids=CONTROL_QUESTIONS.keys())
def test_a_question_of_only_control_characters_is_refused(tmp_path, fmt, question):
    folder = _folder(tmp_path, _record("bad", question), fmt)
    unit = "line" if fmt == "jsonl" else "row"
    with pytest.raises(DataError) as caught:
        load_split(str(folder), "train")
    assert str(caught.value) == (
        f"{folder / f'train.{fmt}'}, {unit} 3: field 'question' is empty (it holds only invisible or control "
        f"characters: {question!r}); write the question text"
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_question_id_of_only_control_characters_is_refused(tmp_path, fmt):
    folder = _folder(tmp_path, _record("\x00\x01"), fmt)
    with pytest.raises(DataError, match=r"train\.\w+, (line|row) 3: field 'question_id' must be a non-empty string"):
        load_split(str(folder), "train")


def test_an_alias_of_only_control_characters_is_unusable(tmp_path):
    folder = _folder(tmp_path, _record(aliases=("\x00", "\x1b")), "jsonl")
    with pytest.raises(DataError, match=r"train\.jsonl, line 3: field 'answer.aliases' has no usable alias"):
        load_split(str(folder), "train")


def test_a_control_character_question_through_collect(tracking, tmp_path):
    folder = _folder(tmp_path, _record("bad", "\x00\x00"), "jsonl")
    result = CliRunner().invoke(command("collect"), ["--dataset", str(folder), "--num_samples", "4",
                                                     "--test_samples", "4"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"{folder / 'train.jsonl'}, line 3: field 'question' is empty (it holds only invisible or control " \
           "characters: '\\x00\\x00'); write the question text" in result.output, result.output
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r for r in runs if r.info.status == "RUNNING"] == []


def test_questions_with_text_around_control_characters_still_load(tmp_path):
    folder = _folder(tmp_path, _record("ok", "Who wrote\tHamlet?\n"), "jsonl")
    loaded = load_split(str(folder), "train")
    assert [r["question"] for r in loaded][2] == "Who wrote\tHamlet?\n"
