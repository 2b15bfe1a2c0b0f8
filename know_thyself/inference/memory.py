"""Memory needed to sample answers, bounded from the model's shape before anything is allocated.

The collect step decodes ``inference_batch_size * num_trials`` rows at once. Its memory grows
with the rows, the longest prompt and ``max_new_tokens``: the key/value cache of every row, and
the next-token logits of every row with the sampler's float32 working copies. This module turns
a model config into an upper bound of those bytes, so that an impossible batch is refused with
the numbers and the fix, before the model is loaded or a run is opened, instead of failing
minutes later inside a tensor allocation.

Only the transformers samplers are covered: vLLM plans its own memory (PagedAttention).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Share of the free memory a batch may plan to use; the rest is left for the allocator's slack,
# the tokenizer, Python objects and whatever else runs on the machine.
USABLE_FRACTION = 0.9
# Bytes per logit in the sampler's float32 working copies of a decode step (upcast, scaled,
# softmax, cumulative sum), besides the logits in the model's own dtype.
_SAMPLER_FLOAT_COPIES = 4


@dataclass(frozen=True)
class ModelShape:
    """The sizes of a causal LM that decide its decoding memory.

    Attributes:
        layers: Transformer layers (each holds a key and a value cache).
        kv_heads: Key/value heads per layer (fewer than attention heads with grouped-query attention).
        head_dim: Size of each head.
        attention_heads: Query heads per layer.
        hidden_size: Width of the residual stream.
        intermediate_size: Width of the MLP.
        vocab_size: Entries of the output distribution.
        parameters: Number of weights (0 when unknown).
    """

    layers: int
    kv_heads: int
    head_dim: int
    attention_heads: int
    hidden_size: int
    intermediate_size: int
    vocab_size: int
    parameters: int = 0

    @classmethod
    def from_config(cls, config: Any, parameters: int | None = None) -> ModelShape:
        """Read the shape from a transformers ``PretrainedConfig`` (its text part, if composite).

        Args:
            config: The model's config.
            parameters: Number of weights, when already known; counted on the meta device
                (no memory) otherwise.
        """
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        heads = int(text.num_attention_heads)
        hidden = int(text.hidden_size)
        head_dim = getattr(text, "head_dim", None) or hidden // heads
        shape = cls(
            layers=int(text.num_hidden_layers),
            kv_heads=int(getattr(text, "num_key_value_heads", None) or heads),
            head_dim=int(head_dim),
            attention_heads=heads,
            hidden_size=hidden,
            intermediate_size=int(getattr(text, "intermediate_size", None) or 4 * hidden),
            vocab_size=int(text.vocab_size),
        )
        count = _count_parameters(config) if parameters is None else parameters
        return cls(**{**shape.__dict__, "parameters": count})

    def kv_bytes_per_token(self, itemsize: int) -> int:
        """Bytes the key/value cache holds for one token of one row."""
        return 2 * self.layers * self.kv_heads * self.head_dim * itemsize


def _count_parameters(config: Any) -> int:
    """Count a model's weights by building it on the meta device (no memory is allocated)."""
    try:
        import torch
        from transformers import AutoModelForCausalLM

        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        return sum(p.numel() for p in model.parameters())
    except Exception as exc:  # noqa: BLE001 - an unknown architecture: leave the weights out
        logger.info("could not count the model's parameters (%s); leaving the weights out", exc)
        return 0


def decode_batch_bytes(
    shape: ModelShape,
    prompts: int,
    num_trials: int,
    prompt_tokens: int,
    max_new_tokens: int,
    itemsize: int,
    shared_prefill: bool = True,
) -> int:
    """An upper bound of the bytes one sampler batch allocates, weights not included.

    The batch prefills ``prompts`` prompts (each once when ``shared_prefill``, as the
    ``transformers`` backend does; ``num_trials`` times each otherwise, as ``generate`` with
    ``num_return_sequences`` does) and decodes ``prompts * num_trials`` rows for up to
    ``max_new_tokens`` steps. Counted:

    * the key/value cache of every row at full length (``prompt_tokens + max_new_tokens``),
      plus one layer's copy (the cache grows and is re-indexed a layer at a time), plus the
      prefill's own cache before it is repeated for the samples;
    * the prefill: logits at every prompt position, attention scores (as eager attention
      materialises them, in float32) and MLP activations;
    * a decode step: two sets of logits in the model's dtype and the sampler's float32 copies.

    Args:
        shape: The model's shape.
        prompts: Prompts in the batch (``inference_batch_size``).
        num_trials: Answers per prompt (the ``num_trials`` option).
        prompt_tokens: Tokens of the longest prompt (every prompt is padded to it).
        max_new_tokens: Longest answer in tokens.
        itemsize: Bytes per element of the model's dtype (2 for bf16/fp16, 4 for fp32).
        shared_prefill: Whether each prompt is prefilled once and its cache shared by its samples.
    """
    rows = prompts * num_trials
    length = prompt_tokens + max_new_tokens
    prefill_rows = prompts if shared_prefill else rows
    per_token = shape.kv_bytes_per_token(itemsize)
    cache = rows * length * per_token
    cache += cache // shape.layers + prefill_rows * prompt_tokens * per_token
    prefill_tokens = prefill_rows * prompt_tokens
    prefill = (
        prefill_tokens * shape.vocab_size * itemsize
        + prefill_rows * shape.attention_heads * prompt_tokens * prompt_tokens * 4
        + prefill_tokens * (4 * shape.hidden_size + 3 * shape.intermediate_size) * itemsize
    )
    step = rows * shape.vocab_size * (2 * itemsize + 4 * _SAMPLER_FLOAT_COPIES)
    return cache + prefill + step


def weights_bytes(shape: ModelShape, itemsize: int) -> int:
    """Bytes of the model's weights in a dtype of ``itemsize`` bytes (0 when unknown)."""
    return shape.parameters * itemsize


def available_bytes(device: str) -> int | None:
    """Free memory on ``device`` now: the GPU's free memory, or the host's available memory
    (within a cgroup's limit, as in a container); ``None`` when it cannot be told."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None
        index = torch.device(device).index
        free, _ = torch.cuda.mem_get_info(torch.cuda.current_device() if index is None else index)
        return int(free)
    candidates = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit.isdigit():
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            candidates.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            return None
    return min(candidates)


def max_prompts_per_batch(
    shape: ModelShape,
    num_trials: int,
    prompt_tokens: int,
    max_new_tokens: int,
    itemsize: int,
    budget: int,
    shared_prefill: bool = True,
) -> int:
    """The most prompts one batch may hold within ``budget`` bytes (0 if not even one fits).

    A sampler that splits its batches by memory calls this with the bytes it may use.
    """
    def need(prompts: int) -> int:
        return decode_batch_bytes(
            shape, prompts, num_trials, prompt_tokens, max_new_tokens, itemsize, shared_prefill
        )

    if need(1) > budget:
        return 0
    low, high = 1, 2
    while need(high) <= budget:  # the need grows with the prompts: double, then bisect
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if need(middle) <= budget else (low, middle)
    return low


def check_decode_memory(
    shape: ModelShape,
    *,
    batch_size: int,
    num_trials: int,
    prompt_tokens: int,
    max_new_tokens: int,
    itemsize: int,
    device: str,
    available: int | None = None,
    weights_loaded: bool = False,
    shared_prefill: bool = True,
) -> None:
    """Refuse a sampling batch that cannot fit in the free memory, naming the options to lower.

    Args:
        shape: The model's shape.
        batch_size: Prompts per batch (the ``inference_batch_size`` option).
        num_trials: Answers per prompt (the ``num_trials`` option).
        prompt_tokens: Tokens of the longest prompt.
        max_new_tokens: Longest answer in tokens.
        itemsize: Bytes per element of the model's dtype.
        device: Where the model will run (``cpu``, ``cuda``, ``cuda:1``...).
        available: Free bytes (measured on ``device`` when omitted; no check when unknown).
        weights_loaded: Whether the weights already sit in that free memory's complement (true
            once the model is loaded); if not, they are counted as part of the need.
        shared_prefill: Whether the sampler prefills each prompt once (see :func:`decode_batch_bytes`).

    Raises:
        ValueError: when the bound exceeds :data:`USABLE_FRACTION` of the free memory.
    """
    free = available_bytes(device) if available is None else available
    if free is None:
        logger.info("free memory on %s is unknown; the batch size is not checked", device)
        return
    weights = 0 if weights_loaded else weights_bytes(shape, itemsize)
    need = decode_batch_bytes(
        shape, batch_size, num_trials, prompt_tokens, max_new_tokens, itemsize, shared_prefill
    )
    budget = int(free * USABLE_FRACTION) - weights
    if need <= budget:
        return
    rows = batch_size * num_trials
    summary = (
        f"sampling inference_batch_size={batch_size} x num_trials={num_trials} = {rows} rows of up "
        f"to {prompt_tokens + max_new_tokens} tokens needs up to {_gib(need)} on {device}"
        f"{f' besides {_gib(weights)} of weights' if weights else ''}, but {_gib(free)} is free"
    )
    fitting = max_prompts_per_batch(
        shape, num_trials, prompt_tokens, max_new_tokens, itemsize, budget, shared_prefill
    )
    if fitting >= 1:
        raise ValueError(f"{summary}; lower inference_batch_size to {fitting} or less")
    raise ValueError(
        f"{summary}; even one question per batch does not fit: lower num_trials or "
        "max_new_tokens, free memory, or use a smaller model"
    )


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f} GiB"


def check_sampling_memory(
    model: str,
    question_sets: Sequence[Sequence[str]],
    *,
    batch_size: int,
    num_trials: int,
    max_new_tokens: int,
    dtype: str,
    backend: str,
    device: str | None = None,
) -> None:
    """Refuse, before loading the model, a collect run whose sampling batches cannot fit.

    Reads only the model's config and tokenizer: the prompts are rendered as the collect step
    renders them to find the longest, and :func:`check_decode_memory` compares the bound with
    the free memory of the device the model would be loaded on.

    Args:
        model: A model argument (see :mod:`know_thyself.inference.models`).
        question_sets: The question texts that will be sampled, one list per split (splits
            are sampled one after the other, so a batch never holds more than one split's).
        batch_size: The ``inference_batch_size`` option.
        num_trials: The ``num_trials`` option.
        max_new_tokens: The ``max_new_tokens`` option.
        dtype: The ``dtype`` option (``auto`` resolves as when loading).
        backend: The sampler; ``vllm`` is not checked (it plans its own memory).
        device: Where the model would run; default: where :func:`~know_thyself.inference.models.load_model` puts it.

    Raises:
        ValueError: with the numbers and the option to lower.
    """
    questions = [question for group in question_sets for question in group]
    if backend == "vllm" or not questions:
        return
    from transformers import AutoConfig

    from know_thyself.data.prompts import answer_messages, render
    from know_thyself.inference.models import _from_pretrained, default_device, load_tokenizer, pick_dtype

    tokenizer = load_tokenizer(model)
    prompts = [render(tokenizer, answer_messages(question)) for question in questions]
    prompt_tokens = max(len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"])
    device = device or default_device()
    check_decode_memory(
        ModelShape.from_config(_from_pretrained(AutoConfig, model)),
        batch_size=min(batch_size, max(len(group) for group in question_sets)),
        num_trials=num_trials,
        prompt_tokens=prompt_tokens,
        max_new_tokens=max_new_tokens,
        itemsize=pick_dtype(dtype, device).itemsize,
        device=device,
        shared_prefill=backend != "plain",
    )
