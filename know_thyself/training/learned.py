"""Stopping the knowledge training once the taught answers are learned.

Phase 2 teaches a fixed set of answers. Training past the point where the model gives them is
paid twice: in time, and in what the model forgets about questions it was not taught (fine-tuning
on new facts is learned late and raises errors elsewhere; stopping early limits it). So instead of
a fixed number of epochs, the training stops after the first epoch at whose end the model's greedy
answers to the taught questions are graded correct for enough of them: the number Phase 2 is
judged by (``test_knowledge``'s accuracy on the taught questions), measured as the collect step
measures it (the answer prompt, greedy, the grader).

Two numbers per epoch are logged:

* ``reproduced``: the share of examples whose every completion token was the most likely next
  token in the training's own forward passes (TRL's fused LM head reports it per token), so their
  greedy reply is the target token for token. Free, but strict: an answer in other words that
  still names the answer is not counted (on the default run it reached 0.93 after 6 epochs, when
  the greedy answers to the same questions were graded correct for 0.98).
* ``taught accuracy``: the greedy answers, generated and graded after the epoch (a few seconds per
  hundred questions; checked from the second epoch on, as no first epoch learned them, and not
  after the last epoch, which ends the training whatever the answers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

# No epoch before this one is checked: the first epoch has never taught the answers (reproduced 0.03 on the default run).
FIRST_CHECKED_EPOCH = 2


class LearnedStop(TrainerCallback):
    """Stop training after the first epoch whose greedy answers to the taught questions ``check`` grades correct
    for at least ``share`` of them; record each epoch's share reproduced token for token on the way.

    Args:
        share: The share of taught questions (in (0, 1]) to answer correctly; 0 never stops early (and
            never generates).
        check: The model (eval mode, no gradients) -> its greedy accuracy on the taught questions.
        first_epoch: The first epoch after which ``check`` runs.

    Attributes:
        reproduced: The share of examples reproduced token for token in each finished epoch's training forwards.
        accuracy: ``(epoch, greedy accuracy)`` of each check.
        stopped_after: The epoch after which the training was stopped (None: it ran every epoch).
    """

    def __init__(self, share: float, check: Callable[[Any], float] | None = None,
                 first_epoch: int = FIRST_CHECKED_EPOCH) -> None:
        self.share = share
        self.check = check
        self.first_epoch = first_epoch
        self.reproduced: list[float] = []
        self.accuracy: list[tuple[int, float]] = []
        self.stopped_after: int | None = None
        self._hook: Any = None
        self._whole = 0
        self._seen = 0

    def _count(self, module: Any, args: Any, output: Any) -> None:
        is_top1 = getattr(output, "is_top1", None)
        mask = getattr(output, "label_mask", None)
        if not module.training or is_top1 is None or mask is None:
            return  # an evaluation forward, or a forward without the fused head's per-token report
        scored = mask.any(dim=1)
        whole = (is_top1.bool() | ~mask).all(dim=1) & scored
        self._whole += int(whole.sum())
        self._seen += int(scored.sum())

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._hook = model.register_forward_hook(self._count)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._whole = self._seen = 0

    def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        import torch

        if self._seen:
            self.reproduced.append(self._whole / self._seen)
        epoch = max(1, math.ceil(state.epoch - 1e-6))
        if self.share <= 0 or self.check is None or epoch < self.first_epoch or self.stopped_after is not None:
            return
        if getattr(state, "max_steps", 0) and state.global_step >= state.max_steps:
            return  # the last epoch: the training ends here whatever the check says (test_knowledge grades it)
        training = model.training
        model.eval()
        with torch.no_grad():
            accuracy = float(self.check(model))
        if training:
            model.train()
        self.accuracy.append((epoch, accuracy))
        if accuracy >= self.share:
            self.stopped_after = epoch
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None


def greedy_accuracy_check(tokenizer: Any, questions: list[str], aliases: list[list[str]], max_new_tokens: int,
                          batch_size: int = 32) -> Callable[[Any], float]:
    """A check for :class:`LearnedStop`: the model's greedy answers to ``questions`` (the collect step's answer
    prompt, the transformers sampler) -> the share the grader accepts (each question's ``aliases``)."""
    from know_thyself.data.grading import is_correct
    from know_thyself.data.prompts import answer_messages, render
    from know_thyself.inference.sampling import TransformersSampler

    prompts = [render(tokenizer, answer_messages(q)) for q in questions]

    def check(model: Any) -> float:
        sampler = TransformersSampler(model, tokenizer, batch_size=batch_size)
        greedy = sampler.sample(prompts, 1, max_new_tokens=max_new_tokens, temperature=0.0, seed=0).greedy
        return sum(is_correct(answer, names) for answer, names in zip(greedy, aliases)) / max(1, len(questions))

    return check
