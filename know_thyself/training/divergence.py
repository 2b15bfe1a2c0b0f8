"""Refusing a training that diverged: a loss or an adapter weight that is not finite.

A learning rate or LoRA alpha far too large makes the loss overflow within a few steps; the trainer
carries on and ends "successfully" with NaN weights, and a judge built from them answers every
question with the same label and NaN probabilities. :func:`check_finite` is called by every step
that trains (train_judgment, train_knowledge, each grid point of the sweep) after training and
before anything of it is logged, so such a run ends FAILED with nothing saved and is never reused.
"""

from __future__ import annotations

import math
from typing import Any

from know_thyself.config import TrainingOptions


class TrainingDiverged(ValueError):
    """A training whose loss or trainable weights are not finite; the message says what to lower."""


def logged_losses(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """``(step, loss)`` of every loss the trainer logged (its periodic ``loss`` and the final ``train_loss``)."""
    return [(int(entry.get("step", 0)), float(entry[key])) for entry in log_history
            for key in ("loss", "train_loss") if isinstance(entry.get(key), (int, float))]


def non_finite_tensors(model: Any) -> tuple[int, int]:
    """How many trainable parameter tensors of ``model`` hold a NaN or an infinity, out of how many."""
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    return sum(int(not torch.isfinite(p.detach()).all()) for p in trainable), len(trainable)


def check_finite(trainer: Any, cfg: TrainingOptions, final_loss: float, what: str = "training") -> None:
    """Raise :class:`TrainingDiverged` when a finished training's loss or trainable weights are not finite.

    Args:
        trainer: The trainer after ``train()`` (its log history and its model).
        cfg: The training options, named in the fix.
        final_loss: The training's mean loss as ``train()`` returned it.
        what: What trained, for the message (``training``, ``grid point 3``).
    """
    problems = []
    bad = next(((step, loss) for step, loss in logged_losses(trainer.state.log_history) if not math.isfinite(loss)), None)
    if bad is not None:
        problems.append(f"the loss became {bad[1]} by step {bad[0]}")
    elif not math.isfinite(final_loss):
        problems.append(f"the loss is {final_loss}")
    broken, total = non_finite_tensors(trainer.model)
    if broken:
        problems.append(f"{broken} of {total} trained weight tensors hold NaN or infinite values")
    if problems:
        raise TrainingDiverged(
            f"{what} diverged: {' and '.join(problems)}; lower learning_rate (now {cfg.learning_rate}) or "
            f"lora_alpha (now {cfg.lora_alpha}) and train again (no adapter or model was saved)"
        )
