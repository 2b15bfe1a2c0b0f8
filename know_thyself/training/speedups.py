"""The CPU speed-ups of LoRA training, each measured against the alternative in benchmarks/bench_train.py.

The switches are module attributes so that the benchmark and the tests can turn each one off;
:func:`know_thyself.training.lora.build_trainer` reads them when it builds a trainer. Loss, its
completion-only mask, the gradients and every example per epoch are the same with them on or off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from know_thyself import internals
from know_thyself.inference.prefix_cache import expanded_cache

# Training-speed choices, each measured against the alternative in benchmarks/bench_train.py
# (numbers in benchmarks/RESULTS.md); the benchmark switches them off to measure the baseline.
# Score only the positions that carry a label (the completion) with the LM head; see
# :func:`label_positions_only`.
SCORE_LABEL_POSITIONS_ONLY = True
# Batch examples of similar length together (transformers' length-grouped sampler), so that
# batches carry less padding. Not for oversampled judgment data: the copies of one example have
# one length, so the sampler puts them in the same batch. The one default run trained that way
# predicted `uncertain` for 86% of the validation questions and `can` for none, where the run
# before it, with random batches, predicted all three labels.
GROUP_BY_LENGTH = True
# Run the token prefix that every training example shares (the system text and worked examples
# of the prompt) once per batch instead of once per example; see :func:`share_prompt_prefix`.
SHARE_PROMPT_PREFIX = True
# A shorter shared prefix saves too little to be worth the second backbone call.
MIN_SHARED_PREFIX = 8

@contextlib.contextmanager
def label_positions_only() -> Iterator[None]:
    """Inside the block, TRL's fused LM head projects only the positions whose next token is trained on.

    The loss is over the completion tokens only, so the other positions' log-probabilities are
    multiplied by zero. TRL (1.16) drops those positions before the vocabulary projection only
    where it runs its Triton kernel (CUDA, XPU); elsewhere it projects every position of the batch
    onto the whole vocabulary (49,152 words for SmolLM2), forward and backward, the backward's
    products in fp32. For judgment examples (~56 tokens, 3-4 of them trained on) that was about
    half of the CPU's training time. The per-token loss, its mask and its normalisation are the
    same either way; only the unused positions are no longer computed.
    """
    if not SCORE_LABEL_POSITIONS_ONLY:
        yield
        return
    with internals.trl_head_on_labelled_positions():  # the one place TRL's private function is patched
        yield


def share_prompt_prefix(model: Any, prefix_ids: list[int]) -> None:
    """Make the backbone of ``model`` run a batch's shared token prefix once, for every row together.

    Every knowledge example starts with the same ~107 tokens (the answer prompt's system text and
    worked examples) before its ~18 of question and answer; judgment examples share the judgment
    prompt's system text. Causal attention means those positions' keys, values and hidden states
    depend on the prefix alone, so they are the same in every row. The patched backbone runs the
    prefix once (batch 1, with gradients), expands its KV cache to the batch, and runs the rows'
    remaining tokens after it. The output has the same shape and, without dropout, the same values
    as the plain forward; the gradients of the prefix's computation are summed over the rows by the
    expansion, as the plain forward sums them. LoRA dropout draws one mask for the shared positions
    instead of one per row.

    Batches that do not begin with the prefix in every row, or that ask for something else (a
    cache, embeddings, hidden states of every layer), take the backbone's own forward.

    Args:
        model: The PEFT-wrapped causal LM the trainer trains (``get_base_model().base_model`` is
            the backbone TRL's fused LM head calls).
        prefix_ids: The shared token ids (the right-padded batches put them at positions 0..P-1).
    """
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPast

    backbone = model.get_base_model().base_model
    original = backbone.forward
    prefix = torch.tensor(prefix_ids, dtype=torch.long)
    width = len(prefix_ids)

    def forward(input_ids: Any = None, attention_mask: Any = None, position_ids: Any = None, **kwargs: Any) -> Any:
        shared = (
            input_ids is not None
            and input_ids.shape[1] > width
            and kwargs.get("past_key_values") is None
            and kwargs.get("inputs_embeds") is None
            and not kwargs.get("output_hidden_states")
            and not kwargs.get("output_attentions")
            and position_ids is None
            and torch.equal(input_ids[:, :width], prefix.to(input_ids.device).expand(input_ids.shape[0], -1))
            and (attention_mask is None or bool(attention_mask[:, :width].all()))
        )
        if not shared:
            return original(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)
        rows = input_ids.shape[0]
        kwargs.pop("use_cache", None)
        kwargs.pop("past_key_values", None)  # None here (checked above); the tail gets the prefix's cache
        head = original(input_ids=input_ids[:1, :width], use_cache=True, **kwargs)
        shared_kv = internals.cache_keys_values(head.past_key_values)
        cache = expanded_cache(backbone.config, shared_kv, rows)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        tail = original(
            input_ids=input_ids[:, width:], attention_mask=attention_mask, past_key_values=cache, use_cache=False, **kwargs
        )
        hidden = torch.cat([head.last_hidden_state.expand(rows, -1, -1), tail.last_hidden_state], dim=1)
        return BaseModelOutputWithPast(last_hidden_state=hidden)

    backbone.forward = forward
