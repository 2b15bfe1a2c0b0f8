"""Every piece of prompt text the project uses, and the one way prompts become model input.

Prompts are lists of chat messages; they reach a model only through the tokenizer's own chat
template (:func:`render`). The answer prompt is shared by label collection, the knowledge data,
the knowledge test and every evaluation, so a learned answer shows up in grading.
"""

from __future__ import annotations

from typing import Any

from know_thyself.data.labels import DEFAULT_SCHEME, labels_for

ANSWER_SYSTEM = (
    "You are a quiz contestant. Answer the trivia question with the answer alone: "
    "a name, a number or a few words, with no explanation."
)

JUDGMENT_SYSTEM = (
    "Before answering, judge whether you would answer this trivia question correctly. "
    "Reply with one word: {choices}."
)

# Worked examples shown before every question. A small model copies their short form, which
# makes answers gradable and sampling fast. None of them is in the bundled set (a test checks).
ANSWER_EXAMPLES = (
    ("Which code sends messages as dots and dashes?", "Morse code"),
    ("How many lines does a haiku have?", "Three"),
    ("Who wrote the play Waiting for Godot?", "Samuel Beckett"),
)

# Knowledge targets in the model's own words: the model restates a reference answer it is given.
RESTATE_SYSTEM = "You are a quiz contestant. Answer the trivia question in one short sentence."

Message = dict[str, str]


def answer_messages(question: str) -> list[Message]:
    """Chat messages that ask the model to answer ``question`` briefly, after the worked examples."""
    messages = [{"role": "system", "content": ANSWER_SYSTEM}]
    for example_question, example_answer in ANSWER_EXAMPLES:
        messages.append({"role": "user", "content": example_question})
        messages.append({"role": "assistant", "content": example_answer})
    messages.append({"role": "user", "content": question.strip()})
    return messages


def answer_completion(answer: str) -> list[Message]:
    """The assistant turn that teaches ``answer`` (knowledge training data)."""
    return [{"role": "assistant", "content": answer.strip()}]


def restate_messages(question: str, answer: str) -> list[Message]:
    """Chat messages that ask the model to answer ``question`` in a sentence, the correct ``answer`` given as a hint."""
    return [
        {"role": "system", "content": RESTATE_SYSTEM},
        {"role": "user", "content": f"{question.strip()} (The correct answer is {answer.strip()}.)"},
    ]


def judgment_messages(question: str, scheme: str = DEFAULT_SCHEME) -> list[Message]:
    """Chat messages that ask the model to judge, before answering, whether it can answer ``question``."""
    words = labels_for(scheme)
    choices = ", ".join(words[:-1]) + " or " + words[-1]
    return [
        {"role": "system", "content": JUDGMENT_SYSTEM.format(choices=choices)},
        {"role": "user", "content": f"Question: {question.strip()}"},
    ]


def judgment_completion(label: str) -> list[Message]:
    """The assistant turn holding one label word (judgment training data)."""
    return [{"role": "assistant", "content": label}]


def render(tokenizer: Any, messages: list[Message]) -> str:
    """Format prompt ``messages`` with the tokenizer's chat template, ready for the assistant's turn."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            f"tokenizer of {getattr(tokenizer, 'name_or_path', 'this model')!r} has no chat template; "
            "use an instruction-tuned (chat) model"
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
