"""The bad-input table: each case through the command line gives a non-zero exit, one clear line
naming the problem and the fix, no run left RUNNING and no registered model version."""

import json
import os
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from entrypoint_loader import command




def _dataset(folder: Path, train: str | None = None, validation: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    good = "".join(
        json.dumps({"question_id": f"q{i}", "question": f"What is {i}?", "answer": {"value": str(i), "aliases": [str(i)]}}) + "\n"
        for i in range(5)
    )
    (folder / "train.jsonl").write_text(good if train is None else train)
    (folder / "validation.jsonl").write_text(good if validation is None else validation)
    return folder


def _bad_row(**answer):
    return json.dumps({"question_id": "bad", "question": "What?", "answer": {"value": "x", **answer}}) + "\n"


# (case, entry point, arguments (a callable of tmp_path for file cases), message)
CASES = [
    ("unknown model name", "collect", ["--model", "gpt-five"], "unknown model 'gpt-five'"),
    ("a folder that is not a model", "collect", lambda t: ["--model", str(_dataset(t / "notamodel"))], "has no config.json"),
    ("a model folder that does not exist", "collect", ["--model", "./checkpoints/none"], "does not exist"),
    ("missing dataset folder", "collect", ["--dataset", "/no/such/folder"], "no directory exists"),
    ("missing split file", "collect", lambda t: ["--dataset", str(_only_train(t))], "validation"),
    ("wrong schema (row and field named)", "collect", lambda t: ["--dataset", str(_dataset(t / "d", train=_bad_row(aliases="x")))], "line 1"),
    ("empty dataset", "collect", lambda t: ["--dataset", str(_dataset(t / "d", validation=""))], "has no questions"),
    ("more samples than exist", "collect", lambda t: ["--dataset", str(_dataset(t / "d")), "--num_samples", "50"], "lower num_samples/test_samples to <= 5"),
    ("num_trials 0", "collect", ["--num_trials", "0"], "num_trials must be >= 1, got 0"),
    ("negative learning rate", "train_judgment", ["--data_run_id", "a" * 32, "--learning_rate", "-0.1"], "learning_rate must be in (0, 1)"),
    ("non-numeric learning rate", "train_judgment", ["--data_run_id", "a" * 32, "--learning_rate", "fast"], "'fast' is not a valid float"),
    ("upstream run id that does not exist", "build_judgment_data", ["--collect_run_id", "f" * 32], "is not a run in this tracking store"),
    ("malformed run id", "evaluate_judgment", ["--collect_run_id", "123"], "collect_run_id must be an MLflow run id"),
    ("question with no aliases", "collect", lambda t: ["--dataset", str(_dataset(t / "d", train=_bad_row(aliases=[])))], "answer.aliases"),
    ("very long question", "collect", lambda t: ["--dataset", str(_long_question(t)), "--num_samples", "5", "--test_samples", "5"], "the limit is 1000"),
    ("bad label scheme", "collect", ["--label_scheme", "five"], "label_scheme must be one of"),
    ("bad dtype", "collect", ["--dtype", "int8"], "dtype must be one of"),
    ("zero temperature", "collect", ["--temperature", "0"], "temperature must be in (0, 5]"),
    ("bad phase", "multiphase", ["--phase", "4"], "phase must be 0 (all), 1, 2 or 3"),
    ("unknown registry URI form", "collect", ["--model", "models:/a/b/c"], "is not a registry URI"),
]


def _only_train(tmp_path: Path) -> Path:
    folder = _dataset(tmp_path / "d")
    (folder / "validation.jsonl").unlink()
    return folder


def _long_question(tmp_path: Path) -> Path:
    row = json.dumps({"question_id": "long", "question": "Why " * 400 + "?", "answer": {"value": "x", "aliases": ["x"]}}) + "\n"
    folder = _dataset(tmp_path / "d")
    with open(folder / "train.jsonl", "a") as handle:
        handle.write(row)
    (folder / "train.jsonl").write_text((folder / "train.jsonl").read_text())
    return folder


def _assert_clean_failure(result, message):
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert [r for r in runs if r.info.status == "RUNNING"] == []
    assert mlflow.MlflowClient().search_model_versions() == []


@pytest.mark.parametrize(("case", "entrypoint", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(tracking, tmp_path, case, entrypoint, args, message):
    if callable(args):
        args = args(tmp_path)
    result = CliRunner().invoke(command(entrypoint), args)
    _assert_clean_failure(result, message)


def test_upstream_run_of_the_wrong_step(tracking):
    with mlflow.start_run(tags={"know_thyself.step": "collect"}) as run:
        pass
    result = CliRunner().invoke(command("train_judgment"), ["--data_run_id", run.info.run_id])
    _assert_clean_failure(result, "is a collect run, not a build_judgment_data run")


def test_unreachable_tracking_server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", "f" * 32])
    assert result.exit_code != 0
    assert "tracking server http://127.0.0.1:9 is not reachable" in result.output
    assert "Traceback" not in result.output


def test_unwritable_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if mode == os.W_OK else real_access(path, mode))
    result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", "f" * 32])
    assert result.exit_code != 0
    assert "is not writable" in result.output and "MLFLOW_TRACKING_URI" in result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_failure_inside_a_step_ends_its_run_failed(tracking, tiny_model_dir, trivia_dir, monkeypatch):
    from know_thyself import collect

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(collect, "sample_answers", broken)
    result = CliRunner().invoke(command("phase1"), ["--model", tiny_model_dir, "--dataset", str(trivia_dir),
                                                     "--num_samples", "4", "--test_samples", "4"])
    assert result.exit_code != 0 and "disk full" in result.output
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert {r.info.run_name: r.info.status for r in runs} == {"phase1": "FAILED", "collect": "FAILED"}
