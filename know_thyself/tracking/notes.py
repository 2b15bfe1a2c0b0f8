"""Run descriptions: the one line (or table) the MLflow UI shows on a run's page, and failures written there.

The UI renders a description as markdown. Text that comes from the user (a model argument, a dataset
path, an error message quoting either) goes in a code span (:func:`code`), so that it shows as
typed: no live images or links, no ``<name>`` placeholders swallowed as HTML tags.
"""

from __future__ import annotations

import logging
import os
import re

import mlflow

from know_thyself.tracking.runs import is_project_run

logger = logging.getLogger(__name__)

TAG_NOTE = "mlflow.note.content"  # the run's description in the MLflow UI


def code(text: object) -> str:
    """``text`` as one markdown code span, shown literally whatever it holds (backticks, HTML, links, newlines)."""
    flat = " ".join(str(text).split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    # A span that starts or ends with a backtick needs a space inside the fence (CommonMark).
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def describe_run(text: str, run_id: str | None = None) -> None:
    """Set the description the MLflow UI shows for a run (default: the active one): what it did, in a line or a table.

    User strings inside ``text`` must already be wrapped with :func:`code`.
    """
    if run_id is None:
        mlflow.set_tag(TAG_NOTE, text)
    else:
        mlflow.MlflowClient().set_tag(run_id, TAG_NOTE, text)


def note_failure_on_project_run(message: str) -> None:
    """Write an error into the description of the run ``mlflow run`` opened for this command, if any.

    ``mlflow run`` opens the run before the command starts; when the command fails before it
    logs anything, the run's description (shown in the UI) says why. Only that run is written to:
    one this process found RUNNING (:func:`~know_thyself.tracking.runs.project_run_id`), or one
    RUNNING now; a leftover ``$MLFLOW_RUN_ID`` naming a finished run is left as it is. Best
    effort: a tracking error here never hides the original one.
    """
    run_id = os.environ.get("MLFLOW_RUN_ID", "").strip()
    if not run_id:
        return
    try:
        client = mlflow.MlflowClient()
        if not is_project_run(run_id):
            run = client.get_run(run_id)
            if run.info.status != "RUNNING" or run.info.lifecycle_stage == "deleted":
                return
        client.set_tag(run_id, TAG_NOTE, f"Failed: {code(message)}")
    except Exception:  # the store itself may be what failed
        logger.debug("could not write the error into run %s", run_id, exc_info=True)
