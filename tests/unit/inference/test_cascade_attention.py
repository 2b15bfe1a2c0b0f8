"""Cascade attention alone: the shared prefix attended to from one copy of its keys and values
equals attention over the prefix copied into every row (on a model: tests/unit/inference/test_sampling.py)."""

import pytest
import torch
from torch.nn.functional import scaled_dot_product_attention

from know_thyself.inference.cascade import cascade_attention


class _Layer(torch.nn.Module):
    layer_idx = 0


def _reference(query, prefix_k, prefix_v, own_k, own_v, own_mask):
    """SDPA over [prefix copied into every row, own tokens], key heads repeated for the query heads."""
    batch, heads = query.shape[:2]
    groups = heads // own_k.shape[1]
    keys = torch.cat([prefix_k.expand(batch, -1, -1, -1), own_k], dim=2).repeat_interleave(groups, dim=1)
    values = torch.cat([prefix_v.expand(batch, -1, -1, -1), own_v], dim=2).repeat_interleave(groups, dim=1)
    prefix_mask = torch.ones((*own_mask.shape[:3], prefix_k.shape[2]), dtype=torch.bool)
    mask = torch.cat([prefix_mask, own_mask], dim=-1)
    return scaled_dot_product_attention(query.float(), keys.float(), values.float(), attn_mask=mask).transpose(1, 2)


@pytest.mark.parametrize("queries", [1, 4])
@pytest.mark.parametrize("dtype,tolerance", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2)])
def test_cascade_equals_attention_over_a_copied_prefix(queries, dtype, tolerance):
    torch.manual_seed(0)
    batch, heads, kv_heads, dim, prefix, own = 5, 6, 2, 16, 7, 9
    query = torch.randn(batch, heads, queries, dim).to(dtype)
    prefix_k = torch.randn(1, kv_heads, prefix, dim).to(dtype)
    prefix_v = torch.randn(1, kv_heads, prefix, dim).to(dtype)
    own_k, own_v = torch.randn(batch, kv_heads, own, dim).to(dtype), torch.randn(batch, kv_heads, own, dim).to(dtype)
    # Left padding of different widths, causal among the last ``queries`` own tokens.
    padding = torch.tensor([0, 1, 3, 5, 8])
    visible = torch.arange(own)[None, :] >= padding[:, None]
    causal = torch.ones(queries, own, dtype=torch.bool).tril_(own - queries)
    own_mask = visible[:, None, None, :] & causal[None, None]
    out, weights = cascade_attention(
        _Layer(), query, own_k, own_v, own_mask, scaling=dim**-0.5, shared_prefix_kv=[(prefix_k, prefix_v)]
    )
    assert weights is None and out.shape == (batch, queries, heads, dim) and out.dtype == dtype
    expected = _reference(query, prefix_k, prefix_v, own_k, own_v, own_mask)
    assert torch.allclose(out.float(), expected, atol=tolerance, rtol=0)


def test_cascade_without_a_mask_is_causal_over_the_own_tokens():
    torch.manual_seed(1)
    query = torch.randn(2, 4, 3, 8)
    prefix_k, prefix_v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    own_k, own_v = torch.randn(2, 2, 3, 8), torch.randn(2, 2, 3, 8)
    out, _ = cascade_attention(_Layer(), query, own_k, own_v, None, shared_prefix_kv=[(prefix_k, prefix_v)])
    causal = torch.ones(3, 3, dtype=torch.bool).tril_()[None, None].expand(2, 1, 3, 3)
    assert torch.allclose(out, _reference(query, prefix_k, prefix_v, own_k, own_v, causal), atol=1e-5)


def test_cascade_refuses_what_it_does_not_compute():
    query, kv = torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4)
    prefix = [(torch.randn(1, 2, 2, 4), torch.randn(1, 2, 2, 4))]
    with pytest.raises(ValueError, match="sliding window"):
        cascade_attention(_Layer(), query, kv, kv, None, shared_prefix_kv=prefix, sliding_window=4)
