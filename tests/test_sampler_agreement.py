"""The fast sampler answers like the plain one: graded accuracy on the bundled validation questions
agrees within sampling noise (embedded SmolLM2, fixed seeds; slow)."""

import math

import pytest

from know_thyself import data
from know_thyself.grading import is_correct
from know_thyself.models import load_model
from know_thyself.prompts import answer_messages, render
from know_thyself.sampling import sample_answers

pytestmark = pytest.mark.slow
QUESTIONS, SAMPLES = 64, 5


def _accuracy(backend: str, dtype: str, records: list[dict]) -> float:
    model, tokenizer = load_model("smollm2-135m-instruct", dtype=dtype, device="cpu")
    prompts = [render(tokenizer, answer_messages(r["question"])) for r in records]
    answers = sample_answers(model, tokenizer, prompts, SAMPLES, 24, temperature=0.5, batch_size=16, seed=1, backend=backend)
    flags = [is_correct(a, r["answer"]["aliases"]) for r, group in zip(records, answers) for a in group]
    return sum(flags) / len(flags)


def test_fast_path_accuracy_matches_the_plain_path():
    records = data.load_split("bundled", "validation")[:QUESTIONS]
    plain = _accuracy("plain", "float32", records)  # the original design's path
    fast = _accuracy("transformers", "auto", records)  # the project's path (bf16 where fast)
    n = QUESTIONS * SAMPLES
    pooled = (plain + fast) / 2
    # Samples of one question are correlated, so use the question count for a conservative error.
    standard_error = math.sqrt(2 * pooled * (1 - pooled) / QUESTIONS)
    print(f"graded accuracy: plain {plain:.3f}, fast {fast:.3f} ({n} samples each)")
    assert 0.05 < plain < 0.95  # the comparison means something only away from the edges
    assert abs(plain - fast) <= 3 * standard_error
