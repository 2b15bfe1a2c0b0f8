"""Every number that shapes a result is an option: logged as a parameter (so part of the step cache key),
carried by the chains, checked when it is set, and the value the computation reads.

The numbers: the label loss's mass weight (``label_mass_weight``), the taught split's floor
(``taught_min_group``), the least label share of a kept epoch (``min_label_share``), the stacked
readout's and the probe's regularisation (``readout_c``, ``probe_c``) and the training sequence length
(``max_length``).
"""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import torch

from know_thyself.config import (
    EvaluateConfig,
    EvaluateRegisteredConfig,
    KnowledgeTrainConfig,
    MultiphaseConfig,
    Phase1Config,
    SweepConfig,
    TrainConfig,
)
from know_thyself.config.judgment import JudgeOptions
from know_thyself.data.prompts import judgment_completion, judgment_messages
from know_thyself.training.best_epoch import BestEpoch
from know_thyself.training.judge import with_targets
from know_thyself.training.label_loss import label_positions, restricted_label_loss

RUN = "0" * 32
THREE = ("can", "uncertain", "cannot")
# The options of each config, with their defaults as the MLflow params hold them.
TRAINING = {"max_length": "512"}
JUDGE = {**TRAINING, "label_mass_weight": "1.0", "taught_min_group": "10", "min_label_share": "0.05", "readout_c": "1.0"}
PROBE = {"probe_c": "0.1"}


@pytest.mark.parametrize(("config", "expected"), [
    (TrainConfig(data_run_id=RUN), JUDGE),
    (KnowledgeTrainConfig(data_run_id=RUN), TRAINING),
    (EvaluateConfig(collect_run_id=RUN), PROBE),
    (EvaluateRegisteredConfig(), PROBE),
    (Phase1Config(), {**JUDGE, **PROBE}),
    (MultiphaseConfig(), {**JUDGE, **PROBE}),
    (SweepConfig(collect_run_id=RUN), {"max_length": "512", "label_mass_weight": "1.0", "min_label_share": "0.05", **PROBE}),
], ids=lambda value: type(value).__name__ if not isinstance(value, dict) else "")
def test_the_numbers_are_params_with_their_former_values_as_defaults(config, expected):
    params = config.params()
    assert {key: params[key] for key in expected} == expected


def test_a_changed_number_changes_the_params():
    assert TrainConfig(data_run_id=RUN, label_mass_weight=0.5).params() != TrainConfig(data_run_id=RUN).params()
    assert EvaluateConfig(collect_run_id=RUN, probe_c=1.0).params()["probe_c"] == "1.0"
    assert TrainConfig.from_options({"data_run_id": RUN, "max_length": "128"}).max_length == 128


def test_the_chains_carry_the_numbers_to_their_steps():
    chain = MultiphaseConfig(label_mass_weight=0.25, taught_min_group=3, min_label_share=0.1, readout_c=0.5,
                             max_length=256, probe_c=2.0)
    for phase in (chain.phase1(), chain.phase3()):
        trained = phase.train(RUN)
        assert (trained.label_mass_weight, trained.taught_min_group, trained.min_label_share, trained.readout_c,
                trained.max_length) == (0.25, 3, 0.1, 0.5, 256)
        assert phase.evaluate(chain.model, RUN, RUN).probe_c == 2.0
    assert chain.knowledge(RUN).max_length == 256
    sweep = SweepConfig(collect_run_id=RUN, label_mass_weight=0.25, min_label_share=0.1, max_length=256)
    point = sweep.training(sweep.grid()[0])
    assert (point.label_mass_weight, point.min_label_share, point.max_length) == (0.25, 0.1, 256)


@pytest.mark.parametrize(("options", "message"), [
    ({"label_mass_weight": -1.0}, "label_mass_weight must be a finite number >= 0"),
    ({"label_mass_weight": math.inf}, "label_mass_weight must be a finite number >= 0"),
    ({"label_mass_weight": 2.0, "loss": "sft", "balance": "none"}, "label_mass_weight weighs a term of the label loss"),
    ({"taught_min_group": 0}, "taught_min_group must be >= 1"),
    ({"min_label_share": -0.1}, r"min_label_share must be in \[0, 0.5\]"),
    ({"min_label_share": 0.6}, r"min_label_share must be in \[0, 0.5\]"),
    ({"readout_c": 0.0}, "readout_c must be a finite number above 0"),
    ({"max_length": 0}, "max_length must be in 1..131072"),
])
def test_bad_values_are_refused_naming_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(data_run_id=RUN, **options)
    with pytest.raises(ValueError, match=message):
        MultiphaseConfig(**options)


@pytest.mark.parametrize("config", [
    lambda c: EvaluateConfig(collect_run_id=RUN, probe_c=c), lambda c: EvaluateRegisteredConfig(probe_c=c),
    lambda c: Phase1Config(probe_c=c), lambda c: SweepConfig(collect_run_id=RUN, probe_c=c),
])
def test_a_probe_c_that_is_not_positive_is_refused(config):
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="probe_c must be a finite number above 0"):
            config(bad)


def test_a_max_length_that_is_not_a_whole_number_is_refused():
    with pytest.raises(ValueError, match="max_length must be a whole number"):
        TrainConfig.from_options({"data_run_id": RUN, "max_length": 12.5})


def test_the_mass_weight_changes_the_loss_by_the_hand_computed_amount():
    # One row, a four-word vocabulary, the label words 0 and 1, the target word 0.
    logits, label_ids = torch.tensor([[2.0, 0.0, 1.0, -1.0]]), torch.tensor([0, 1])
    targets, weights = torch.tensor([[1.0, 0.0]]), torch.tensor([1.0])
    cross_entropy = math.log(1 + math.exp(-2))  # -log(e^2 / (e^2 + e^0))
    minus_log_mass = math.log((math.exp(2) + 1 + math.exp(1) + math.exp(-1)) / (math.exp(2) + 1))
    for weight in (0.0, 1.0, 3.0):
        got = float(restricted_label_loss(logits, label_ids, targets, weights, mass_weight=weight))
        assert got == pytest.approx(cross_entropy + weight * minus_log_mass, rel=1e-6)


def _fresh(tiny_loaded):
    model, tokenizer = tiny_loaded
    return copy.deepcopy(model), copy.deepcopy(tokenizer)


def test_the_trainer_s_loss_reads_the_judge_s_mass_weight(tiny_loaded, tiny_model_dir, tmp_path):
    from know_thyself.inference.judgments import label_token_ids
    from know_thyself.training.lora import build_trainer

    examples = [
        {"prompt": judgment_messages(f"Question number {i}?"), "completion": judgment_completion(label),
         "target": [float(label == word) for word in THREE], "weight": 1.0}
        for i, label in enumerate(["can", "cannot", "uncertain", "cannot"])
    ]
    losses = {}
    for weight in (1.0, 3.0):
        model, tokenizer = _fresh(tiny_loaded)  # the same weights each time; LoRA starts as the identity
        cfg = TrainConfig(model=tiny_model_dir, data_run_id=RUN, batch_size=4, max_steps=1, lora_dropout=0.0,
                          label_mass_weight=weight)
        trainer = build_trainer(examples, cfg, str(tmp_path), (model, tokenizer), group_by_length=False,
                                label_ids=label_token_ids(tokenizer, THREE))
        assert trainer.mass_weight == weight
        batch = dict(next(iter(trainer.get_train_dataloader())))
        with torch.no_grad():
            losses[weight] = float(trainer.compute_loss(trainer.model, batch))
            logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    at_label = logits[torch.arange(4), label_positions(batch["labels"])].float()
    minus_log_mass = -torch.logsumexp(torch.log_softmax(at_label, -1)[:, trainer.label_ids], -1).mean()
    assert losses[3.0] - losses[1.0] == pytest.approx(2.0 * float(minus_log_mass), rel=1e-4)


def test_max_length_truncates_the_training_examples(tiny_loaded, tiny_model_dir, tmp_path):
    from know_thyself.training.lora import build_trainer

    examples = [{"prompt": judgment_messages(f"Question number {i}?"), "completion": judgment_completion("can")}
                for i in range(2)]
    def built(max_length):
        cfg = TrainConfig(model=tiny_model_dir, data_run_id=RUN, batch_size=2, max_steps=1, max_length=max_length)
        trainer = build_trainer(examples, cfg, str(tmp_path), _fresh(tiny_loaded))
        assert trainer.args.max_length == max_length
        return [len(ids) for ids in trainer.train_dataset["input_ids"]]

    whole = built(512)
    # Two tokens short: the examples lose the end of their completion (TRL drops an example left with none of it).
    assert built(max(whole) - 2) == [max(whole) - 2] * 2


def test_min_label_share_decides_which_epochs_are_candidates():
    def keep(**options):
        model = torch.nn.Linear(2, 1)
        scores = iter([{"auroc": 0.6, "predicted/can": 0.5, "predicted/cannot": 0.5},
                       {"auroc": 0.8, "predicted/can": 0.1, "predicted/cannot": 0.9},
                       {"auroc": 0.7, "predicted/can": 0.3, "predicted/cannot": 0.7}])
        keeper = BestEpoch(lambda m: next(scores), "auroc", **options)
        for epoch in (1, 2, 3):
            keeper.on_epoch_end(None, SimpleNamespace(epoch=float(epoch)), None, model=model)
        return keeper.best_epoch

    assert keep() == 2  # the default 0.05: epoch 2 says can for 10% of the questions
    assert keep(min_label_share=0.2) == 3
    assert keep(min_label_share=0.0) == 2


def test_taught_min_group_decides_where_a_label_s_weight_is_split():
    # 2 taught and 3 untaught can, 6 untaught cannot: 11 examples, two labels
    examples = [{"label": "can", "taught": i < 2, "question": "q"} for i in range(5)]
    examples += [{"label": "cannot", "taught": False, "question": "q"} for _ in range(6)]
    split = [e["weight"] for e in with_targets(examples, JudgeOptions(balance="taught", taught_min_group=2), "three")]
    plain = [e["weight"] for e in with_targets(examples, JudgeOptions(balance="taught"), "three")]  # floor 10
    # class weight of can: 11 / (2 * 5); split: 11 / (2 * 2 * 2) for the taught, 11 / (2 * 2 * 3) for the untaught
    assert plain[:5] == pytest.approx([1.1] * 5)
    assert split[:5] == pytest.approx([11 / 8] * 2 + [11 / 12] * 3)


def test_probe_c_is_the_probe_s_regularisation():
    from know_thyself.evaluation.methods import fit_references

    rng = np.random.default_rng(0)
    labels = ("can", "uncertain", "cannot")
    rows = [{"ability": labels[i % 3], "greedy_correct": i % 3 == 0} for i in range(30)]
    features = rng.normal(size=(30, 4)) + np.array([[i % 3, 0, 0, 0] for i in range(30)])
    first = rng.uniform(0.1, 0.9, size=30)
    weak, strong = (fit_references(rows, features, labels, first, probe_c=c) for c in (10.0, 0.001))
    assert weak.probe.model[-1].C == 10.0 and weak.first_token.model[-1].C == 10.0
    assert fit_references(rows, features, labels, first).probe.model[-1].C == 0.1  # the default
    spread = [np.ptp(ref.probe.predict_proba(features)) for ref in (weak, strong)]
    assert spread[0] > spread[1]  # strong regularisation pulls the probabilities together


def test_the_steps_pass_their_numbers_on(tracking, tiny_model_dir, monkeypatch):
    """train_judgment and evaluate_judgment hand the config's numbers to the code they shape, and log them."""
    from helpers import fake_collect_run

    from know_thyself.config import JudgmentDataConfig
    from know_thyself.evaluation import judgment as evaluation
    from know_thyself.steps import train_judgment
    from know_thyself.steps.build_judgment_data import run_build_judgment_data
    from know_thyself.steps.evaluate_judgment import run_evaluate_judgment
    from know_thyself.training import lora

    correct = {"can": [True, True], "uncertain": [True, False], "cannot": [False, False]}
    rows = [{"split": split, "question_id": f"{split}{i}", "question": f"Which river flows through town {split} {i}?",
             "ability": label, "correct": correct[label], "aliases": ["yes"], "greedy_response": "x",
             "greedy_correct": label != "cannot", "greedy_mean_logprob": -1.0}
            for split, count in (("train", 24), ("validation", 6)) for i, label in enumerate(THREE * (count // 3))]
    collect = fake_collect_run(rows, {"num_trials": "2"})
    data = run_build_judgment_data(JudgmentDataConfig(collect_run_id=collect)).run_id
    seen: dict[str, object] = {}

    def spy(module, name, record):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            result = real(*args, **kwargs)
            record(result, *args, **kwargs)
            return result

        monkeypatch.setattr(module, name, wrapper)

    spy(lora, "build_trainer", lambda trainer, *a, **k: seen.update(mass_weight=trainer.mass_weight,
                                                                      max_length=trainer.args.max_length))
    spy(train_judgment, "BestEpoch", lambda keeper, *a, **k: seen.update(min_label_share=keeper.min_label_share))
    spy(train_judgment, "fit_readout", lambda readout, *a, **k: seen.update(readout_c=k["c"]))
    cfg = TrainConfig(model=tiny_model_dir, data_run_id=data, epochs=1, batch_size=8, lora_r=2, readout="stacked",
                      dev_fraction=0.5, dtype="float32", label_mass_weight=0.5, max_length=256, min_label_share=0.1,
                      readout_c=0.25)
    trained = train_judgment.run_train_judgment(cfg).run_id
    assert seen == {"mass_weight": 0.5, "max_length": 256, "min_label_share": 0.1, "readout_c": 0.25}
    params = mlflow.get_run(trained).data.params
    assert (params["label_mass_weight"], params["max_length"], params["min_label_share"], params["readout_c"]) == (
        "0.5", "256", "0.1", "0.25")

    spy(evaluation, "fit_references", lambda references, *a, **k: seen.update(probe_c=k["probe_c"]))
    evaluated = run_evaluate_judgment(EvaluateConfig(model=tiny_model_dir, collect_run_id=collect, probe_c=0.5,
                                                     dtype="float32")).run_id
    assert seen["probe_c"] == 0.5 and mlflow.get_run(evaluated).data.params["probe_c"] == "0.5"
