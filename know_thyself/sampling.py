"""Sampling answers from a causal LM: the project's fast sampler and the plain reference.

Both backends sample from the same distribution (softmax of logits / temperature, no top-k or
top-p) and post-process text the same way (:func:`clean_answer`), so they grade alike.

* ``transformers`` (the default on CPU and single GPU): one forward over each question's prompt,
  whose KV cache is then shared by its ``num_samples`` sequences; a decode loop over
  ``model(...)`` that drops every sequence from the batch as soon as it ends (EOS or a newline);
  questions sorted by prompt length; inverse-CDF sampling (one uniform number per row instead of
  one per vocabulary entry, as ``torch.multinomial`` draws).
* ``plain``: ``model.generate`` with ``num_return_sequences``, the straightforward approach,
  kept as the baseline the benchmark and the agreement test compare against.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

ProgressFn = Callable[[int, int], None]  # (questions finished in this call, samples in them)


def clean_answer(text: str) -> str:
    """The answer part of a generation: the text before the first newline, stripped."""
    return text.split("\n", 1)[0].strip()


def _stop_token_mask(tokenizer: Any, model: Any) -> torch.Tensor:
    """A boolean mask over the vocabulary: tokens that end an answer (EOS ids, anything with a newline)."""
    vocab_size = model.get_output_embeddings().weight.shape[0]
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    pieces = tokenizer.batch_decode([[i] for i in range(min(vocab_size, len(tokenizer)))])
    for i, piece in enumerate(pieces):
        if "\n" in piece:
            mask[i] = True
    for eos in _eos_ids(tokenizer, model):
        if 0 <= eos < vocab_size:
            mask[eos] = True
    return mask


def _eos_ids(tokenizer: Any, model: Any) -> list[int]:
    ids = set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (config_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return sorted(ids)


def inverse_cdf_sample(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """Draw one token per row from softmax(logits / temperature) with one uniform number per row.

    ``temperature == 0`` means greedy (argmax).
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    cdf = probs.cumsum(dim=-1)
    u = torch.rand((cdf.shape[0], 1), generator=generator, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)


@torch.inference_mode()
def _fast_batch(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    num_samples: int,
    max_new_tokens: int,
    temperature: float,
    generator: torch.Generator,
    stop_mask: torch.Tensor,
) -> list[list[str]]:
    device = model.device
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    mask = enc["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp_(min=0)
    out = model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=positions, use_cache=True)
    cache = out.past_key_values
    # Share each question's prefill among its samples.
    cache.batch_repeat_interleave(num_samples)
    logits = out.logits[:, -1, :].repeat_interleave(num_samples, dim=0)
    mask = mask.repeat_interleave(num_samples, dim=0)
    next_pos = positions[:, -1:].repeat_interleave(num_samples, dim=0) + 1
    rows = mask.shape[0]
    tokens: list[list[int]] = [[] for _ in range(rows)]
    alive = torch.arange(rows, device=device)  # original row of each row still in the batch
    stop_mask = stop_mask.to(device)
    for step in range(max_new_tokens):
        chosen = inverse_cdf_sample(logits, temperature, generator)
        stopped = stop_mask[chosen]
        for row, token, stop in zip(alive.tolist(), chosen.tolist(), stopped.tolist()):
            tokens[row].append(token)  # a newline-bearing token is kept; clean_answer cuts at it
        if step == max_new_tokens - 1:
            break
        keep = (~stopped).nonzero().squeeze(-1)
        if keep.numel() == 0:
            break
        if keep.numel() < alive.numel():
            cache.batch_select_indices(keep)
            alive, chosen, mask, next_pos = alive[keep], chosen[keep], mask[keep], next_pos[keep]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=-1)
        out = model(
            input_ids=chosen[:, None],
            attention_mask=mask,
            position_ids=next_pos,
            past_key_values=cache,
            use_cache=True,
        )
        cache = out.past_key_values
        logits = out.logits[:, -1, :]
        next_pos = next_pos + 1
    texts = tokenizer.batch_decode(tokens, skip_special_tokens=True)
    answers = [clean_answer(t) for t in texts]
    grouped = [answers[i * num_samples : (i + 1) * num_samples] for i in range(len(prompts))]
    return grouped, sum(len(t) for t in tokens)


@torch.inference_mode()
def _plain_batch(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    num_samples: int,
    max_new_tokens: int,
    temperature: float,
    generator: torch.Generator,
    stop_mask: torch.Tensor,
) -> list[list[str]]:
    del stop_mask  # generate stops at EOS only; the newline cut happens in clean_answer
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
        if temperature > 0
        else {"do_sample": False}
    )
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    output = model.generate(
        **enc,
        max_new_tokens=max_new_tokens,
        num_return_sequences=num_samples,
        pad_token_id=tokenizer.pad_token_id,
        **sampling,
    )
    generated = output[:, enc["input_ids"].shape[1] :]
    texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
    answers = [clean_answer(t) for t in texts]
    grouped = [answers[i * num_samples : (i + 1) * num_samples] for i in range(len(prompts))]
    # generate pads a finished row after its end-of-sequence token; those are not generated
    ended = torch.isin(generated, torch.tensor(_eos_ids(tokenizer, model), device=generated.device))
    first_end = torch.where(ended.any(-1), ended.int().argmax(-1) + 1, generated.shape[1])
    return grouped, int(first_end.sum())


BACKENDS = {"transformers": _fast_batch, "plain": _plain_batch}


def sample_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    num_samples: int,
    max_new_tokens: int = 24,
    temperature: float = 1.0,
    batch_size: int = 32,
    seed: int = 0,
    backend: str = "transformers",
    sort_by_length: bool = True,
    progress: ProgressFn | None = None,
    stats: dict | None = None,
) -> list[list[str]]:
    """Sample ``num_samples`` answers for each chat-formatted prompt.

    Args:
        model: A causal LM in eval mode.
        tokenizer: Its tokenizer (left padding).
        prompts: Prompt strings, already rendered with the chat template.
        num_samples: Answers per prompt (1 with ``temperature=0`` for greedy answers).
        max_new_tokens: Cap on each answer's length in tokens.
        temperature: Sampling temperature; 0 means greedy decoding.
        batch_size: Prompts per batch (each batch decodes ``batch_size * num_samples`` rows).
        seed: Seed of the sampler's random generator; same inputs and seed, same answers.
        backend: ``transformers`` (fast) or ``plain`` (``model.generate``).
        sort_by_length: Batch prompts of similar length together (less padding).
        progress: Called after each batch with (prompts done in it, answers in it).
        stats: If given, ``stats["generated_tokens"]`` is increased by the tokens generated.

    Returns:
        One list of ``num_samples`` answers per prompt, in the order of ``prompts``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {backend!r}")
    if num_samples < 1 or batch_size < 1 or max_new_tokens < 1:
        raise ValueError("num_samples, batch_size and max_new_tokens must all be >= 1")
    run_batch = BACKENDS[backend]
    generator = torch.Generator(device=model.device).manual_seed(seed)
    stop_mask = _stop_token_mask(tokenizer, model)
    order = list(range(len(prompts)))
    if sort_by_length:
        lengths = [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
        order.sort(key=lambda i: -lengths[i])
    results: list[list[str]] = [[] for _ in prompts]
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        answers, generated = run_batch(
            model, tokenizer, [prompts[i] for i in chunk], num_samples, max_new_tokens, temperature, generator, stop_mask
        )
        if stats is not None:
            stats["generated_tokens"] = stats.get("generated_tokens", 0) + generated
        for i, sampled in zip(chunk, answers):
            results[i] = sampled
        if progress is not None:
            progress(len(chunk), len(chunk) * num_samples)
    return results


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
