"""The fast sampler answers like the plain one on the embedded SmolLM2 (slow): with the shared-prefix
cache and the greedy row folded into the sampling batch, greedy answers match ``generate`` token for
token in fp32, their log-probabilities match teacher forcing, and graded accuracy of the samples on
the bundled validation questions agrees within sampling noise (fixed seeds)."""

import math

import numpy as np
import pytest
import torch

from know_thyself import data
from know_thyself.data.grading import is_correct
from know_thyself.data.prompts import answer_messages, render
from know_thyself.inference.models import load_model
from know_thyself.inference.prefix_cache import tokenize
from know_thyself.inference.sampling import PlainSampler, TransformersSampler

QUESTIONS, TRIALS, TEMPERATURE = 64, 5, 0.5


@pytest.fixture(scope="module")
def records():
    return data.load_split("bundled", "validation")[:QUESTIONS]


@pytest.fixture(scope="module")
def fp32():
    return load_model("smollm2-135m-instruct", dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def plain(fp32, records):
    model, tokenizer = fp32
    prompts = [render(tokenizer, answer_messages(r["question"])) for r in records]
    return PlainSampler(model, tokenizer, batch_size=16).sample(prompts, TRIALS, 24, TEMPERATURE, seed=1)


def _accuracy(answers, records) -> float:
    flags = [is_correct(a, r["answer"]["aliases"]) for r, group in zip(records, answers.samples) for a in group]
    return sum(flags) / len(flags)


def test_greedy_answers_and_log_probs_match_the_plain_path(fp32, records, plain):
    model, tokenizer = fp32
    prompts = [render(tokenizer, answer_messages(r["question"])) for r in records]
    fast = TransformersSampler(model, tokenizer, batch_size=32).sample(prompts, TRIALS, 24, TEMPERATURE, seed=1)
    same = sum(a == b for a, b in zip(fast.greedy_tokens, plain.greedy_tokens))
    print(f"greedy answers identical token for token: {same}/{QUESTIONS}")
    assert fast.greedy_tokens == plain.greedy_tokens
    assert np.allclose(fast.greedy_mean_logprob, plain.greedy_mean_logprob, atol=1e-3)
    # Against teacher forcing: one full forward over prompt + answer, for a few questions.
    for prompt, tokens, value in list(zip(prompts, fast.greedy_tokens, fast.greedy_mean_logprob))[:6]:
        ids = tokenize(tokenizer, [prompt])[0]
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids + tokens])).logits[0, len(ids) - 1 : -1].float()
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(tokens)[:, None]).mean() if tokens else -math.inf
        assert value == pytest.approx(float(expected), abs=1e-3)


def test_fast_path_accuracy_matches_the_plain_path(records, plain):
    model, tokenizer = load_model("smollm2-135m-instruct", dtype="auto", device="cpu")  # bf16 where fast
    prompts = [render(tokenizer, answer_messages(r["question"])) for r in records]
    fast = TransformersSampler(model, tokenizer, batch_size=32).sample(prompts, TRIALS, 24, TEMPERATURE, seed=1)
    plain_accuracy, fast_accuracy = _accuracy(plain, records), _accuracy(fast, records)
    pooled = (plain_accuracy + fast_accuracy) / 2
    # Samples of one question are correlated, so use the question count for a conservative error.
    standard_error = math.sqrt(2 * pooled * (1 - pooled) / QUESTIONS)
    print(f"graded accuracy: plain {plain_accuracy:.3f}, fast {fast_accuracy:.3f} ({QUESTIONS * TRIALS} samples each)")
    assert 0.05 < plain_accuracy < 0.95  # the comparison means something only away from the edges
    assert abs(plain_accuracy - fast_accuracy) <= 3 * standard_error
