"""The vLLM backend, where vLLM is installed (a GPU machine, or the separate CPU-build environment)."""

import pytest

from know_thyself.inference.sampling import vllm as vllm_backend

needs_vllm = pytest.mark.skipif(not vllm_backend.available(), reason="vllm is not installed in this environment")


@needs_vllm
def test_vllm_sampler_answers_like_the_other_backends(tokenizer_dir):
    from know_thyself.data.grading import is_correct
    from know_thyself.data.prompts import answer_messages, render
    from know_thyself.inference.models import load_tokenizer

    tokenizer = load_tokenizer(str(tokenizer_dir))
    questions = [("What is the capital of France?", ["Paris"]), ("How many legs does a spider have?", ["8", "eight"])]
    prompts = [render(tokenizer, answer_messages(q)) for q, _ in questions]
    sampler = vllm_backend.VllmSampler(str(tokenizer_dir), tokenizer, seed=0)
    answers = sampler.sample(prompts, 3, 24, 0.5)
    assert [len(a) for a in answers.samples] == [3, 3]
    assert all("\n" not in a for group in answers.samples for a in group)
    assert is_correct(answers.greedy[0], ["Paris"])
    assert answers.greedy_mean_logprob.shape == (2,) and (answers.greedy_mean_logprob <= 0).all()
    assert all(not sampler.stop[t] for tokens in answers.greedy_tokens for t in tokens)
    assert min(answers.generated_tokens) >= 1


def test_unavailable_vllm_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(vllm_backend, "available", lambda: False)
    with pytest.raises(ValueError, match="needs the vllm package"):
        vllm_backend.VllmSampler("x", tokenizer=None)
