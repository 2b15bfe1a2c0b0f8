"""The samplers: the fast decode loop against model.generate, determinism, and the inverse-CDF draw."""

import torch

from know_thyself.prompts import answer_messages, render
from know_thyself.sampling import clean_answer, inverse_cdf_sample, sample_answers

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have, counting carefully?",
    "Who wrote Hamlet?",
    "Which planet is largest?",
    "What colour is grass in the middle of a long, warm summer?",
]


def _prompts(tokenizer):
    return [render(tokenizer, answer_messages(q)) for q in QUESTIONS]


def test_greedy_fast_path_matches_generate(tiny):
    # Greedy decoding has one right answer: the fast loop (shared prefill, rows dropped as they
    # end, explicit positions under left padding) must reproduce model.generate exactly.
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)
    fast = sample_answers(model, tokenizer, prompts, 1, max_new_tokens=12, temperature=0, batch_size=3, backend="transformers")
    plain = sample_answers(model, tokenizer, prompts, 1, max_new_tokens=12, temperature=0, batch_size=3, backend="plain")
    assert fast == plain
    assert len(fast) == len(QUESTIONS) and all(len(a) == 1 for a in fast)


def test_sampling_shape_and_seed(tiny):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)
    first = sample_answers(model, tokenizer, prompts, 3, max_new_tokens=6, temperature=1.0, batch_size=2, seed=7)
    again = sample_answers(model, tokenizer, prompts, 3, max_new_tokens=6, temperature=1.0, batch_size=2, seed=7)
    other = sample_answers(model, tokenizer, prompts, 3, max_new_tokens=6, temperature=1.0, batch_size=2, seed=8)
    assert [len(a) for a in first] == [3] * len(QUESTIONS)
    assert first == again
    assert first != other


def test_progress_callback_counts_questions_and_samples(tiny):
    model, tokenizer = tiny
    seen = []
    sample_answers(model, tokenizer, _prompts(tokenizer), 2, max_new_tokens=3, batch_size=2, progress=lambda q, s: seen.append((q, s)))
    assert sum(q for q, _ in seen) == len(QUESTIONS)
    assert sum(s for _, s in seen) == 2 * len(QUESTIONS)


def test_inverse_cdf_sample_follows_the_distribution():
    probs = torch.tensor([0.1, 0.6, 0.0, 0.3])
    logits = probs.log().expand(20000, 4).clone()
    draws = inverse_cdf_sample(logits, 1.0, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert freq[2] == 0  # a zero-probability token is never drawn
    assert torch.allclose(freq, probs, atol=0.015)


def test_inverse_cdf_temperature_zero_is_argmax():
    logits = torch.tensor([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0]])
    assert inverse_cdf_sample(logits, 0, torch.Generator()).tolist() == [1, 0]


def test_clean_answer_cuts_at_newline():
    assert clean_answer("  Paris\nThe capital") == "Paris"
    assert clean_answer("\nParis") == ""
