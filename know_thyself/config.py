"""One typed, validated configuration per pipeline step.

Each step's options live in a dataclass; each field carries its command-line help in its
metadata (:func:`option`), so the help is written once, beside the field. A subclass that only
changes a default inherits the help (:meth:`StepConfig.help`). :meth:`StepConfig.from_options`
rejects unknown keys, converts types, and every check names the field and the fix, before any
model is loaded or any run is opened. :meth:`StepConfig.params` gives the strings that are logged
as MLflow parameters and compared by the step cache. A chain derives each step's config from its
own with :meth:`StepConfig.derive`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar, get_type_hints

from know_thyself.labels import SCHEMES
from know_thyself.models import resolve_model

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
BACKENDS = ("auto", "transformers", "plain", "vllm")
DTYPES = ("auto", "bfloat16", "float16", "float32")
BALANCES = ("none", "oversample")
BALANCE_HELP = (
    "Judgment training data: 'oversample' (rarer ability labels repeated up to the most common one's count) or 'none'."
)
# Ability labels need only a handful of trials per question (the default is 5); far more only
# multiplies sampling time and memory.
MAX_TRIALS = 100
_Config = TypeVar("_Config", bound="StepConfig")


def option(default: Any, help: str) -> Any:  # noqa: A002 - the word click uses
    """A config field with its default and its command-line help."""
    return field(default=default, metadata={"help": help})


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def check_run_id(name: str, value: str, optional: bool = False) -> None:
    """Validate the form of an upstream run id option (32 hex digits)."""
    if optional and value == "":
        return
    _check(
        bool(_RUN_ID.match(value)),
        f"{name} must be an MLflow run id (32 hex digits), got {value!r}; "
        "copy it from the MLflow UI or the upstream step's output",
    )


@dataclass
class StepConfig:
    """Base class: conversion, unknown-key rejection and parameter export."""

    step: ClassVar[str] = ""

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> StepConfig:
        """Build a config from a mapping of option names to values (strings are converted)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown option(s) for {cls.step}: {', '.join(unknown)}; "
                f"accepted: {', '.join(sorted(known))}"
            )
        hints = get_type_hints(cls)
        converted = {}
        for key, value in options.items():
            converted[key] = _convert(key, value, hints[key])
        return cls(**converted)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and the fix."""

    def params(self) -> dict[str, str]:
        """Every field as a string, the form MLflow stores parameters in."""
        return {k: str(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of field ``name``: its own, or that of the class it overrides a default of."""
        for klass in cls.__mro__:
            declared = getattr(klass, "__dataclass_fields__", {}).get(name)
            if declared is not None and declared.metadata.get("help"):
                return declared.metadata["help"]
        return ""

    def derive(self, target: type[_Config], **values: Any) -> _Config:
        """The config of step ``target`` implied by this one: the fields they share, then ``values``.

        The result is built (and so validated) once; a value ``target`` needs and this config does
        not hold (an upstream run id) must be given in ``values``.
        """
        shared = {f.name: getattr(self, f.name) for f in fields(target) if f.name in self.__dataclass_fields__}
        return target(**{**shared, **values})


def _convert(key: str, value: Any, kind: Any) -> Any:
    if kind is bool and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes"):
            return True
        if lowered in ("0", "false", "no"):
            return False
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"{key} must be a number ({kind.__name__}), got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number ({kind.__name__}), got {value!r}") from None
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{key} must be a whole number, got {value!r}")
        if not math.isfinite(number):
            raise ValueError(f"{key} must be a finite number, got {value!r}")
        return number
    if kind is str:
        return "" if value is None else str(value)
    return value


MODEL_HELP = "Model: 'smollm2-135m-instruct' (embedded), a local checkpoint folder, models:/name/version, or a Hub id."
BATCH_HELP = "Questions per batch when sampling or judging."
DATASET_HELP = (
    "Questions: 'bundled', 'trivia_qa' (Hub, online), a folder with train/validation .jsonl/.json/.parquet/.csv, "
    "or one such file (a pool that train and validation questions are drawn from without overlap)."
)
DTYPE_HELP = "Inference precision: 'auto' (bf16 where the hardware is fast at it), 'bfloat16', 'float16', 'float32'."


def _common_model_checks(model: str, dtype: str, inference_batch_size: int) -> None:
    resolve_model(model)
    _check(dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    _check(
        inference_batch_size >= 1,
        f"inference_batch_size must be >= 1, got {inference_batch_size}",
    )


SEED_HELP = "Seed for question sampling, answer sampling (unless sample_seed is set) and training."


@dataclass
class CollectOptions(StepConfig):
    """The collect options a chain shares with the collect step: which questions, how answers are sampled."""

    step: ClassVar[str] = "collect"
    model: str = option("smollm2-135m-instruct", MODEL_HELP)
    dataset: str = option(
        "bundled",
        DATASET_HELP,
    )
    num_samples: int = option(200, "Train questions to sample (seeded); 0 for none (collect then needs splits=validation).")
    test_samples: int = option(100, "Validation questions to sample (seeded); 0 for none (collect then needs splits=train).")
    num_trials: int = option(5, "Answers sampled per question; the ability label comes from how many are correct.")
    temperature: float = option(0.5, "Sampling temperature of the collected answers.")
    max_new_tokens: int = option(24, "Longest answer, in tokens.")
    inference_batch_size: int = option(32, BATCH_HELP)
    label_scheme: str = option("three", "'three' (can/uncertain/cannot) or 'binary' (can/cannot).")
    backend: str = option(
        "auto", "Sampler: 'auto', 'transformers' (fast decode loop), 'plain' (model.generate) or 'vllm' (optional package)."
    )
    tensor_parallel_size: int = option(1, "GPUs to shard the model over (backend vllm).")
    dtype: str = option("auto", DTYPE_HELP)
    seed: int = option(42, SEED_HELP)
    sample_seed: int = option(
        -1,
        "Seed of the answer sampling alone; -1 (default) uses seed. Collecting the same questions again "
        "with another sample_seed measures how noisy the ability labels are.",
    )

    def answer_seed(self) -> int:
        """The seed the answers are sampled with: ``sample_seed``, or ``seed`` when it is -1."""
        return self.seed if self.sample_seed == -1 else self.sample_seed

    def validate(self) -> None:
        _common_model_checks(self.model, self.dtype, self.inference_batch_size)
        _check(self.sample_seed >= -1, f"sample_seed must be -1 (use seed) or >= 0, got {self.sample_seed}")
        _check(self.tensor_parallel_size >= 1, f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        _check(self.num_samples >= 0, f"num_samples must be >= 0, got {self.num_samples}")
        _check(self.test_samples >= 0, f"test_samples must be >= 0, got {self.test_samples}")
        _check(self.num_samples + self.test_samples >= 1,
               "num_samples and test_samples are both 0; give at least one question to collect")
        _check(self.num_trials >= 1, f"num_trials must be >= 1, got {self.num_trials}")
        _check(
            self.num_trials <= MAX_TRIALS,
            f"num_trials must be <= {MAX_TRIALS}, got {self.num_trials}; a few trials per question "
            "give the ability label (the default is 5)",
        )
        _check(
            0.0 < self.temperature <= 5.0,
            f"temperature must be in (0, 5], got {self.temperature}; sampling needs a positive temperature",
        )
        _check(1 <= self.max_new_tokens <= 512, f"max_new_tokens must be in 1..512, got {self.max_new_tokens}")
        _check(self.label_scheme in SCHEMES, f"label_scheme must be one of {sorted(SCHEMES)}, got {self.label_scheme!r}")
        _check(self.backend in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.backend == "vllm":
            from know_thyself.vllm_backend import available

            _check(available(), "backend 'vllm' needs the vllm package, which is not installed here: pip install vllm "
                   "(GPU; see the README for the CPU build), or use backend auto")


@dataclass
class CollectConfig(CollectOptions):
    """Options of the collect step: sample and grade ``num_trials`` answers per question."""

    splits: str = option(
        "train,validation",
        "Splits to sample answers for: 'train,validation', or 'validation' alone for a second collect "
        "that only measures label noise (the other steps need both).",
    )

    def validate(self) -> None:
        super().validate()
        sizes = {"train": ("num_samples", self.num_samples), "validation": ("test_samples", self.test_samples)}
        for split in self.split_list():
            name, size = sizes[split]
            _check(size >= 1, f"splits includes {split} but {name} is 0; sample some {split} questions or leave "
                              f"{split} out of splits")

    def split_list(self) -> tuple[str, ...]:
        """The splits to collect, in the dataset's split order."""
        chosen = [part.strip() for part in self.splits.split(",")]
        known = ("train", "validation")
        _check(
            bool(chosen) and all(part in known for part in chosen) and len(set(chosen)) == len(chosen),
            f"splits must be 'train,validation', 'train' or 'validation', got {self.splits!r}",
        )
        return tuple(split for split in known if split in chosen)


@dataclass
class JudgmentDataConfig(StepConfig):
    """Options of build_judgment_data: which collect run to turn into SFT examples."""

    step: ClassVar[str] = "build_judgment_data"
    collect_run_id: str = option("", "Run id of a finished collect run whose labels to turn into examples.")

    def validate(self) -> None:
        check_run_id("collect_run_id", self.collect_run_id)


@dataclass
class EvaluateConfig(StepConfig):
    """Options of evaluate_judgment: a model, an optional adapter, and the labelled questions."""

    step: ClassVar[str] = "evaluate_judgment"
    model: str = option("smollm2-135m-instruct", MODEL_HELP)
    collect_run_id: str = option("", "Run id of a finished collect run: the labelled questions to judge.")
    adapter_run_id: str = option(
        "", "Run id of a finished train_judgment run whose adapter to evaluate (leave it out for the bare model)."
    )
    inference_batch_size: int = option(32, BATCH_HELP)
    dtype: str = option("auto", DTYPE_HELP)
    reference_collect_run_id: str = option(
        "",
        "Run id of a second collect run of the same questions with another sample_seed: adds the "
        "label_noise_ceiling row, its labels used as predictions of the first (leave it out to skip).",
    )

    def validate(self) -> None:
        _common_model_checks(self.model, self.dtype, self.inference_batch_size)
        check_run_id("collect_run_id", self.collect_run_id)
        check_run_id("adapter_run_id", self.adapter_run_id, optional=True)
        check_run_id("reference_collect_run_id", self.reference_collect_run_id, optional=True)
        _check(
            self.reference_collect_run_id != self.collect_run_id,
            "reference_collect_run_id is the collect_run_id itself; pass a second collect of the same "
            "questions made with another sample_seed",
        )


# What Phase 2's QA examples teach (know_thyself.knowledge.restate_in_own_words).
KNOWLEDGE_TARGETS = ("reference", "own_words")
KNOWLEDGE_TARGETS_HELP = (
    "'reference' (the reference answer as it stands) or 'own_words' (the model's own sentence stating "
    "the reference answer, where the grader accepts it; it forgets less of what it was not taught)."
)

KNOWLEDGE_FRACTION_HELP = (
    "Share of the collect run's train questions that Phase 2 teaches (a seeded draw); the rest stay "
    "untaught, so that Phase 3's judge sees questions the model learned beside ones it did not."
)

# Which linear layers of each transformer block get LoRA adapters: the attention projections, or
# those and the MLP projections too (where much of a model's factual recall is stored).
LORA_TARGETS = ("attention", "attention_mlp")
LORA_TARGETS_HELP = (
    "Layers that get LoRA adapters: 'attention' (q/k/v/o projections) or 'attention_mlp' (also the MLP's gate/up/down)."
)


@dataclass
class TrainingOptions(StepConfig):
    """LoRA SFT options shared by the training steps and the chains (the original design's defaults)."""

    learning_rate: float = option(1e-4, "LoRA learning rate.")
    epochs: float = option(1.0, "Training epochs.")
    batch_size: int = option(8, "Training batch size per device.")
    lora_r: int = option(16, "LoRA rank.")
    lora_alpha: int = option(32, "LoRA alpha (scaling).")
    lora_dropout: float = option(0.05, "LoRA dropout.")
    lora_targets: str = option("attention", LORA_TARGETS_HELP)
    max_steps: int = option(-1, "Stop training after this many optimiser steps (-1: train for all epochs).")
    seed: int = option(42, SEED_HELP)

    def validate(self) -> None:
        _check(
            self.lora_targets in LORA_TARGETS,
            f"lora_targets must be one of {', '.join(LORA_TARGETS)}, got {self.lora_targets!r}",
        )
        _check(
            0.0 < self.learning_rate < 1.0,
            f"learning_rate must be in (0, 1), got {self.learning_rate}; the default is 1e-4",
        )
        _check(self.epochs > 0, f"epochs must be > 0, got {self.epochs}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _check(self.lora_r >= 1, f"lora_r must be >= 1, got {self.lora_r}")
        _check(self.lora_alpha >= 1, f"lora_alpha must be >= 1, got {self.lora_alpha}")
        _check(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        _check(self.max_steps == -1 or self.max_steps >= 1, f"max_steps must be -1 (off) or >= 1, got {self.max_steps}")


@dataclass
class TrainConfig(TrainingOptions):
    """Options of train_judgment: LoRA supervised fine-tuning with TRL."""

    step: ClassVar[str] = "train_judgment"
    model: str = option("smollm2-135m-instruct", MODEL_HELP)
    data_run_id: str = option("", "Run id of a finished build_judgment_data run: the judgment examples to train on.")
    # About 70% of questions are `cannot` for the embedded model; trained on the data as it
    # comes, the judge predicts `cannot` for everything. Oversampling the rarer labels to parity
    # is the measured default (see README, "Defaults").
    balance: str = option("oversample", BALANCE_HELP)

    def validate(self) -> None:
        resolve_model(self.model)
        check_run_id("data_run_id", self.data_run_id)
        _check(self.balance in BALANCES, f"balance must be one of {', '.join(BALANCES)}, got {self.balance!r}")
        super().validate()


@dataclass
class Phase1Config(TrainingOptions, CollectOptions):
    """Options of the phase1 chain: collect -> build -> train -> evaluate.

    The collect options, then the training options; defaults that differ from the steps' are
    set here.
    """

    step: ClassVar[str] = "phase1"
    # Sized for the embedded default on 2 CPU cores: about half the bundled train questions (the
    # judge learns more from more distinct questions than from more epochs; see README,
    # "Presets and defaults") and every bundled validation question.
    num_samples: int = option(500, "Train questions to sample (seeded): the judge's training questions.")
    test_samples: int = option(205, "Validation questions to sample (seeded): the judge is reported on them.")
    # Tuned for the embedded default (a 135M model, a few hundred examples, 2 CPU cores): the
    # original design's 1e-4 leaves the judge untrained at this scale. The step entry points keep
    # the original defaults; presets/ holds the original headline run.
    learning_rate: float = option(1e-3, "LoRA learning rate of the judgment training.")
    epochs: float = option(1.0, "Epochs of judgment training.")
    # Chosen on a dev split (README, "Choosing defaults on a dev split"): adapting the MLP
    # projections too lifted dev QWK from 0.20 to 0.36 and AUROC from 0.63 to 0.71.
    lora_targets: str = option("attention_mlp", "Judgment training's LoRA layers: " + LORA_TARGETS_HELP)
    balance: str = option("oversample", BALANCE_HELP)
    reference_sample_seed: int = option(
        -1,
        "Collect the validation questions a second time with this answer-sampling seed and report the "
        "label-noise ceiling (how well the two label sets agree); -1 (default) skips it. Costs one more "
        "sampling pass over validation per phase.",
    )

    def validate(self) -> None:
        # The collect options and the training options, checked as the steps check them.
        CollectOptions.validate(self)
        TrainingOptions.validate(self)
        # The judge learns from train questions and is reported on validation ones: both are needed.
        _check(self.num_samples >= 1, f"num_samples must be >= 1, got {self.num_samples}; the judge trains on them")
        _check(self.test_samples >= 1, f"test_samples must be >= 1, got {self.test_samples}; the judge is evaluated on them")
        _check(
            self.reference_sample_seed >= -1,
            f"reference_sample_seed must be -1 (off) or >= 0, got {self.reference_sample_seed}",
        )
        _check(
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
        self, model: str, collect_run_id: str, adapter_run_id: str = "", reference_collect_run_id: str = ""
    ) -> EvaluateConfig:
        """The evaluate_judgment step's config for ``model`` on a collect run (optionally an adapter, a reference collect)."""
        return self.derive(
            EvaluateConfig, model=model, collect_run_id=collect_run_id, adapter_run_id=adapter_run_id,
            reference_collect_run_id=reference_collect_run_id,
        )

    def train(self, data_run_id: str, model: str | None = None) -> TrainConfig:
        """The train_judgment step's config on a build_judgment_data run (for ``model``, default this config's)."""
        return self.derive(TrainConfig, model=model or self.model, data_run_id=data_run_id)


@dataclass
class KnowledgeDataConfig(StepConfig):
    """Options of build_knowledge_data: the collect run whose train questions become QA examples."""

    step: ClassVar[str] = "build_knowledge_data"
    collect_run_id: str = option("", "Run id of a finished collect run whose train questions become QA examples.")
    targets: str = option("reference", KNOWLEDGE_TARGETS_HELP)
    model: str = option("", "The model that restates the answers (targets own_words); default: the collect run's model.")
    fraction: float = option(1.0, KNOWLEDGE_FRACTION_HELP)
    seed: int = option(42, "Seed of the draw of the taught questions (with fraction below 1).")

    def validate(self) -> None:
        check_run_id("collect_run_id", self.collect_run_id)
        _check(self.targets in KNOWLEDGE_TARGETS,
               f"targets must be one of {', '.join(KNOWLEDGE_TARGETS)}, got {self.targets!r}")
        _check(0.0 < self.fraction <= 1.0, f"fraction must be in (0, 1], got {self.fraction}")
        if self.model:
            resolve_model(self.model)


@dataclass
class KnowledgeTrainConfig(TrainingOptions):
    """Options of train_knowledge: LoRA SFT on QA pairs (5 epochs by default), then merge."""

    step: ClassVar[str] = "train_knowledge"
    model: str = option("smollm2-135m-instruct", MODEL_HELP)
    data_run_id: str = option("", "Run id of a finished build_knowledge_data run: the QA examples to train on.")
    epochs: float = 5.0

    def validate(self) -> None:
        resolve_model(self.model)
        check_run_id("data_run_id", self.data_run_id)
        super().validate()


@dataclass
class TestKnowledgeConfig(StepConfig):
    """Options of test_knowledge: the collect runs of the model before and after knowledge training."""

    step: ClassVar[str] = "test_knowledge"
    collect_before_run_id: str = option("", "Run id of the collect run of the model before knowledge training.")
    collect_after_run_id: str = option(
        "", "Run id of the collect run of the model after knowledge training (the same questions, sampled alike)."
    )
    knowledge_data_run_id: str = option(
        "", "Run id of the build_knowledge_data run of the training; adds the accuracy on the taught and the "
        "untaught train questions apart (optional).",
    )

    def validate(self) -> None:
        check_run_id("collect_before_run_id", self.collect_before_run_id)
        check_run_id("collect_after_run_id", self.collect_after_run_id)
        check_run_id("knowledge_data_run_id", self.knowledge_data_run_id, optional=True)


@dataclass
class MultiphaseConfig(Phase1Config):
    """Options of the whole pipeline: Phase 1, Phase 2 (knowledge), Phase 3 (judgment v2)."""

    step: ClassVar[str] = "multiphase"
    knowledge_epochs: float = option(2.0, "Epochs of knowledge (QA) training in Phase 2.")
    knowledge_learning_rate: float = option(1e-3, "Learning rate of knowledge (QA) training in Phase 2.")
    knowledge_lora_targets: str = option("attention_mlp", "Phase 2's LoRA layers; see lora_targets.")
    knowledge_targets: str = option("reference", "Phase 2's answer targets; " + KNOWLEDGE_TARGETS_HELP)
    knowledge_fraction: float = option(1.0, KNOWLEDGE_FRACTION_HELP)
    phase: int = option(0, "Run phases up to this one (1, 2 or 3), reusing finished earlier steps; 0 runs all.")

    def validate(self) -> None:
        super().validate()
        _check(self.knowledge_epochs > 0, f"knowledge_epochs must be > 0, got {self.knowledge_epochs}")
        _check(
            0.0 < self.knowledge_learning_rate < 1.0,
            f"knowledge_learning_rate must be in (0, 1), got {self.knowledge_learning_rate}",
        )
        _check(
            self.knowledge_lora_targets in LORA_TARGETS,
            f"knowledge_lora_targets must be one of {', '.join(LORA_TARGETS)}, got {self.knowledge_lora_targets!r}",
        )
        _check(self.knowledge_targets in KNOWLEDGE_TARGETS,
               f"knowledge_targets must be one of {', '.join(KNOWLEDGE_TARGETS)}, got {self.knowledge_targets!r}")
        _check(0.0 < self.knowledge_fraction <= 1.0, f"knowledge_fraction must be in (0, 1], got {self.knowledge_fraction}")
        _check(self.phase in (0, 1, 2, 3), f"phase must be 0 (all), 1, 2 or 3, got {self.phase}")

    def phase1(self) -> Phase1Config:
        """The Phase 1 part of this config (the judgment chain's options)."""
        return self.derive(Phase1Config)

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
        )


REGISTRY_URI = re.compile(r"^models:/([^/@,\s]+)(?:/(\d+)|@([\w\-]+))$")
JUDGE_URI_FORMS = "models:/judgment_v2/<version> or models:/judgment_v2@<alias> (judgment_v1 likewise)"


@dataclass
class EvaluateRegisteredConfig(StepConfig):
    """Options of evaluate_registered: a registered judge (or two) scored on a question set of your choice."""

    step: ClassVar[str] = "evaluate_registered"
    model_uri: str = option(
        "models:/judgment_v2@current",
        "The registered judge: models:/<judgment_v1|judgment_v2>/<version> or @<alias>; two, comma-separated, "
        "are scored on the same questions and compared.",
    )
    dataset: str = option(
        "bundled",
        "Questions: 'bundled', 'trivia_qa' (Hub, online), a folder with train/validation files, or one "
        ".jsonl/.json/.parquet/.csv file (TriviaQA's nested or flat schema).",
    )
    split: str = option("validation", "Split of a named dataset or folder to score ('train' or 'validation'); "
                        "a single file is scored whole as the validation split.")
    num_questions: int = option(0, "Questions to score (a seeded sample); 0 scores them all.")
    num_trials: int = option(0, "Answers sampled per question for the ground-truth labels; 0 uses the judge's training value.")
    inference_batch_size: int = option(32, BATCH_HELP)
    dtype: str = option("auto", DTYPE_HELP)
    seed: int = option(42, "Seed for sampling the questions and the answers.")

    def validate(self) -> None:
        uris = self.uris()
        _check(1 <= len(uris) <= 2 and all(uris),
               f"model_uri must name one registered judge or two separated by a comma, got {self.model_uri!r}")
        for uri in uris:
            _check(bool(REGISTRY_URI.match(uri)),
                   f"model_uri {uri!r} is not a registry URI; give {JUDGE_URI_FORMS}")
        _check(len(set(uris)) == len(uris), f"model_uri names {uris[0]!r} twice; give two different versions to compare")
        _check(self.split in ("train", "validation"), f"split must be 'train' or 'validation', got {self.split!r}")
        _check(self.num_questions >= 0, f"num_questions must be >= 0 (0: all), got {self.num_questions}")
        _check(0 <= self.num_trials <= MAX_TRIALS,
               f"num_trials must be in 0..{MAX_TRIALS} (0: the judge's training value), got {self.num_trials}")
        _check(self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        _check(self.inference_batch_size >= 1, f"inference_batch_size must be >= 1, got {self.inference_batch_size}")

    def uris(self) -> list[str]:
        """The judge URIs ``model_uri`` names, in the order given."""
        return [part.strip() for part in self.model_uri.split(",")]
# Dev metrics of the judge a sweep can select its best grid point by; the last three are errors
# (lower is better), the others scores (higher is better).
SELECT_BY_HIGHER = ("balanced_accuracy", "qwk", "macro_f1", "exact_match", "auroc", "prr")
SELECT_BY_LOWER = ("brier", "ece", "aurc")
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
        _check(part != "", f"{name} must be a comma-separated list of values, got {text!r}; e.g. {name}=3e-4,1e-3")
        values.append(_convert(name, part, kind))
    _check(len(set(values)) == len(values), f"{name} lists a value twice: {text!r}; give each value once")
    return values


@dataclass
class SweepConfig(StepConfig):
    """Options of the sweep: judgment training variants scored on a dev split carved from train.

    The grid options (``learning_rate``, ``epochs``, ``balance``, ``lora_r``, ``lora_targets``) are comma-separated
    lists; every combination is one grid point.
    """

    step: ClassVar[str] = "sweep"
    model: str = option("smollm2-135m-instruct", MODEL_HELP)
    collect_run_id: str = option(
        "", "Run id of a finished collect run: its train questions are split into fit and dev; its validation questions are never read."
    )
    dev_fraction: float = option(
        0.2, "Share of the collect run's train questions held out as the dev split (label-stratified, seeded); the judges train on the rest."
    )
    learning_rate: str = option("3e-4,1e-3", "Learning rates to try, comma-separated.")
    epochs: str = option("1,2", "Training epochs to try, comma-separated.")
    balance: str = option("oversample", "Judgment data balancing to try, comma-separated: none, oversample.")
    lora_r: str = option("16", "LoRA ranks to try, comma-separated.")
    lora_targets: str = option("attention_mlp", "LoRA layers to try, comma-separated: attention, attention_mlp.")
    lora_alpha: int = option(32, "LoRA alpha (scaling), the same for every grid point.")
    lora_dropout: float = option(0.05, "LoRA dropout.")
    batch_size: int = option(8, "Training batch size per device.")
    max_steps: int = option(-1, "Stop each training after this many optimiser steps (-1: train for all epochs).")
    seed: int = option(42, "Seed of the dev split and of every training.")
    select_by: str = option(
        "balanced_accuracy",
        "Dev metric of the judge that picks the best grid point: balanced_accuracy, qwk, macro_f1, exact_match, "
        "auroc, prr (higher is better) or brier, ece, aurc (lower is better).",
    )
    inference_batch_size: int = option(32, BATCH_HELP)
    dtype: str = option("auto", DTYPE_HELP)

    def validate(self) -> None:
        _common_model_checks(self.model, self.dtype, self.inference_batch_size)
        check_run_id("collect_run_id", self.collect_run_id)
        _check(0.0 < self.dev_fraction < 1.0, f"dev_fraction must be in (0, 1), got {self.dev_fraction}; the default is 0.2")
        _check(
            self.select_by in SELECT_BY_HIGHER + SELECT_BY_LOWER,
            f"select_by must be one of {', '.join(SELECT_BY_HIGHER + SELECT_BY_LOWER)}, got {self.select_by!r}",
        )
        points = self.grid()
        _check(
            len(points) <= MAX_GRID_POINTS,
            f"the grid has {len(points)} points, more than {MAX_GRID_POINTS}; list fewer values per option",
        )
        for point in points:  # every grid point is a valid training config
            self.training(point)

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the grid options' values, learning rate varying slowest."""
        import itertools

        axes = {
            "learning_rate": parse_grid_values("learning_rate", self.learning_rate, float),
            "epochs": parse_grid_values("epochs", self.epochs, float),
            "balance": parse_grid_values("balance", self.balance, str),
            "lora_r": parse_grid_values("lora_r", self.lora_r, int),
            "lora_targets": parse_grid_values("lora_targets", self.lora_targets, str),
        }
        for value in axes["balance"]:
            _check(value in BALANCES, f"balance values must be among {', '.join(BALANCES)}, got {value!r}")
        return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]

    def training(self, point: dict[str, Any]) -> TrainingOptions:
        """The training options of one grid point (validated as train_judgment validates them)."""
        return TrainingOptions(
            learning_rate=point["learning_rate"], epochs=point["epochs"], lora_r=point["lora_r"],
            lora_targets=point["lora_targets"], batch_size=self.batch_size, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
            max_steps=self.max_steps, seed=self.seed,
        )


# The config of each MLproject entry point (``main`` is multiphase under MLflow's default name).
ENTRY_POINT_CONFIGS: dict[str, type[StepConfig]] = {
    "collect": CollectConfig,
    "build_judgment_data": JudgmentDataConfig,
    "evaluate_judgment": EvaluateConfig,
    "train_judgment": TrainConfig,
    "phase1": Phase1Config,
    "build_knowledge_data": KnowledgeDataConfig,
    "train_knowledge": KnowledgeTrainConfig,
    "test_knowledge": TestKnowledgeConfig,
    "evaluate_registered": EvaluateRegisteredConfig,
    "multiphase": MultiphaseConfig,
    "main": MultiphaseConfig,
    "sweep": SweepConfig,
}
