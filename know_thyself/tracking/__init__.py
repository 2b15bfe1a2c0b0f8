"""MLflow plumbing: the only code that talks to the tracking store, besides the steps.

* :mod:`~know_thyself.tracking.store`: which store, checked before use;
* :mod:`~know_thyself.tracking.runs`: step runs, chain runs, the step cache, upstream checks, stale runs;
* :mod:`~know_thyself.tracking.artifacts`: JSON Lines artifacts and temporary downloads;
* :mod:`~know_thyself.tracking.notes`: run descriptions and failure notes;
* :mod:`~know_thyself.tracking.registry`: registered models, their versions and tags;
* :mod:`~know_thyself.tracking.judge_model`: the judge as an MLflow pyfunc model (logged from code);
* :mod:`~know_thyself.tracking.judge_input`: what that judge takes as questions, and its one-line refusals;
* :mod:`~know_thyself.tracking.callbacks`: training metrics into the step's run.
"""

from know_thyself.tracking.artifacts import downloaded, log_jsonl, read_json_artifact, read_jsonl_artifact, read_readout
from know_thyself.tracking.notes import TAG_NOTE, code, describe_run, note_failure_on_project_run
from know_thyself.tracking.runs import (
    TAG_CACHE_KEY,
    TAG_CODE_VERSION,
    TAG_HOST,
    TAG_KILLED,
    TAG_PID,
    TAG_REUSED,
    TAG_STEP,
    StepRun,
    UpstreamRunError,
    cache_key,
    chain_run,
    close_stale_runs,
    code_version,
    find_finished_run,
    is_main_process,
    is_project_run,
    process_tags,
    project_run_id,
    require_step_run,
    step_run,
)
from know_thyself.tracking.store import (
    DEFAULT_EXPERIMENT,
    DEFAULT_TRACKING_URI,
    check_server,
    check_sqlite_store,
    configure_tracking,
    current_experiment_id,
    damaged_store_hint,
    tracking_error_line,
)

__all__ = [
    "DEFAULT_EXPERIMENT", "DEFAULT_TRACKING_URI", "TAG_CACHE_KEY", "TAG_CODE_VERSION", "TAG_HOST", "TAG_KILLED",
    "TAG_NOTE", "TAG_PID", "TAG_REUSED", "TAG_STEP", "StepRun", "UpstreamRunError", "cache_key", "chain_run",
    "check_server", "check_sqlite_store", "close_stale_runs", "code", "code_version", "configure_tracking",
    "current_experiment_id", "damaged_store_hint", "describe_run", "downloaded", "find_finished_run",
    "is_main_process", "is_project_run", "log_jsonl", "note_failure_on_project_run", "process_tags",
    "project_run_id", "read_json_artifact", "read_jsonl_artifact", "read_readout", "require_step_run", "step_run", "tracking_error_line",
]
