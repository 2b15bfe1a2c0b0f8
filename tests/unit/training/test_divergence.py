"""A training whose loss or trained weights are not finite is refused, naming what diverged and what to lower."""

from types import SimpleNamespace

import pytest
import torch

from know_thyself.config import TrainingOptions
from know_thyself.training.divergence import TrainingDiverged, check_finite

CFG = TrainingOptions(learning_rate=0.9, lora_alpha=4096)


def _trainer(losses, weight):
    model = torch.nn.Linear(2, 2)
    model.weight.data.fill_(weight)
    model.bias.requires_grad_(False)
    log = [{"loss": loss, "step": step} for step, loss in enumerate(losses, start=1)]
    return SimpleNamespace(state=SimpleNamespace(log_history=log), model=model)


def test_a_finite_training_passes():
    check_finite(_trainer([2.0, 1.5], 0.1), CFG, 1.75)


@pytest.mark.parametrize(
    ("losses", "weight", "final", "expected"),
    [
        ([2.0, float("nan")], 0.1, float("nan"), "training diverged: the loss became nan by step 2; lower learning_rate "
                                                 "(now 0.9) or lora_alpha (now 4096) and train again"),
        ([2.0, 1.0], float("nan"), 1.5, "training diverged: 1 of 1 trained weight tensors hold NaN or infinite values;"),
        ([2.0, float("inf")], float("inf"), 1.0, "the loss became inf by step 2 and 1 of 1 trained weight tensors"),
        ([], 0.1, float("nan"), "training diverged: the loss is nan;"),
    ],
    ids=["a NaN loss", "NaN weights behind a finite loss", "both", "only the final loss"],
)
def test_a_diverged_training_is_refused(losses, weight, final, expected):
    with pytest.raises(TrainingDiverged) as info:
        check_finite(_trainer(losses, weight), CFG, final)
    assert expected in str(info.value) and isinstance(info.value, ValueError)
