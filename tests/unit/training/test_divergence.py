"""A training that diverged is refused, NaN or not, naming what diverged and what to lower."""

from types import SimpleNamespace

import pytest
import torch

from know_thyself.config import TrainingOptions
from know_thyself.training.divergence import (
    GRAD_NORM_LIMIT,
    DivergenceGuard,
    TrainingDiverged,
    check_training,
    largest_update_ratio,
    log_problem,
)

CFG = TrainingOptions(learning_rate=0.9, lora_alpha=4096)


def _trainer(losses, weight, grad_norms=None):
    model = torch.nn.Linear(2, 2)
    model.weight.data.fill_(weight)
    model.bias.requires_grad_(False)
    norms = grad_norms or [1.0] * len(losses)
    log = [{"loss": loss, "grad_norm": norm, "step": step} for step, (loss, norm) in enumerate(zip(losses, norms), start=1)]
    return SimpleNamespace(state=SimpleNamespace(log_history=log), model=model)


def _lora(scale_b: float):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = torch.nn.Sequential()
    base.add_module("proj", torch.nn.Linear(16, 16, bias=False))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["proj"]))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.fill_(scale_b)
    return model


def test_a_healthy_training_passes():
    check_training(_trainer([2.0, 1.5, 1.8, 1.2], 0.1, [3.0, 5.0, 2.0, 1.0]), CFG, 1.75)


@pytest.mark.parametrize(
    ("losses", "weight", "norms", "final", "expected"),
    [
        ([2.0, float("nan")], 0.1, None, float("nan"), (
            "training diverged: the loss became nan by step 2; lower "
            "learning_rate (now 0.9) or lora_alpha (now 4096) and train again"
        )),
        ([2.0, 1.0], float("nan"), None, 1.5, "training diverged: 1 of 1 trained weight tensors hold NaN or infinite values;"),
        ([2.0, float("inf")], float("inf"), None, 1.0, "the loss became inf by step 2 and 1 of 1 trained weight tensors"),
        ([], 0.1, None, float("nan"), "training diverged: the loss is nan;"),
        ([1.5, 1.2, 1.4, 3.2, 3.1], 0.1, None, 2.0, ("the loss climbed from 1.5 (the highest of the first 3 logs) "
         "to 3.2 at step 4 and stayed above the limit of 3 (3.1 at the next log)")),
        ([0.2, 0.1, 0.15, 1.3, 1.25], 0.1, None, 0.5, ("the loss climbed from 0.2 (the highest of the first 3 logs) "
         "to 1.3 at step 4 and stayed above the limit of 1.2 (1.25 at the next log)")),
        ([2.0, 1.5], 0.1, [1.0, 2500.0], 1.7, "the gradient norm reached 2.5e+03 at step 2 (the limit is 1000)"),
        ([2.0, 1.5], 0.1, [1.0, float("inf")], 1.7, "the gradient norm reached inf at step 2"),
    ],
    ids=["a NaN loss", "NaN weights behind a finite loss", "both", "only the final loss", "a loss that doubled",
         "a small loss that climbed a nat", "an exploding gradient", "an infinite gradient"],
)
def test_a_diverged_training_is_refused(losses, weight, norms, final, expected):
    with pytest.raises(TrainingDiverged) as info:
        check_training(_trainer(losses, weight, norms), CFG, final)
    assert expected in str(info.value) and isinstance(info.value, ValueError)


def test_a_loss_that_climbs_less_than_the_limits_passes():
    # Twice the start but less than a nat above it; a nat above but less than twice: both healthy noise.
    assert log_problem([{"loss": 0.4, "step": 1}, {"loss": 0.8, "step": 2}]) is None
    assert log_problem([{"loss": 10.8, "step": 1}, {"loss": 11.9, "step": 2}]) is None
    # The final train_loss (a mean over the whole training) is not compared with the first loss.
    assert log_problem([{"loss": 1.0, "step": 1}, {"train_loss": 5.0, "step": 2}]) is None
    assert log_problem([{"grad_norm": GRAD_NORM_LIMIT, "step": 1}]) is None
    # A continued judge's first steps (measured): one low first batch, then the noise of single batches.
    continued = [0.81, 0.73, 1.52, 0.60, 0.80, 0.32, 1.50, 1.96, 1.90, 0.9]
    assert log_problem([{"loss": loss, "step": i + 1} for i, loss in enumerate(continued)]) is None
    # One batch far above the start, then back, is noise too.
    assert log_problem([{"loss": loss, "step": i + 1} for i, loss in enumerate([1.0, 1.0, 1.0, 9.0, 1.0])]) is None


def test_an_adapter_larger_than_its_layer_is_refused():
    healthy, overwritten = _lora(0.001), _lora(100.0)
    ratio, layer = largest_update_ratio(healthy)
    assert 0 < ratio < 0.1 and layer.endswith("proj")
    weight = healthy.base_model.model.proj.base_layer.weight
    a, b = healthy.base_model.model.proj.lora_A["default"].weight, healthy.base_model.model.proj.lora_B["default"].weight
    with torch.no_grad():
        assert ratio == pytest.approx(float((b @ a).norm()) * 2.0 / float(weight.norm()), rel=1e-5)  # scaling 8 / 4
    trainer = SimpleNamespace(state=SimpleNamespace(log_history=[{"loss": 1.0, "step": 1}]), model=overwritten)
    with pytest.raises(TrainingDiverged, match=r"the adapter's update of .*proj is [\d.]+ times that layer's own weight"):
        check_training(trainer, CFG, 1.0)
    check_training(SimpleNamespace(state=trainer.state, model=healthy), CFG, 1.0)
    assert largest_update_ratio(torch.nn.Linear(2, 2)) == (0.0, "")


def test_the_guard_stops_a_training_at_the_first_log_that_diverged():
    guard, control = DivergenceGuard(), SimpleNamespace(should_training_stop=False)
    state = SimpleNamespace(log_history=[{"loss": 2.0, "grad_norm": 3.0, "step": 1}])
    guard.on_log(None, state, control, logs=state.log_history[-1])
    assert control.should_training_stop is False
    state.log_history.append({"loss": 1.0, "grad_norm": 1e4, "step": 2})
    guard.on_log(None, state, control, logs=state.log_history[-1])
    assert control.should_training_stop is True
