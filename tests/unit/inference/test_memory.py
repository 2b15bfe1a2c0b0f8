"""The memory bound of a sampling batch, and the refusal when it cannot fit."""

import pytest

from know_thyself.inference import memory
from know_thyself.inference.memory import ModelShape, check_decode_memory, decode_batch_bytes, max_prompts_per_batch

SHAPE = ModelShape(layers=2, kv_heads=2, head_dim=8, attention_heads=4, hidden_size=32,
                   intermediate_size=64, vocab_size=100, parameters=1000)


def test_bound_by_hand():
    # 3 prompts x 4 samples = 12 rows, 10 prompt + 5 new tokens, 2-byte elements.
    per_token = 2 * 2 * 2 * 8 * 2  # key and value, layers, kv heads, head dim, bytes
    cache = 12 * 15 * per_token
    cache += cache // 2 + 3 * 10 * per_token  # one layer's copy; the prefill's own cache
    prefill = 3 * 10 * 100 * 2 + 3 * 4 * 10 * 10 * 4 + 3 * 10 * (4 * 32 + 3 * 64) * 2
    step = 12 * 100 * (2 * 2 + 4 * 4)
    assert decode_batch_bytes(SHAPE, 3, 4, 10, 5, 2) == cache + prefill + step


def test_bound_grows_with_every_size():
    base = decode_batch_bytes(SHAPE, 4, 5, 100, 24, 2)
    assert decode_batch_bytes(SHAPE, 8, 5, 100, 24, 2) > base
    assert decode_batch_bytes(SHAPE, 4, 10, 100, 24, 2) > base
    assert decode_batch_bytes(SHAPE, 4, 5, 200, 24, 2) > base
    assert decode_batch_bytes(SHAPE, 4, 5, 100, 48, 2) > base
    assert decode_batch_bytes(SHAPE, 4, 5, 100, 24, 4) > base
    # generate's num_return_sequences prefills every row, the transformers backend each prompt once
    assert decode_batch_bytes(SHAPE, 4, 5, 100, 24, 2, shared_prefill=False) > base


def test_max_prompts_per_batch_is_the_largest_that_fits():
    budget = decode_batch_bytes(SHAPE, 37, 5, 100, 24, 2) + 1
    assert max_prompts_per_batch(SHAPE, 5, 100, 24, 2, budget) == 37
    assert max_prompts_per_batch(SHAPE, 5, 100, 24, 2, decode_batch_bytes(SHAPE, 1, 5, 100, 24, 2) - 1) == 0


def test_refusal_names_the_fix_and_a_batch_size_that_fits():
    need = decode_batch_bytes(SHAPE, 32, 100, 150, 24, 2)
    available = int((need // 4 + SHAPE.parameters * 2) / memory.USABLE_FRACTION)
    with pytest.raises(ValueError) as caught:
        check_decode_memory(SHAPE, batch_size=32, num_trials=100, prompt_tokens=150, max_new_tokens=24,
                            itemsize=2, device="cpu", available=available)
    message = str(caught.value)
    assert "inference_batch_size=32 x num_trials=100 = 3200 rows of up to 174 tokens" in message, message
    suggested = int(message.rsplit("lower inference_batch_size to ", 1)[1].split()[0])
    budget = int(available * memory.USABLE_FRACTION) - SHAPE.parameters * 2
    assert decode_batch_bytes(SHAPE, suggested, 100, 150, 24, 2) <= budget
    assert decode_batch_bytes(SHAPE, suggested + 1, 100, 150, 24, 2) > budget
    # the suggested size passes
    check_decode_memory(SHAPE, batch_size=suggested, num_trials=100, prompt_tokens=150, max_new_tokens=24,
                        itemsize=2, device="cpu", available=available)


def test_refusal_when_not_even_one_question_fits():
    with pytest.raises(ValueError, match="even one question per batch does not fit: lower num_trials"):
        check_decode_memory(SHAPE, batch_size=1, num_trials=100, prompt_tokens=150, max_new_tokens=24,
                            itemsize=2, device="cpu", available=10_000)


def test_unknown_free_memory_is_not_checked(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: None)
    check_decode_memory(SHAPE, batch_size=10**6, num_trials=100, prompt_tokens=150, max_new_tokens=24,
                        itemsize=2, device="cpu")


def test_host_memory_is_measured():
    free = memory.available_bytes("cpu")
    assert free is not None and free > 0


def test_shape_and_parameter_count_from_a_config(tiny):
    model, _ = tiny
    shape = ModelShape.from_config(model.config)
    assert (shape.layers, shape.kv_heads, shape.head_dim, shape.attention_heads) == (2, 2, 8, 4)
    assert shape.vocab_size == model.config.vocab_size
    assert shape.parameters == sum(p.numel() for p in model.parameters())


def test_check_before_sampling_reads_the_model_and_prompts(tiny_model_dir, monkeypatch):
    seen = {}

    def fake_check(shape, **kwargs):
        seen.update(kwargs, shape=shape)

    monkeypatch.setattr(memory, "check_decode_memory", fake_check)
    memory.check_sampling_memory(tiny_model_dir, [["What is the capital of France?"] * 7, ["Who?"] * 3],
                                 batch_size=32, num_trials=5, max_new_tokens=24, dtype="float32",
                                 backend="transformers", device="cpu")
    assert seen["batch_size"] == 7  # a batch never holds more than the largest split
    assert seen["itemsize"] == 4 and seen["shared_prefill"] is True
    assert 20 < seen["prompt_tokens"] < 400  # the chat-rendered prompt, worked examples included
    assert seen["shape"].layers == 2
