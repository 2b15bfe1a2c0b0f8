"""Judgment SFT data: a collect run's labels as chat-format examples.

Each example is a conversational prompt/completion pair: the judgment prompt for a question,
and the one label word the collect step measured for it. TRL computes the loss on the
completion only.
"""

from __future__ import annotations

from know_thyself.prompts import judgment_completion, judgment_messages

ARTIFACT_DIR = "judgment_data"


def build_examples(rows: list[dict], scheme: str) -> list[dict]:
    """SFT examples (``prompt``/``completion`` message lists) from ``responses.jsonl`` rows."""
    return [
        {
            "question_id": row["question_id"],
            "label": row["ability"],
            "prompt": judgment_messages(row["question"], scheme),
            "completion": judgment_completion(row["ability"]),
        }
        for row in rows
    ]
