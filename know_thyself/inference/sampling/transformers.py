"""The ``transformers`` backend (``backend=transformers``, what ``auto`` picks): the project's own decode loop over a
Hugging Face model's forward (see the package docs)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from know_thyself.inference.cascade import cascade_attention_on
from know_thyself.inference.prefix_cache import SharedPrefix, common_prefix_length, prefill, tokenize
from know_thyself.inference.sampling.base import (
    Answers,
    ProgressFn,
    answer_span,
    check_batch_size,
    check_sample_args,
    clean_answer,
    dtype_tags,
    eos_ids,
    inverse_cdf_sample,
    mean_logprob,
    stop_token_mask,
)

# Dropping finished rows from the KV cache copies the whole cache. The rows are dropped once this
# fraction of the batch has finished. On a 2-core CPU (64 questions x 6 rows, batches of 32,
# interleaved repetitions) 0.1 took 8.3 s against 9.1 s for "as soon as any row ends" (0.0) and
# 8.4 / 8.6 s for 0.2 / 0.3. On a GPU the copy costs more than decoding finished rows a few more
# steps; its value is a starting point, not yet measured on a card.
CPU_COMPACT_FRACTION = 0.1
GPU_COMPACT_FRACTION = 0.5


class TransformersSampler:
    """The ``transformers`` backend: shared-prefix cache, one prefill per question, greedy row folded in.

    Args:
        model: A causal LM in eval mode.
        tokenizer: Its tokenizer.
        batch_size: Questions per batch (each decodes ``batch_size * (num_trials + 1)`` rows).
        compact_fraction: Drop finished rows from the batch once at least this fraction of its
            rows has finished (0.0: as soon as one has). Default: ``CPU_COMPACT_FRACTION`` on
            CPU, ``GPU_COMPACT_FRACTION`` on a GPU.
        shared_prefix: Prefill the prompts' common token prefix once and reuse it (on by
            default; off recomputes it in every batch, for comparison).
        cascade: Keep one copy of the shared prefix's keys and values for the whole batch and
            attend to it with :func:`know_thyself.inference.prefix_cache.cascade_attention`, instead of
            copying it into every row's cache (the rows' caches then hold only the question and
            the answer). Default: on CPU, where it is measured faster (``benchmarks/RESULTS.md``);
            off on a GPU, where SDPA's fused kernels over the copied prefix are not yet compared.
    """

    name = "transformers"

    def __init__(
        self, model: Any, tokenizer: Any, batch_size: int = 32, compact_fraction: float | None = None,
        shared_prefix: bool = True, cascade: bool | None = None,
    ) -> None:
        check_batch_size(batch_size)
        if compact_fraction is None:
            compact_fraction = CPU_COMPACT_FRACTION if model.device.type == "cpu" else GPU_COMPACT_FRACTION
        if not 0.0 <= compact_fraction <= 1.0:
            raise ValueError(f"compact_fraction must be in [0, 1], got {compact_fraction}")
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.compact_fraction, self.shared_prefix = batch_size, compact_fraction, shared_prefix
        vocab = model.get_output_embeddings().weight.shape[0]
        self.stop = stop_token_mask(tokenizer, vocab, eos_ids(tokenizer, model))
        if cascade is None:
            cascade = model.device.type == "cpu"
        self.cascade = cascade and shared_prefix
        self._prefix: SharedPrefix | None = None
        self._prefix_key: list[int] = []

    def tags(self) -> dict[str, str]:
        return dtype_tags(self.name, self.model)

    def _prefix_for(self, ids: list[list[int]]) -> SharedPrefix:
        """The cached prefix if every prompt starts with it, else this call's common prefix."""
        common = ids[0][: common_prefix_length(ids)] if self.shared_prefix else []
        key = self._prefix_key
        if self._prefix is None or common[: len(key)] != key:
            self._prefix, self._prefix_key = SharedPrefix(self.model, common), common
        return self._prefix

    @torch.inference_mode()
    def sample(
        self, prompts: Sequence[str], num_trials: int, max_new_tokens: int = 24, temperature: float = 1.0,
        seed: int = 0, progress: ProgressFn | None = None,
    ) -> Answers:
        check_sample_args(num_trials, max_new_tokens)
        ids = tokenize(self.tokenizer, prompts)
        prefix = self._prefix_for(ids) if ids else None
        generator = torch.Generator(device=self.model.device).manual_seed(seed)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        results: list[tuple] = [None] * len(ids)  # type: ignore[list-item]
        context = cascade_attention_on(self.model) if self.cascade else contextlib.nullcontext()
        with context:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                suffixes = [ids[i][len(prefix) :] for i in chunk]
                decoded = self._decode(prefix, suffixes, num_trials, max_new_tokens, temperature, generator)
                for i, result in zip(chunk, decoded):
                    results[i] = result
                if progress is not None:
                    progress(len(chunk), len(chunk) * num_trials)
        return Answers(
            samples=[r[0] for r in results],
            greedy=[r[1] for r in results],
            greedy_tokens=[r[2] for r in results],
            greedy_mean_logprob=np.array([r[3] for r in results], dtype=float),
            generated_tokens=[r[4] for r in results],
        )

    def _decode(
        self, prefix: SharedPrefix, suffixes: list[list[int]], num_trials: int, max_new_tokens: int,
        temperature: float, generator: torch.Generator,
    ) -> list[tuple[list[str], str, list[int], float, int]]:
        """Decode one batch; per question (samples, greedy, greedy tokens, mean log-prob, tokens decoded)."""
        model, device = self.model, self.model.device
        # Per question: num_trials sampled rows, then its greedy row. At temperature 0 the
        # samples are greedy as well, and one row serves them all.
        per_question = 1 if temperature == 0 else num_trials + 1
        start = prefill(model, prefix, suffixes, self.tokenizer.pad_token_id, cascade=self.cascade)
        cache = start.cache
        cache.batch_repeat_interleave(per_question)  # each question's prefill shared by its rows
        logits = start.logits.repeat_interleave(per_question, dim=0)
        mask = start.attention_mask.repeat_interleave(per_question, dim=0)
        next_pos = start.next_positions.repeat_interleave(per_question, dim=0)
        rows = logits.shape[0]
        greedy = torch.arange(rows, device=device) % per_question == per_question - 1
        alive = torch.arange(rows, device=device)  # the original row of each row in the batch
        active = torch.ones(rows, dtype=torch.bool, device=device)  # not yet ended
        tokens = torch.full((rows, max_new_tokens), -1, dtype=torch.long, device=device)
        logprob_sum = torch.zeros(rows, dtype=torch.float64, device=device)
        stop = self.stop.to(device)
        for step in range(max_new_tokens):
            g = greedy.nonzero().squeeze(-1)
            greedy_logits = logits[g].float()
            greedy_choice = greedy_logits.argmax(dim=-1)
            if temperature > 0:
                # Every row is drawn (a row-index copy of the sampled rows' logits costs more than
                # drawing the few greedy rows too); the greedy rows then take their argmax.
                chosen = inverse_cdf_sample(logits, temperature, generator)
                chosen[g] = greedy_choice
            else:
                chosen = greedy_choice  # every row is a greedy row
            ended = stop[chosen]
            logprob = torch.log_softmax(greedy_logits, dim=-1).gather(-1, greedy_choice[:, None]).squeeze(-1)
            counted = active[g] & ~ended[g]  # answer tokens: before the stop token
            logprob_sum.index_add_(0, alive[g], torch.where(counted, logprob, 0.0).double())
            tokens[alive[active], step] = chosen[active]
            active = active & ~ended
            if step == max_new_tokens - 1 or not bool(active.any()):
                break
            finished = active.numel() - int(active.sum())
            if finished and finished >= self.compact_fraction * active.numel():
                keep = active.nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                alive, chosen, mask, next_pos = alive[keep], chosen[keep], mask[keep], next_pos[keep]
                greedy, active = greedy[keep], active[keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
            out = model(
                input_ids=chosen[:, None], position_ids=next_pos, past_key_values=cache, use_cache=True,
                **start.step_inputs(mask),
            )
            cache, logits, next_pos = out.past_key_values, out.logits[:, -1, :], next_pos + 1
        decoded = [row[row >= 0].tolist() for row in tokens.cpu()]
        texts = [clean_answer(t) for t in self.tokenizer.batch_decode(decoded, skip_special_tokens=True)]
        logprob_sum = logprob_sum.cpu()
        results = []
        for q in range(len(suffixes)):
            first, last = q * per_question, q * per_question + per_question - 1
            answer = decoded[last][: answer_span(decoded[last], self.stop)]
            samples = texts[first : first + num_trials] if temperature > 0 else [texts[last]] * num_trials
            used = sum(len(decoded[r]) for r in range(first, last + 1))
            results.append((samples, texts[last], answer, mean_logprob(float(logprob_sum[last]), len(answer)), used))
        return results
