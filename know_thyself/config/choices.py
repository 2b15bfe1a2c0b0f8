"""The values options may take, the help texts several configs share, and the checks they share."""

from __future__ import annotations

import math

from know_thyself.config.base import check
from know_thyself.data.questions import DATASET_FORMS
from know_thyself.inference.models import resolve_model
from know_thyself.inference.sampling import BACKENDS

__all__ = ["BACKENDS"]

DTYPES = ("auto", "bfloat16", "float16", "float32")
BALANCES = ("weights", "taught", "oversample", "none")
# The judge's loss: over the label words at the label position, or TRL's loss on every completion token.
LOSSES = ("label", "sft")
# The judge's targets: the measured label, or the label distribution its trials imply.
LABEL_TARGETS = ("hard", "soft")
# Dev metrics of the judge an epoch is kept by (higher is better).
SELECT_EPOCH_BY = ("auroc", "balanced_accuracy", "qwk")
READOUTS = ("label", "stacked")
# The phases multiphase can stop after; 0 runs all three.
PHASES = (0, 1, 2, 3)
# Ability labels need only a handful of trials per question; far more only multiplies sampling
# time and memory.
MAX_TRIALS = 100
# The generators of Python, numpy and torch all take seeds in 0..2**32-1.
MAX_SEED = 2**32 - 1
# Upper bounds of options with no sane meaning beyond them: a LoRA rank or a batch wider than any
# model this pipeline trains, an alpha that scales the adapter's update past any stable training,
# more epochs or steps than a run of days.
MAX_LORA_RANK = 1024
MAX_LORA_ALPHA = 4096
MAX_BATCH_SIZE = 4096
MAX_EPOCHS = 1000
MAX_STEPS = 1_000_000
# The longest training example an option may ask for, in tokens: past any context window this
# pipeline trains.
MAX_TRAIN_LENGTH = 131_072
# What Phase 2's QA examples teach (know_thyself.training.knowledge_examples.restate_in_own_words).
KNOWLEDGE_TARGETS = ("reference", "own_words")
# Which linear layers of each transformer block get LoRA adapters: the attention projections, or
# those and the MLP projections too (where much of a model's factual recall is stored).
LORA_TARGETS = ("attention", "attention_mlp")

MODEL_HELP = "Model: 'smollm2-135m-instruct' (embedded), a local checkpoint folder, models:/name/version, or a Hub id."
BATCH_HELP = "Questions per batch when sampling or judging."
DATASET_HELP = (
    "Questions: 'bundled', 'trivia_qa' (Hub, online), a folder with train/validation .jsonl/.json/.parquet/.csv, "
    "or one such file (a pool that train and validation questions are drawn from without overlap)."
)
DTYPE_HELP = (
    "Precision of inference and training: 'auto' (bfloat16 where the hardware is fast at it: a CUDA card, or a CPU "
    "with AVX-512 BF16 or AMX; float32 elsewhere), 'bfloat16' (runs on any CPU, slowly without AVX-512 BF16), "
    "'float16' (GPU), 'float32'. Training keeps float32 weights under bf16/fp16 autocast; a judge answers in the "
    "precision it was trained in."
)
SEED_HELP = "Seed for question sampling, answer sampling (unless sample_seed is set) and training."
BALANCE_HELP = (
    "Judgment labels' balance: 'weights' (class weights in the loss), 'taught' (class weights, each label's split "
    "evenly between its taught and untaught questions: after Phase 2, being taught then says nothing about the "
    "label; without taught questions the same as 'weights'), 'oversample' (rarer labels' examples repeated up to "
    "the most common one's count) or 'none'."
)
LOSS_HELP = (
    "The judge's loss: 'label' (a cross-entropy over the label words only, at the label position) or 'sft' (TRL's "
    "loss on every completion token)."
)
LABEL_TARGETS_HELP = (
    "The judge's targets: 'hard' (the measured label) or 'soft' (the distribution of the label that fresh trials "
    "would give, from the share of trials answered right)."
)
SELECT_EPOCH_HELP = (
    "Dev metric an epoch is kept by: auroc, balanced_accuracy or qwk (epochs that predict some label for under "
    "min_label_share of the dev questions count only when no epoch predicts every label that often)."
)
MIN_LABEL_SHARE_HELP = (
    "The least share of the dev questions an epoch must give every label to be a candidate for the kept epoch "
    "(a judge that never says a label has not learned it); when no epoch does, the best by the dev metric is kept. "
    "0 makes every epoch a candidate."
)
PROBE_C_HELP = (
    "Inverse regularisation strength (scikit-learn's C; smaller is stronger) of the baselines' logistic "
    "regressions fitted on the train questions: the hidden-state probe and first_token's labels."
)
READOUT_HELP = (
    "How the judge's label is read: 'label' (its label words' probabilities at the label position) or 'stacked' "
    "(those and the base model's first answer token probability, through a logistic regression fitted on the dev "
    "split; needs dev_fraction above 0)."
)
KNOWLEDGE_TARGETS_HELP = (
    "'reference' (the reference answer as it stands) or 'own_words' (the model's own sentence stating "
    "the reference answer, where the grader accepts it; it forgets less of what it was not taught)."
)
KNOWLEDGE_FRACTION_HELP = (
    "Share of the collect run's train questions that Phase 2 teaches (a seeded draw); the rest stay "
    "untaught, so that Phase 3's judge sees questions the model learned beside ones it did not."
)
# Where judgment v2's training starts (the multiphase chain's v2_start).
V2_STARTS = ("v1", "fresh")
# Phase 2 stops once the model's greedy answers to the taught questions are right for this share of them.
STOP_WHEN_LEARNED = 0.95
STOP_WHEN_LEARNED_HELP = (
    "Stop the knowledge training after the first epoch (from the second on) whose greedy answers to the taught "
    "questions the grader accepts for at least this share of them; 0 trains every epoch."
)
LORA_TARGETS_HELP = (
    "Layers that get LoRA adapters: 'attention' (q/k/v/o projections) or 'attention_mlp' (also the MLP's gate/up/down)."
)


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse ``value`` unless it is one of ``choices``, naming the option and the accepted values."""
    check(value in choices, f"{name} must be one of {', '.join(choices)}, got {value!r}")


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Refuse ``value`` outside ``low..high`` (both included), naming the option and the range."""
    check(low <= value <= high, f"{name} must be in {low}..{high}, got {value}")


def check_dataset(name: str, value: str) -> None:
    """Refuse an empty dataset argument (``-P dataset=``, ``--dataset ""``): as a path it would name the working folder."""
    check(bool(value.strip()), f"{name} is empty; {DATASET_FORMS}")


def check_seed(name: str, value: int, off: int | None = None) -> None:
    """Refuse a seed the random generators cannot take; ``off`` is a value meaning "not set" (-1)."""
    if value != off:
        check_range(name, value, 0, MAX_SEED)


def check_positive(name: str, value: float) -> None:
    """Refuse a value that is not a finite number above 0 (an inverse regularisation strength, a weight)."""
    check(math.isfinite(value) and value > 0, f"{name} must be a finite number above 0, got {value}")


def check_model_options(model: str, dtype: str, inference_batch_size: int) -> None:
    """The checks every config that loads a model shares: the model argument, the dtype, the batch size."""
    resolve_model(model)
    check_choice("dtype", dtype, DTYPES)
    check(inference_batch_size >= 1, f"inference_batch_size must be >= 1, got {inference_batch_size}")
    check_range("inference_batch_size", inference_batch_size, 1, MAX_BATCH_SIZE)
