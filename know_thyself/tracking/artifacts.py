"""Artifacts of a run: JSON Lines records in and out, and temporary downloads."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow

from know_thyself.data.questions import read_jsonl
from know_thyself.inference.readout import READOUT_FILE, Readout
from know_thyself.tracking.runs import TAG_STEP, artifact_problems


class MissingArtifactError(ValueError):
    """An artifact a step reads from an upstream run is missing or cannot be read; the message names the run and the fix."""


@contextlib.contextmanager
def downloaded(run_id: str, artifact_path: str) -> Iterator[Path]:
    """One artifact (file or folder) of a run, in a temporary folder removed when the block ends.

    Raises:
        MissingArtifactError: one line naming the run, the artifact and the fix, when the run
            lacks the artifact or it cannot be read (a tracking store that is down is left to
            raise its own error).
    """
    with tempfile.TemporaryDirectory(prefix="know-thyself-") as target:
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=target)
        except Exception as exc:  # MlflowException and OSError alike; re-raised unless explained
            error = _missing_artifact_error(run_id, artifact_path)
            if error is None:
                raise
            raise error from exc
        yield Path(local)


def _missing_artifact_error(run_id: str, artifact_path: str) -> MissingArtifactError | None:
    """The one-line error for an artifact a run lacks or cannot give back; None when the run itself is unreachable."""
    try:
        step = mlflow.get_run(run_id).data.tags.get(TAG_STEP, "") or "upstream"
    except Exception:  # noqa: BLE001 - the run or the store is what failed: that error says more
        return None
    path = artifact_path.rstrip("/")
    folder = any(f.path == path and f.is_dir for f in _listing(run_id, path.rpartition("/")[0]))
    problems = artifact_problems(run_id, (path + "/" if folder else path,))
    what = problems[0] if problems else f"artifact {artifact_path!r} cannot be downloaded"
    return MissingArtifactError(
        f"{step} run {run_id}: {what}; rerun the {step} step (a finished run "
        f"without its artifacts is not reused) and pass the new run id, or pass another finished {step} run"
    )


def _listing(run_id: str, folder: str) -> list[Any]:
    try:
        return list(mlflow.MlflowClient().list_artifacts(run_id, folder or None))
    except Exception:  # noqa: BLE001 - a broken entry in the folder: reported by artifact_problems
        return []


def read_jsonl_artifact(run_id: str, artifact_file: str) -> list[dict[str, Any]]:
    """The records of a JSON Lines artifact of a run (written by :func:`log_jsonl`)."""
    with downloaded(run_id, artifact_file) as path:
        return read_jsonl(path)


def read_json_artifact(run_id: str, artifact_file: str) -> Any:
    """The value of a JSON artifact of a run."""
    with downloaded(run_id, artifact_file) as path:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise MissingArtifactError(f"run {run_id}: artifact {artifact_file!r} is not readable JSON ({error}); "
                                       "rerun the step that wrote it") from None


def log_jsonl(records: list[dict[str, Any]], artifact_file: str) -> None:
    """Log records as a JSON Lines artifact of the active run (UTF-8, one object per line)."""
    mlflow.log_text("".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in records), artifact_file)


def read_readout(run_id: str) -> Readout | None:
    """The stacked readout a train_judgment run logged (``readout.json``), or None when its judge reads the label words."""
    if not any(f.path == READOUT_FILE for f in mlflow.MlflowClient().list_artifacts(run_id)):
        return None
    with downloaded(run_id, READOUT_FILE) as path:
        try:
            return Readout.load(path)
        except ValueError as error:  # named as the run holds it, not as the scratch copy read here
            raise ValueError(str(error).replace(str(path), f"runs:/{run_id}/{READOUT_FILE}")) from None
