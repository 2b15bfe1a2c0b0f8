"""Stopping the knowledge training once the taught answers are learned.

Phase 2 teaches a fixed set of answers. Training past the point where the model gives them is
paid twice: in time, and in what the model forgets about questions it was not taught (fine-tuning
on new facts is learned late and raises errors elsewhere; stopping early limits it). So instead of
a fixed number of epochs, the training stops after the first epoch in which enough of the taught
examples were *reproduced*: every completion token was the most likely next token.

A reproduced example is one whose greedy reply is its target, token for token (greedy decoding
picks the most likely token at each step, and under teacher forcing each step sees the target's
own previous tokens). The count is read from the training's own forward passes (TRL's fused LM
head reports, per token, whether the target was the top token), so the check costs nothing; it
is slightly pessimistic, since an example is scored before that step's update and with LoRA
dropout on.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback


class LearnedStop(TrainerCallback):
    """Stop training after the first epoch whose training forwards reproduced ``share`` of the examples.

    Args:
        share: The share of examples (in (0, 1]) that must be reproduced token for token; 0 never stops early.

    Attributes:
        history: The share reproduced in each finished epoch, in order.
        stopped_after: The epoch after which the training was stopped (None: it ran every epoch).
    """

    def __init__(self, share: float) -> None:
        self.share = share
        self.history: list[float] = []
        self.stopped_after: int | None = None
        self._hook: Any = None
        self._reproduced = 0
        self._seen = 0

    def _count(self, module: Any, args: Any, output: Any) -> None:
        is_top1 = getattr(output, "is_top1", None)
        mask = getattr(output, "label_mask", None)
        if not module.training or is_top1 is None or mask is None:
            return  # an evaluation forward, or a forward without the fused head's per-token report
        scored = mask.any(dim=1)
        whole = (is_top1.bool() | ~mask).all(dim=1) & scored
        self._reproduced += int(whole.sum())
        self._seen += int(scored.sum())

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._hook = model.register_forward_hook(self._count)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._reproduced = self._seen = 0

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self._seen:
            return
        reproduced = self._reproduced / self._seen
        self.history.append(reproduced)
        if self.share > 0 and reproduced >= self.share and self.stopped_after is None:
            self.stopped_after = len(self.history)
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
