"""The samplers and the shared-prefix cache: the transformers backend's own loop against
model.generate (token for token), log-probabilities against teacher forcing, determinism,
compaction, cascade attention on the model, and the inverse-CDF draw."""

import math

import numpy as np
import pytest
import torch

from know_thyself.data.prompts import answer_messages, judgment_messages, render
from know_thyself.evaluation.probe import prompt_features
from know_thyself.inference.cascade import CASCADE_ATTENTION, cascade_attention_on
from know_thyself.inference.judgments import judge, judgment_forward
from know_thyself.inference.prefix_cache import SharedPrefix, common_prefix_length, last_position, prefill, tokenize
from know_thyself.inference.sampling import Answers, PlainSampler, TransformersSampler, load_sampler
from know_thyself.inference.sampling.base import (
    answer_span,
    clean_answer,
    draw_seed,
    eos_ids,
    inverse_cdf_sample,
    stop_token_mask,
)

QUESTIONS = [
    "What is the capital of France?",
    "How many legs does a spider have, counting carefully?",
    "Who wrote Hamlet?",
    "Which planet is largest?",
    "What colour is grass in the middle of a long, warm summer?",
]


@pytest.fixture
def talkative(tiny):
    """The tiny model with the embeddings of its stop tokens zeroed (tied, so their logits are 0):
    its greedy answers run for a while instead of ending at the first token."""
    model, tokenizer = tiny
    stop = stop_token_mask(tokenizer, model.get_output_embeddings().weight.shape[0], eos_ids(tokenizer, model))
    with torch.no_grad():
        model.get_input_embeddings().weight[stop] = 0.0
    return model, tokenizer


def _prompts(tokenizer):
    return [render(tokenizer, answer_messages(q)) for q in QUESTIONS]


def _teacher_forced_mean_logprob(model, tokenizer, prompt, answer_tokens):
    """Mean log-probability of ``answer_tokens`` after ``prompt``, from one full forward."""
    prompt_ids = tokenize(tokenizer, [prompt])[0]
    ids = torch.tensor([prompt_ids + list(answer_tokens)])
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    positions = range(len(prompt_ids) - 1, len(prompt_ids) - 1 + len(answer_tokens))
    values = [float(logprobs[p, t]) for p, t in zip(positions, answer_tokens)]
    return sum(values) / len(values) if values else -math.inf


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_greedy_answers_match_generate_token_for_token(talkative, temperature):
    # The greedy row shares its question's prefill with the samples, after the shared prefix;
    # greedy decoding has one right answer, so it must reproduce model.generate exactly.
    model, tokenizer = talkative
    prompts = _prompts(tokenizer)
    fast = TransformersSampler(model, tokenizer, batch_size=3).sample(prompts, 2, 12, temperature, seed=3)
    plain = PlainSampler(model, tokenizer, batch_size=3).sample(prompts, 2, 12, temperature, seed=3)
    assert fast.greedy_tokens == plain.greedy_tokens
    assert all(len(t) > 2 for t in fast.greedy_tokens)  # a comparison of non-empty answers
    assert fast.greedy == plain.greedy
    assert np.allclose(fast.greedy_mean_logprob, plain.greedy_mean_logprob, atol=1e-4)
    for answers in (fast, plain):
        assert isinstance(answers, Answers)
        assert [len(s) for s in answers.samples] == [2] * len(QUESTIONS)
        assert len(answers.generated_tokens) == len(QUESTIONS) and min(answers.generated_tokens) >= 1


def test_greedy_log_probability_equals_teacher_forcing(talkative):
    model, tokenizer = talkative
    prompts = _prompts(tokenizer)
    answers = TransformersSampler(model, tokenizer, batch_size=2).sample(prompts, 3, 10, 1.0, seed=0)
    assert all(len(t) > 2 for t in answers.greedy_tokens)
    for prompt, tokens, value in zip(prompts, answers.greedy_tokens, answers.greedy_mean_logprob):
        expected = _teacher_forced_mean_logprob(model, tokenizer, prompt, tokens)
        assert value == pytest.approx(expected, abs=1e-4) if tokens else value == -math.inf


def test_the_greedy_answer_stops_before_its_stop_token(tiny):
    model, tokenizer = tiny
    sampler = TransformersSampler(model, tokenizer)
    answers = sampler.sample(_prompts(tokenizer), 1, 12, 0.0)
    for tokens in answers.greedy_tokens:
        assert not any(bool(sampler.stop[t]) for t in tokens)
    assert answer_span([5, 6, 7], torch.tensor([False] * 6 + [True] * 2)) == 1
    assert answer_span([5, 5], torch.zeros(8, dtype=torch.bool)) == 2


def test_shared_prefix_cascade_and_compaction_do_not_change_greedy_answers(talkative):
    model, tokenizer = talkative
    prompts = _prompts(tokenizer)
    reference = TransformersSampler(model, tokenizer, batch_size=5, shared_prefix=False).sample(prompts, 2, 12, 0.5)
    for fraction in (0.0, 0.5, 1.0):
        for cascade in (True, False):
            sampler = TransformersSampler(model, tokenizer, batch_size=2, compact_fraction=fraction, cascade=cascade)
            assert sampler.cascade == cascade
            other = sampler.sample(prompts, 2, 12, 0.5)
            assert other.greedy_tokens == reference.greedy_tokens
            assert np.allclose(other.greedy_mean_logprob, reference.greedy_mean_logprob, atol=1e-4)
    assert not TransformersSampler(model, tokenizer, shared_prefix=False, cascade=True).cascade  # needs the prefix


def test_the_shared_prefix_is_prefilled_once_per_model(tiny):
    model, tokenizer = tiny
    sampler = TransformersSampler(model, tokenizer, batch_size=2)
    prompts = _prompts(tokenizer)
    sampler.sample(prompts[:3], 1, 2, 1.0)
    first = sampler._prefix
    sampler.sample(prompts[3:], 1, 2, 1.0)  # other questions, the same answer prompt
    assert sampler._prefix is first
    # the system text and the worked examples are all in it; each question is after it
    assert len(first) > len(tokenize(tokenizer, [render(tokenizer, answer_messages("x"))])[0]) - 10


def test_sampling_shape_and_seed(tiny):
    model, tokenizer = tiny
    sampler = TransformersSampler(model, tokenizer, batch_size=2)
    prompts = _prompts(tokenizer)
    first = sampler.sample(prompts, 3, 6, 1.0, seed=7).samples
    again = sampler.sample(prompts, 3, 6, 1.0, seed=7).samples
    other = sampler.sample(prompts, 3, 6, 1.0, seed=8).samples
    assert [len(a) for a in first] == [3] * len(QUESTIONS)
    assert first == again
    assert first != other


def test_progress_callback_counts_questions_and_samples(tiny):
    model, tokenizer = tiny
    for sampler in (TransformersSampler(model, tokenizer, batch_size=2), PlainSampler(model, tokenizer, batch_size=2)):
        seen = []
        sampler.sample(_prompts(tokenizer), 2, 3, progress=lambda q, s, seen=seen: seen.append((q, s)))
        assert sum(q for q, _ in seen) == len(QUESTIONS)
        assert sum(s for _, s in seen) == 2 * len(QUESTIONS)


def test_load_sampler_builds_the_named_backend(tiny_model_dir):
    sampler = load_sampler("auto", tiny_model_dir, dtype="float32", batch_size=4, device="cpu")
    assert isinstance(sampler, TransformersSampler) and sampler.batch_size == 4
    assert sampler.tags() == {"know_thyself.backend": "transformers", "know_thyself.dtype_used": "float32"}
    assert isinstance(load_sampler("plain", tiny_model_dir, dtype="float32", device="cpu"), PlainSampler)
    with pytest.raises(ValueError, match="backend must be"):
        load_sampler("fast", tiny_model_dir)


def test_bad_sizes_are_clear_errors(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="num_trials must be >= 1"):
        TransformersSampler(model, tokenizer).sample(["x"], 0)
    with pytest.raises(ValueError, match="compact_fraction must be in"):
        TransformersSampler(model, tokenizer, compact_fraction=2.0)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        PlainSampler(model, tokenizer, batch_size=0)


def test_seed_draw_stays_on_the_generator_device():
    # generate's seed is drawn from the sampler's generator. Drawn on the default device instead
    # of the generator's, it breaks as soon as the two differ: a CUDA generator with CPU tensors
    # crashed on GPUs. Here the default device is made to differ from a CPU generator.
    generator = torch.Generator().manual_seed(5)
    expected = draw_seed(torch.Generator().manual_seed(5))
    with torch.device("meta"):
        with pytest.raises(RuntimeError, match="meta"):  # the old draw: a seed on the wrong device
            int(torch.randint(0, 2**31 - 1, (1,), generator=torch.Generator().manual_seed(5)))
        assert draw_seed(generator) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_plain_backend_samples_on_cuda(tiny_model_dir):
    sampler = load_sampler("plain", tiny_model_dir, dtype="float32", device="cuda")
    prompts = [render(sampler.tokenizer, answer_messages(q)) for q in QUESTIONS]
    answers = sampler.sample(prompts, 2, 4, 1.0, seed=0)
    fast = load_sampler("transformers", tiny_model_dir, dtype="float32", device="cuda").sample(prompts, 2, 4, 1.0)
    assert [len(s) for s in answers.samples] == [2] * len(QUESTIONS)
    assert fast.greedy_tokens == answers.greedy_tokens


def test_common_prefix_leaves_every_prompt_a_token():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5]]) == 3
    assert common_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the shorter one keeps its last token
    assert common_prefix_length([[1, 2, 3]]) == 2
    assert common_prefix_length([[7], [8]]) == 0
    assert common_prefix_length([]) == 0


@pytest.mark.parametrize("messages", [answer_messages, judgment_messages])
def test_prefix_cache_forward_equals_a_full_forward(tiny, messages):
    # Padding sits between the shared prefix and each suffix; explicit positions keep it exact.
    model, tokenizer = tiny
    prompts = [render(tokenizer, messages(q)) for q in QUESTIONS]
    ids = tokenize(tokenizer, prompts)
    assert common_prefix_length(ids) > 10
    logits, hidden = last_position(model, tokenizer, prompts, batch_size=3, hidden=True)
    with torch.inference_mode():
        for i, row in enumerate(ids):
            out = model(input_ids=torch.tensor([row]), output_hidden_states=True)
            assert torch.allclose(logits[i], out.logits[0, -1].float(), atol=1e-4)
            assert torch.allclose(hidden[i], out.hidden_states[-1][0, -1].float(), atol=1e-4)


def test_a_frozen_model_s_head_does_not_copy_its_weight_per_row(tiny):
    # A model frozen under an adapter: its head's weight does not require gradients. torch.matmul
    # then broadcast the (vocab, hidden) weight to every row of the strided last-position input
    # and copied it (a batched product over a weight-sized tensor per row); the forward took 4x
    # as long. The head must run as one matrix product, with the same logits.
    model, tokenizer = tiny
    prompts = [render(tokenizer, judgment_messages(q)) for q in QUESTIONS]
    ids = tokenize(tokenizer, prompts)
    prefix = SharedPrefix(model, ids[0][: common_prefix_length(ids)])
    suffixes = [row[len(prefix) :] for row in ids]
    with torch.inference_mode():
        trainable = prefill(model, prefix, suffixes, tokenizer.pad_token_id).logits
    vocab = model.get_output_embeddings().weight.shape[0]
    model.requires_grad_(False)
    try:
        with torch.profiler.profile(record_shapes=True) as profile, torch.inference_mode():
            frozen = prefill(model, prefix, suffixes, tokenizer.pad_token_id).logits
    finally:
        model.requires_grad_(True)
    batched_over_vocab = [
        event for event in profile.events()
        if event.name == "aten::bmm" and any(vocab in shape for shape in event.input_shapes)
    ]
    assert batched_over_vocab == []
    assert torch.allclose(frozen, trainable, atol=1e-5)


@pytest.mark.parametrize("messages", [answer_messages, judgment_messages])
def test_cascade_prefill_and_decode_equal_the_copied_prefix(tiny, messages):
    model, tokenizer = tiny
    ids = tokenize(tokenizer, [render(tokenizer, messages(q)) for q in QUESTIONS])
    length = common_prefix_length(ids)
    prefix = SharedPrefix(model, ids[0][:length])
    suffixes = [row[length:] for row in ids]
    with torch.inference_mode():
        copied = prefill(model, prefix, suffixes, tokenizer.pad_token_id, hidden=True)
        with cascade_attention_on(model):
            cascade = prefill(model, prefix, suffixes, tokenizer.pad_token_id, hidden=True, cascade=True)
        assert cascade.cache.get_seq_length() == max(len(s) for s in suffixes)  # no prefix in the rows' cache
        assert torch.allclose(cascade.logits, copied.logits, atol=1e-4)
        assert torch.allclose(cascade.hidden, copied.hidden, atol=1e-4)
        token = copied.logits.argmax(-1)[:, None]
        outs = []
        for start in (copied, cascade):
            mask = torch.cat([start.attention_mask, start.attention_mask.new_ones((len(suffixes), 1))], dim=-1)
            with cascade_attention_on(model):
                outs.append(model(
                    input_ids=token, position_ids=start.next_positions, past_key_values=start.cache, use_cache=True,
                    **start.step_inputs(mask),
                ).logits)
        assert torch.allclose(outs[0], outs[1], atol=1e-4)


def test_inside_the_block_a_forward_without_prefix_is_the_model_s_own(tiny):
    # A plain forward (2-D padding mask, no shared prefix) inside the block must build the same
    # masks as outside it; the model's attention setting comes back afterwards, errors included.
    model, tokenizer = tiny
    before = model.config._attn_implementation
    batch = tokenizer([render(tokenizer, answer_messages(q)) for q in QUESTIONS[:3]], return_tensors="pt",
                      padding=True, add_special_tokens=False)
    with torch.inference_mode():
        expected = model(**batch).logits
        with cascade_attention_on(model):
            assert model.config._attn_implementation == CASCADE_ATTENTION
            inside = model(**batch).logits
    assert torch.allclose(inside, expected, atol=1e-5)
    with pytest.raises(RuntimeError), cascade_attention_on(model):
        raise RuntimeError("a failure inside the block")
    assert model.config._attn_implementation == before


def test_judge_and_features_share_one_forward(tiny):
    model, tokenizer = tiny
    _, hidden = judgment_forward(model, tokenizer, QUESTIONS, "three", batch_size=2, hidden=True)
    judged = judge(model, tokenizer, QUESTIONS, "three", batch_size=4)
    assert np.allclose(prompt_features(model, tokenizer, QUESTIONS, "three", 3), hidden.numpy(), atol=1e-4)
    assert judged.probabilities.shape == (len(QUESTIONS), 3)
    assert np.allclose(judged.probabilities.sum(axis=1), 1.0)
    assert judge(model, tokenizer, [], "three").probabilities.shape == (0, 3)


def test_shared_prefix_without_common_tokens_is_empty(tiny):
    model, _ = tiny
    prefix = SharedPrefix(model, [])
    assert len(prefix) == 0 and prefix.cache_for(model, 3) is None


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
