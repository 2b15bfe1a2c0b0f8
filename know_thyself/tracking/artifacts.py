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


@contextlib.contextmanager
def downloaded(run_id: str, artifact_path: str) -> Iterator[Path]:
    """One artifact (file or folder) of a run, in a temporary folder removed when the block ends."""
    with tempfile.TemporaryDirectory(prefix="know-thyself-") as target:
        yield Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path, dst_path=target))


def read_jsonl_artifact(run_id: str, artifact_file: str) -> list[dict[str, Any]]:
    """The records of a JSON Lines artifact of a run (written by :func:`log_jsonl`)."""
    with downloaded(run_id, artifact_file) as path:
        return read_jsonl(path)


def log_jsonl(records: list[dict[str, Any]], artifact_file: str) -> None:
    """Log records as a JSON Lines artifact of the active run (UTF-8, one object per line)."""
    mlflow.log_text("".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in records), artifact_file)




def read_readout(run_id: str) -> Readout | None:
    """The stacked readout a train_judgment run logged (``readout.json``), or None when its judge reads the label words."""
    if not any(f.path == READOUT_FILE for f in mlflow.MlflowClient().list_artifacts(run_id)):
        return None
    with downloaded(run_id, READOUT_FILE) as path:
        return Readout.load(path)
