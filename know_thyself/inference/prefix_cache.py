"""A shared-prefix KV cache: the tokens every prompt of a call begins with are prefilled once.

The answer prompt's system text and worked examples (~140 tokens) and the judgment prompt's
system text are the same for every question; only the question differs. :class:`SharedPrefix`
runs the model once over that common prefix, and each batch starts from a copy of its KV cache
expanded to the batch. The per-question suffixes are then prefilled after it, left-padded to a
common length, so that each row of the batch reads

    [shared prefix (P tokens)] [padding] [the row's suffix tokens]

with the padding masked out (``attention_mask`` 0) and explicit ``position_ids`` that continue
from the prefix (``P, P+1, ...`` over each row's own suffix tokens, whatever its padding). The
result equals a forward over each full prompt on its own, up to floating-point rounding.

With a *cascade* (:func:`prefill` with ``cascade=True``, under :func:`~know_thyself.inference.cascade.cascade_attention_on`)
the prefix is not copied at all: the rows' cache holds only their suffixes (and what is decoded
after them), and :func:`~know_thyself.inference.cascade.cascade_attention` attends to the prefix's single copy of keys and
values for every row, one matrix product for the whole batch, joined with each row's own part.
On a 2-core CPU this decodes the sampler's batches about 1.3x faster than the copied prefix.

The prefix is the longest common *token* prefix of the tokenised prompts, so splitting a prompt's
token ids at it and concatenating the parts gives back exactly its tokenisation. It is capped
so that every row keeps at least one suffix token (the position whose logits are read).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from know_thyself import internals


def common_prefix_length(token_lists: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of ``token_lists``, leaving every list at least one token."""
    if not token_lists:
        return 0
    first = token_lists[0]
    limit = min(len(ids) for ids in token_lists) - 1
    length = 0
    while length < limit and all(ids[length] == first[length] for ids in token_lists):
        length += 1
    return max(length, 0)


class SharedPrefix:
    """The KV cache of a token prefix, computed once and copied into every batch.

    Args:
        model: A causal LM (a PEFT model too) in eval mode. The cache is only valid for the
            weights it was computed with: an adapter switched on or off needs a new prefix.
        prefix_ids: The shared token ids; empty means no prefix (every batch starts from scratch).
    """

    def __init__(self, model: Any, prefix_ids: Sequence[int]) -> None:
        self.ids = list(prefix_ids)
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []
        if not self.ids:
            return
        with torch.inference_mode():
            ids = torch.tensor([self.ids], device=model.device)
            out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        if not internals.is_plain_dynamic_cache(cache):
            # Sliding-window or otherwise special caches cannot simply be copied: no prefix then.
            self.ids = []
            return
        self.layers = internals.cache_keys_values(cache)

    def __len__(self) -> int:
        return len(self.ids)

    def cache_for(self, model: Any, batch: int) -> Any:
        """A fresh ``DynamicCache`` holding the prefix for ``batch`` rows (None without a prefix)."""
        if not self.ids:
            return None
        return expanded_cache(model.config, self.layers, batch)


def expanded_cache(config: Any, layers: Sequence[tuple[torch.Tensor, torch.Tensor]], batch: int) -> Any:
    """A fresh ``DynamicCache`` holding one row's per-layer ``(keys, values)`` for ``batch`` rows.

    ``update`` concatenates onto an empty tensor, so the expanded views are copied, not aliased;
    gradients, where the tensors carry them, flow back through the expansion (summed over rows).
    """
    return internals.new_cache(config, [(keys.expand(batch, -1, -1, -1), values.expand(batch, -1, -1, -1))
                                        for keys, values in layers])


@dataclass
class Prefill:
    """A batch after the prefill of its suffixes: what a decode loop needs to continue."""

    logits: torch.Tensor  # (batch, vocab): next-token logits at each row's last prompt token
    hidden: torch.Tensor | None  # (batch, hidden): last layer's hidden state there, when asked for
    cache: Any  # the KV cache over prefix + suffixes (over the suffixes only with a cascade)
    attention_mask: torch.Tensor  # (batch, cached width): 1 where a cached token is attended to
    next_positions: torch.Tensor  # (batch, 1): the position id of each row's next token
    shared_prefix_kv: Any = None  # with a cascade: the prefix's keys/values, once for the batch

    def step_inputs(self, attention_mask: torch.Tensor) -> dict[str, Any]:
        """The mask (and prefix) arguments of a decode step's forward, given the 2-D mask so far."""
        if self.shared_prefix_kv is None:
            return {"attention_mask": attention_mask}
        return {"attention_mask": attention_mask[:, None, None, :].bool(), "shared_prefix_kv": self.shared_prefix_kv}


def prefill(
    model: Any, prefix: SharedPrefix, suffixes: Sequence[Sequence[int]], pad_id: int, hidden: bool = False,
    cascade: bool = False,
) -> Prefill:
    """Prefill ``suffixes`` (token id lists) after the shared ``prefix``; logits at the last position only.

    Args:
        model: The model ``prefix`` was computed with.
        prefix: The shared prefix.
        suffixes: Each row's token ids after the prefix (at least one each).
        pad_id: The id written into padding (masked out; its value does not matter).
        hidden: Also return the last layer's hidden state at each row's last token.
        cascade: Keep the prefix out of the rows' cache and attend to its single copy
            (:func:`know_thyself.inference.cascade.cascade_attention`); the caller runs the model under
            :func:`~know_thyself.inference.cascade.cascade_attention_on` and passes :meth:`Prefill.step_inputs` to every step.
    """
    if any(len(s) == 0 for s in suffixes):
        raise ValueError("every prompt needs at least one token after the shared prefix")
    device = model.device
    batch, width = len(suffixes), max(len(s) for s in suffixes)
    ids = torch.full((batch, width), pad_id, dtype=torch.long)
    suffix_mask = torch.zeros((batch, width), dtype=torch.long)
    for row, tokens in enumerate(suffixes):  # left padding: every row's last token is the last column
        ids[row, width - len(tokens) :] = torch.tensor(list(tokens), dtype=torch.long)
        suffix_mask[row, width - len(tokens) :] = 1
    ids, suffix_mask = ids.to(device), suffix_mask.to(device)
    positions = len(prefix) + (suffix_mask.cumsum(-1) - 1).clamp_(min=0)
    if cascade and len(prefix):
        causal = torch.ones((width, width), dtype=torch.bool, device=device).tril_()
        mask, cache, extra = suffix_mask, internals.new_cache(model.config), {"shared_prefix_kv": prefix.layers}
        forward_mask = causal[None, None] & suffix_mask[:, None, None, :].bool()
    else:
        mask = torch.cat([suffix_mask.new_ones((batch, len(prefix))), suffix_mask], dim=-1)
        cache, extra, forward_mask = prefix.cache_for(model, batch), {}, mask
    with contiguous_head_input(model):
        out = model(
            input_ids=ids,
            attention_mask=forward_mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
            output_hidden_states=hidden,
            **extra,
        )
    return Prefill(
        logits=out.logits[:, -1, :],
        hidden=out.hidden_states[-1][:, -1, :] if hidden else None,
        cache=out.past_key_values,
        attention_mask=mask,
        next_positions=positions[:, -1:] + 1,
        shared_prefix_kv=extra.get("shared_prefix_kv"),
    )


@contextmanager
def contiguous_head_input(model: Any) -> Iterator[None]:
    """Inside the block, the output projection gets its input as a contiguous tensor.

    With ``logits_to_keep=1`` the head's input is the last position of each row, a strided view
    of (batch, 1, hidden). For such a 3-D view and a weight that does not require gradients (a
    model frozen under a PEFT adapter), ``torch.matmul`` does not fold the batch into one matrix
    product: it broadcasts the (vocab, hidden) weight to every row and copies it, batch x vocab x
    hidden elements per call (about 0.9G for 32 rows of SmolLM2, 1.5 s on a 2-core CPU, 4x the
    rest of the forward). A contiguous input folds into one product. Nothing changes for a model
    without an output projection.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        yield
        return
    handle = head.register_forward_pre_hook(lambda module, args: (args[0].contiguous(), *args[1:]))
    try:
        yield
    finally:
        handle.remove()


def tokenize(tokenizer: Any, prompts: Sequence[str]) -> list[list[int]]:
    """Token ids of each rendered prompt (the chat template already holds any special tokens)."""
    return tokenizer(list(prompts), add_special_tokens=False)["input_ids"] if prompts else []


def last_position(
    model: Any, tokenizer: Any, prompts: Sequence[str], batch_size: int = 32, hidden: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Next-token logits (and optionally the last hidden state) at the end of each prompt.

    The prompts' shared token prefix is prefilled once for the call and reused by every batch.

    Args:
        model: A causal LM in eval mode.
        tokenizer: Its tokenizer.
        prompts: Rendered prompts.
        batch_size: Prompts per forward pass.
        hidden: Also return the last layer's hidden state at each prompt's last token.

    Returns:
        ``(logits, hidden)``: float32 CPU tensors of shape (n, vocab) and (n, hidden_size), the
        latter None unless asked for; rows in the order of ``prompts``. The logits are computed
        in float32 even for a bf16/fp16 model (:func:`fp32_logits`), so that label probabilities
        are not rounded to the low precision's coarse steps.
    """
    return last_position_ids(model, tokenize(tokenizer, prompts), tokenizer.pad_token_id, batch_size, hidden)


@torch.inference_mode()
def last_position_ids(
    model: Any, ids: Sequence[Sequence[int]], pad_id: int, batch_size: int = 32, hidden: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`last_position` on prompts already tokenised (``ids``), so that several models can share one tokenisation."""
    prefix = SharedPrefix(model, ids[0][: common_prefix_length(ids)] if ids else [])
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # similar lengths share a batch
    logits: list[torch.Tensor] = [None] * len(ids)  # type: ignore[list-item]
    states: list[torch.Tensor] = [None] * len(ids)  # type: ignore[list-item]
    head = _low_precision_head(model)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        out = prefill(
            model, prefix, [ids[i][len(prefix) :] for i in chunk], pad_id, hidden or head is not None
        )
        batch_logits = out.logits.float()
        if head is not None:
            batch_logits = fp32_logits(head, out.hidden, batch_logits)
        for row, i in enumerate(chunk):
            logits[i] = batch_logits[row].cpu()
            if hidden:
                states[i] = out.hidden[row].float().cpu()
    if not ids:
        return torch.zeros((0, 0)), (torch.zeros((0, 0)) if hidden else None)
    return torch.stack(logits), (torch.stack(states) if hidden else None)


def _low_precision_head(model: Any) -> Any:
    """The output projection of a model whose head is not float32 (``None`` when it is, or has none)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or not hasattr(head, "weight") or head.weight.dtype == torch.float32:
        return None
    if getattr(getattr(model, "config", None), "final_logit_softcapping", None):
        return None  # logits are transformed after the head: keep the model's own
    return head


def fp32_logits(head: Any, hidden: torch.Tensor, model_logits: torch.Tensor) -> torch.Tensor:
    """Next-token logits recomputed in float32 from the final (normalised) hidden state.

    A bf16 logit of magnitude 20 is rounded to a step of 0.125, which moves a softmax
    probability by up to about 6%; the head's matrix product in float32 avoids that. The
    result must agree with the model's own logits up to that rounding; where it does not (an
    architecture that transforms the hidden state or the logits after the head), the model's
    logits are kept.

    Args:
        head: The model's output projection (``get_output_embeddings()``).
        hidden: Final hidden states at the scored positions, shape (batch, hidden).
        model_logits: The model's own logits there as float32, shape (batch, vocab).
    """
    weight = head.weight.float()
    bias = head.bias.float() if getattr(head, "bias", None) is not None else None
    logits = torch.nn.functional.linear(hidden.float(), weight, bias)
    tolerance = 0.02 * float(model_logits.abs().max()) + 0.1
    if logits.shape != model_logits.shape or float((logits - model_logits).abs().max()) > tolerance:
        return model_logits
    return logits
