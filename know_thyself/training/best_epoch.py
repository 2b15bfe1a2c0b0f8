"""Keeping the best epoch: after every epoch the model is scored on held-out questions, and the
adapter weights of the best epoch are the ones training ends with."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from know_thyself.config.judgment import JudgeOptions

# An epoch counts as a candidate only when it predicts every label for at least this share of the
# held-out questions; a judge that never says one of the labels has not learned that label. The
# default of the judge's ``min_label_share`` option, whose value the steps pass in.
MIN_LABEL_SHARE = JudgeOptions.min_label_share


class BestEpoch(TrainerCallback):
    """Score the model after every epoch with ``score``; restore the best epoch's trainable weights at the end.

    Args:
        score: The model (switched to eval mode, no gradients) -> its metrics on held-out questions:
            ``select_by`` and ``predicted/<label>`` (the share of questions given each label).
        select_by: The metric to maximise.
        min_label_share: An epoch is a candidate only when it gives every label at least this share
            of the questions (the judge's ``min_label_share``); when none is, the best by ``select_by`` is kept.
        from_start: Score the model before the first epoch too (epoch 0), as a candidate: a training
            that continues an earlier adapter then keeps that adapter unchanged when no epoch beats it.

    Attributes:
        history: One ``{"epoch": n, **metrics}`` per epoch.
        best_epoch: The epoch kept (None before the first).
    """

    def __init__(self, score: Callable[[Any], dict[str, float]], select_by: str,
                 min_label_share: float = MIN_LABEL_SHARE, from_start: bool = False) -> None:
        self.score = score
        self.from_start = from_start
        self.select_by = select_by
        self.min_label_share = min_label_share
        self.history: list[dict[str, float]] = []
        self.best_epoch: int | None = None
        self._best: tuple[bool, float] | None = None
        self._weights: dict[str, Any] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.from_start:
            self._consider(model, 0)

    def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        epoch = max(1, math.ceil(state.epoch - 1e-6))  # an epoch cut short by max_steps still counts as one
        self._consider(model, epoch)

    def _consider(self, model: Any, epoch: int) -> None:
        """Score the model as it is now (after ``epoch`` epochs) and keep its weights when it is the best so far."""
        import torch

        if not all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad):
            return  # diverged: nothing to score or keep (the step's divergence check says so)
        training = model.training
        model.eval()
        with torch.no_grad():
            scores = self.score(model)
        if training:
            model.train()
        self.history.append({"epoch": epoch, **scores})
        shares = [value for key, value in scores.items() if key.startswith("predicted/")]
        value = scores.get(self.select_by)
        if value is None:
            return
        rank = (bool(shares) and min(shares) >= self.min_label_share, float(value))
        if self._best is None or rank > self._best:
            self._best, self.best_epoch = rank, epoch
            self._weights = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        import torch

        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in self._weights:
                    parameter.copy_(self._weights[name])
