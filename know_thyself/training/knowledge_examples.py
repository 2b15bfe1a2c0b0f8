"""Phase 2's training data: question-answer examples that teach the model the answers.

* :func:`choose_taught`: the train questions Phase 2 teaches (all, or a seeded share);
* :func:`build_qa_examples`: the collect step's answer prompt -> ``answer.value``, so what is
  learned shows up in grading (step ``build_knowledge_data``);
* :func:`restate_in_own_words`: the targets restated in the model's own words.

The merged model comes from LoRA SFT on them, then ``merge_and_unload`` (step ``train_knowledge``).
"""

from __future__ import annotations

import random
from typing import Any

from know_thyself.data.grading import is_correct
from know_thyself.data.prompts import answer_completion, answer_messages, render, restate_messages

DATA_FILE = "knowledge_data/train.jsonl"
# A restatement longer than this (characters) has wandered off; the reference answer is kept.
MAX_RESTATEMENT_CHARS = 160


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
