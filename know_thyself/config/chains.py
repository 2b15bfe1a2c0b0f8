"""The chains' options: phase1 (judgment v1) and multiphase (all three phases).

A chain's config holds the options of the steps it runs and derives each step's config from
them (:meth:`~know_thyself.config.base.StepConfig.derive`). Every default comes from the step
configs, so a chain runs exactly what its steps run by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from know_thyself.config.base import check, option
from know_thyself.config.choices import (
    BALANCES,
    KNOWLEDGE_FRACTION_HELP,
    KNOWLEDGE_TARGETS,
    KNOWLEDGE_TARGETS_HELP,
    LORA_TARGETS,
    MAX_EPOCHS,
    PHASES,
    PROBE_C_HELP,
    READOUTS,
    STOP_WHEN_LEARNED_HELP,
    V2_STARTS,
    check_choice,
    check_positive,
    check_seed,
)
from know_thyself.config.collection import CollectConfig, CollectOptions
from know_thyself.config.judgment import EvaluateConfig, JudgeOptions, JudgmentDataConfig, TrainConfig
from know_thyself.config.knowledge import KnowledgeDataConfig, KnowledgeTrainConfig


@dataclass
class Phase1Config(JudgeOptions, CollectOptions):
    """Options of the phase1 chain: collect -> build -> train -> evaluate (the collect options, then the judge's training options)."""

    step: ClassVar[str] = "phase1"
    reference_sample_seed: int = option(
        -1,
        "Collect the validation questions a second time with this answer-sampling seed and report the "
        "label-noise ceiling (how well the two label sets agree); -1 skips it. Costs one more "
        "sampling pass over validation per phase.",
    )
    probe_c: float = option(EvaluateConfig.probe_c, PROBE_C_HELP)

    def validate(self) -> None:
        # The collect options and the training options, checked as the steps check them.
        CollectOptions.validate(self)
        JudgeOptions.validate(self)
        check_positive("probe_c", self.probe_c)
        # The judge learns from train questions and is reported on validation ones: both are needed.
        check(self.num_samples >= 1, f"num_samples must be >= 1, got {self.num_samples}; the judge trains on them")
        check(self.test_samples >= 1, f"test_samples must be >= 1, got {self.test_samples}; the judge is evaluated on them")
        check(
            self.reference_sample_seed >= -1,
            f"reference_sample_seed must be -1 (off) or >= 0, got {self.reference_sample_seed}",
        )
        check_seed("reference_sample_seed", self.reference_sample_seed, off=-1)
        check(
            self.reference_sample_seed == -1 or self.reference_sample_seed != self.answer_seed(),
            f"reference_sample_seed {self.reference_sample_seed} is the seed the answers are sampled with; "
            "choose another one (or -1 to skip the label-noise ceiling)",
        )

    def collect(self, model: str | None = None) -> CollectConfig:
        """The collect step's config (for ``model``, default this config's)."""
        return self.derive(CollectConfig, model=model or self.model)

    def reference_collect(self, model: str | None = None) -> CollectConfig:
        """The second collect of the validation questions, with ``reference_sample_seed`` (for the label-noise ceiling)."""
        return self.derive(
            CollectConfig, model=model or self.model, sample_seed=self.reference_sample_seed, splits="validation"
        )

    def evaluate(
        self, model: str, collect_run_id: str, adapter_run_id: str = "", reference_collect_run_id: str = "",
        baseline_adapter_run_id: str = "",
    ) -> EvaluateConfig:
        """The evaluate_judgment step's config for ``model`` on a collect run (optionally an adapter, a reference
        collect, another judge's adapter for the held-out test)."""
        return self.derive(
            EvaluateConfig, model=model, collect_run_id=collect_run_id, adapter_run_id=adapter_run_id,
            reference_collect_run_id=reference_collect_run_id, baseline_adapter_run_id=baseline_adapter_run_id,
        )

    def train(self, data_run_id: str, model: str | None = None, init_adapter_run_id: str = "") -> TrainConfig:
        """The train_judgment step's config on a build_judgment_data run (for ``model``, default this config's),
        continuing the adapter of ``init_adapter_run_id`` when given."""
        return self.derive(TrainConfig, model=model or self.model, data_run_id=data_run_id,
                           init_adapter_run_id=init_adapter_run_id)


@dataclass
class MultiphaseConfig(Phase1Config):
    """Options of the whole pipeline: Phase 1, Phase 2 (knowledge), Phase 3 (judgment v2)."""

    step: ClassVar[str] = "multiphase"
    knowledge_epochs: float = option(KnowledgeTrainConfig.epochs, "Epochs of knowledge (QA) training in Phase 2.")
    knowledge_stop_when_learned: float = option(KnowledgeTrainConfig.stop_when_learned, "Phase 2's "
                                                 "stop_when_learned: " + STOP_WHEN_LEARNED_HELP)
    knowledge_learning_rate: float = option(
        KnowledgeTrainConfig.learning_rate, "Learning rate of knowledge (QA) training in Phase 2."
    )
    knowledge_lora_targets: str = option(KnowledgeTrainConfig.lora_targets, "Phase 2's LoRA layers; see lora_targets.",
                                         choices=LORA_TARGETS)
    knowledge_targets: str = option(KnowledgeDataConfig.targets, "Phase 2's answer targets; " + KNOWLEDGE_TARGETS_HELP,
                                    choices=KNOWLEDGE_TARGETS)
    knowledge_fraction: float = option(KnowledgeDataConfig.fraction, KNOWLEDGE_FRACTION_HELP)
    holdout_fraction: float = option(
        JudgmentDataConfig.holdout_fraction, "Share of the taught train questions (and of the untaught) kept out of "
        "judgment v2's training: its held-out test."
    )
    readout_v2: str = option(
        "stacked", "How judgment v2's label is read (see readout): Phase 2's knowledge shows in the first answer "
        "token's probability, not in the judgment prompt, so by default v2 reads it too.", choices=READOUTS,
    )
    balance_v2: str = option(
        "weights", "Judgment v2's label balance (see balance); 'taught' also evens out taught and untaught questions "
        "within each label, so that being taught in Phase 2 says nothing about a question's label.", choices=BALANCES,
    )
    v2_start: str = option(
        "v1", "Where judgment v2's training starts: 'v1' continues judgment v1's adapter on Phase 3's labels (the "
        "judge keeps what it learned and adds what Phase 2 taught); 'fresh' trains a new adapter.", choices=V2_STARTS,
    )
    epochs_v2: float = option(
        1.0, "Judgment v2's training epochs (the most; see epochs). Continuing judgment v1, one epoch; the adapter as "
        "v1 left it is a candidate too (epoch 0), kept when the epoch does not beat it on the dev split.",
    )
    learning_rate_v2: float = option(
        1e-4, "Judgment v2's learning rate. Continuing judgment v1 (v2_start v1) at the rate that trained it from "
        "scratch (1e-3) throws the trained adapter off in its first steps (the loss 0.3 -> 4.5 by step 3); a tenth "
        "of it does not.",
    )
    phase: int = option(0, "Run phases up to this one (1, 2 or 3), reusing finished earlier steps; 0 runs all.",
                        choices=PHASES)

    def validate(self) -> None:
        super().validate()
        check(0 < self.knowledge_epochs <= MAX_EPOCHS,
              f"knowledge_epochs must be in (0, {MAX_EPOCHS}], got {self.knowledge_epochs}")
        check(
            0.0 < self.knowledge_learning_rate < 1.0,
            f"knowledge_learning_rate must be in (0, 1), got {self.knowledge_learning_rate}",
        )
        check(0.0 <= self.knowledge_stop_when_learned <= 1.0,
              f"knowledge_stop_when_learned must be in [0, 1] (0 trains every epoch), got {self.knowledge_stop_when_learned}")
        check_choice("knowledge_lora_targets", self.knowledge_lora_targets, LORA_TARGETS)
        check_choice("knowledge_targets", self.knowledge_targets, KNOWLEDGE_TARGETS)
        check(0.0 < self.knowledge_fraction <= 1.0, f"knowledge_fraction must be in (0, 1], got {self.knowledge_fraction}")
        check_choice("readout_v2", self.readout_v2, READOUTS)
        check_choice("balance_v2", self.balance_v2, BALANCES)
        check_choice("v2_start", self.v2_start, V2_STARTS)
        check(0 < self.epochs_v2 <= MAX_EPOCHS, f"epochs_v2 must be in (0, {MAX_EPOCHS}], got {self.epochs_v2}")
        check(0.0 < self.learning_rate_v2 < 1.0, f"learning_rate_v2 must be in (0, 1), got {self.learning_rate_v2}")
        check(self.loss == "label" or self.balance_v2 not in ("weights", "taught"),
              "loss sft trains on the completion's tokens, which carry no class weights; use loss label, or "
              "balance_v2 oversample/none")
        check(self.readout_v2 == "label" or self.dev_fraction > 0,
              "readout_v2 stacked is fitted on the dev split; set dev_fraction above 0 (e.g. 0.2) or use readout_v2 label")
        check(self.phase in (0, 1, 2, 3), f"phase must be 0 (all), 1, 2 or 3, got {self.phase}")

    def phase1(self) -> Phase1Config:
        """The Phase 1 part of this config (the judgment chain's options)."""
        return self.derive(Phase1Config)

    def phase3(self) -> Phase1Config:
        """The Phase 3 judgment chain's options: Phase 1's, with judgment v2's readout, balance, epochs and learning rate."""
        return self.derive(Phase1Config, readout=self.readout_v2, balance=self.balance_v2, epochs=self.epochs_v2,
                           learning_rate=self.learning_rate_v2)

    def knowledge_data(self, collect_run_id: str) -> KnowledgeDataConfig:
        """The build_knowledge_data step's config on Phase 1's collect run (targets restated by this config's model)."""
        return self.derive(KnowledgeDataConfig, collect_run_id=collect_run_id, targets=self.knowledge_targets,
                           model=self.model if self.knowledge_targets == "own_words" else "",
                           fraction=self.knowledge_fraction)

    def knowledge(self, data_run_id: str) -> KnowledgeTrainConfig:
        """The train_knowledge step's config on a build_knowledge_data run (``knowledge_epochs`` epochs)."""
        return self.derive(
            KnowledgeTrainConfig, data_run_id=data_run_id, epochs=self.knowledge_epochs,
            learning_rate=self.knowledge_learning_rate, lora_targets=self.knowledge_lora_targets,
            stop_when_learned=self.knowledge_stop_when_learned,
            lora_layers=KnowledgeTrainConfig.lora_layers,  # the judges' lora_layers is theirs alone: Phase 2 adapts every block
        )
