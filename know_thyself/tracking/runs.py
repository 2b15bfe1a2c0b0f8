"""Step runs and the step cache that makes reruns resume.

The tracker is the only state. A step run is tagged with its step name, the code version and a
cache key computed from (step, parameters as strings, code version, and a digest of the data the
step read from outside the tracker, e.g. the questions of a dataset file); upstream run ids are
parameters, so a changed upstream run is a different key. A finished run with the same key is
reused instead of being run again, but only while it still holds the artifacts its step declares
(``requires``, the ones the steps after it read): one whose artifacts were deleted or cannot be read
is run again.

A step started outside a chain first closes the runs that killed processes of this host left
RUNNING (:func:`close_stale_runs`), as a chain does for its steps.

A step writes into its own new run, or into the RUNNING run ``mlflow run`` opened for it
(``$MLFLOW_RUN_ID``); a stray ``$MLFLOW_RUN_ID`` naming any other run is refused before anything
is written (:func:`project_run_id`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shlex
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import RunStatus

from know_thyself.tracking.store import current_experiment_id, damaged_store_hint

logger = logging.getLogger(__name__)

TAG_STEP = "know_thyself.step"
TAG_CACHE_KEY = "know_thyself.cache_key"
TAG_CODE_VERSION = "know_thyself.code_version"
TAG_REUSED = "know_thyself.reused_run_id"
TAG_HOST = "know_thyself.host"
TAG_PID = "know_thyself.pid"
TAG_KILLED = "know_thyself.killed_reason"
TAG_RERUN_REASON = "know_thyself.rerun_reason"
# The environment variable that turns the long steps' system metrics (CPU, memory, GPU) off.
SYSTEM_METRICS_SWITCH = "KNOW_THYSELF_SYSTEM_METRICS"
# The package whose source and bundled data make the code version.
_PACKAGE = Path(__file__).resolve().parents[1]


class UpstreamRunError(ValueError):
    """An upstream run id that does not exist, is unfinished, or belongs to another step."""


def code_version() -> str:
    """A short hash of the package's source and bundled data: a code change invalidates the cache."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".jsonl", ".yaml") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(_PACKAGE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(step: str, params: dict[str, str], version: str, inputs: str = "") -> str:
    """The key a finished step run is found by: its step, parameters (as strings), code version and input digest.

    Args:
        step: The step name.
        params: The step's parameters as strings.
        version: The code version (:func:`code_version`).
        inputs: A digest of what the step read from outside the tracker (a dataset's sampled
            questions); empty for steps that read only upstream runs.
    """
    payload = {"step": step, "params": params, "code": version}
    if inputs:
        payload["inputs"] = inputs
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def find_finished_run(step: str, params: dict[str, str], inputs: str = "", requires: tuple[str, ...] = ()) -> str | None:
    """The newest finished run of ``step`` with exactly these parameters, input digest and this code version.

    A run that lacks one of the artifacts ``requires`` names, or cannot give it back
    (:func:`artifact_problems`), is passed over with a warning naming the run and the artifact.
    """
    return _reusable_run(step, params, inputs, requires)[0]


# Runs already warned about as unusable in this process (the cache is asked twice by some steps).
_WARNED: set[str] = set()


def _reusable_run(step: str, params: dict[str, str], inputs: str, requires: tuple[str, ...]) -> tuple[str | None, str]:
    """The finished run :func:`find_finished_run` reuses, and why newer identical runs were passed over ("" if none)."""
    key = cache_key(step, params, code_version(), inputs)
    experiment_id = current_experiment_id()
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.`{TAG_CACHE_KEY}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=20,
        output_format="list",
    )
    passed_over = []
    for run in runs:
        run_id = run.info.run_id
        problems = artifact_problems(run_id, requires)
        if not problems:
            return run_id, "; ".join(passed_over)
        reason = f"the finished {step} run {run_id} with the same parameters is not reused: {'; '.join(problems)}"
        if run_id not in _WARNED:
            _WARNED.add(run_id)
            logger.warning("%s; running the step again", reason)
        passed_over.append(reason)
    return None, "; ".join(passed_over)


def artifact_problems(run_id: str, paths: tuple[str, ...]) -> list[str]:
    """What is wrong with the artifacts ``paths`` of a run: one line per artifact missing or unreadable (none: ``[]``).

    A path ending in ``/`` is a folder, which must exist and hold something; any other path is a
    file, which must exist and be downloadable (read through MLflow's artifact API, so the same
    check holds for a local artifact folder and a remote artifact store).

    Args:
        run_id: The run.
        paths: Artifact paths relative to the run's artifact root.
    """
    client = mlflow.MlflowClient()

    def listing(folder: str) -> dict[str, Any] | str:
        """The entries of one artifact folder by path, or why it cannot be listed."""
        try:
            return {f.path: f for f in client.list_artifacts(run_id, folder or None)}
        except Exception as exc:  # noqa: BLE001 - a link to nothing in the folder, a store error
            return f"{exc.__class__.__name__}: {exc}"

    listings: dict[str, dict[str, Any] | str] = {}
    problems = []
    for wanted in paths:
        path = wanted.rstrip("/")
        parent = path.rpartition("/")[0]
        if parent not in listings:
            listings[parent] = listing(parent)
        entries = listings[parent]
        found = entries.get(path) if isinstance(entries, dict) else None
        if isinstance(entries, str):
            problems.append(f"artifact {wanted!r} cannot be read ({entries})")
        elif found is None:
            problems.append(f"artifact {wanted!r} is missing (deleted from the run's artifact folder?)")
        elif wanted.endswith("/"):
            inside = listing(path) if found.is_dir else {}
            if isinstance(inside, str):
                problems.append(f"artifact {wanted!r} cannot be read ({inside})")
            elif not inside:
                problems.append(f"artifact {wanted!r} is not a folder with files in it")
        elif found.is_dir:
            problems.append(f"artifact {wanted!r} is a folder, not a file")
        else:
            try:
                with tempfile.TemporaryDirectory(prefix="know-thyself-check-") as target:
                    mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=target)
            except Exception as exc:  # noqa: BLE001 - whatever stops the next step from reading it
                problems.append(f"artifact {wanted!r} cannot be read ({exc.__class__.__name__}: {exc})")
    return problems


def is_main_process() -> bool:
    """Whether this is the main (or only) process of a job started with ``accelerate launch``/torchrun."""
    return int(os.environ.get("RANK", "0")) == 0


@dataclass
class StepRun:
    """What a step context yields: the run id, and whether a finished run was reused."""

    run_id: str
    reused: bool


# Runs of $MLFLOW_RUN_ID found RUNNING by this process: the command's own, even after it ends them.
_PROJECT_RUNS: set[str] = set()


def project_run_id() -> str | None:
    """The run ``mlflow run`` opened for this command (``$MLFLOW_RUN_ID``), checked to be RUNNING; ``None`` if unset.

    ``mlflow.start_run()`` continues whatever run ``$MLFLOW_RUN_ID`` names. Left over in a shell, it
    may name a finished run, which a step would then reopen, retag and end FAILED. Checked before
    anything is written into it.

    Raises:
        ValueError: naming the run, its state and the fix, when it is not a RUNNING run of this store.
    """
    run_id = os.environ.get("MLFLOW_RUN_ID", "").strip()
    if not run_id or run_id in _PROJECT_RUNS:
        return run_id or None
    fix = ("a step writes only into its own new run or into the RUNNING run `mlflow run` opened for it; "
           "unset MLFLOW_RUN_ID (a leftover of another command) and run again")
    try:
        run = mlflow.get_run(run_id)
    except Exception as exc:  # a missing run and a store error alike
        damaged = damaged_store_hint(str(exc))
        if damaged:
            raise OSError(f"tracking store error while reading MLFLOW_RUN_ID {run_id!r}{damaged}") from exc
        raise ValueError(f"MLFLOW_RUN_ID is {run_id!r}, which is not a run in this tracking store; {fix}") from None
    state = "deleted" if run.info.lifecycle_stage == "deleted" else run.info.status
    if state != "RUNNING":
        raise ValueError(f"MLFLOW_RUN_ID names run {run_id}, which is {state}, not RUNNING; {fix}")
    _PROJECT_RUNS.add(run_id)
    return run_id


def is_project_run(run_id: str) -> bool:
    """Whether ``run_id`` is the run ``mlflow run`` opened for this command (checked RUNNING when first seen)."""
    return run_id in _PROJECT_RUNS


@contextlib.contextmanager
def step_run(
    step: str, params: dict[str, str], reuse: bool = True, run_name: str | None = None, inputs: str = "",
    system_metrics: bool = False, requires: tuple[str, ...] = (),
) -> Iterator[StepRun]:
    """Open the run of one step, or find the finished run it would repeat.

    Nested under the active run when there is one (so chained steps show as children), top
    level otherwise. When ``reuse`` is true and a finished run with the same cache key exists,
    no run is opened: the caller checks ``StepRun.reused`` and skips its work. A step that
    raises ends its run ``FAILED``.

    Args:
        step: The step name (also the run name).
        params: The step's parameters as strings, upstream run ids included.
        reuse: Look for a finished run to reuse first.
        run_name: Display name of the run (default: the step name).
        inputs: A digest of the data the step reads from outside the tracker (part of the cache key).
        system_metrics: Record the run's CPU, memory and GPU use with MLflow's system metrics (the
            long steps: collect, training), unless ``KNOW_THYSELF_SYSTEM_METRICS=0``.
        requires: The artifacts a finished run must still hold to be reused: those the steps after
            it read (a path ending in ``/`` is a folder). A run that lacks one is not reused: the step
            runs again, and its new run's ``know_thyself.rerun_reason`` tag says why.
    """
    if not is_main_process():
        # Other processes of a multi-process (accelerate launch) job train but never track:
        # the main process opens the run and logs. The cache decision is the same everywhere.
        previous = find_finished_run(step, params, inputs, requires) if reuse else None
        yield StepRun(previous or "", reused=previous is not None)
        return
    parent = mlflow.active_run()
    if parent is None:
        project_run_id()
        # Outside a chain nothing else closes what a killed step left RUNNING.
        close_stale_runs(None, started=f"the {step} step started")
    rerun_reason = ""
    if reuse:
        previous, rerun_reason = _reusable_run(step, params, inputs, requires)
        if previous is not None:
            logger.info("%s: reusing finished run %s", step, previous)
            if parent is not None:
                mlflow.set_tag(f"know_thyself.{run_name or step}.run_id", previous)
            elif os.environ.get("MLFLOW_RUN_ID"):
                # `mlflow run` opened a run for this step; record what it stands for.
                with mlflow.start_run():
                    mlflow.set_tags({TAG_REUSED: previous, TAG_STEP: f"{step} (reused)"})
            yield StepRun(previous, reused=True)
            return
    version = code_version()
    tags = {
        TAG_STEP: step,
        TAG_CODE_VERSION: version,
        TAG_CACHE_KEY: cache_key(step, params, version, inputs),
        **process_tags(),
        **({TAG_RERUN_REASON: rerun_reason[:5000]} if rerun_reason else {}),
    }
    with mlflow.start_run(run_name=run_name or step, nested=parent is not None, tags=tags,
                          log_system_metrics=system_metrics and system_metrics_enabled()) as run:
        mlflow.set_tags(tags)  # a run resumed from $MLFLOW_RUN_ID ignores start_run's tags
        if parent is not None:
            mlflow.MlflowClient().set_tag(parent.info.run_id, f"know_thyself.{run_name or step}.run_id", run.info.run_id)
        _log_step_params(run.info.run_id, params)
        yield StepRun(run.info.run_id, reused=False)


def system_metrics_enabled() -> bool:
    """Whether the long steps record CPU, memory (and GPU) use: yes unless ``KNOW_THYSELF_SYSTEM_METRICS=0``."""
    return os.environ.get(SYSTEM_METRICS_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def chain_run(name: str, params: dict[str, str] | None = None) -> Iterator[Any]:
    """Open the parent run of a chain, or of a phase inside one, and yield it.

    Nested under the active run when there is one; continues the run ``mlflow run`` opened
    otherwise. Tagged with its name (as its step) and its host and process, like a step run.

    Args:
        name: The chain or phase name (run name and ``know_thyself.step`` tag).
        params: Parameters to log (those a resumed run already holds are skipped).
    """
    if mlflow.active_run() is None:
        project_run_id()
    with mlflow.start_run(run_name=name, nested=mlflow.active_run() is not None) as run:
        mlflow.set_tags({TAG_STEP: name, **process_tags()})
        if params:
            existing = mlflow.get_run(run.info.run_id).data.params
            mlflow.log_params({k: v for k, v in params.items() if k not in existing})
        yield run


def _log_step_params(run_id: str, params: dict[str, str]) -> None:
    """Log a step's parameters, accepting those ``mlflow run`` already logged on the same run.

    ``mlflow run`` logs each entry point parameter as it placed it in the shell command, i.e.
    shell-quoted (an empty value becomes ``''``, a path with a space ``'a b'``); the step's own value
    is the unquoted one. Both forms of the same value are accepted; anything else is an error.
    """
    existing = mlflow.get_run(run_id).data.params
    for key, value in params.items():
        if key in existing and existing[key] not in (value, shlex.quote(value)):
            raise ValueError(
                f"parameter {key} of run {run_id} is already {existing[key]!r}, but the step was given {value!r}"
            )
    mlflow.log_params({k: v for k, v in params.items() if k not in existing})


def require_step_run(run_id: str, step: str | tuple[str, ...], option: str) -> Any:
    """Fetch an upstream run and check that it is a finished run of the expected step.

    Args:
        run_id: The run id the user or the chain passed.
        step: The step (or steps) that must have produced it.
        option: The option name, for the error message.
    """
    steps = (step,) if isinstance(step, str) else step
    try:
        run = mlflow.get_run(run_id)
    except Exception as exc:  # MlflowException and connection errors alike
        damaged = damaged_store_hint(str(exc))
        if damaged:
            raise OSError(f"tracking store error while reading {option} {run_id!r}{damaged}") from exc
        raise UpstreamRunError(f"{option} {run_id!r} is not a run in this tracking store ({exc.__class__.__name__}); "
                               "check the id and MLFLOW_TRACKING_URI") from exc
    wanted = " or ".join(steps)
    if run.info.lifecycle_stage == "deleted":
        raise UpstreamRunError(
            f"{option} {run_id!r} is a deleted run (deleted in the MLflow UI or with `mlflow runs delete`); "
            f"restore it (mlflow runs restore --run-id {run_id}) or pass another finished {wanted} run"
        )
    reused = run.data.tags.get(TAG_REUSED, "")
    if reused:
        raise UpstreamRunError(
            f"{option} {run_id!r} is the run `mlflow run` opened for a step that reused the finished run "
            f"{reused}; it holds nothing itself: pass {reused}"
        )
    actual = run.data.tags.get(TAG_STEP, "")
    if actual not in steps:
        raise UpstreamRunError(
            f"{option} {run_id!r} is a {actual or 'non-know-thyself'!s} run, not a {wanted} run; "
            f"pass the id of a finished {wanted} run"
        )
    if run.info.status != RunStatus.to_string(RunStatus.FINISHED):
        raise UpstreamRunError(
            f"{option} {run_id!r} ended {run.info.status}, not FINISHED; rerun that step first"
        )
    return run


def process_tags() -> dict[str, str]:
    """Tags naming the host and process that run a step, so a later start can tell a dead run from a live one."""
    return {TAG_HOST: socket.gethostname(), TAG_PID: str(os.getpid())}


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def close_stale_runs(steps: tuple[str, ...] | None, started: str = "the chain started again") -> list[str]:
    """Mark runs that a killed process left RUNNING as KILLED, saying why in a tag and in their description.

    A run counts as stale only when it is RUNNING, was started on this host, and the process
    recorded in its tags (:func:`process_tags`) no longer exists. Runs started on another host,
    or without the tags, are left alone: they may be genuinely running; so is the run
    ``$MLFLOW_RUN_ID`` names. Returns the run ids closed.

    Args:
        steps: The step names (``know_thyself.step`` tags) to look at, e.g. a chain and its steps;
            ``None`` for the runs of every step (a step started on its own).
        started: What is starting, for the reason written into each closed run.
    """
    from know_thyself.tracking.notes import TAG_NOTE

    host = socket.gethostname()
    runs = mlflow.search_runs(
        experiment_ids=[current_experiment_id()],
        filter_string=f"attributes.status = 'RUNNING' and tags.`{TAG_HOST}` = '{host}'",
        output_format="list",
    )
    client = mlflow.MlflowClient()
    closed = []
    for run in runs:
        pid = run.data.tags.get(TAG_PID, "")
        step = run.data.tags.get(TAG_STEP)
        if (not step or (steps is not None and step not in steps) or not pid.isdigit() or _process_alive(int(pid))
                or run.info.run_id == os.environ.get("MLFLOW_RUN_ID")):
            continue
        reason = (f"its process {pid} on {host} ended without closing the run (killed?); "
                  f"marked KILLED when {started}")
        client.set_tag(run.info.run_id, TAG_KILLED, reason)
        client.set_tag(run.info.run_id, TAG_NOTE, f"Killed: {reason}.")
        client.set_terminated(run.info.run_id, status="KILLED")
        logger.warning("run %s (%s) was left RUNNING by a dead process: marked KILLED", run.info.run_id, run.info.run_name)
        closed.append(run.info.run_id)
    return closed


def end_project_run_failed(run_id: str) -> None:
    """End ``run_id``, the run ``mlflow run`` opened for this command, FAILED if it is still RUNNING.

    A step that fails before it opens its run (an upstream artifact missing, a bad upstream run)
    would otherwise leave that run RUNNING until ``mlflow run`` notices the exit. Only a RUNNING,
    undeleted run is touched; best effort, like the failure note written beside it.
    """
    try:
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
            return
        run = mlflow.MlflowClient().get_run(run_id)
        if run.info.status == "RUNNING" and run.info.lifecycle_stage != "deleted":
            mlflow.MlflowClient().set_terminated(run_id, status="FAILED")
    except Exception:  # the store itself may be what failed
        logger.debug("could not end run %s FAILED", run_id, exc_info=True)
