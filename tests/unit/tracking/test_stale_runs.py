"""Runs a killed process left RUNNING are marked KILLED when the chain starts again; live ones are not."""

from __future__ import annotations

import socket
import subprocess
import sys

import mlflow

from know_thyself import tracking as kt
from know_thyself.tracking import TAG_HOST, TAG_KILLED, TAG_PID, TAG_STEP, close_stale_runs


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _running(step: str, pid: int, host: str | None = None) -> str:
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name(kt.DEFAULT_EXPERIMENT).experiment_id
    run = client.create_run(experiment, tags={TAG_STEP: step, TAG_PID: str(pid), TAG_HOST: host or socket.gethostname()})
    return run.info.run_id


def test_only_runs_of_dead_processes_on_this_host_are_closed(tracking):
    import os

    dead = _dead_pid()
    stale_parent = _running("phase1", dead)
    stale_step = _running("train_judgment", dead)
    alive = _running("collect", os.getpid())  # this very process: genuinely running
    elsewhere = _running("collect", dead, host="another-machine")  # cannot tell: left alone
    other_step = _running("train_knowledge", dead)  # not a step of the chain being started
    closed = close_stale_runs(("phase1", "collect", "build_judgment_data", "evaluate_judgment", "train_judgment"))
    assert sorted(closed) == sorted([stale_parent, stale_step])
    for run_id in closed:
        run = mlflow.get_run(run_id)
        assert run.info.status == "KILLED"
        assert f"process {dead}" in run.data.tags[TAG_KILLED]
    for run_id in (alive, elsewhere, other_step):
        assert mlflow.get_run(run_id).info.status == "RUNNING"


def test_step_runs_record_their_host_and_process(tracking):
    import os

    with kt.step_run("collect", {"a": "1"}) as run:
        tags = mlflow.get_run(run.run_id).data.tags
    assert tags[TAG_PID] == str(os.getpid()) and tags[TAG_HOST] == socket.gethostname()


def test_a_chain_start_closes_the_stale_runs_of_its_steps(tracking, tiny_model_dir, trivia_dir, monkeypatch):
    from know_thyself.config import Phase1Config
    from know_thyself.steps import phase1

    stale = _running("collect", _dead_pid())

    def stop(*args, **kwargs):  # the chain has started: nothing more is needed of it here
        raise RuntimeError("stop here")

    monkeypatch.setattr(phase1, "judgment_chain", stop)
    cfg = Phase1Config(model=tiny_model_dir, dataset=str(trivia_dir), num_samples=2, test_samples=2)
    try:
        phase1.run_phase1(cfg)
    except RuntimeError:
        pass
    assert mlflow.get_run(stale).info.status == "KILLED"
