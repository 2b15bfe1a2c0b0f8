"""Runs that must not be trusted as they stand: a finished run answered from stale inputs, a finished run
whose artifacts are gone, a run a killed step left RUNNING, and the run `mlflow run` opened for a step
that failed. None of them is reused or left looking healthy, and each says why."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
import pytest
from click.testing import CliRunner
from helpers import command, fake_collect_run, ids_of

from know_thyself.data.questions import write_jsonl
from know_thyself.tracking import TAG_HOST, TAG_KILLED, TAG_NOTE, TAG_PID, TAG_STEP, code, current_experiment_id
from know_thyself.tracking.runs import TAG_RERUN_REASON

TINY = ["--num_trials", "1", "--max_new_tokens", "2", "--inference_batch_size", "4"]


def _questions(answers: list[str]) -> list[dict]:
    return [{"question_id": f"q{i}", "question": f"Which answer goes with question number {i}?",
             "answer": {"value": value, "aliases": [f"alias {i}"]}} for i, value in enumerate(answers)]


@pytest.fixture(autouse=True)
def steady_code_version(monkeypatch):
    """The code version hashed once: it is part of every cache key, and the source tree may change while a test runs."""
    from know_thyself.tracking import runs

    version = runs.code_version()
    monkeypatch.setattr(runs, "code_version", lambda: version)


def _collect(tiny_model_dir: str, dataset: str):
    result = CliRunner().invoke(command("collect"), ["--model", tiny_model_dir, "--dataset", dataset,
                                                     "--num_samples", "3", "--test_samples", "2", *TINY])
    assert result.exit_code == 0, result.output
    return ids_of(result)["collect"]


def _artifact_folder(run_id: str) -> Path:
    """The local folder behind a run's artifacts (the tests' store keeps them on disk under ./mlruns)."""
    uri = mlflow.get_run(run_id).info.artifact_uri
    return Path(unquote(urlparse(uri).path)) if "://" in uri else Path(uri)


def _rows(run_id: str) -> list[dict]:
    from know_thyself.tracking import read_jsonl_artifact

    return read_jsonl_artifact(run_id, "responses.jsonl")


def _labelled_rows(train: int, validation: int) -> list[dict]:
    """Rows of a collect run's ``responses.jsonl``: each label ``train`` times in train, ``validation`` times in validation."""
    correct = {"can": [True, True], "uncertain": [True, False], "cannot": [False, False]}
    return [{"split": split, "question_id": f"{split}{i}", "question": f"Which river flows through town {i}?",
             "ability": label, "correct": correct[label], "aliases": ["yes"], "greedy_response": "x",
             "greedy_correct": label != "cannot", "greedy_mean_logprob": -1.0}
            for split, count in (("train", train), ("validation", validation))
            for i, label in enumerate(("can", "uncertain", "cannot") * count)]


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, output
    return lines[0][len("Error: "):]


# --------------------------------------------------------------------------------------------
# The step cache covers everything the step reads: an edited answer is collected again
# --------------------------------------------------------------------------------------------


def test_a_question_file_whose_only_change_is_an_answer_is_collected_again(tracking, tiny_model_dir, tmp_path):
    dataset = tmp_path / "q.jsonl"
    write_jsonl(_questions([f"old answer {i}" for i in range(8)]), dataset)
    before = _collect(tiny_model_dir, str(dataset))
    # Only the answers change: ids, questions and aliases (so the grading) stay as they were.
    write_jsonl(_questions([f"corrected answer {i}" for i in range(8)]), dataset)
    after = _collect(tiny_model_dir, str(dataset))
    assert after != before, "the edited answers were answered from the old run"
    old_rows, new_rows = _rows(before), _rows(after)
    assert [r["question_id"] for r in new_rows] == [r["question_id"] for r in old_rows] and len(new_rows) == 5
    assert [r["answer"] for r in old_rows] == [f"old answer {r['question_id'][1:]}" for r in old_rows]
    assert [r["answer"] for r in new_rows] == [f"corrected answer {r['question_id'][1:]}" for r in new_rows]
    assert _collect(tiny_model_dir, str(dataset)) == after  # the same file again: reused


def test_the_question_set_digest_covers_every_field_of_a_record():
    from know_thyself.evaluation.ability import question_set_digest

    record = {"question_id": "q1", "question": "Who?", "answer": {"value": "Ada", "aliases": ["Ada", "Ada Lovelace"],
                                                                  "normalized_aliases": ["ada", "ada lovelace"]}}
    base = question_set_digest({"train": [record]})
    edits = [
        {**record, "question_id": "q2"},
        {**record, "question": "Who, then?"},
        {**record, "answer": {**record["answer"], "value": "Lovelace"}},
        {**record, "answer": {**record["answer"], "aliases": ["Ada"]}},
        {**record, "answer": {**record["answer"], "normalized_aliases": ["ada"]}},
    ]
    digests = {question_set_digest({"train": [edit]}) for edit in edits}
    assert base not in digests and len(digests) == len(edits)
    assert question_set_digest({"validation": [record]}) != base
    assert question_set_digest({"train": [dict(record)]}) == base


# --------------------------------------------------------------------------------------------
# A finished run whose artifacts are missing or unreadable is never reused
# --------------------------------------------------------------------------------------------


def test_a_step_declares_the_files_and_folders_a_reusable_run_must_hold(tracking):
    from know_thyself.tracking import step_run

    requires = ("adapter/", "data/train.jsonl")

    def finish(with_artifacts: bool) -> str:
        with step_run("some_step", {"a": "1"}, requires=requires) as run:
            assert not run.reused
            if with_artifacts:
                mlflow.log_text("{}", "adapter/adapter_config.json")
                mlflow.log_text("{}\n", "data/train.jsonl")
        return run.run_id

    complete = finish(with_artifacts=True)
    with step_run("some_step", {"a": "1"}, requires=requires) as run:
        assert run.reused and run.run_id == complete
    shutil.rmtree(_artifact_folder(complete) / "adapter")
    empty = finish(with_artifacts=False)  # not reused; and it holds nothing either
    reason = mlflow.get_run(empty).data.tags[TAG_RERUN_REASON]
    assert f"run {complete} with the same parameters is not reused: artifact 'adapter/' is missing" in reason
    again = finish(with_artifacts=True)  # neither finished run is reused: both lack something
    assert f"run {empty} with the same parameters is not reused: artifact 'adapter/' is missing" in (
        mlflow.get_run(again).data.tags[TAG_RERUN_REASON])
    assert "artifact 'data/train.jsonl' is missing" in mlflow.get_run(again).data.tags[TAG_RERUN_REASON]
    with step_run("some_step", {"a": "1"}, requires=requires) as run:
        assert run.reused and run.run_id == again
    with step_run("some_step", {"a": "1"}) as run:  # a step that reads nothing back: the newest finished run
        assert run.reused and run.run_id == again


@pytest.mark.parametrize("damage", ["deleted", "a dangling link"])
def test_a_collect_run_without_its_responses_is_run_again_and_says_why(tracking, tiny_model_dir, trivia_dir, caplog,
                                                                        damage):
    first = _collect(tiny_model_dir, str(trivia_dir))
    responses = _artifact_folder(first) / "responses.jsonl"
    responses.unlink()
    if damage == "a dangling link":
        responses.symlink_to(responses.parent / "gone" / "responses.jsonl")
    with caplog.at_level(logging.WARNING):
        second = _collect(tiny_model_dir, str(trivia_dir))
    assert second != first, "a run without its responses was reused"
    problem = "is missing" if damage == "deleted" else "cannot be read"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and first in r.getMessage()]
    assert warned and "'responses.jsonl'" in warned[0] and problem in warned[0]
    reason = mlflow.get_run(second).data.tags[TAG_RERUN_REASON]
    assert f"the finished collect run {first} with the same parameters is not reused" in reason
    assert f"artifact 'responses.jsonl' {problem}" in reason
    assert len(_rows(second)) == 5  # 3 train + 2 validation, logged again
    assert _collect(tiny_model_dir, str(trivia_dir)) == second  # the intact run is reused from now on
    assert mlflow.get_run(first).info.status == "FINISHED"  # the damaged run itself is left as it was


def test_every_step_whose_output_is_read_downstream_is_run_again_without_it(tracking, tiny_model_dir):
    """The data, training and evaluation steps declare what a reusable run must hold, as collect does."""
    from know_thyself.config import EvaluateConfig, JudgmentDataConfig, TrainConfig
    from know_thyself.steps.build_judgment_data import run_build_judgment_data
    from know_thyself.steps.evaluate_judgment import PREDICTIONS, run_evaluate_judgment
    from know_thyself.steps.train_judgment import run_train_judgment

    def rerun_without(run, artifact: str) -> str:
        first = run()
        assert run() == first  # intact: reused
        target = _artifact_folder(first) / artifact
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        second = run()
        assert second != first, f"a run without {artifact} was reused"
        assert f"artifact '{artifact}" in mlflow.get_run(second).data.tags[TAG_RERUN_REASON]
        return second

    collected = fake_collect_run(_labelled_rows(6, 3))
    data = rerun_without(lambda: run_build_judgment_data(JudgmentDataConfig(collect_run_id=collected)).run_id,
                         "judgment_data/train.jsonl")
    trained = rerun_without(lambda: run_train_judgment(TrainConfig(
        model=tiny_model_dir, data_run_id=data, max_steps=1, batch_size=4, dev_fraction=0.0, dtype="float32")).run_id,
        "adapter")
    rerun_without(lambda: run_evaluate_judgment(EvaluateConfig(
        model=tiny_model_dir, collect_run_id=collected, adapter_run_id=trained, dtype="float32")).run_id, PREDICTIONS)


def test_a_downstream_step_names_the_run_the_artifact_and_the_fix(tracking):
    collected = fake_collect_run([{"split": "train", "question": "q", "ability": "can"}])
    (_artifact_folder(collected) / "responses.jsonl").unlink()
    result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", collected])
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = _error_line(result.output)
    assert line.startswith(f"collect run {collected}: artifact 'responses.jsonl' is missing")
    assert "rerun the collect step" in line and "pass another finished collect run" in line
    assert "Failed to download artifacts" not in result.output


# --------------------------------------------------------------------------------------------
# A step killed outside a chain leaves no run RUNNING once another step starts
# --------------------------------------------------------------------------------------------


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _running(step: str, pid: int, host: str | None = None) -> str:
    run = mlflow.MlflowClient().create_run(
        current_experiment_id(), tags={TAG_STEP: step, TAG_PID: str(pid), TAG_HOST: host or socket.gethostname()})
    return run.info.run_id


def test_a_step_started_on_its_own_closes_the_runs_of_killed_steps(tracking):
    dead = _dead_pid()
    killed_collect = _running("collect", dead)  # a collect killed with SIGKILL, then another step run by hand
    killed_training = _running("train_judgment", dead)
    alive = _running("collect", os.getpid())  # this very process: genuinely running
    elsewhere = _running("collect", dead, host="another-machine")  # cannot tell: left alone
    collected = fake_collect_run(_labelled_rows(1, 1))
    result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", collected])
    assert result.exit_code == 0, result.output
    for run_id in (killed_collect, killed_training):
        run = mlflow.get_run(run_id)
        assert run.info.status == "KILLED" and run.info.end_time is not None
        assert f"its process {dead} on {socket.gethostname()} ended without closing the run" in run.data.tags[TAG_KILLED]
        assert run.data.tags[TAG_NOTE].startswith(f"Killed: its process {dead} ")
        assert "when the build_judgment_data step started" in run.data.tags[TAG_NOTE]
    for run_id in (alive, elsewhere):
        assert mlflow.get_run(run_id).info.status == "RUNNING"


# --------------------------------------------------------------------------------------------
# Under `mlflow run`: every failure ends the run FAILED, with the reason as its description
# --------------------------------------------------------------------------------------------


def _project_run(monkeypatch) -> str:
    """The run `mlflow run` opens before the command starts: RUNNING, its id in MLFLOW_RUN_ID (set after the
    upstream runs are made, which would otherwise continue it)."""
    run = mlflow.MlflowClient().create_run(current_experiment_id())
    monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)
    return run.info.run_id


def _assert_failed_with(run_id: str, output: str) -> str:
    line = _error_line(output)
    run = mlflow.get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[TAG_NOTE] == f"Failed: {code(line)}"
    return line


def test_a_missing_upstream_artifact_fails_the_project_run_with_the_reason(tracking, tiny_model_dir, monkeypatch):
    sampled = {"model": tiny_model_dir, "dataset": "bundled", "test_samples": "2", "seed": "0", "num_trials": "2",
               "temperature": "1.0", "max_new_tokens": "4"}
    rows = [{"split": "validation", "question_id": "v0", "question": "q", "ability": "can", "correct": [True, True]}]
    collected = fake_collect_run(rows, {**sampled, "sample_seed": "1"})
    reference = fake_collect_run(rows, {**sampled, "sample_seed": "2"})
    (_artifact_folder(reference) / "responses.jsonl").unlink()
    project_run = _project_run(monkeypatch)
    # The reference is read before the step opens its run: the run `mlflow run` opened is ended here.
    result = CliRunner().invoke(command("evaluate_judgment"), ["--model", tiny_model_dir, "--collect_run_id", collected,
                                                               "--reference_collect_run_id", reference])
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = _assert_failed_with(project_run, result.output)
    assert line.startswith(f"collect run {reference}: artifact 'responses.jsonl' is missing")


def test_a_broken_readout_fails_the_project_run_with_the_reason(tracking, tiny_model_dir, monkeypatch):
    from know_thyself.config import JudgmentDataConfig, TrainConfig
    from know_thyself.inference.readout import READOUT_FILE
    from know_thyself.steps.build_judgment_data import run_build_judgment_data
    from know_thyself.steps.train_judgment import run_train_judgment

    collected = fake_collect_run(_labelled_rows(10, 2), {"num_trials": "2"})
    data = run_build_judgment_data(JudgmentDataConfig(collect_run_id=collected)).run_id
    trained = run_train_judgment(TrainConfig(model=tiny_model_dir, data_run_id=data, epochs=1, batch_size=8, lora_r=2,
                                             readout="stacked", dev_fraction=0.4)).run_id
    readout = _artifact_folder(trained) / READOUT_FILE
    assert readout.is_file()
    readout.write_text('{"coef": 1')

    project_run = _project_run(monkeypatch)
    result = CliRunner().invoke(command("evaluate_judgment"), ["--model", tiny_model_dir, "--collect_run_id", collected,
                                                               "--adapter_run_id", trained, "--dtype", "float32"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = _assert_failed_with(project_run, result.output)
    assert f"runs:/{trained}/{READOUT_FILE} is not JSON" in line and "/tmp/" not in line


def test_a_failure_inside_the_steps_own_run_keeps_its_reason(tracking, monkeypatch):
    # The step continues the run `mlflow run` opened (MLflow then drops MLFLOW_RUN_ID), and fails reading upstream.
    collected = fake_collect_run(_labelled_rows(1, 1))
    (_artifact_folder(collected) / "responses.jsonl").unlink()
    project_run = _project_run(monkeypatch)
    result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", collected])
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = _assert_failed_with(project_run, result.output)
    assert line.startswith(f"collect run {collected}: artifact 'responses.jsonl' is missing")
    assert mlflow.get_run(project_run).data.tags[TAG_STEP] == "build_judgment_data"  # the step's own run


def test_an_unexpected_error_still_fails_the_project_run_with_its_reason(tracking, monkeypatch):
    collected = fake_collect_run([{"split": "train", "question_id": "t0", "question": "q", "ability": "can"}])
    project_run = _project_run(monkeypatch)
    result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", collected])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)  # a bug: its traceback is kept
    run = mlflow.get_run(project_run)
    assert run.info.status == "FAILED" and run.data.tags[TAG_NOTE] == "Failed: `KeyError: 'correct'`"
