"""Judgment data: a collect run's labels as chat-format examples.

Each example is a conversational prompt/completion pair: the judgment prompt for a question, and
the one label word the collect step measured for it; beside them, the question, how many of its
trials were right (for soft targets) and whether its greedy answer was (for choosing an epoch).
"""

from __future__ import annotations

import random
from collections import Counter

from know_thyself.data.prompts import judgment_completion, judgment_messages

ARTIFACT_DIR = "judgment_data"
# The train questions kept out of the judge's training (under ARTIFACT_DIR).
HELDOUT = "heldout.jsonl"


def build_examples(rows: list[dict], scheme: str) -> list[dict]:
    """Judgment examples (``prompt``/``completion`` message lists and what the judge's training reads) from ``responses.jsonl`` rows."""
    return [
        {
            "question_id": row["question_id"],
            "question": row["question"],
            "label": row["ability"],
            "correct_trials": int(sum(bool(c) for c in row["correct"])),
            "trials": len(row["correct"]),
            "greedy_correct": bool(row["greedy_correct"]),
            "prompt": judgment_messages(row["question"], scheme),
            "completion": judgment_completion(row["ability"]),
        }
        for row in rows
    ]


def balance_examples(examples: list[dict], mode: str, seed: int = 0) -> list[dict]:
    """The training examples with their labels balanced as ``mode`` says, in a seeded order.

    * ``none``: the examples as they are (shuffled).
    * ``oversample``: every label brought up to the count of the most common one. A label with
      ``n`` examples and a target of ``top`` gets ``top // n`` full copies of its examples plus
      ``top % n`` of them drawn without replacement, so every example of a label is used
      equally often, give or take one.

    Args:
        examples: SFT examples, each with a ``label``.
        mode: ``none`` or ``oversample``.
        seed: Seed of the draws and of the final shuffle.
    """
    if mode not in ("none", "oversample"):
        raise ValueError(f"balance must be none or oversample, got {mode!r}")
    rng = random.Random(seed)
    balanced = list(examples)
    if mode == "oversample" and examples:
        by_label: dict[str, list[dict]] = {}
        for example in examples:
            by_label.setdefault(example["label"], []).append(example)
        top = max(len(group) for group in by_label.values())
        balanced = []
        for label in sorted(by_label):
            group = by_label[label]
            copies, remainder = divmod(top, len(group))
            balanced.extend(group * copies + rng.sample(group, remainder))
    rng.shuffle(balanced)
    return balanced


def label_counts(examples: list[dict]) -> dict[str, int]:
    """How many examples carry each label."""
    return dict(Counter(example["label"] for example in examples))


def hold_out(examples: list[dict], taught_ids: set[str], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Keep a seeded share of the taught questions, and the same share of the untaught ones, out of training.

    The judge trained on the rest has seen neither group's labels, so on the held-out questions
    its P(can) tells taught from untaught only if it reads something in the model
    (:mod:`know_thyself.evaluation.taught`). Each group gives ``round(fraction * size)`` questions,
    drawn with ``random.Random(seed)``; both parts keep the examples' order.

    Returns:
        ``(kept, held_out)``; every example of both carries ``taught`` (bool), which balance
        ``taught`` reads (:func:`know_thyself.training.label_loss.taught_class_weights`).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {fraction}")
    rng = random.Random(seed)
    chosen: set[str] = set()
    for wanted in (True, False):
        ids = [e["question_id"] for e in examples if (e["question_id"] in taught_ids) == wanted]
        chosen.update(rng.sample(ids, round(fraction * len(ids))))
    marked = [{**e, "taught": e["question_id"] in taught_ids} for e in examples]
    kept = [e for e in marked if e["question_id"] not in chosen]
    held = [e for e in marked if e["question_id"] in chosen]
    return kept, held
