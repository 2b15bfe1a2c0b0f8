"""The options of evaluate_registered: a registered judge (or two) scored on a question set of the user's choice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from know_thyself.config.base import StepConfig, check, option
from know_thyself.config.choices import (
    BATCH_HELP,
    DTYPE_HELP,
    DTYPES,
    MAX_BATCH_SIZE,
    MAX_TRIALS,
    PROBE_C_HELP,
    check_choice,
    check_dataset,
    check_positive,
    check_range,
    check_seed,
)
from know_thyself.config.judgment import EvaluateConfig
from know_thyself.data.questions import BUNDLED, SPLITS
from know_thyself.inference.models import REGISTRY_URI

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
        BUNDLED,
        "Questions: 'bundled', 'trivia_qa' (Hub, online), a folder with train/validation files, or one "
        ".jsonl/.json/.parquet/.csv file (TriviaQA's nested or flat schema).",
    )
    split: str = option("validation", "Split of a named dataset or folder to score ('train' or 'validation'); "
                        "a single file is scored whole as the validation split.", choices=SPLITS)
    num_questions: int = option(0, "Questions to score (a seeded sample); 0 scores them all.")
    num_trials: int = option(0, "Answers sampled per question for the ground-truth labels; 0 uses the judge's training value.")
    inference_batch_size: int = option(32, BATCH_HELP)
    dtype: str = option("auto", DTYPE_HELP, choices=DTYPES)
    seed: int = option(42, "Seed for sampling the questions and the answers.")
    probe_c: float = option(EvaluateConfig.probe_c, PROBE_C_HELP)

    def validate(self) -> None:
        uris = self.uris()
        check(1 <= len(uris) <= 2 and all(uris),
               f"model_uri must name one registered judge or two separated by a comma, got {self.model_uri!r}")
        for uri in uris:
            check(bool(REGISTRY_URI.match(uri)),
                   f"model_uri {uri!r} is not a registry URI; give {JUDGE_URI_FORMS}")
        check(len(set(uris)) == len(uris), f"model_uri names {uris[0]!r} twice; give two different versions to compare")
        check_dataset("dataset", self.dataset)
        check(self.split in SPLITS, f"split must be 'train' or 'validation', got {self.split!r}")
        check(self.num_questions >= 0, f"num_questions must be >= 0 (0: all), got {self.num_questions}")
        check(0 <= self.num_trials <= MAX_TRIALS,
               f"num_trials must be in 0..{MAX_TRIALS} (0: the judge's training value), got {self.num_trials}")
        check_choice("dtype", self.dtype, DTYPES)
        check(self.inference_batch_size >= 1, f"inference_batch_size must be >= 1, got {self.inference_batch_size}")
        check_range("inference_batch_size", self.inference_batch_size, 1, MAX_BATCH_SIZE)
        check_seed("seed", self.seed)
        check_positive("probe_c", self.probe_c)

    def uris(self) -> list[str]:
        """The judge URIs ``model_uri`` names, in the order given."""
        return [part.strip() for part in self.model_uri.split(",")]
