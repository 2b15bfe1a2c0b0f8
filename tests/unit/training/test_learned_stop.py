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


def _epoch(stop, model, batches):
    control = SimpleNamespace(should_training_stop=False)
    stop.on_epoch_begin(None, None, control)
    for is_top1, mask in batches:
        model(torch.tensor(is_top1), torch.tensor(mask))
    stop.on_epoch_end(None, None, control)
    return control.should_training_stop


def test_an_example_counts_only_when_every_trained_token_is_the_top_token():
    model, stop = _Model(), LearnedStop(0.75)
    stop.on_train_begin(None, None, None, model=model)
    mask = [[False, True, True], [False, True, True], [False, False, True], [False, False, False]]
    # row 0: both trained tokens right; row 1: one wrong; row 2: its one trained token right; row 3: nothing trained
    # (a wrong top-1 on an untrained position does not count against a row)
    first = [[False, True, True], [True, True, False], [False, False, True], [True, True, True]]
    assert _epoch(stop, model, [(first, mask)]) is False
    assert stop.history == [pytest.approx(2 / 3)]  # rows 0 and 2 of the 3 with trained tokens
    second = [[False, True, True], [True, True, True], [False, False, True], [False, False, False]]
    assert _epoch(stop, model, [(second, mask)]) is True  # 3 of 3 >= 0.75
    assert stop.stopped_after == 2 and stop.history[-1] == 1.0


def test_evaluation_forwards_are_not_counted_and_zero_never_stops():
    model, stop = _Model(), LearnedStop(0.0)
    stop.on_train_begin(None, None, None, model=model)
    model.eval()
    assert _epoch(stop, model, [([[True]], [[True]])]) is False
    assert stop.history == []  # nothing seen in training mode: no epoch share
    model.train()
    assert _epoch(stop, model, [([[True]], [[True]])]) is False  # share 1.0, but 0 trains every epoch
    assert stop.history == [1.0] and stop.stopped_after is None
    stop.on_train_end(None, None, None)
    model(torch.tensor([[False]]), torch.tensor([[True]]))
    assert stop._seen == 1  # after training the hook is gone: nothing more counted


def test_the_option_is_checked_and_reaches_phase2():
    assert MultiphaseConfig(knowledge_stop_when_learned=0.8).knowledge("a" * 32).stop_when_learned == 0.8
    with pytest.raises(ValueError, match=r"stop_when_learned must be in \[0, 1\]"):
        KnowledgeTrainConfig(data_run_id="a" * 32, stop_when_learned=1.5).validate()
    with pytest.raises(ValueError, match=r"knowledge_stop_when_learned must be in \[0, 1\]"):
        MultiphaseConfig(knowledge_stop_when_learned=-0.1).validate()
