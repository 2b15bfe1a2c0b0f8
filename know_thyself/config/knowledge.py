"""Phase 2's options: the question-answer data, the knowledge training, the knowledge test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from know_thyself.config.base import StepConfig, check, check_run_id, option
from know_thyself.config.choices import (
    KNOWLEDGE_FRACTION_HELP,
    KNOWLEDGE_TARGETS,
    KNOWLEDGE_TARGETS_HELP,
    MODEL_HELP,
    STOP_WHEN_LEARNED,
    STOP_WHEN_LEARNED_HELP,
    check_choice,
    check_seed,
)
from know_thyself.config.judgment import TrainingOptions
from know_thyself.inference.models import EMBEDDED, resolve_model


@dataclass
class KnowledgeDataConfig(StepConfig):
    """Options of build_knowledge_data: the collect run whose train questions become QA examples.

    Measured defaults (docs/experiments.md): targets in the model's own words forget less of what
    was not taught than terse reference answers; teaching about a third of the train questions
    leaves Phase 3's judge both learned and unlearned questions.
    """

    step: ClassVar[str] = "build_knowledge_data"
    collect_run_id: str = option(
        "", "Run id of a finished collect run whose train questions become QA examples.", required=True
    )
    targets: str = option("own_words", KNOWLEDGE_TARGETS_HELP, choices=KNOWLEDGE_TARGETS)
    model: str = option("", "The model that restates the answers (targets own_words); default: the collect run's model.")
    fraction: float = option(0.35, KNOWLEDGE_FRACTION_HELP)
    seed: int = option(42, "Seed of the draw of the taught questions (with fraction below 1).")

    def validate(self) -> None:
        check_run_id("collect_run_id", self.collect_run_id)
        check_choice("targets", self.targets, KNOWLEDGE_TARGETS)
        check(0.0 < self.fraction <= 1.0, f"fraction must be in (0, 1], got {self.fraction}")
        check_seed("seed", self.seed)
        if self.model:
            resolve_model(self.model)


@dataclass
class KnowledgeTrainConfig(TrainingOptions):
    """Options of train_knowledge: LoRA SFT on QA pairs, then the adapter merged into the base.

    Six epochs teach the taught questions (0.32 -> 0.97 greedy accuracy on the default run) while
    validation accuracy moves by a few points (docs/experiments.md); ``epochs`` is the most, and the
    training stops after the first epoch that reproduced ``stop_when_learned`` of the examples.
    """

    step: ClassVar[str] = "train_knowledge"
    model: str = option(EMBEDDED, MODEL_HELP)
    data_run_id: str = option(
        "", "Run id of a finished build_knowledge_data run: the QA examples to train on.", required=True
    )
    epochs: float = 6.0  # the most: see stop_when_learned
    stop_when_learned: float = option(STOP_WHEN_LEARNED, STOP_WHEN_LEARNED_HELP)

    def validate(self) -> None:
        resolve_model(self.model)
        check_run_id("data_run_id", self.data_run_id)
        check(0.0 <= self.stop_when_learned <= 1.0,
              f"stop_when_learned must be in [0, 1] (0 trains every epoch), got {self.stop_when_learned}")
        super().validate()


@dataclass
class TestKnowledgeConfig(StepConfig):
    """Options of test_knowledge: the collect runs of the model before and after knowledge training."""

    step: ClassVar[str] = "test_knowledge"
    collect_before_run_id: str = option(
        "", "Run id of the collect run of the model before knowledge training.", required=True
    )
    collect_after_run_id: str = option(
        "", "Run id of the collect run of the model after knowledge training (the same questions, sampled alike).",
        required=True,
    )
    knowledge_data_run_id: str = option(
        "", "Run id of the build_knowledge_data run of the training; adds the accuracy on the taught and the "
        "untaught train questions apart (optional).",
    )

    def validate(self) -> None:
        check_run_id("collect_before_run_id", self.collect_before_run_id)
        check_run_id("collect_after_run_id", self.collect_after_run_id)
        check_run_id("knowledge_data_run_id", self.knowledge_data_run_id, optional=True)
