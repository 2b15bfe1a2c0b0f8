"""The collect step's options: which questions, and how their answers are sampled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from know_thyself.config.base import StepConfig, check, option
from know_thyself.config.choices import (
    BATCH_HELP,
    DATASET_HELP,
    DTYPE_HELP,
    DTYPES,
    MAX_TRIALS,
    MODEL_HELP,
    SEED_HELP,
    check_choice,
    check_dataset,
    check_model_options,
    check_seed,
)
from know_thyself.data.labels import DEFAULT_SCHEME, SCHEMES
from know_thyself.data.questions import BUNDLED, SPLITS
from know_thyself.inference.models import EMBEDDED
from know_thyself.inference.sampling import BACKENDS


@dataclass
class CollectOptions(StepConfig):
    """The collect options a chain shares with the collect step: which questions, how answers are sampled."""

    step: ClassVar[str] = "collect"
    model: str = option(EMBEDDED, MODEL_HELP)
    dataset: str = option(BUNDLED, DATASET_HELP)
    # Sized for the embedded default on 2 CPU cores: about half the bundled train questions and
    # every bundled validation question.
    num_samples: int = option(500, "Train questions to sample (seeded): the judge's training questions; 0 for none "
                                   "(collect then needs splits=validation).")
    test_samples: int = option(205, "Validation questions to sample (seeded): the judge is reported on them; 0 for "
                                    "none (collect then needs splits=train).")
    num_trials: int = option(5, "Answers sampled per question; the ability label comes from how many are correct.")
    temperature: float = option(0.5, "Sampling temperature of the collected answers.")
    max_new_tokens: int = option(24, "Longest answer, in tokens.")
    inference_batch_size: int = option(32, BATCH_HELP)
    label_scheme: str = option(DEFAULT_SCHEME, "'three' (can/uncertain/cannot) or 'binary' (can/cannot).",
                               choices=tuple(SCHEMES))
    backend: str = option(
        "auto", "Sampler: 'auto', 'transformers' (fast decode loop), 'plain' (model.generate) or 'vllm' (optional "
        "package).", choices=BACKENDS,
    )
    tensor_parallel_size: int = option(1, "GPUs to shard the model over (backend vllm).")
    dtype: str = option("auto", DTYPE_HELP, choices=DTYPES)
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
        check_model_options(self.model, self.dtype, self.inference_batch_size)
        check_dataset("dataset", self.dataset)
        check_seed("seed", self.seed)
        check(self.sample_seed >= -1, f"sample_seed must be -1 (use seed) or >= 0, got {self.sample_seed}")
        check_seed("sample_seed", self.sample_seed, off=-1)
        check(self.tensor_parallel_size >= 1, f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        check(self.num_samples >= 0, f"num_samples must be >= 0, got {self.num_samples}")
        check(self.test_samples >= 0, f"test_samples must be >= 0, got {self.test_samples}")
        check(self.num_samples + self.test_samples >= 1,
               "num_samples and test_samples are both 0; give at least one question to collect")
        check(self.num_trials >= 1, f"num_trials must be >= 1, got {self.num_trials}")
        check(
            self.num_trials <= MAX_TRIALS,
            f"num_trials must be <= {MAX_TRIALS}, got {self.num_trials}; a few trials per question "
            "give the ability label",
        )
        check(
            0.0 < self.temperature <= 5.0,
            f"temperature must be in (0, 5], got {self.temperature}; sampling needs a positive temperature",
        )
        check(1 <= self.max_new_tokens <= 512, f"max_new_tokens must be in 1..512, got {self.max_new_tokens}")
        check_choice("label_scheme", self.label_scheme, tuple(SCHEMES))
        check_choice("backend", self.backend, BACKENDS)
        if self.backend == "vllm":
            from know_thyself.inference.sampling.vllm import available

            check(available(), "backend 'vllm' needs the vllm package, which is not installed here: pip install vllm "
                   "(GPU; see the README for the CPU build), or use backend auto")


@dataclass
class CollectConfig(CollectOptions):
    """Options of the collect step: sample and grade ``num_trials`` answers per question."""

    splits: str = option(
        "train,validation",
        "Splits to sample answers for: 'train,validation', or 'validation' alone for a second collect "
        "that only measures label noise (the other steps need both).",
        choices=SPLITS, many=True,
    )

    def validate(self) -> None:
        super().validate()
        sizes = {"train": ("num_samples", self.num_samples), "validation": ("test_samples", self.test_samples)}
        for split in self.split_list():
            name, size = sizes[split]
            check(size >= 1, f"splits includes {split} but {name} is 0; sample some {split} questions or leave "
                              f"{split} out of splits")

    def split_list(self) -> tuple[str, ...]:
        """The splits to collect, in the dataset's split order."""
        chosen = [part.strip() for part in self.splits.split(",")]
        check(
            bool(chosen) and all(part in SPLITS for part in chosen) and len(set(chosen)) == len(chosen),
            f"splits must be 'train,validation', 'train' or 'validation', got {self.splits!r}",
        )
        return tuple(split for split in SPLITS if split in chosen)
