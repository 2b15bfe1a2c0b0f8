"""Cascade attention: every row of a batch attends to one stored copy of the prompts' shared prefix.

:func:`~know_thyself.inference.prefix_cache.prefill` with ``cascade=True`` keeps the prefix out of
the rows' KV cache; under :func:`cascade_attention_on` the model's attention layers run
:func:`cascade_attention`, which reads the prefix's keys and values once for the whole batch and
joins them with each row's own part. On a 2-core CPU this decodes the sampler's batches about
1.3x faster than a prefix copied into every row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from know_thyself import internals

# The name under which :func:`cascade_attention` is registered with transformers.
CASCADE_ATTENTION = "know_thyself_cascade"


def cascade_attention(
    module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None,
    dropout: float = 0.0, scaling: float | None = None, shared_prefix_kv: Any = None, **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention over a shared prefix that is stored once, then over each row's own keys.

    A transformers attention function (registered as ``CASCADE_ATTENTION``). ``key``/``value``
    hold only each row's own tokens (after the prefix); ``shared_prefix_kv[layer]`` holds the
    prefix's ``(keys, values)`` once, shape (1, kv_heads, P, head_dim). Every row attends to all
    of the prefix (it has no padding) and to its own tokens under ``attention_mask``, a boolean
    (batch, 1, queries, own keys) mask (True: attend). The prefix's scores for all rows and heads
    are one matrix product against the single copy of its keys, so the prefix is neither copied
    per row nor read once per row; the two parts' softmaxes are joined through their maxima and
    sums. For inference: ``dropout`` is not applied. Without ``shared_prefix_kv`` this is
    transformers' SDPA attention (dropout included).
    """
    if shared_prefix_kv is None:
        return internals.sdpa_attention(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                        **kwargs)
    if kwargs.get("softcap") is not None or kwargs.get("sliding_window") is not None:
        raise ValueError("cascade attention supports plain causal attention only (no softcap, no sliding window)")
    prefix_keys, prefix_values = shared_prefix_kv[module.layer_idx]
    batch, heads, queries, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    # Query head h reads key head h // groups: a key head's query heads and query positions form
    # one block of rows, (batch, kv_heads, groups * queries, dim). Products in the model's dtype,
    # softmax in float32, as SDPA does.
    q = (query * scale).reshape(batch, kv_heads, groups * queries, dim)
    rows = groups * queries
    # Prefix: (kv_heads, batch * rows, dim) @ (kv_heads, dim, P), one product for the whole batch.
    prefix_scores = torch.matmul(
        q.transpose(0, 1).reshape(kv_heads, batch * rows, dim), prefix_keys[0].to(q.dtype).transpose(-1, -2)
    )
    prefix_scores = prefix_scores.float().view(kv_heads, batch, rows, -1).transpose(0, 1)  # (batch, kv_heads, rows, P)
    own_scores = torch.matmul(q, key.transpose(-1, -2)).float()  # (batch, kv_heads, rows, own)
    own = key.shape[2]
    if attention_mask is None and queries > 1:  # no padding: causal over the own tokens
        causal = torch.ones((queries, own), dtype=torch.bool, device=query.device).tril_(own - queries)
        attention_mask = causal[None, None]
    if attention_mask is not None:
        mask = attention_mask[:, :, -queries:, -own:]  # boolean, as SDPA's mask function builds it
        if groups > 1:
            mask = mask.repeat(1, 1, groups, 1)
        own_scores = own_scores.masked_fill(~mask, float("-inf"))
    top = torch.maximum(prefix_scores.amax(-1), own_scores.amax(-1)).unsqueeze(-1)
    prefix_weights, own_weights = (prefix_scores - top).exp_(), (own_scores - top).exp_()
    total = prefix_weights.sum(-1, keepdim=True) + own_weights.sum(-1, keepdim=True)
    prefix_weights = prefix_weights.transpose(0, 1).reshape(kv_heads, batch * rows, -1).to(value.dtype)
    prefix_out = torch.matmul(prefix_weights, prefix_values[0].to(value.dtype))
    prefix_out = prefix_out.view(kv_heads, batch, rows, dim).transpose(0, 1)
    out = (prefix_out.float() + torch.matmul(own_weights.to(value.dtype), value).float()) / total
    out = out.view(batch, kv_heads, groups, queries, dim).reshape(batch, heads, queries, dim)
    return out.transpose(1, 2).contiguous().to(query.dtype), None


@contextmanager
def cascade_attention_on(model: Any) -> Iterator[None]:
    """Run ``model`` with :func:`cascade_attention` inside the block; its own attention after."""
    # The same masks as SDPA, so that a forward without a shared prefix is SDPA's in every way.
    internals.register_attention(CASCADE_ATTENTION, cascade_attention)
    with internals.attention_implementation(model, CASCADE_ATTENTION):
        yield
