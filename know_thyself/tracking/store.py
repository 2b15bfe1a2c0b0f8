"""The tracking store: where runs go, checked before anything is written to it.

``sqlite:///mlflow.db`` in the working folder (artifacts under ``./mlruns``) unless
``$MLFLOW_TRACKING_URI`` names another store; a server must answer its health check, an SQLite
file must be a database in a folder that exists, and a local artifact folder must be writable, or
the step stops at once with the fix (not after minutes of sampling).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import mlflow

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "know-thyself"
# MLflow 3's UI opens an experiment in the view its kind names; without the tag it may guess
# "GenAI" (traces, evaluations). This pipeline trains models: the classic runs view.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def configure_tracking() -> str:
    """Point MLflow at ``$MLFLOW_TRACKING_URI``, or at ``sqlite:///mlflow.db`` in the working folder.

    With the SQLite default, artifacts go to ``./mlruns`` (MLflow's own layout), so ``mlflow ui``
    started in the same folder shows the runs. Also selects the ``know-thyself`` experiment
    unless ``mlflow run`` or the environment already chose one.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri == DEFAULT_TRACKING_URI and not os.access(os.getcwd(), os.W_OK):
        raise OSError(
            f"the working folder {os.getcwd()} is not writable, so mlflow.db and mlruns/ cannot be created there; "
            "run from a writable folder or set MLFLOW_TRACKING_URI"
        )
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    if uri.startswith("sqlite:"):
        check_sqlite_store(uri)
    mlflow.set_tracking_uri(uri)
    if not any(os.environ.get(v) for v in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID")):
        mlflow.set_experiment(DEFAULT_EXPERIMENT)
    mark_model_training_experiment()
    check_artifact_folder()
    return uri


def check_artifact_folder() -> None:
    """Fail at once, with the fix, when the current experiment's artifacts go to a local folder this user cannot write.

    Artifacts are written when a step ends; a read-only ``mlruns`` would otherwise be found only
    after the sampling or training it was meant to keep.
    """
    from urllib.parse import urlparse

    location = mlflow.get_experiment(current_experiment_id()).artifact_location or ""
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return  # a server or an object store checks its own permissions
    folder = Path(parsed.path if parsed.scheme == "file" else location)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not (existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)):
        raise OSError(
            f"the artifact folder {existing} is not writable by this user, so no step could save what it makes; "
            f"make it writable (chmod -R u+w {existing}), or run from another folder or set MLFLOW_TRACKING_URI"
        )


def mark_model_training_experiment() -> None:
    """Tag the current experiment as a model-training experiment, unless its kind is already set.

    MLflow's UI reads the experiment tag ``mlflow.experimentKind`` to choose the experiment's
    view. An experiment named by ``MLFLOW_EXPERIMENT_NAME`` that does not exist yet is created
    here, so that it can carry the tag from its first run on.
    """
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if name and not os.environ.get("MLFLOW_EXPERIMENT_ID") and mlflow.get_experiment_by_name(name) is None:
        mlflow.set_experiment(name)
    experiment_id = current_experiment_id()
    client = mlflow.MlflowClient()
    try:
        if TAG_EXPERIMENT_KIND not in client.get_experiment(experiment_id).tags:
            client.set_experiment_tag(experiment_id, TAG_EXPERIMENT_KIND, EXPERIMENT_KIND)
    except Exception as exc:  # noqa: BLE001 - a view hint is not worth failing a run over (e.g. read-only access)
        logger.warning("could not mark experiment %s as a model-training experiment: %s", experiment_id, exc)


def check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail at once, with the fix, when a tracking server does not answer its health check."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            if response.status == 200:
                return
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):  # a server with authentication on: it is there
            return
        reason = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = str(getattr(exc, "reason", exc))
    raise ConnectionError(
        f"the tracking server {uri} is not reachable ({reason}); start it (mlflow server ...) "
        "or point MLFLOW_TRACKING_URI at a running one"
    )


def check_sqlite_store(uri: str) -> None:
    """Fail at once, naming the file and the fix, when an SQLite tracking store is not a database.

    A missing or empty file is fine (MLflow creates the tables). Anything else must start with
    SQLite's header and have a readable schema; otherwise MLflow would fail deep inside
    SQLAlchemy with a long traceback.
    """
    import sqlite3

    path = _sqlite_file(uri)
    if path is not None and not path.parent.is_dir():
        raise ValueError(
            f"the tracking store {uri} is in a folder that does not exist ({path.parent}); create it "
            f"(mkdir -p {path.parent}) or correct MLFLOW_TRACKING_URI (sqlite:/// then an absolute path has four slashes)"
        )
    if path is None or not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    fix = (f"move it aside (mv {path} {path}.broken) or delete it to start an empty store, "
           "or point MLFLOW_TRACKING_URI at another store")
    if not path.is_file():
        raise ValueError(f"the tracking store {path} is not a file (a folder?); {fix}")
    try:
        with path.open("rb") as handle:
            header = handle.read(16)
    except OSError as exc:
        raise OSError(f"the tracking store {path} cannot be read ({exc.strerror or exc}); fix its "
                      "permissions, or point MLFLOW_TRACKING_URI at another store") from None
    if header != b"SQLite format 3\x00":
        raise ValueError(f"the tracking store {path} is not an SQLite database (corrupt or another "
                         f"kind of file); {fix}")
    try:
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as connection:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        return  # locked or busy, not damaged: MLflow waits or reports it itself
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"the tracking store {path} is damaged ({exc}); {fix}") from None


# Lines of an SQLAlchemy error that say how it was raised, not what went wrong.
_CONTEXT_LINES = ("(raised as a result of Query-invoked autoflush", "(Background on this error", "[SQL:", "[parameters:")


def tracking_error_line(text: str) -> str:
    """The line of a tracking-store error that names its cause, with the fix where one is known.

    SQLAlchemy puts how an error was raised ("Query-invoked autoflush") before the driver's own
    words ("(sqlite3.OperationalError) database or disk is full"); the cause is the line shown.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    causes = [line for line in lines if not line.startswith(_CONTEXT_LINES)]
    line = next((c for c in causes if "(sqlite3." in c), causes[0] if causes else (lines[0] if lines else ""))
    if "database or disk is full" in line:
        uri = mlflow.get_tracking_uri()
        store = _sqlite_file(uri) if uri.startswith("sqlite:") else None
        return f"{line}; free space on the disk that holds {store or 'the tracking store'} and run again"
    return f"{line}{damaged_store_hint(line)}"


def damaged_store_hint(message: str) -> str:
    """What to do when a tracking-store error says the SQLite file is damaged ('' otherwise)."""
    if "(sqlite3.DatabaseError)" not in message:
        return ""
    uri = mlflow.get_tracking_uri()
    store = _sqlite_file(uri) if uri.startswith("sqlite:") else None
    return (f"; the tracking store {store or uri} is damaged: move it aside or delete it to start "
            "an empty store, or point MLFLOW_TRACKING_URI at another store")


def _sqlite_file(uri: str) -> Path | None:
    """The database file of an ``sqlite:`` URI, resolved (``None`` for an in-memory database)."""
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    return Path(database).resolve() if database and database != ":memory:" else None


def current_experiment_id() -> str:
    active = mlflow.active_run()
    if active is not None:
        return active.info.experiment_id
    env = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if env:
        return env
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if name:
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
    experiment = mlflow.get_experiment_by_name(DEFAULT_EXPERIMENT)
    return experiment.experiment_id if experiment is not None else "0"  # MLflow's Default


