"""The judge's options: its training data, its training, its evaluation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from know_thyself.config.base import StepConfig, check, check_run_id, option
from know_thyself.config.choices import (
    BALANCE_HELP,
    BALANCES,
    BATCH_HELP,
    DTYPE_HELP,
    DTYPES,
    LABEL_TARGETS,
    LABEL_TARGETS_HELP,
    LORA_TARGETS,
    LORA_TARGETS_HELP,
    LOSS_HELP,
    LOSSES,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_LORA_ALPHA,
    MAX_LORA_RANK,
    MAX_STEPS,
    MAX_TRAIN_LENGTH,
    MIN_LABEL_SHARE_HELP,
    MODEL_HELP,
    PROBE_C_HELP,
    READOUT_HELP,
    READOUTS,
    SEED_HELP,
    SELECT_EPOCH_BY,
    SELECT_EPOCH_HELP,
    check_choice,
    check_model_options,
    check_positive,
    check_range,
    check_seed,
)
from know_thyself.inference.models import EMBEDDED, resolve_model


@dataclass
class JudgmentDataConfig(StepConfig):
    """Options of build_judgment_data: which collect run to turn into SFT examples."""

    step: ClassVar[str] = "build_judgment_data"
    collect_run_id: str = option("", "Run id of a finished collect run whose labels to turn into examples.", required=True)
    knowledge_data_run_id: str = option(
        "", "Run id of the build_knowledge_data run that taught the model (Phase 3): holdout_fraction of the taught "
        "train questions, and as many of the untaught, are kept out of the judge's training (optional).",
    )
    holdout_fraction: float = option(
        0.3, "Share of the taught train questions (and of the untaught) kept out of the judge's training when "
        "knowledge_data_run_id is given: the questions its held-out test reads.",
    )
    seed: int = option(42, "Seed of the held-out draw.")

    def validate(self) -> None:
        check_run_id("collect_run_id", self.collect_run_id)
        check_run_id("knowledge_data_run_id", self.knowledge_data_run_id, optional=True)
        check(0.0 <= self.holdout_fraction < 1.0, f"holdout_fraction must be in [0, 1), got {self.holdout_fraction}")


@dataclass
class EvaluateConfig(StepConfig):
    """Options of evaluate_judgment: a model, an optional adapter, and the labelled questions."""

    step: ClassVar[str] = "evaluate_judgment"
    model: str = option(EMBEDDED, MODEL_HELP)
    collect_run_id: str = option("", "Run id of a finished collect run: the labelled questions to judge.", required=True)
    adapter_run_id: str = option(
        "", "Run id of a finished train_judgment run whose adapter to evaluate (leave it out for the bare model)."
    )
    inference_batch_size: int = option(32, BATCH_HELP)
    dtype: str = option("auto", DTYPE_HELP, choices=DTYPES)
    reference_collect_run_id: str = option(
        "",
        "Run id of a second collect run of the same questions with another sample_seed: adds the "
        "label_noise_ceiling row, its labels used as predictions of the first (leave it out to skip).",
    )
    baseline_adapter_run_id: str = option(
        "", "Run id of another train_judgment run (judgment v1) whose adapter is applied to this model, unchanged, "
        "beside the judge on its held-out taught and untaught questions (optional).",
    )
    probe_c: float = option(0.1, PROBE_C_HELP)

    def validate(self) -> None:
        check_model_options(self.model, self.dtype, self.inference_batch_size)
        check_positive("probe_c", self.probe_c)
        check_run_id("collect_run_id", self.collect_run_id)
        check_run_id("adapter_run_id", self.adapter_run_id, optional=True)
        check_run_id("reference_collect_run_id", self.reference_collect_run_id, optional=True)
        check_run_id("baseline_adapter_run_id", self.baseline_adapter_run_id, optional=True)
        check(
            self.reference_collect_run_id != self.collect_run_id,
            "reference_collect_run_id is the collect_run_id itself; pass a second collect of the same "
            "questions made with another sample_seed",
        )


@dataclass
class TrainingOptions(StepConfig):
    """LoRA SFT options shared by the training steps and the chains.

    The defaults are the ones measured for the embedded model (a 135M model, a few hundred
    examples, 2 CPU cores): the original design's 1e-4 and attention-only LoRA left the judge
    barely trained at this scale; adapting the MLP projections too lifted the judge's dev QWK from
    0.20 to 0.36 and AUROC from 0.63 to 0.71 (docs/experiments.md).
    """

    learning_rate: float = option(1e-3, "LoRA learning rate.")
    epochs: float = option(1.0, "Training epochs.")
    batch_size: int = option(8, "Training batch size per device.")
    lora_r: int = option(16, "LoRA rank.")
    lora_alpha: int = option(32, "LoRA alpha (scaling).")
    lora_dropout: float = option(0.05, "LoRA dropout.")
    lora_targets: str = option("attention_mlp", LORA_TARGETS_HELP, choices=LORA_TARGETS)
    lora_layers: int = option(
        0, "Adapt only the top this-many transformer blocks (0, or at least the model's number of blocks: every "
        "block). Nothing below the lowest adapted block is trained, so the backward pass stops there: fewer "
        "operations per step.",
    )
    max_steps: int = option(
        -1, "Train for exactly this many optimiser steps in place of epochs (transformers' max_steps: more steps than "
        "the epochs hold go round the data again); -1: train for epochs.",
    )
    seed: int = option(42, SEED_HELP)
    dtype: str = option("auto", DTYPE_HELP, choices=DTYPES)
    max_length: int = option(
        512, "Longest training example in tokens, prompt and completion together (TRL's max_length); longer "
        "examples are cut to it from the end.",
    )

    def validate(self) -> None:
        check_choice("lora_targets", self.lora_targets, LORA_TARGETS)
        check_choice("dtype", self.dtype, DTYPES)
        check(0.0 < self.learning_rate < 1.0, f"learning_rate must be in (0, 1), got {self.learning_rate}")
        check(0 < self.epochs <= MAX_EPOCHS, f"epochs must be in (0, {MAX_EPOCHS}], got {self.epochs}")
        check_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_range("lora_r", self.lora_r, 1, MAX_LORA_RANK)
        check(self.lora_layers >= 0, f"lora_layers must be >= 0 (0: every block), got {self.lora_layers}")
        check_range("lora_alpha", self.lora_alpha, 1, MAX_LORA_ALPHA)
        check(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        check(self.max_steps == -1 or 1 <= self.max_steps <= MAX_STEPS,
              f"max_steps must be -1 (off) or in 1..{MAX_STEPS}, got {self.max_steps}")
        check_seed("seed", self.seed)
        check_range("max_length", self.max_length, 1, MAX_TRAIN_LENGTH)


@dataclass
class JudgeOptions(TrainingOptions):
    """The judge's training: its loss, the labels' balance, its targets, and the epoch it keeps.

    About 70% of questions are `cannot` for the embedded model; trained on the data as it comes,
    the judge predicts `cannot` for everything, so the labels are balanced (class weights in the
    loss by default). ``epochs`` is the most the judge trains for: with ``dev_fraction`` above 0 a
    label-stratified share of the train questions is held out and the epoch with the best
    ``select_by`` on it is kept (docs/experiments.md has the sweep behind the defaults).
    """

    epochs: float = option(3.0, "Training epochs (the most; with dev_fraction, the best epoch on the dev split is kept).")
    lora_layers: int = option(
        8, "Adapt only the top this-many transformer blocks (0, or at least the model's number of blocks: every "
        "block). Nothing below the lowest adapted block is trained, so the backward pass stops there: the judge trains 1.8x faster with the top 8 of SmolLM2's 30 "
        "blocks, and judged its dev split no worse (docs/experiments.md).",
    )
    loss: str = option("label", LOSS_HELP, choices=LOSSES)
    balance: str = option("weights", BALANCE_HELP, choices=BALANCES)
    label_targets: str = option("hard", LABEL_TARGETS_HELP, choices=LABEL_TARGETS)
    dev_fraction: float = option(
        0.2, "Share of the train questions held out (label-stratified, seeded) to choose the best epoch; 0 trains "
        "on every question for all epochs.",
    )
    select_by: str = option("auroc", SELECT_EPOCH_HELP, choices=SELECT_EPOCH_BY)
    min_label_share: float = option(0.05, MIN_LABEL_SHARE_HELP)
    readout: str = option("label", READOUT_HELP, choices=READOUTS)
    readout_c: float = option(
        1.0, "Inverse regularisation strength (scikit-learn's C; smaller is stronger) of the stacked readout's "
        "logistic regression (readout stacked).",
    )
    label_mass_weight: float = option(
        1.0, "Weight of the label loss's second term, which keeps the label words the model's greedy reply (their "
        "share of the whole vocabulary's probability at the label position near one); 0 leaves it out. Loss label only.",
    )
    taught_min_group: int = option(
        10, "With balance taught: the fewest taught and the fewest untaught examples a label needs before its "
        "weight is split evenly between them; a label with fewer in either group keeps its plain class weight.",
    )

    def validate(self) -> None:
        super().validate()
        check_choice("readout", self.readout, READOUTS)
        check_choice("loss", self.loss, LOSSES)
        check_choice("balance", self.balance, BALANCES)
        check_choice("label_targets", self.label_targets, LABEL_TARGETS)
        check_choice("select_by", self.select_by, SELECT_EPOCH_BY)
        check(self.loss == "label" or (self.balance not in ("weights", "taught") and self.label_targets == "hard"),
              "loss sft trains on the completion's tokens, which carry no class weights or soft targets; use "
              "loss label, or balance oversample/none with label_targets hard")
        check(0.0 <= self.dev_fraction < 1.0, f"dev_fraction must be in [0, 1), got {self.dev_fraction}")
        check(self.readout == "label" or self.dev_fraction > 0,
              "readout stacked is fitted on the dev split; set dev_fraction above 0 (e.g. 0.2) or use readout label")
        check(0.0 <= self.min_label_share <= 0.5,
              f"min_label_share must be in [0, 0.5] (no epoch can give each of two labels more than half the "
              f"questions), got {self.min_label_share}; the default is {JudgeOptions.min_label_share}")
        check_positive("readout_c", self.readout_c)
        check(math.isfinite(self.label_mass_weight) and self.label_mass_weight >= 0,
              f"label_mass_weight must be a finite number >= 0 (0 leaves the term out), got {self.label_mass_weight}")
        check(self.loss == "label" or self.label_mass_weight == JudgeOptions.label_mass_weight,
              f"label_mass_weight weighs a term of the label loss, and loss sft trains TRL's token loss; use loss "
              f"label, or leave label_mass_weight at {JudgeOptions.label_mass_weight}")
        check(self.taught_min_group >= 1,
              f"taught_min_group must be >= 1 (examples per taught and untaught group), got {self.taught_min_group}")


@dataclass
class TrainConfig(JudgeOptions):
    """Options of train_judgment: LoRA fine-tuning of the judge with TRL."""

    step: ClassVar[str] = "train_judgment"
    model: str = option(EMBEDDED, MODEL_HELP)
    data_run_id: str = option(
        "", "Run id of a finished build_judgment_data run: the judgment examples to train on.", required=True
    )
    init_adapter_run_id: str = option(
        "", "Run id of a finished train_judgment run whose adapter this training continues (judgment v2 continues "
        "judgment v1); its LoRA rank, alpha and layers must be this training's. Empty: a fresh adapter.",
    )

    def validate(self) -> None:
        resolve_model(self.model)
        check_run_id("data_run_id", self.data_run_id)
        check_run_id("init_adapter_run_id", self.init_adapter_run_id, optional=True)
        super().validate()
