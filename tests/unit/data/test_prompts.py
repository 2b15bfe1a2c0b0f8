"""Prompt messages, and rendering them through the tokenizer's chat template."""

from __future__ import annotations

from pathlib import Path

import pytest

from know_thyself.data import prompts
from know_thyself.data.grading import normalize_answer
from know_thyself.data.prompts import (
    ANSWER_EXAMPLES,
    ANSWER_SYSTEM,
    answer_completion,
    answer_messages,
    judgment_completion,
    judgment_messages,
    render,
)
from know_thyself.data.questions import load_split

QUESTION = "Which planet is known as the Red Planet?"


@pytest.fixture(scope="module")
def smol_tokenizer(tokenizer_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


# --------------------------------------------------------------------------------------------
# answer prompt
# --------------------------------------------------------------------------------------------


def test_answer_messages_shape():
    messages = answer_messages(f"  {QUESTION}\n")

    assert messages[0] == {"role": "system", "content": ANSWER_SYSTEM}
    assert messages[-1] == {"role": "user", "content": QUESTION}
    assert len(messages) == 2 + 2 * len(ANSWER_EXAMPLES)
    # The worked examples sit between, as alternating user / assistant turns.
    for i, (question, answer) in enumerate(ANSWER_EXAMPLES):
        assert messages[1 + 2 * i] == {"role": "user", "content": question}
        assert messages[2 + 2 * i] == {"role": "assistant", "content": answer}


def test_answer_messages_are_fresh_lists():
    first = answer_messages("Q1?")
    first.append({"role": "user", "content": "extra"})
    assert answer_messages("Q1?")[-1] == {"role": "user", "content": "Q1?"}


def test_examples_are_not_in_the_bundled_set():
    bundled = {
        normalize_answer(record["question"])
        for split in ("train", "validation")
        for record in load_split("bundled", split)
    }
    assert len(bundled) > 10  # the check below means something only if the set was read
    assert ANSWER_EXAMPLES, "no worked examples"
    for question, _ in ANSWER_EXAMPLES:
        assert normalize_answer(question) not in bundled, question


def test_answer_completion_is_one_assistant_message():
    assert answer_completion("  Mars \n") == [{"role": "assistant", "content": "Mars"}]


# --------------------------------------------------------------------------------------------
# judgment prompt
# --------------------------------------------------------------------------------------------


def test_judgment_messages_three_way():
    messages = judgment_messages(f" {QUESTION} ")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Reply with one word: can, uncertain or cannot." in messages[0]["content"]
    assert messages[1]["content"] == f"Question: {QUESTION}"
    assert messages == judgment_messages(QUESTION, "three")


def test_judgment_messages_binary():
    system = judgment_messages(QUESTION, "binary")[0]["content"]
    assert "Reply with one word: can or cannot." in system
    assert "uncertain" not in system


def test_judgment_messages_unknown_scheme():
    with pytest.raises(ValueError, match="label_scheme"):
        judgment_messages(QUESTION, "four")


def test_judgment_completion_is_one_assistant_message():
    assert judgment_completion("uncertain") == [{"role": "assistant", "content": "uncertain"}]


def test_prompts_do_not_leak_the_label_words_into_the_answer_prompt():
    # The answer prompt must not ask for a judgment; the judgment prompt must not hold examples.
    text = " ".join(m["content"] for m in answer_messages(QUESTION))
    assert "judge" not in text.lower()
    assert all(m["role"] != "assistant" for m in judgment_messages(QUESTION))


# --------------------------------------------------------------------------------------------
# render
# --------------------------------------------------------------------------------------------


def test_render_uses_the_chat_template(smol_tokenizer):
    text = render(smol_tokenizer, answer_messages(QUESTION))

    assert text.rstrip().endswith("<|im_start|>assistant")
    assert QUESTION in text
    assert ANSWER_SYSTEM in text
    for question, answer in ANSWER_EXAMPLES:
        assert question in text and answer in text
    # The question comes last, right before the assistant's turn opens.
    assert text.rindex(QUESTION) > text.rindex(ANSWER_EXAMPLES[-1][1])
    assert text == smol_tokenizer.apply_chat_template(
        answer_messages(QUESTION), tokenize=False, add_generation_prompt=True
    )


def test_render_judgment_prompt(smol_tokenizer):
    text = render(smol_tokenizer, judgment_messages(QUESTION, "binary"))
    assert text.rstrip().endswith("<|im_start|>assistant")
    assert f"Question: {QUESTION}" in text
    assert "can or cannot" in text


def test_render_without_chat_template_raises(tokenizer_dir: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        render(tokenizer, answer_messages(QUESTION))


def test_render_without_chat_template_never_calls_it():
    class Plain:
        chat_template = None
        name_or_path = "gpt2"

        def apply_chat_template(self, *args, **kwargs):  # pragma: no cover - must not run
            raise AssertionError("apply_chat_template was called")

    with pytest.raises(ValueError, match="'gpt2' has no chat template"):
        render(Plain(), answer_messages(QUESTION))


def test_module_exposes_only_known_system_prompts():
    assert "{choices}" in prompts.JUDGMENT_SYSTEM
    assert "{" not in prompts.ANSWER_SYSTEM
