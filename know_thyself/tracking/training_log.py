"""What a training writes into its step's run: the trainer's metrics as it trains, the summary, the adapter."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
from transformers import TrainerCallback

from know_thyself.training.best_epoch import BestEpoch
from know_thyself.training.learned import LearnedStop
from know_thyself.training.lora import ADAPTER_DIR, Trained, save_adapter


class MlflowMetricsCallback(TrainerCallback):
    """Log the trainer's loss, learning rate and throughput into the active MLflow run.

    The run is the step's own run, opened before training; only the main process logs, so a
    multi-process (``accelerate launch``) job writes each metric once.
    """

    def __init__(self, prefix: str = "train") -> None:
        self.prefix = prefix

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or mlflow.active_run() is None:
            return
        numeric = {
            f"{self.prefix}/{key}": float(value)
            for key, value in logs.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        if numeric:
            mlflow.log_metrics(numeric, step=state.global_step)


def log_epochs(keeper: BestEpoch, prefix: str = "dev/judge") -> None:
    """Log each epoch's held-out scores (``<prefix>/<metric>`` at step = epoch) and the epoch kept (``train/best_epoch``)."""
    for scores in keeper.history:
        mlflow.log_metrics({f"{prefix}/{k}": v for k, v in scores.items() if k != "epoch"}, step=int(scores["epoch"]))
    if keeper.best_epoch is not None:
        mlflow.log_metric("train/best_epoch", keeper.best_epoch)


def log_learned(stop: LearnedStop) -> None:
    """Log what the knowledge training's early stop measured, at step = epoch: the share of examples reproduced
    token for token (``train/reproduced``), the greedy accuracy on the taught questions where checked
    (``train/taught_accuracy``); and the epochs run (``train/epochs_run``)."""
    for epoch, share in enumerate(stop.reproduced, start=1):
        mlflow.log_metric("train/reproduced", share, step=epoch)
    for epoch, accuracy in stop.accuracy:
        mlflow.log_metric("train/taught_accuracy", accuracy, step=epoch)
    mlflow.log_metric("train/epochs_run", len(stop.reproduced))


def log_training(trained: Trained) -> None:
    """Log a finished training's summary into the active run (main process only), naming what is undefined."""
    if not trained.trainer.is_world_process_zero() or mlflow.active_run() is None:
        return
    mlflow.log_metrics(trained.metrics)
    mlflow.set_tag("undefined_metrics", ", ".join(trained.undefined) if trained.undefined else "none")


def log_adapter(trainer: Any, base_model: str, artifact_path: str = ADAPTER_DIR, folder: Path | None = None) -> Path | None:
    """Save the adapter and log it as an artifact of the active run (main process only).

    Args:
        trainer: The trainer after training.
        base_model: The model argument the adapter's config names as its base.
        artifact_path: Where in the run the adapter goes.
        folder: A folder of the caller's to save into, kept after logging; the saved adapter's
            path is returned. Without it the adapter is saved into a temporary folder that is
            removed again, and ``None`` is returned (also on processes other than the main one).
    """
    if not trainer.is_world_process_zero():
        return None
    if folder is not None:
        target = save_adapter(trainer, base_model, Path(folder) / artifact_path)
        mlflow.log_artifacts(str(target), artifact_path)
        return target
    with tempfile.TemporaryDirectory(prefix="know-thyself-adapter-") as scratch:
        mlflow.log_artifacts(str(save_adapter(trainer, base_model, Path(scratch) / artifact_path)), artifact_path)
    return None
