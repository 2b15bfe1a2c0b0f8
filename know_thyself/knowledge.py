"""Phase 2 (knowledge): QA examples that teach the model the answers, and what the knowledge test compares.

* QA examples: the collect step's answer prompt -> ``answer.value``, from the train questions
  of a collect run (all of them, or a seeded share: :func:`choose_taught`), so what is learned
  shows up in grading (step ``build_knowledge_data``);
* the merged model: LoRA SFT on them, then ``merge_and_unload`` (step ``train_knowledge``);
* the knowledge test compares QA accuracy before and after from two collect runs of the same
  questions, sampled alike (step ``test_knowledge``).
"""

from __future__ import annotations

import random
from typing import Any

from know_thyself.collect import answer_seed_of
from know_thyself.data import SPLITS
from know_thyself.grading import is_correct
from know_thyself.prompts import answer_completion, answer_messages, render, restate_messages

DATA_FILE = "knowledge_data/train.jsonl"
# A restatement longer than this (characters) has wandered off; the reference answer is kept.
MAX_RESTATEMENT_CHARS = 160
# Collect parameters that must agree for a before/after comparison: the same questions, sampled alike.
COMPARABLE_PARAMS = (
    "dataset", "num_samples", "test_samples", "seed", "num_trials", "temperature", "max_new_tokens", "label_scheme",
)


def choose_taught(rows: list[dict], fraction: float, seed: int) -> list[dict]:
    """The rows whose questions Phase 2 teaches: a seeded draw of ``round(fraction * len(rows))`` (at least one).

    With every train question taught and learned, Phase 3 measures almost every train question
    as ``can``, and its judge has one label to learn. Leaving a share untaught keeps the
    questions the model did not learn beside the ones it did. The rows keep their order.
    """
    if fraction >= 1.0 or not rows:
        return list(rows)
    count = max(1, round(fraction * len(rows)))
    chosen = set(random.Random(seed).sample(range(len(rows)), count))
    return [row for i, row in enumerate(rows) if i in chosen]


def taught_gains(before: list[dict], after: list[dict], taught_ids: set[str]) -> dict[str, float]:
    """QA accuracy before and after on the taught and the untaught train questions, and the gains.

    Named like :func:`knowledge_gains`' values with ``taught`` / ``untaught`` for the split
    (``before/taught/qa_accuracy_greedy``, ``taught/qa_accuracy_gain_greedy``, ...); a group
    without questions is left out.

    Args:
        before: ``responses.jsonl`` rows of the collect run before knowledge training.
        after: The same questions' rows after it.
        taught_ids: Question ids of the QA examples trained on.
    """
    before_by_id = {row["question_id"]: row for row in before if row["split"] == "train"}
    after_by_id = {row["question_id"]: row for row in after if row["split"] == "train"}
    values: dict[str, float] = {}
    for group, wanted in (("taught", True), ("untaught", False)):
        ids = [i for i in before_by_id if (i in taught_ids) == wanted]
        missing = [i for i in ids if i not in after_by_id]
        if missing:
            raise ValueError(
                f"{len(missing)} train questions of the collect run before knowledge training are missing from the "
                f"one after it (e.g. {missing[0]!r}); compare collect runs of the same questions"
            )
        if not ids:
            continue
        for when, rows in (("before", before_by_id), ("after", after_by_id)):
            values[f"{when}/{group}/qa_accuracy_trials"] = sum(rows[i]["accuracy"] for i in ids) / len(ids)
            values[f"{when}/{group}/qa_accuracy_greedy"] = sum(bool(rows[i]["greedy_correct"]) for i in ids) / len(ids)
        for kind in ("trials", "greedy"):
            values[f"{group}/qa_accuracy_gain_{kind}"] = (
                values[f"after/{group}/qa_accuracy_{kind}"] - values[f"before/{group}/qa_accuracy_{kind}"]
            )
        values[f"{group}/questions"] = float(len(ids))
    return values


def build_qa_examples(rows: list[dict]) -> list[dict]:
    """QA SFT examples from ``responses.jsonl`` rows: answer prompt -> the reference answer."""
    return [
        {
            "question_id": row["question_id"],
            "prompt": answer_messages(row["question"]),
            "completion": answer_completion(row["answer"]),
        }
        for row in rows
    ]


def restate_in_own_words(rows: list[dict], examples: list[dict], sampler: Any, max_new_tokens: int = 40) -> int:
    """Replace each example's target by the model's own sentence stating the reference answer.

    The base model mostly answers in a sentence that restates the question ("The capital of
    Japan is Tokyo."); trained on terse reference answers it starts answering tersely, and
    recalls worse on questions it was not trained on. Here the model itself answers each question
    with the reference answer given as a hint (greedy), and its sentence becomes the target where
    the grader accepts it (it contains the answer or an alias) and it is short; otherwise the
    reference answer stays.

    Args:
        rows: The ``responses.jsonl`` rows the examples were built from (same order).
        examples: QA examples from :func:`build_qa_examples`; changed in place.
        sampler: A sampler over the model being taught (its ``tokenizer`` renders the prompts).
        max_new_tokens: Longest restatement, in tokens.

    Returns:
        How many targets were replaced.
    """
    prompts = [render(sampler.tokenizer, restate_messages(row["question"], row["answer"])) for row in rows]
    restated = sampler.sample(prompts, 1, max_new_tokens=max_new_tokens, temperature=0.0, seed=0).greedy if rows else []
    replaced = 0
    for row, example, sentence in zip(rows, examples, restated):
        if sentence and len(sentence) <= MAX_RESTATEMENT_CHARS and is_correct(sentence, row["aliases"]):
            example["completion"] = answer_completion(sentence)
            replaced += 1
    return replaced


def check_comparable(
    before: dict[str, str], after: dict[str, str], before_questions: str | None = None, after_questions: str | None = None
) -> None:
    """Refuse a before/after pair of collect runs that did not sample the same questions alike.

    Args:
        before: Parameters of the collect run before knowledge training.
        after: Parameters of the collect run after it.
        before_questions: The before run's question-set fingerprint (``None`` for a run made
            before collect recorded one: then the parameters alone are compared).
        after_questions: The after run's.

    Raises:
        ValueError: naming the first parameter that differs, or the question sets.
    """
    for key in COMPARABLE_PARAMS:
        if before.get(key) != after.get(key):
            raise ValueError(
                f"the two collect runs differ in {key} ({before.get(key)!r} vs {after.get(key)!r}); compare "
                "collect runs of the same questions, sampled with the same settings"
            )
    if answer_seed_of(before) != answer_seed_of(after):
        raise ValueError(
            f"the two collect runs sampled their answers with different seeds ({answer_seed_of(before)!r} vs "
            f"{answer_seed_of(after)!r}, from seed and sample_seed); compare collect runs sampled with the same seed"
        )
    if before_questions and after_questions and before_questions != after_questions:
        raise ValueError(
            "the two collect runs sampled different questions (the dataset changed between them); compare "
            "collect runs of the same questions: collect again with the model before knowledge training"
        )


def knowledge_gains(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """QA accuracy before and after (trial-based and greedy) per split, and the gains, from two collect runs' metrics."""
    values: dict[str, float] = {}
    for when, metrics in (("before", before), ("after", after)):
        for split in SPLITS:
            values[f"{when}/{split}/qa_accuracy_trials"] = metrics[f"{split}/qa_accuracy"]
            values[f"{when}/{split}/qa_accuracy_greedy"] = metrics[f"{split}/greedy_qa_accuracy"]
    for split in SPLITS:
        for kind in ("trials", "greedy"):
            values[f"{split}/qa_accuracy_gain_{kind}"] = (
                values[f"after/{split}/qa_accuracy_{kind}"] - values[f"before/{split}/qa_accuracy_{kind}"]
            )
    return values
