"""Refusing a training that diverged, whether or not it reached NaN.

A learning rate or LoRA alpha far too large wrecks a training in a few steps. In float32 the loss
usually overflows to NaN; under bf16 autocast the same settings often stay finite and end
"successfully" with an adapter that has overwritten the model, and a judge built from it answers
every question alike. So a training counts as diverged when any of these holds:

* its loss or a trained weight is NaN or infinite;
* the logged loss climbed far above where it started (:data:`LOSS_CLIMB` times the highest of the
  first :data:`START_LOGS` logged losses, and at least :data:`LOSS_CLIMB_MIN` nats more) and stayed
  there at the next log. Single batches are noisy: a judge that continues a trained adapter logs
  0.3 to 2 nats from its first steps on, so neither one batch nor the first one alone decides;
* a logged gradient norm exploded past :data:`GRAD_NORM_LIMIT` (measured before clipping; the
  trainer clips at 1.0, so such a gradient is a thousand clipping thresholds);
* the adapter's update of some layer (``scaling * B @ A``) grew to :data:`UPDATE_RATIO_LIMIT`
  times the layer's own weight: the model was replaced, not adapted.

:class:`DivergenceGuard` (added to every trainer by :func:`~know_thyself.training.lora.build_trainer`)
stops a training as soon as a log shows the first three, and :func:`check_training` is called by
every step that trains (train_judgment, train_knowledge, each grid point of the sweep) after
training and before anything of it is logged, so such a run ends FAILED with nothing saved and is
never reused. The limits sit far from healthy runs: docs/bad-input.md gives the values measured on
the default run.
"""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any

from transformers import TrainerCallback

from know_thyself.config import TrainingOptions

logger = logging.getLogger(__name__)

# Two logged losses in a row above LOSS_CLIMB times the start (the highest of the first START_LOGS logged
# losses), and at least LOSS_CLIMB_MIN nats above it.
LOSS_CLIMB = 2.0
LOSS_CLIMB_MIN = 1.0
START_LOGS = 3
# A gradient norm (before clipping at 1.0) above this has exploded.
GRAD_NORM_LIMIT = 1000.0
# An adapter whose update of a layer is this many times the layer's weight (Frobenius norms) replaced it.
UPDATE_RATIO_LIMIT = 10.0


class TrainingDiverged(ValueError):
    """A training whose loss, gradients or trainable weights ran away; the message says what to lower."""


def logged_losses(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """``(step, loss)`` of every loss the trainer logged (its periodic ``loss`` and the final ``train_loss``)."""
    return [(int(entry.get("step", 0)), float(entry[key])) for entry in log_history
            for key in ("loss", "train_loss") if _is_number(entry.get(key))]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def log_problem(log_history: list[dict[str, Any]]) -> str | None:
    """What in the trainer's logs says the training diverged (a loss that is not finite or climbed far, a
    gradient norm that exploded), or None.

    Only the periodic ``loss`` entries are compared with the start (the final ``train_loss`` is the
    mean of the whole training), and a climb counts when two logs in a row after the first
    :data:`START_LOGS` are above the limit.
    """
    periodic = [(int(e.get("step", 0)), float(e["loss"])) for e in log_history if _is_number(e.get("loss"))]
    bad = next(((step, loss) for step, loss in logged_losses(log_history) if not math.isfinite(loss)), None)
    if bad is not None:
        return f"the loss became {bad[1]} by step {bad[0]}"
    if periodic:
        start = max(loss for _, loss in periodic[:START_LOGS])
        limit = max(LOSS_CLIMB * start, start + LOSS_CLIMB_MIN)
        later = periodic[START_LOGS:]
        climbed = next(((step, loss, after) for (step, loss), (_, after) in itertools.pairwise(later)
                        if loss > limit and after > limit), None)
        if climbed is not None:
            return (f"the loss climbed from {start:.3g} (the highest of the first {START_LOGS} logs) to "
                    f"{climbed[1]:.3g} at step {climbed[0]} and stayed above the limit of {limit:.3g} "
                    f"({climbed[2]:.3g} at the next log)")
    for entry in log_history:
        norm = entry.get("grad_norm")
        if _is_number(norm) and not (math.isfinite(norm) and norm <= GRAD_NORM_LIMIT):
            return f"the gradient norm reached {float(norm):.3g} at step {int(entry.get('step', 0))} (the limit is {GRAD_NORM_LIMIT:g})"
    return None


def non_finite_tensors(model: Any) -> tuple[int, int]:
    """How many trainable parameter tensors of ``model`` hold a NaN or an infinity, out of how many."""
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    return sum(int(not torch.isfinite(p.detach()).all()) for p in trainable), len(trainable)


def largest_update_ratio(model: Any) -> tuple[float, str]:
    """The largest ``|scaling * B @ A| / |W|`` over the model's LoRA layers (Frobenius norms), and its layer's name.

    ``(0.0, "")`` for a model without LoRA layers. Computed in float32 on the adapter's own weights.
    """
    import torch

    largest, where = 0.0, ""
    with torch.no_grad():
        for name, module in model.named_modules():
            lora_a, lora_b = getattr(module, "lora_A", None), getattr(module, "lora_B", None)
            base = getattr(module, "base_layer", None)
            if not lora_a or base is None or not hasattr(base, "weight"):
                continue
            weight_norm = float(base.weight.detach().float().norm())
            for adapter in lora_a:
                a, b = lora_a[adapter].weight.detach().float(), lora_b[adapter].weight.detach().float()
                update_norm = float((b @ a).norm()) * float(module.scaling[adapter])
                ratio = update_norm / weight_norm if weight_norm > 0 else math.inf
                if not ratio <= largest:  # a NaN ratio counts as the largest
                    largest, where = ratio, name
    return largest, where


def largest_grad_norm(log_history: list[dict[str, Any]]) -> float | None:
    """The largest gradient norm the trainer logged (NaN if one was NaN), or None when none was logged."""
    norms = [float(e["grad_norm"]) for e in log_history if _is_number(e.get("grad_norm"))]
    if not norms:
        return None
    return math.nan if any(math.isnan(n) for n in norms) else max(norms)


def training_problems(trainer: Any, final_loss: float) -> list[str]:
    """Every sign of divergence in a finished training (empty for a healthy one)."""
    problems = []
    from_logs = log_problem(trainer.state.log_history)
    if from_logs is not None:
        problems.append(from_logs)
    elif not math.isfinite(final_loss):
        problems.append(f"the loss is {final_loss}")
    broken, total = non_finite_tensors(trainer.model)
    if broken:
        problems.append(f"{broken} of {total} trained weight tensors hold NaN or infinite values")
    else:
        ratio, layer = largest_update_ratio(trainer.model)
        if not ratio <= UPDATE_RATIO_LIMIT:
            problems.append(f"the adapter's update of {layer} is {ratio:.3g} times that layer's own weight "
                            f"(the limit is {UPDATE_RATIO_LIMIT:g})")
    return problems


def check_training(trainer: Any, cfg: TrainingOptions, final_loss: float, what: str = "training") -> None:
    """Raise :class:`TrainingDiverged` when a finished training diverged (see the module docstring).

    Args:
        trainer: The trainer after ``train()`` (its log history and its model).
        cfg: The training options, named in the fix.
        final_loss: The training's mean loss as ``train()`` returned it.
        what: What trained, for the message (``training``, ``grid point 3``).
    """
    problems = training_problems(trainer, final_loss)
    if problems:
        raise TrainingDiverged(
            f"{what} diverged: {' and '.join(problems)}; lower learning_rate (now {cfg.learning_rate}) or "
            f"lora_alpha (now {cfg.lora_alpha}) and train again (no adapter or model was saved)"
        )


class DivergenceGuard(TrainerCallback):
    """Stop a training as soon as its logs show it diverged, so that a doomed run ends in seconds.

    The step still fails through :func:`check_training`, which finds the same logs.
    """

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        problem = log_problem(state.log_history)
        if problem is not None and not control.should_training_stop:
            logger.warning("stopping the training: %s", problem)
            control.should_training_stop = True
