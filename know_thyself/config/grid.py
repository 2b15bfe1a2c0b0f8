"""The sweep's options: judgment training variants over a grid, each scored on a dev split carved from train."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

from know_thyself.config.base import StepConfig, check, check_run_id, convert_value, option
from know_thyself.config.choices import (
    BALANCES,
    BATCH_HELP,
    DTYPE_HELP,
    DTYPES,
    LABEL_TARGETS,
    LORA_TARGETS,
    LOSSES,
    MIN_LABEL_SHARE_HELP,
    MODEL_HELP,
    PROBE_C_HELP,
    SELECT_EPOCH_BY,
    SELECT_EPOCH_HELP,
    check_choice,
    check_model_options,
    check_positive,
    check_seed,
)
from know_thyself.config.judgment import EvaluateConfig, JudgeOptions, TrainingOptions
from know_thyself.inference.models import EMBEDDED

# Dev metrics of the judge a sweep can select its best grid point by; the last three are errors
# (lower is better), the others scores (higher is better).
SELECT_BY_HIGHER = ("balanced_accuracy", "qwk", "macro_f1", "exact_match", "auroc", "prr")
SELECT_BY_LOWER = ("brier", "ece", "aurc")
# The label balances a sweep can try: 'taught' needs to know which questions Phase 2 taught, which a collect run
# does not say.
SWEEP_BALANCES = tuple(balance for balance in BALANCES if balance != "taught")
# Largest grid a sweep accepts: each point trains a judge.
MAX_GRID_POINTS = 64


def parse_grid_values(name: str, text: str, kind: type) -> list[Any]:
    """The values of one comma-separated grid option, converted to ``kind``, in the order given.

    Raises:
        ValueError: naming the option and the value when a value is empty, not a ``kind`` or repeated.
    """
    values = []
    for part in str(text).split(","):
        part = part.strip()
        check(part != "", f"{name} must be a comma-separated list of values, got {text!r}; e.g. {name}=3e-4,1e-3")
        values.append(convert_value(name, part, kind))
    check(len(set(values)) == len(values), f"{name} lists a value twice: {text!r}; give each value once")
    return values


@dataclass
class SweepConfig(StepConfig):
    """Options of the sweep: judgment training variants scored on a dev split carved from train.

    The grid options (``learning_rate``, ``epochs``, ``loss``, ``balance``, ``label_targets``, ``lora_r``,
    ``lora_targets``) are comma-separated lists; every combination is one grid point. Each point trains
    for its ``epochs``, is scored on dev after every epoch, and keeps its best epoch by ``epoch_select_by``
    (as train_judgment keeps its best epoch).
    """

    step: ClassVar[str] = "sweep"
    model: str = option(EMBEDDED, MODEL_HELP)
    collect_run_id: str = option(
        "", "Run id of a finished collect run: its train questions are split into fit and dev; its validation questions "
        "are never read.", required=True,
    )
    dev_fraction: float = option(
        0.2, "Share of the collect run's train questions held out as the dev split (label-stratified, seeded); the judges train on the rest."
    )
    learning_rate: str = option("3e-4,1e-3", "Learning rates to try, comma-separated.")
    epochs: str = option(str(JudgeOptions.epochs), "Training epochs to try (each the most: the best epoch is kept), comma-separated.")
    loss: str = option(JudgeOptions.loss, "The judge's losses to try, comma-separated.", choices=LOSSES, many=True)
    balance: str = option(JudgeOptions.balance, "Label balancing to try, comma-separated.", choices=SWEEP_BALANCES,
                          many=True)
    label_targets: str = option(JudgeOptions.label_targets, "Judge targets to try, comma-separated.",
                                choices=LABEL_TARGETS, many=True)
    lora_r: str = option(str(TrainingOptions.lora_r), "LoRA ranks to try, comma-separated.")
    lora_targets: str = option(TrainingOptions.lora_targets, "LoRA layers to try, comma-separated.",
                               choices=LORA_TARGETS, many=True)
    lora_alpha: int = option(TrainingOptions.lora_alpha, "LoRA alpha (scaling), the same for every grid point.")
    lora_dropout: float = option(TrainingOptions.lora_dropout, "LoRA dropout.")
    batch_size: int = option(TrainingOptions.batch_size, "Training batch size per device.")
    max_steps: int = option(TrainingOptions.max_steps, "Train each grid point for exactly this many optimiser steps in place of epochs (-1: train for epochs).")
    seed: int = option(TrainingOptions.seed, "Seed of the dev split and of every training.")
    epoch_select_by: str = option(JudgeOptions.select_by, SELECT_EPOCH_HELP, choices=SELECT_EPOCH_BY)
    min_label_share: float = option(JudgeOptions.min_label_share, MIN_LABEL_SHARE_HELP)
    label_mass_weight: float = option(
        JudgeOptions.label_mass_weight, "The label loss's mass weight, the same for every grid point; see "
        "train_judgment's label_mass_weight.",
    )
    max_length: int = option(TrainingOptions.max_length, "Longest training example in tokens; see train_judgment's max_length.")
    probe_c: float = option(EvaluateConfig.probe_c, PROBE_C_HELP)
    select_by: str = option(
        "balanced_accuracy",
        "Dev metric of the judge that picks the best grid point: balanced_accuracy, qwk, macro_f1, exact_match, "
        "auroc, prr (higher is better) or brier, ece, aurc (lower is better).",
        choices=SELECT_BY_HIGHER + SELECT_BY_LOWER,
    )
    inference_batch_size: int = option(32, BATCH_HELP)
    dtype: str = option("auto", DTYPE_HELP, choices=DTYPES)

    def validate(self) -> None:
        check_model_options(self.model, self.dtype, self.inference_batch_size)
        check_run_id("collect_run_id", self.collect_run_id)
        check(0.0 < self.dev_fraction < 1.0, f"dev_fraction must be in (0, 1), got {self.dev_fraction}")
        check_choice("epoch_select_by", self.epoch_select_by, SELECT_EPOCH_BY)
        check_seed("seed", self.seed)
        check_positive("probe_c", self.probe_c)
        check(
            self.select_by in SELECT_BY_HIGHER + SELECT_BY_LOWER,
            f"select_by must be one of {', '.join(SELECT_BY_HIGHER + SELECT_BY_LOWER)}, got {self.select_by!r}",
        )
        points = self.grid()
        check(
            len(points) <= MAX_GRID_POINTS,
            f"the grid has {len(points)} points, more than {MAX_GRID_POINTS}; list fewer values per option",
        )
        for point in points:  # every grid point is a valid training config
            self.training(point)

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the grid options' values, learning rate varying slowest."""
        axes = {
            "learning_rate": parse_grid_values("learning_rate", self.learning_rate, float),
            "epochs": parse_grid_values("epochs", self.epochs, float),
            "loss": parse_grid_values("loss", self.loss, str),
            "balance": parse_grid_values("balance", self.balance, str),
            "label_targets": parse_grid_values("label_targets", self.label_targets, str),
            "lora_r": parse_grid_values("lora_r", self.lora_r, int),
            "lora_targets": parse_grid_values("lora_targets", self.lora_targets, str),
        }
        for name, choices in (("loss", LOSSES), ("balance", BALANCES), ("label_targets", LABEL_TARGETS)):
            for value in axes[name]:
                check_choice(name, value, choices)
        check("taught" not in axes["balance"],
              "balance taught weighs taught and untaught questions apart, and the sweep reads a collect run, which "
              "does not say which questions Phase 2 taught; sweep weights, oversample or none, or train with "
              "train_judgment on a build_judgment_data run made with knowledge_data_run_id")
        return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]

    def training(self, point: dict[str, Any]) -> JudgeOptions:
        """The judge's training options at one grid point (validated as train_judgment validates them).

        The sweep carves its own dev split, so the point's training holds nothing out (``dev_fraction`` 0).
        """
        return JudgeOptions(
            **point, batch_size=self.batch_size, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
            max_steps=self.max_steps, seed=self.seed, dev_fraction=0.0, select_by=self.epoch_select_by,
            dtype=self.dtype, min_label_share=self.min_label_share, label_mass_weight=self.label_mass_weight,
            max_length=self.max_length,
        )
