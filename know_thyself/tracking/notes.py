"""Run descriptions: the one line (or table) the MLflow UI shows on a run's page, and failures written there."""

from __future__ import annotations

import logging
import os

import mlflow

logger = logging.getLogger(__name__)

TAG_NOTE = "mlflow.note.content"  # the run's description in the MLflow UI


def describe_run(text: str, run_id: str | None = None) -> None:
    """Set the description the MLflow UI shows for a run (default: the active one): what it did, in a line or a table."""
    if run_id is None:
        mlflow.set_tag(TAG_NOTE, text)
    else:
        mlflow.MlflowClient().set_tag(run_id, TAG_NOTE, text)


def note_failure_on_project_run(message: str) -> None:
    """Write an error into the description of the run ``mlflow run`` opened for this command, if any.

    ``mlflow run`` opens the run before the command starts; when the command fails before it
    logs anything, the run's description (shown in the UI) says why. Best effort: a tracking
    error here never hides the original one.
    """
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return
    try:
        mlflow.MlflowClient().set_tag(run_id, TAG_NOTE, f"Failed: {message}")
    except Exception:  # noqa: BLE001 - the store itself may be what failed
        logger.debug("could not write the error into run %s", run_id, exc_info=True)
