"""Input a careless or hostile user gives: never a stale or meaningless result, never a finished run
touched, and every refusal one line naming the problem and the fix.

The one-line refusals that need no run are in the table of test_bad_input.py; here are the cases
that need a store with runs in it, a trained model, or a store that fails underneath.
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import mlflow
import pytest
from click.testing import CliRunner
from helpers import command, fake_collect_run, ids_of

from know_thyself.config import CollectConfig, JudgmentDataConfig
from know_thyself.data.questions import write_jsonl
from know_thyself.tracking import TAG_NOTE, TAG_REUSED, TAG_STEP, code, current_experiment_id

TINY = ["--num_trials", "1", "--max_new_tokens", "2", "--inference_batch_size", "4"]


def _runs() -> list:
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


def _questions(prefix: str, count: int) -> list[dict]:
    return [{"question_id": f"q{i}", "question": f"{prefix} question number {i}?",
             "answer": {"value": f"answer {i}", "aliases": [f"answer {i}"]}} for i in range(count)]


def _collected_questions(run_id: str) -> set[str]:
    from know_thyself.tracking import read_jsonl_artifact

    return {row["question"] for row in read_jsonl_artifact(run_id, "responses.jsonl")}


# --------------------------------------------------------------------------------------------
# The step cache follows the data: an edited question set is collected again
# --------------------------------------------------------------------------------------------


def _single_file(tmp_path, prefix):
    write_jsonl(_questions(prefix, 8), tmp_path / "q.jsonl")
    return str(tmp_path / "q.jsonl")


def _folder(tmp_path, prefix):
    write_jsonl(_questions(prefix, 5), tmp_path / "d" / "train.jsonl")
    write_jsonl(_questions(prefix, 5), tmp_path / "d" / "validation.jsonl")
    return str(tmp_path / "d")


def _bundled(tmp_path, prefix, monkeypatch):
    """A copy of the bundled set put in its place, its questions rewritten (the package itself is untouched)."""
    from know_thyself.data import questions

    original, copy = tmp_path / "original", tmp_path / "bundled"
    if not copy.exists():
        shutil.copytree(questions.BUNDLED_DIR, original)
        shutil.copytree(questions.BUNDLED_DIR, copy)
        monkeypatch.setattr(questions, "BUNDLED_DIR", copy)
    for split in ("train", "validation"):
        rows = [json.loads(line) for line in (original / f"{split}.jsonl").read_text().splitlines() if line.strip()]
        write_jsonl([{**r, "question": f"{prefix} {r['question']}"} for r in rows], copy / f"{split}.jsonl")
    return "bundled"


@pytest.mark.parametrize("source", ["single file", "folder", "bundled"])
def test_an_edited_question_set_is_collected_again(tracking, tiny_model_dir, tmp_path, monkeypatch, source):
    def dataset(prefix):
        if source == "bundled":
            return _bundled(tmp_path, prefix, monkeypatch)
        return (_single_file if source == "single file" else _folder)(tmp_path, prefix)

    args = ["--model", tiny_model_dir, "--num_samples", "3", "--test_samples", "2", *TINY]
    first = CliRunner().invoke(command("collect"), ["--dataset", dataset("Old"), *args])
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(command("collect"), ["--dataset", dataset("New"), *args])
    assert second.exit_code == 0, second.output
    before, after = ids_of(first)["collect"], ids_of(second)["collect"]
    assert after != before, "the edited questions were answered from the old run"
    assert all(q.startswith("Old") for q in _collected_questions(before))
    assert all(q.startswith("New") for q in _collected_questions(after))
    again = CliRunner().invoke(command("collect"), ["--dataset", dataset("New"), *args])
    assert ids_of(again)["collect"] == after  # the same questions again: reused


# --------------------------------------------------------------------------------------------
# Diverged training fails, saves nothing, and is never reused
# --------------------------------------------------------------------------------------------

# Within the options' bounds, and still far too hot for the tiny model: in float32 its weights turn NaN
# in 4 steps; under bf16 autocast they stay finite and the adapter replaces the model. Both numeric
# paths must fail, on any CPU (bf16 runs everywhere, slowly without AVX-512 BF16).
DIVERGING = ["--learning_rate", "0.9", "--lora_alpha", "4096", "--max_steps", "4", "--batch_size", "2"]
PRECISIONS = pytest.mark.parametrize("dtype", ["float32", "bfloat16"])


@pytest.fixture
def judgment_data(tracking, tiny_model_dir, trivia_dir):
    from know_thyself.steps.build_judgment_data import run_build_judgment_data
    from know_thyself.steps.collect import run_collect

    collected = run_collect(CollectConfig(model=tiny_model_dir, dataset=str(trivia_dir), num_samples=8, test_samples=4,
                                          num_trials=2, max_new_tokens=2, inference_batch_size=4)).run_id
    return collected, run_build_judgment_data(JudgmentDataConfig(collect_run_id=collected)).run_id


@PRECISIONS
def test_diverged_judgment_training_fails_and_registers_nothing(judgment_data, tiny_model_dir, dtype):
    _, data_run = judgment_data
    args = ["--model", tiny_model_dir, "--data_run_id", data_run, *DIVERGING, "--dtype", dtype]
    for attempt in range(2):  # the rerun trains again: a failed run is never reused
        result = CliRunner().invoke(command("train_judgment"), args)
        assert result.exit_code == 1, result.output
        assert "Error: training diverged: " in result.output and "Traceback" not in result.output
        assert "lower learning_rate (now 0.9) or lora_alpha (now 4096)" in result.output
        failed = [r for r in _runs() if r.data.tags.get(TAG_STEP) == "train_judgment"]
        assert len(failed) == attempt + 1 and {r.info.status for r in failed} == {"FAILED"}
        assert {r.data.tags.get("know_thyself.precision") for r in failed} == {dtype}
    client = mlflow.MlflowClient()
    for run in failed:
        assert client.list_artifacts(run.info.run_id) == []  # no adapter, no judge
    assert mlflow.search_logged_models(experiment_ids=[current_experiment_id()], output_format="list") == []
    assert client.search_model_versions() == []


@PRECISIONS
def test_a_diverged_grid_point_fails_the_sweep_naming_the_point(judgment_data, tiny_model_dir, dtype):
    from know_thyself.config import SweepConfig
    from know_thyself.steps.sweep import run_sweep
    from know_thyself.training.divergence import TrainingDiverged

    collected, _ = judgment_data
    cfg = SweepConfig(model=tiny_model_dir, collect_run_id=collected, learning_rate="0.9", epochs="1", lora_alpha=4096,
                      max_steps=4, batch_size=2, dev_fraction=0.25, inference_batch_size=4, dtype=dtype)
    with pytest.raises(TrainingDiverged, match=r"^point-0: learning_rate=0.9 .* diverged: .*lower learning_rate"):
        run_sweep(cfg)
    point = next(r for r in _runs() if r.data.tags.get(TAG_STEP) == "sweep_point")
    assert point.info.status == "FAILED" and mlflow.MlflowClient().list_artifacts(point.info.run_id) == []


@PRECISIONS
def test_diverged_knowledge_training_logs_no_model(tracking, tiny_model_dir, trivia_dir, dtype):
    from know_thyself.config import KnowledgeDataConfig, KnowledgeTrainConfig
    from know_thyself.steps.build_knowledge_data import run_build_knowledge_data
    from know_thyself.steps.collect import run_collect
    from know_thyself.steps.train_knowledge import run_train_knowledge
    from know_thyself.training.divergence import TrainingDiverged

    collected = run_collect(CollectConfig(model=tiny_model_dir, dataset=str(trivia_dir), num_samples=8, test_samples=2,
                                          num_trials=1, max_new_tokens=2, inference_batch_size=4)).run_id
    data = run_build_knowledge_data(KnowledgeDataConfig(collect_run_id=collected, targets="reference", fraction=1.0))
    cfg = KnowledgeTrainConfig(model=tiny_model_dir, data_run_id=data.run_id, learning_rate=0.9, lora_alpha=4096,
                               max_steps=4, batch_size=2, dtype=dtype)
    with pytest.raises(TrainingDiverged, match="training diverged"):
        run_train_knowledge(cfg)
    trained = next(r for r in _runs() if r.data.tags.get(TAG_STEP) == "train_knowledge")
    assert trained.info.status == "FAILED" and mlflow.MlflowClient().list_artifacts(trained.info.run_id) == []


# --------------------------------------------------------------------------------------------
# Upstream runs: deleted, or the stand-in `mlflow run` opened for a reused step
# --------------------------------------------------------------------------------------------


def test_a_deleted_upstream_run_is_refused_with_the_fix(tracking):
    collected = fake_collect_run([{"split": "train", "question": "q", "ability": "can"}])
    mlflow.MlflowClient().delete_run(collected)
    result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", collected])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"collect_run_id '{collected}' is a deleted run" in result.output
    assert f"mlflow runs restore --run-id {collected}" in result.output
    assert [r.info.run_id for r in _runs()] == []  # the deleted run is not listed, and no new run was opened


def test_the_run_id_mlflow_run_printed_for_a_reused_step_points_at_the_reused_run(tracking):
    reused = fake_collect_run([{"split": "train", "question": "q", "ability": "can"}])
    with mlflow.start_run(tags={TAG_STEP: "collect (reused)", TAG_REUSED: reused}) as stand_in:
        pass
    result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", stand_in.info.run_id])
    assert result.exit_code == 1
    assert f"opened for a step that reused the finished run {reused}" in result.output
    assert f"pass {reused}" in result.output


# --------------------------------------------------------------------------------------------
# A finished run is never reopened by a leftover MLFLOW_RUN_ID
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["--num_trials", "0"], ["--num_trials", "many"]],
                         ids=["a valid command", "a bad option", "a usage error"])
def test_a_leftover_mlflow_run_id_of_a_finished_run_is_left_untouched(tracking, tiny_model_dir, trivia_dir, monkeypatch,
                                                                      args):
    finished = fake_collect_run([{"split": "train", "question": "q", "ability": "can"}])
    before = mlflow.get_run(finished)
    monkeypatch.setenv("MLFLOW_RUN_ID", finished)
    result = CliRunner().invoke(command("collect"), ["--model", tiny_model_dir, "--dataset", str(trivia_dir),
                                                     "--num_samples", "2", "--test_samples", "2", *TINY, *args])
    assert result.exit_code != 0
    if not args:
        assert f"MLFLOW_RUN_ID names run {finished}, which is FINISHED, not RUNNING" in result.output
        assert "unset MLFLOW_RUN_ID" in result.output and "Traceback" not in result.output
    after = mlflow.get_run(finished)
    assert after.info.status == "FINISHED" and after.info.end_time == before.info.end_time
    assert after.data.tags == before.data.tags and after.data.params == before.data.params
    assert [r.info.run_id for r in _runs()] == [finished]


# --------------------------------------------------------------------------------------------
# Under `mlflow run`: usage errors and user text in the run's description
# --------------------------------------------------------------------------------------------


@pytest.fixture
def project_run(tracking, monkeypatch):
    """The run `mlflow run` opens before the command starts: RUNNING, its id in MLFLOW_RUN_ID."""
    run = mlflow.MlflowClient().create_run(current_experiment_id())
    monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)
    return run.info.run_id


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--num_trials", "many"], "Invalid value for '--num_trials': 'many' is not a valid integer"),
        (["--num_trials", ""], "Invalid value for '--num_trials': '' is not a valid integer"),
        (["--num_trails", "3"], "No such option '--num_trails'. Did you mean '--num_trials'?"),
    ],
    ids=["not a number", "an empty value", "an unknown option"],
)
def test_usage_errors_under_mlflow_run_become_the_runs_description(project_run, args, expected):
    result = CliRunner().invoke(command("collect"), args)
    assert result.exit_code == 2 and expected in result.output
    note = mlflow.get_run(project_run).data.tags[TAG_NOTE]
    assert note.startswith("Failed: `") and expected in note


def test_user_text_in_a_description_is_a_code_span(tracking, tiny_model_dir, tmp_path):
    hostile = tmp_path / "my <img src=x onerror=alert(1)> [link](http://example.org) <name>"
    write_jsonl(_questions("A", 3), hostile / "train.jsonl")
    write_jsonl(_questions("B", 3), hostile / "validation.jsonl")
    result = CliRunner().invoke(command("collect"), ["--model", tiny_model_dir, "--dataset", str(hostile),
                                                     "--num_samples", "2", "--test_samples", "2", *TINY])
    assert result.exit_code == 0, result.output
    note = mlflow.get_run(ids_of(result)["collect"]).data.tags[TAG_NOTE]
    assert f"on {code(str(hostile))} (temperature" in note and f"from {code(tiny_model_dir)} on" in note


def test_an_error_in_a_description_is_a_code_span(project_run):
    result = CliRunner().invoke(command("collect"), ["--model", "<b>gpt</b>"])
    assert result.exit_code == 1
    note = mlflow.get_run(project_run).data.tags[TAG_NOTE]
    assert note.startswith("Failed: `unknown model '<b>gpt</b>'") and note.endswith("`")


# --------------------------------------------------------------------------------------------
# A store that fails underneath: the cause and the fix, not SQLAlchemy's "autoflush"
# --------------------------------------------------------------------------------------------


@pytest.fixture
def failing_writes(monkeypatch):
    """Make every write to an SQLite store fail as the driver fails it, once the step is under way."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    state = {"error": None}

    def fail(conn, cursor, statement, parameters, context, executemany):
        if state["error"] is not None and statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            raise state["error"]

    event.listen(Engine, "before_cursor_execute", fail)
    yield state
    event.remove(Engine, "before_cursor_execute", fail)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (sqlite3.OperationalError("database or disk is full"),
         "(sqlite3.OperationalError) database or disk is full; free space on the disk that holds"),
        (sqlite3.DatabaseError("database disk image is malformed"),
         "(sqlite3.DatabaseError) database disk image is malformed; the tracking store"),
    ],
    ids=["a full disk", "a store damaged mid-run"],
)
def test_a_store_failing_mid_run_names_the_cause(tracking, failing_writes, monkeypatch, error, expected):
    from know_thyself.steps import build_judgment_data as step

    collected = fake_collect_run([{"split": "train", "question": "q", "ability": "can"}])
    real = step.require_collect_run

    def then_fail(*args, **kwargs):  # the upstream run is read; the step's own run is the first write
        found = real(*args, **kwargs)
        failing_writes["error"] = error
        return found

    monkeypatch.setattr(step, "require_collect_run", then_fail)
    result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", collected])
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: tracking store error: ") and expected in line, result.output
    assert "autoflush" not in result.output and "Traceback" not in result.output


def test_a_read_only_artifact_folder_is_refused_before_any_work(tracking, tiny_model_dir, trivia_dir, monkeypatch):
    import os

    artifacts = tracking / "mlruns"
    artifacts.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: not (mode & os.W_OK and str(path).startswith(str(artifacts)))
                        and real_access(path, mode))
    result = CliRunner().invoke(command("collect"), ["--model", tiny_model_dir, "--dataset", str(trivia_dir), *TINY])
    assert result.exit_code == 1
    assert f"the artifact folder {artifacts} is not writable by this user" in result.output
    assert "chmod -R u+w" in result.output and _runs() == []


def test_a_cache_folder_that_is_a_file_is_named(tracking, tmp_path, monkeypatch):
    blocker = tmp_path / "cache-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("KNOW_THYSELF_CACHE", str(blocker))
    result = CliRunner().invoke(command("collect"), ["--model", "smollm2-135m-instruct"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"KNOW_THYSELF_CACHE is '{blocker}', but {blocker} is a file, not a folder" in result.output
    assert _runs() == []


def test_an_sqlite_store_in_a_missing_folder_is_refused(tmp_path, monkeypatch):
    missing = tmp_path / "no" / "such" / "folder"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing / 'mlflow.db'}")
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    try:
        result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", "f" * 32])
    finally:
        mlflow.set_tracking_uri(None)
    assert result.exit_code == 1
    assert f"is in a folder that does not exist ({missing}); create it (mkdir -p {missing})" in result.output
    assert not (tmp_path / "no").exists()
