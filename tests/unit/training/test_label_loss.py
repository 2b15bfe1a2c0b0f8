"""The judge's label loss against hand-computed values: the restricted cross-entropy, class weights, soft
targets, the label position, the loss a batch gets on the tiny model, and the best epoch kept."""

import math
from types import SimpleNamespace

import pytest
import torch

from know_thyself.config import TrainConfig
from know_thyself.data.prompts import judgment_completion, judgment_messages
from know_thyself.training.best_epoch import BestEpoch
from know_thyself.training.judge import example_weights
from know_thyself.training.label_loss import (
    TAUGHT_MIN_GROUP,
    class_weights,
    label_positions,
    restricted_label_loss,
    soft_targets,
    taught_class_weights,
)

THREE = ("can", "uncertain", "cannot")


def test_restricted_loss_by_hand():
    # Two rows over a 4-word vocabulary; the label words are tokens 1 and 3.
    logits = torch.tensor([[0.0, math.log(3.0), 5.0, 0.0], [0.0, 0.0, 0.0, math.log(4.0)]])
    label_ids = torch.tensor([1, 3])
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    weights = torch.tensor([2.0, 1.0])
    # Row 1, restricted to tokens 1 and 3: softmax(log 3, 0) = (3/4, 1/4); CE against (1, 0) = -log(3/4).
    # Row 2: softmax(0, log 4) = (1/5, 4/5); CE against (1/2, 1/2) = -(log(1/5) + log(4/5)) / 2.
    ce = (2.0 * -math.log(3 / 4) + 1.0 * -(math.log(1 / 5) + math.log(4 / 5)) / 2) / 2
    # Label mass: row 1 holds (3 + 1) / (1 + 3 + e^5 + 1) of the probability, row 2 (1 + 4) / (1 + 1 + 1 + 4).
    mass = -(math.log(4 / (5 + math.exp(5))) + math.log(5 / 7)) / 2
    assert float(restricted_label_loss(logits, label_ids, targets, weights, mass_weight=0.0)) == pytest.approx(ce)
    assert float(restricted_label_loss(logits, label_ids, targets, weights, mass_weight=0.5)) == pytest.approx(
        ce + 0.5 * mass)


def test_class_weights_are_balanced_with_mean_one():
    labels = ["can", "cannot", "cannot", "cannot"]
    weights = class_weights(labels, THREE)
    # n / (K * n_k) over the two labels present: can 4 / (2 * 1) = 2, cannot 4 / (2 * 3) = 2/3.
    assert weights == pytest.approx({"can": 2.0, "cannot": 2 / 3})
    assert sum(weights[label] for label in labels) / len(labels) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no labelled examples"):
        class_weights([], THREE)


def test_taught_weights_split_each_label_evenly_between_taught_and_untaught():
    # 8 examples: can 3 taught + 1 untaught, cannot 1 taught + 2 untaught, uncertain 1 untaught.
    cells = [("can", True)] * 3 + [("can", False)] + [("cannot", True)] + [("cannot", False)] * 2 + [("uncertain", False)]
    examples = [{"label": label, "taught": taught} for label, taught in cells]
    got = taught_class_weights(examples, THREE, min_group=1)  # every group of one or more may split its label
    # n / (K * G_k * n_kg), K = 3 labels: can taught 8 / (3 * 2 * 3) = 4/9, can untaught 8 / (3 * 2 * 1) = 4/3;
    # cannot taught 8 / 6 = 4/3, untaught 8 / 12 = 2/3; uncertain, one group: 8 / 3.
    expected = [4 / 9] * 3 + [4 / 3] + [4 / 3] + [2 / 3] * 2 + [8 / 3]
    assert got == pytest.approx(expected)
    assert sum(got) / len(got) == pytest.approx(1.0)
    # Each label keeps its balanced share (n / K = 8/3), halved between the groups present.
    for label in THREE:
        assert sum(w for w, e in zip(got, examples) if e["label"] == label) == pytest.approx(8 / 3)
    assert sum(w for w, e in zip(got, examples) if e["label"] == "can" and e["taught"]) == pytest.approx(4 / 3)
    # Without taught marks (judgment v1's data) the weights are the plain class weights.
    plain = [{"label": e["label"]} for e in examples]
    by_label = class_weights([e["label"] for e in examples], THREE)
    assert taught_class_weights(plain, THREE, min_group=1) == pytest.approx([by_label[e["label"]] for e in examples])
    # At the default floor no group here is large enough: the plain class weights.
    assert example_weights(examples, "taught", THREE) == pytest.approx([by_label[e["label"]] for e in examples])
    assert example_weights(examples, "weights", THREE) == pytest.approx([by_label[e["label"]] for e in examples])
    assert example_weights(examples, "none", THREE) == [1.0] * 8


def test_taught_weights_split_a_label_only_when_both_groups_reach_the_floor():
    # 50 examples: can 10 taught + 12 untaught, cannot 2 taught + 20 untaught, uncertain 6 untaught.
    cells = ([("can", True)] * 10 + [("can", False)] * 12 + [("cannot", True)] * 2 + [("cannot", False)] * 20
             + [("uncertain", False)] * 6)
    examples = [{"label": label, "taught": taught} for label, taught in cells]
    assert TAUGHT_MIN_GROUP == 10
    got = taught_class_weights(examples, THREE)
    # can is split (10 and 12 >= 10): taught 50 / (3 * 2 * 10) = 5/6, untaught 50 / (3 * 2 * 12) = 25/36.
    # cannot is not (2 taught < 10): its class weight 50 / (3 * 22) = 25/33 for all 22; uncertain 50 / 18 = 25/9.
    expected = [5 / 6] * 10 + [25 / 36] * 12 + [25 / 33] * 22 + [25 / 9] * 6
    assert got == pytest.approx(expected)
    assert sum(got) / len(got) == pytest.approx(1.0)
    # A lower floor splits cannot too: taught 50 / (3 * 2 * 2) = 25/6, untaught 50 / (3 * 2 * 20) = 5/12.
    assert taught_class_weights(examples, THREE, min_group=2)[22:44] == pytest.approx([25 / 6] * 2 + [5 / 12] * 20)
    with pytest.raises(ValueError, match="min_group must be at least 1"):
        taught_class_weights(examples, THREE, min_group=0)


def test_soft_targets_by_hand():
    # One trial: right -> can, wrong -> cannot. Jeffreys posterior Beta(1.5, 0.5) after one right answer:
    # a fresh answer is right with probability 1.5 / 2 = 0.75.
    assert soft_targets(1, 1, "three", THREE) == pytest.approx([0.75, 0.0, 0.25])
    assert soft_targets(0, 1, "three", THREE) == pytest.approx([0.25, 0.0, 0.75])
    # Two trials, one right: Beta(1.5, 1.5); two fresh answers both right with probability
    # a (a + 1) / ((a + b)(a + b + 1)) = 1.5 * 2.5 / (3 * 4) = 0.3125, both wrong likewise, one of each 0.375.
    assert soft_targets(1, 2, "three", THREE) == pytest.approx([0.3125, 0.375, 0.3125])
    five = soft_targets(5, 5, "three", THREE)
    assert sum(five) == pytest.approx(1.0) and five[0] > five[1] > five[2]
    assert soft_targets(3, 5, "binary", ("can", "cannot"))[1] > 0.5
    with pytest.raises(ValueError, match="correct must be in 0..trials"):
        soft_targets(6, 5, "three", THREE)


def test_the_label_position_is_the_one_before_the_completion():
    labels = torch.tensor([[-100, -100, -100, 7, 8], [-100, 5, 6, -100, -100]])
    assert label_positions(labels).tolist() == [2, 0]
    with pytest.raises(ValueError, match="no completion token"):
        label_positions(torch.tensor([[-100, -100]]))


def test_a_batch_s_loss_is_the_restricted_loss_of_a_plain_forward(tiny, tiny_model_dir, tmp_path):
    from know_thyself.inference.judgments import label_token_ids
    from know_thyself.training.lora import build_trainer

    examples = [
        {"prompt": judgment_messages(f"Question number {i}?"), "completion": judgment_completion(label),
         "target": [float(label == word) for word in THREE], "weight": 1.0 + i}
        for i, label in enumerate(["can", "cannot", "uncertain", "cannot"])
    ]
    cfg = TrainConfig(model=tiny_model_dir, data_run_id="0" * 32, batch_size=4, max_steps=1, lora_dropout=0.0)
    model, tokenizer = tiny
    trainer = build_trainer(examples, cfg, str(tmp_path), (model, tokenizer), group_by_length=False,
                            label_ids=label_token_ids(tokenizer, THREE))
    batch = next(iter(trainer.get_train_dataloader()))
    loss = trainer.compute_loss(trainer.model, dict(batch))
    with torch.no_grad():
        logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    positions = label_positions(batch["labels"])
    expected = restricted_label_loss(logits[torch.arange(4), positions], trainer.label_ids, batch["target"], batch["weight"])
    assert float(loss) == pytest.approx(float(expected), rel=1e-4)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in trainer.model.named_parameters() if "lora_" in n)


def test_the_best_epoch_s_weights_are_the_ones_kept():
    model = torch.nn.Linear(2, 1)
    scores = iter([{"auroc": 0.6, "predicted/can": 0.5, "predicted/cannot": 0.5},
                   {"auroc": 0.8, "predicted/can": 0.5, "predicted/cannot": 0.5},
                   {"auroc": 0.9, "predicted/can": 0.0, "predicted/cannot": 1.0},  # never says can: not a candidate
                   {"auroc": 0.7, "predicted/can": 0.4, "predicted/cannot": 0.6}])
    keeper = BestEpoch(lambda m: next(scores), "auroc")
    kept = None
    for epoch in range(1, 5):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        keeper.on_epoch_end(None, SimpleNamespace(epoch=float(epoch)), None, model=model)
        if epoch == 2:
            kept = model.weight.detach().clone()
    keeper.on_train_end(None, None, None, model=model)
    assert keeper.best_epoch == 2 and [h["epoch"] for h in keeper.history] == [1, 2, 3, 4]
    assert torch.equal(model.weight, kept)


@pytest.mark.parametrize(("later_auroc", "kept_epoch"), [(0.7, 0), (0.9, 1)])
def test_a_continued_adapter_is_kept_as_it_was_unless_an_epoch_beats_it(later_auroc, kept_epoch):
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(5.0)  # the adapter the training continues
    scores = iter([{"auroc": 0.8, "predicted/can": 0.5, "predicted/cannot": 0.5},
                   {"auroc": later_auroc, "predicted/can": 0.5, "predicted/cannot": 0.5}])
    keeper = BestEpoch(lambda m: next(scores), "auroc", from_start=True)
    keeper.on_train_begin(None, None, None, model=model)
    with torch.no_grad():
        model.weight.fill_(1.0)
    keeper.on_epoch_end(None, SimpleNamespace(epoch=1.0), None, model=model)
    keeper.on_train_end(None, None, None, model=model)
    assert keeper.best_epoch == kept_epoch and [h["epoch"] for h in keeper.history] == [0, 1]
    assert float(model.weight[0, 0]) == (5.0 if kept_epoch == 0 else 1.0)
