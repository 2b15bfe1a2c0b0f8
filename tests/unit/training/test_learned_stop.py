"""Phase 2 stops once its training forwards reproduce enough taught examples token for token."""

from types import SimpleNamespace

import pytest
import torch

from know_thyself.config import KnowledgeTrainConfig, MultiphaseConfig
from know_thyself.training.learned import LearnedStop


class _Model(torch.nn.Module):
    """Returns what TRL's fused LM head reports: per token, whether the target was the top token, and which are trained."""

    def forward(self, is_top1, label_mask):
        return SimpleNamespace(is_top1=is_top1, label_mask=label_mask)


def _epoch(stop, model, batches, epoch=1, of=10):
    """One epoch of ``of`` (one step each) through the callback; whether it asked the training to stop."""
    control = SimpleNamespace(should_training_stop=False)
    stop.on_epoch_begin(None, None, control)
    for is_top1, mask in batches:
        model(torch.tensor(is_top1), torch.tensor(mask))
    stop.on_epoch_end(None, SimpleNamespace(epoch=float(epoch), global_step=epoch, max_steps=of), control, model=model)
    return control.should_training_stop


def test_an_example_counts_as_reproduced_only_when_every_trained_token_is_the_top_token():
    model, stop = _Model(), LearnedStop(0.0)
    stop.on_train_begin(None, None, None, model=model)
    mask = [[False, True, True], [False, True, True], [False, False, True], [False, False, False]]
    # row 0: both trained tokens right; row 1: one wrong; row 2: its one trained token right; row 3: nothing trained
    # (a wrong top-1 on an untrained position does not count against a row)
    first = [[False, True, True], [True, True, False], [False, False, True], [True, True, True]]
    assert _epoch(stop, model, [(first, mask)]) is False
    assert stop.reproduced == [pytest.approx(2 / 3)]  # rows 0 and 2 of the 3 with trained tokens
    model.eval()
    _epoch(stop, model, [(first, mask)], epoch=2)
    assert stop.reproduced == [pytest.approx(2 / 3)]  # evaluation forwards are not counted
    stop.on_train_end(None, None, None)
    model.train()
    model(torch.tensor(first), torch.tensor(mask))
    assert stop._seen == 0  # after training the hook is gone


def test_the_check_runs_from_the_second_epoch_and_stops_at_the_share():
    model, checked = _Model(), iter([0.5, 0.96])
    stop = LearnedStop(0.95, lambda m: next(checked))
    stop.on_train_begin(None, None, None, model=model)
    assert _epoch(stop, model, [], epoch=1) is False and stop.accuracy == []  # no check after the first epoch
    assert _epoch(stop, model, [], epoch=2) is False
    assert _epoch(stop, model, [], epoch=3) is True
    assert stop.accuracy == [(2, 0.5), (3, 0.96)] and stop.stopped_after == 3
    assert model.training  # the check ran in eval mode and handed the model back in training mode
    never = LearnedStop(0.0, lambda m: 1 / 0)  # 0 never checks
    assert _epoch(never, model, [], epoch=5) is False
    last = LearnedStop(0.95, lambda m: 1 / 0)  # nor is the last epoch checked: the training ends there anyway
    last.on_train_begin(None, None, None, model=model)
    assert _epoch(last, model, [], epoch=3, of=3) is False and last.accuracy == []


def test_the_option_is_checked_and_reaches_phase2():
    assert MultiphaseConfig(knowledge_stop_when_learned=0.8).knowledge("a" * 32).stop_when_learned == 0.8
    with pytest.raises(ValueError, match=r"stop_when_learned must be in \[0, 1\]"):
        KnowledgeTrainConfig(data_run_id="a" * 32, stop_when_learned=1.5).validate()
    with pytest.raises(ValueError, match=r"knowledge_stop_when_learned must be in \[0, 1\]"):
        MultiphaseConfig(knowledge_stop_when_learned=-0.1).validate()
