"""The step cache and upstream checks: what is reused, what is rerun, what is refused."""

import mlflow
import pytest

from know_thyself import tracking as kt
from know_thyself.tracking import UpstreamRunError, find_finished_run, require_step_run, step_run


def _finish(step, params):
    with step_run(step, params) as run:
        assert not run.reused
        mlflow.log_metric("done", 1)
    return run.run_id


def test_identical_params_reuse_the_finished_run(tracking):
    first = _finish("collect", {"num_trials": "5", "model": "m"})
    with step_run("collect", {"num_trials": "5", "model": "m"}) as run:
        assert run.reused and run.run_id == first


def test_an_int_parameter_change_is_a_different_step(tracking):
    _finish("collect", {"num_trials": "5"})
    assert find_finished_run("collect", {"num_trials": "4"}) is None
    # the parameter is compared as the string MLflow stores, so 5 and "5" are the same
    assert find_finished_run("collect", {"num_trials": str(5)}) is not None


def test_a_changed_upstream_run_is_a_different_step(tracking):
    upstream_a = _finish("collect", {"seed": "1"})
    upstream_b = _finish("collect", {"seed": "2"})
    built = _finish("build_judgment_data", {"collect_run_id": upstream_a})
    assert find_finished_run("build_judgment_data", {"collect_run_id": upstream_a}) == built
    assert find_finished_run("build_judgment_data", {"collect_run_id": upstream_b}) is None


def test_a_code_change_invalidates_the_cache(tracking, monkeypatch):
    _finish("collect", {"seed": "1"})
    monkeypatch.setattr(kt.runs, "code_version", lambda: "something-else")
    assert find_finished_run("collect", {"seed": "1"}) is None


def test_a_failed_run_is_not_reused_and_ends_failed(tracking):
    with pytest.raises(RuntimeError), step_run("collect", {"seed": "1"}) as run:
        raise RuntimeError("boom")
    assert mlflow.get_run(run.run_id).info.status == "FAILED"
    assert find_finished_run("collect", {"seed": "1"}) is None


def test_reuse_false_always_runs(tracking):
    first = _finish("collect", {"seed": "1"})
    with step_run("collect", {"seed": "1"}, reuse=False) as run:
        assert not run.reused and run.run_id != first


def test_children_nest_under_the_active_run_and_parent_records_them(tracking):
    with mlflow.start_run(run_name="parent") as parent:
        child = _finish("collect", {"seed": "1"})
    run = mlflow.get_run(child)
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert mlflow.get_run(parent.info.run_id).data.tags["know_thyself.collect.run_id"] == child
    assert run.data.params == {"seed": "1"}
    assert run.data.tags[kt.TAG_STEP] == "collect"


def test_require_step_run_refuses_missing_wrong_step_and_unfinished(tracking):
    collect_id = _finish("collect", {"seed": "1"})
    assert require_step_run(collect_id, "collect", "collect_run_id").info.run_id == collect_id
    with pytest.raises(UpstreamRunError, match="not a run in this tracking store"):
        require_step_run("0" * 32, "collect", "collect_run_id")
    with pytest.raises(UpstreamRunError, match="is a collect run, not a train_judgment run"):
        require_step_run(collect_id, "train_judgment", "adapter_run_id")
    with mlflow.start_run(tags={kt.TAG_STEP: "collect"}) as unfinished:
        pass
    mlflow.MlflowClient().set_terminated(unfinished.info.run_id, "KILLED")
    with pytest.raises(UpstreamRunError, match="KILLED"):
        require_step_run(unfinished.info.run_id, "collect", "collect_run_id")


def test_default_tracking_store_is_sqlite_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    try:
        assert kt.configure_tracking() == "sqlite:///mlflow.db"
        with mlflow.start_run() as run:
            mlflow.log_text("x", "x.txt")
        assert (tmp_path / "mlflow.db").is_file()
        assert run.info.artifact_uri.startswith((tmp_path / "mlruns").as_uri()) or str(tmp_path / "mlruns") in run.info.artifact_uri
        assert (tmp_path / "mlruns").is_dir()
    finally:
        mlflow.set_tracking_uri(None)


def test_check_sqlite_store_refuses_what_is_not_a_database(tmp_path):
    store = tmp_path / "mlflow.db"
    uri = f"sqlite:///{store}"
    kt.check_sqlite_store(uri)  # nothing there yet: MLflow creates it
    store.write_bytes(b"")
    kt.check_sqlite_store(uri)  # an empty file is an empty database
    store.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ValueError, match=f"{store} is not an SQLite database.*move it aside.*MLFLOW_TRACKING_URI"):
        kt.check_sqlite_store(uri)
    store.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    with pytest.raises(ValueError, match=f"{store} is damaged"):
        kt.check_sqlite_store(uri)
    store.unlink()
    store.mkdir()
    with pytest.raises(ValueError, match=f"{store} is not a file"):
        kt.check_sqlite_store(uri)


def test_check_sqlite_store_accepts_a_store_in_use(tracking):
    with mlflow.start_run():
        mlflow.log_param("a", 1)
    kt.check_sqlite_store(mlflow.get_tracking_uri())


def test_the_data_read_is_part_of_the_key(tracking):
    """Two runs with the same parameters on different questions (an edited file) are different steps."""
    with step_run("collect", {"dataset": "q.jsonl"}, inputs="digest-of-old-questions") as run:
        mlflow.log_metric("done", 1)
    assert find_finished_run("collect", {"dataset": "q.jsonl"}, "digest-of-old-questions") == run.run_id
    assert find_finished_run("collect", {"dataset": "q.jsonl"}, "digest-of-new-questions") is None
    assert find_finished_run("collect", {"dataset": "q.jsonl"}) is None
    assert kt.cache_key("collect", {}, "v", "a") != kt.cache_key("collect", {}, "v", "b") != kt.cache_key("collect", {}, "v")


def test_a_deleted_upstream_run_is_refused(tracking):
    upstream = _finish("collect", {"seed": "1"})
    mlflow.MlflowClient().delete_run(upstream)
    with pytest.raises(UpstreamRunError, match=f"collect_run_id '{upstream}' is a deleted run .* restore it"):
        require_step_run(upstream, "collect", "collect_run_id")
    assert find_finished_run("collect", {"seed": "1"}) is None  # nor reused


def test_a_leftover_run_id_of_a_finished_run_is_refused_before_anything_is_written(tracking, monkeypatch):
    finished = _finish("collect", {"seed": "1"})
    monkeypatch.setenv("MLFLOW_RUN_ID", finished)
    with (
        pytest.raises(ValueError, match=f"MLFLOW_RUN_ID names run {finished}, which is FINISHED, not RUNNING"),
        step_run("collect", {"seed": "2"}),
    ):
        pass
    assert mlflow.get_run(finished).info.status == "FINISHED"
    monkeypatch.setenv("MLFLOW_RUN_ID", "0" * 32)
    with pytest.raises(ValueError, match="MLFLOW_RUN_ID is '0{32}', which is not a run in this tracking store"):
        kt.project_run_id()
