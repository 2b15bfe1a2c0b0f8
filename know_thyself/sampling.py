"""Sampling answers from a causal LM: one interface, three backends.

Every backend implements :class:`Sampler`: for a list of chat-rendered prompts, ``sample``
returns an :class:`Answers` with, per prompt, ``num_samples`` sampled answers, the greedy answer
and its mean token log-probability, and the tokens decoded. All backends sample from the same
distribution (softmax of logits / temperature, no top-k or top-p), end an answer at the same
stop tokens, and clean text the same way (:func:`clean_answer`), so they grade alike.

* ``transformers`` (:class:`TransformersSampler`, the default on CPU and single GPU): the token
  prefix every prompt shares (the answer prompt's system text and worked examples) is prefilled
  once (:mod:`know_thyself.prefix_cache`); each batch prefills only the questions after it, and
  on CPU its rows attend to one copy of the prefix's keys and values (cascade attention). Each
  question's KV cache is then shared by ``num_samples + 1`` rows: the samples and the greedy
  answer, decoded together by an own loop over ``model(...)``. Rows leave the batch as they end
  (EOS or a newline); questions are sorted by length; sampling is inverse-CDF (one uniform number
  per row instead of one per vocabulary entry, as ``torch.multinomial`` draws).
* ``plain`` (:class:`PlainSampler`): ``model.generate`` with ``num_return_sequences`` for the
  samples and a second greedy ``generate`` call for the greedy answers: the straightforward
  approach, kept as the reference that the benchmark and the agreement tests compare against.
* ``vllm`` (:class:`know_thyself.vllm_backend.VllmSampler`): vLLM's engine, for GPUs.

:func:`load_sampler` builds the backend a model argument and a backend name ask for.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from know_thyself.prefix_cache import SharedPrefix, cascade_attention_on, common_prefix_length, prefill, tokenize

ProgressFn = Callable[[int, int], None]  # (questions finished in this call, samples in them)

# Dropping finished rows from the KV cache copies the whole cache. The rows are dropped once this
# fraction of the batch has finished. On a 2-core CPU (64 questions x 6 rows, batches of 32,
# interleaved repetitions) 0.1 took 8.3 s against 9.1 s for "as soon as any row ends" (0.0) and
# 8.4 / 8.6 s for 0.2 / 0.3. On a GPU the copy costs more than decoding finished rows a few more
# steps; its value is a starting point, not yet measured on a card.
CPU_COMPACT_FRACTION = 0.1
GPU_COMPACT_FRACTION = 0.5


@dataclass
class Answers:
    """What a sampler returns for a list of prompts, aligned with the prompts.

    Attributes:
        samples: ``num_samples`` cleaned sampled answers per prompt.
        greedy: The cleaned greedy answer per prompt.
        greedy_tokens: The greedy answer's token ids before its stop token, per prompt.
        greedy_mean_logprob: Per prompt, the mean log-probability of the greedy answer's tokens
            before the stop token (the first token that is EOS or contains a newline; the stop
            token itself is not counted), each under the model's unscaled next-token
            distribution (``log_softmax`` of the logits, no temperature), gathered while
            decoding. An answer cut at ``max_new_tokens`` averages over all its tokens; an empty
            answer (the first token is a stop token) has ``-inf``.
        generated_tokens: Tokens decoded per prompt, over its samples and its greedy answer
            (stop tokens included; what ``generate`` decodes after a newline too).
    """

    samples: list[list[str]]
    greedy: list[str]
    greedy_tokens: list[list[int]]
    greedy_mean_logprob: np.ndarray
    generated_tokens: list[int]


class Sampler(Protocol):
    """A sampling backend: what the collect step and the benchmarks call."""

    name: str
    tokenizer: Any

    def tags(self) -> dict[str, str]:
        """Run tags that describe the backend (name, dtype where it has one)."""
        ...

    def sample(
        self,
        prompts: Sequence[str],
        num_samples: int,
        max_new_tokens: int = 24,
        temperature: float = 1.0,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> Answers:
        """Sample ``num_samples`` answers and decode the greedy answer for each rendered prompt.

        Args:
            prompts: Prompt strings, already rendered with the chat template.
            num_samples: Sampled answers per prompt (>= 1).
            max_new_tokens: Cap on each answer's length in tokens.
            temperature: Sampling temperature; 0 makes the samples greedy too.
            seed: Seed of the sampler's random numbers; same inputs and seed, same answers.
            progress: Called as batches finish with (prompts done, samples done).
        """
        ...


def clean_answer(text: str) -> str:
    """The answer part of a generation: the text before the first newline, stripped."""
    return text.split("\n", 1)[0].strip()


def stop_token_mask(tokenizer: Any, vocab_size: int, eos_ids: Sequence[int]) -> torch.Tensor:
    """A boolean mask over the vocabulary: tokens that end an answer (EOS ids, anything with a newline)."""
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    pieces = tokenizer.batch_decode([[i] for i in range(min(vocab_size, len(tokenizer)))])
    for i, piece in enumerate(pieces):
        if "\n" in piece:
            mask[i] = True
    for eos in eos_ids:
        if 0 <= eos < vocab_size:
            mask[eos] = True
    return mask


def eos_ids(tokenizer: Any, model: Any | None = None) -> list[int]:
    """End-of-sequence ids of the model's generation config and of the tokenizer."""
    ids = set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (config_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return sorted(ids)


def answer_span(tokens: Sequence[int], stop: torch.Tensor) -> int:
    """How many of ``tokens`` come before the first stop token (all of them without one)."""
    for i, token in enumerate(tokens):
        if token < len(stop) and stop[token]:
            return i
    return len(tokens)


def mean_logprob(total: float, count: int) -> float:
    """``total / count``, or ``-inf`` for an empty answer."""
    return total / count if count else -math.inf


def inverse_cdf_sample(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """Draw one token per row from softmax(logits / temperature) with one uniform number per row.

    ``temperature == 0`` means greedy (argmax).
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    cdf = torch.softmax(logits / temperature, dim=-1, dtype=torch.float32).cumsum_(dim=-1)
    u = torch.rand((cdf.shape[0], 1), generator=generator, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)


def draw_seed(generator: torch.Generator) -> int:
    """A seed drawn from ``generator``, on the generator's own device (a CUDA one included)."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))


def check_sample_args(num_samples: int, max_new_tokens: int) -> None:
    """Reject a sample call's bad sizes before any work."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def _dtype_tags(name: str, model: Any) -> dict[str, str]:
    return {"know_thyself.backend": name, "know_thyself.dtype_used": str(model.dtype).replace("torch.", "")}


class TransformersSampler:
    """The fast sampler: shared-prefix cache, one prefill per question, greedy row folded in.

    Args:
        model: A causal LM in eval mode.
        tokenizer: Its tokenizer.
        batch_size: Questions per batch (each decodes ``batch_size * (num_samples + 1)`` rows).
        compact_fraction: Drop finished rows from the batch once at least this fraction of its
            rows has finished (0.0: as soon as one has). Default: ``CPU_COMPACT_FRACTION`` on
            CPU, ``GPU_COMPACT_FRACTION`` on a GPU.
        shared_prefix: Prefill the prompts' common token prefix once and reuse it (on by
            default; off recomputes it in every batch, for comparison).
        cascade: Keep one copy of the shared prefix's keys and values for the whole batch and
            attend to it with :func:`know_thyself.prefix_cache.cascade_attention`, instead of
            copying it into every row's cache (the rows' caches then hold only the question and
            the answer). Default: on CPU, where it is measured faster (``benchmarks/RESULTS.md``);
            off on a GPU, where SDPA's fused kernels over the copied prefix are not yet compared.
    """

    name = "transformers"

    def __init__(
        self, model: Any, tokenizer: Any, batch_size: int = 32, compact_fraction: float | None = None,
        shared_prefix: bool = True, cascade: bool | None = None,
    ) -> None:
        _check_batch_size(batch_size)
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
        return _dtype_tags(self.name, self.model)

    def _prefix_for(self, ids: list[list[int]]) -> SharedPrefix:
        """The cached prefix if every prompt starts with it, else this call's common prefix."""
        common = ids[0][: common_prefix_length(ids)] if self.shared_prefix else []
        key = self._prefix_key
        if self._prefix is None or common[: len(key)] != key:
            self._prefix, self._prefix_key = SharedPrefix(self.model, common), common
        return self._prefix

    @torch.inference_mode()
    def sample(
        self, prompts: Sequence[str], num_samples: int, max_new_tokens: int = 24, temperature: float = 1.0,
        seed: int = 0, progress: ProgressFn | None = None,
    ) -> Answers:
        check_sample_args(num_samples, max_new_tokens)
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
                decoded = self._decode(prefix, suffixes, num_samples, max_new_tokens, temperature, generator)
                for i, result in zip(chunk, decoded):
                    results[i] = result
                if progress is not None:
                    progress(len(chunk), len(chunk) * num_samples)
        return Answers(
            samples=[r[0] for r in results],
            greedy=[r[1] for r in results],
            greedy_tokens=[r[2] for r in results],
            greedy_mean_logprob=np.array([r[3] for r in results], dtype=float),
            generated_tokens=[r[4] for r in results],
        )

    def _decode(
        self, prefix: SharedPrefix, suffixes: list[list[int]], num_samples: int, max_new_tokens: int,
        temperature: float, generator: torch.Generator,
    ) -> list[tuple[list[str], str, list[int], float, int]]:
        """Decode one batch; per question (samples, greedy, greedy tokens, mean log-prob, tokens decoded)."""
        model, device = self.model, self.model.device
        # Per question: num_samples sampled rows, then its greedy row. At temperature 0 the
        # samples are greedy as well, and one row serves them all.
        per_question = 1 if temperature == 0 else num_samples + 1
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
            samples = texts[first : first + num_samples] if temperature > 0 else [texts[last]] * num_samples
            used = sum(len(decoded[r]) for r in range(first, last + 1))
            results.append((samples, texts[last], answer, mean_logprob(float(logprob_sum[last]), len(answer)), used))
        return results


class PlainSampler:
    """The reference: ``model.generate`` for the samples, and a second greedy ``generate`` call.

    Args:
        model: A causal LM in eval mode.
        tokenizer: Its tokenizer (left padding).
        batch_size: Questions per ``generate`` call.
    """

    name = "plain"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16) -> None:
        _check_batch_size(batch_size)
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.eos = eos_ids(tokenizer, model)
        self.stop = stop_token_mask(tokenizer, model.get_output_embeddings().weight.shape[0], self.eos)

    def tags(self) -> dict[str, str]:
        return _dtype_tags(self.name, self.model)

    def _decoded_length(self, generated: torch.Tensor) -> torch.Tensor:
        """Tokens generate decoded per row: up to its EOS (the padding after it is not decoded)."""
        ended = torch.isin(generated, torch.tensor(self.eos, device=generated.device))
        return torch.where(ended.any(-1), ended.int().argmax(-1) + 1, generated.shape[1])

    @torch.inference_mode()
    def sample(
        self, prompts: Sequence[str], num_samples: int, max_new_tokens: int = 24, temperature: float = 1.0,
        seed: int = 0, progress: ProgressFn | None = None,
    ) -> Answers:
        check_sample_args(num_samples, max_new_tokens)
        model, tokenizer = self.model, self.tokenizer
        generator = torch.Generator(device=model.device).manual_seed(seed)
        # Prompts of similar length share a call (less padding), as in the fast sampler.
        lengths = [len(ids) for ids in tokenize(tokenizer, prompts)]
        order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
        samples: list[list[str]] = []
        greedy: list[str] = []
        greedy_tokens: list[list[int]] = []
        logprobs: list[float] = []
        used: list[int] = []
        for start in range(0, len(order), self.batch_size):
            chunk = [prompts[i] for i in order[start : start + self.batch_size]]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            width = enc["input_ids"].shape[1]
            out = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                output_logits=True, return_dict_in_generate=True,
            )
            generated = out.sequences[:, width:]
            counts = self._decoded_length(generated)
            # Raw logits of every step, log-softmaxed: the unscaled distribution.
            logprob = torch.log_softmax(torch.stack(out.logits, dim=1).float(), dim=-1)
            logprob = logprob.gather(-1, generated[:, : logprob.shape[1], None]).squeeze(-1).cpu()
            for row, ids in enumerate(generated.cpu().tolist()):
                answer = ids[: answer_span(ids, self.stop)]
                greedy_tokens.append(answer)
                logprobs.append(mean_logprob(float(logprob[row, : len(answer)].sum()), len(answer)))
            greedy.extend(clean_answer(t) for t in tokenizer.batch_decode(generated, skip_special_tokens=True))
            if temperature > 0:
                torch.manual_seed(draw_seed(generator))  # generate draws from torch's global generator
                sequences = model.generate(
                    **enc, max_new_tokens=max_new_tokens, num_return_sequences=num_samples,
                    pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                )[:, width:]
                texts = [clean_answer(t) for t in tokenizer.batch_decode(sequences, skip_special_tokens=True)]
                sample_counts = self._decoded_length(sequences).view(len(chunk), num_samples).sum(-1)
                samples.extend(texts[i * num_samples : (i + 1) * num_samples] for i in range(len(chunk)))
            else:
                sample_counts = torch.zeros(len(chunk), dtype=torch.long)
                samples.extend([g] * num_samples for g in greedy[-len(chunk) :])
            used.extend(int(a) + int(b) for a, b in zip(counts.cpu(), sample_counts.cpu()))
            if progress is not None:
                progress(len(chunk), len(chunk) * num_samples)
        back = np.argsort(order)  # from sorted order to the order of ``prompts``
        return Answers(
            samples=[samples[i] for i in back],
            greedy=[greedy[i] for i in back],
            greedy_tokens=[greedy_tokens[i] for i in back],
            greedy_mean_logprob=np.array([logprobs[i] for i in back], dtype=float),
            generated_tokens=[used[i] for i in back],
        )


BACKENDS = ("transformers", "plain", "vllm")


def resolve_backend(backend: str) -> str:
    """Resolve ``auto`` to the measured-fastest backend here (``transformers``); check the name."""
    backend = "transformers" if backend == "auto" else backend
    if backend not in BACKENDS:
        raise ValueError(f"backend must be auto or one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def load_sampler(
    backend: str, model: str, dtype: str = "auto", batch_size: int = 32, seed: int = 0,
    tensor_parallel_size: int = 1, device: str | None = None,
) -> Sampler:
    """Load a model argument into the sampler ``backend`` names.

    Args:
        backend: ``auto`` (the measured-fastest here: ``transformers``), ``transformers``,
            ``plain`` or ``vllm``.
        model: A model argument (see :mod:`know_thyself.models`).
        dtype: Weight dtype for the transformers backends (vLLM picks its own).
        batch_size: Questions per batch (transformers backends; vLLM schedules its own).
        seed: Engine seed (vLLM; the others take a seed per ``sample`` call).
        tensor_parallel_size: GPUs to shard the model over (vLLM).
        device: ``cpu``, ``cuda``...; default: CUDA when available (transformers backends).
    """
    from know_thyself.models import checkpoint_path, load_model, load_tokenizer

    backend = resolve_backend(backend)
    if backend == "vllm":
        from know_thyself.vllm_backend import VllmSampler

        tokenizer = load_tokenizer(model)
        return VllmSampler(checkpoint_path(model), tokenizer, seed=seed, tensor_parallel_size=tensor_parallel_size)
    loaded, tokenizer = load_model(model, dtype=dtype, device=device)
    cls = TransformersSampler if backend == "transformers" else PlainSampler
    return cls(loaded, tokenizer, batch_size=batch_size)


def tqdm_progress(total: int, desc: str) -> tuple[Any, ProgressFn]:
    """A progress bar over questions that also shows samples/s and ETA; returns (bar, callback)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="q", dynamic_ncols=True)
    started = time.perf_counter()
    samples = 0

    def update(questions: int, answers: int) -> None:
        nonlocal samples
        samples += answers
        bar.update(questions)
        bar.set_postfix(samples_per_s=f"{samples / max(time.perf_counter() - started, 1e-9):.1f}")

    return bar, update
