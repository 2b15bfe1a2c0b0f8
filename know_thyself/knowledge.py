"""Phase 2 (knowledge): QA examples that teach the model the answers, and what the knowledge test compares.

* QA examples: the collect step's answer prompt -> ``answer.value``, from the train questions
  of a collect run, so what is learned shows up in grading (step ``build_knowledge_data``);
* the merged model: LoRA SFT on them, then ``merge_and_unload`` (step ``train_knowledge``);
* the knowledge test compares QA accuracy before and after from two collect runs of the same
  questions, sampled alike (step ``test_knowledge``).
"""

from __future__ import annotations

from know_thyself.prompts import answer_completion, answer_messages

DATA_FILE = "knowledge_data/train.jsonl"
# Collect parameters that must agree for a before/after comparison: the same questions, sampled alike.
COMPARABLE_PARAMS = (
    "dataset", "num_samples", "test_samples", "seed", "num_trials", "temperature", "max_new_tokens", "label_scheme",
)


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
