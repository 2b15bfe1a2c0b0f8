"""What every sampler returns and the pieces the backends share: stop tokens, answer cleaning,
inverse-CDF sampling, mean log-probabilities, argument checks."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

ProgressFn = Callable[[int, int], None]  # (questions finished in this call, samples in them)


@dataclass
class Answers:
    """What a sampler returns for a list of prompts, aligned with the prompts.

    Attributes:
        samples: ``num_trials`` cleaned sampled answers per prompt.
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
        num_trials: int,
        max_new_tokens: int = 24,
        temperature: float = 1.0,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> Answers:
        """Sample ``num_trials`` answers and decode the greedy answer for each rendered prompt.

        Args:
            prompts: Prompt strings, already rendered with the chat template.
            num_trials: Sampled answers per prompt (>= 1).
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


def check_sample_args(num_trials: int, max_new_tokens: int) -> None:
    """Reject a sample call's bad sizes before any work."""
    if num_trials < 1:
        raise ValueError(f"num_trials must be >= 1, got {num_trials}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def dtype_tags(name: str, model: Any) -> dict[str, str]:
    return {"know_thyself.backend": name, "know_thyself.dtype_used": str(model.dtype).replace("torch.", "")}


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
