"""Sampling answers from a causal LM: one interface, three backends.

Every backend implements :class:`Sampler`: for a list of chat-rendered prompts, ``sample``
returns an :class:`Answers` with, per prompt, ``num_trials`` sampled answers, the greedy answer
and its mean token log-probability, and the tokens decoded. All backends sample from the same
distribution (softmax of logits / temperature, no top-k or top-p), end an answer at the same
stop tokens, and clean text the same way (:func:`clean_answer`), so they grade alike.

* ``transformers`` (:class:`TransformersSampler`, the default on CPU and single GPU): the token
  prefix every prompt shares (the answer prompt's system text and worked examples) is prefilled
  once (:mod:`know_thyself.inference.prefix_cache`); each batch prefills only the questions after it, and
  on CPU its rows attend to one copy of the prefix's keys and values (cascade attention). Each
  question's KV cache is then shared by ``num_trials + 1`` rows: the samples and the greedy
  answer, decoded together by an own loop over ``model(...)``. Rows leave the batch as they end
  (EOS or a newline); questions are sorted by length; sampling is inverse-CDF (one uniform number
  per row instead of one per vocabulary entry, as ``torch.multinomial`` draws).
* ``plain`` (:class:`PlainSampler`): ``model.generate`` with ``num_return_sequences`` for the
  samples and a second greedy ``generate`` call for the greedy answers: the straightforward
  approach, kept as the reference that the benchmark and the agreement tests compare against.
* ``vllm`` (:class:`know_thyself.inference.sampling.vllm.VllmSampler`): vLLM's engine, for GPUs.

Each backend lives in the module named as its ``backend`` value (``transformers.py``,
``plain.py``, ``vllm.py``; the first two both run a Hugging Face ``transformers`` model, with
the project's own decode loop and with ``generate``), and ``base.py`` holds the interface and
what they share. :func:`load_sampler` builds the backend a model argument and a backend name ask
for.
"""

from __future__ import annotations

from know_thyself.inference.sampling.base import Answers, ProgressFn, Sampler, tqdm_progress
from know_thyself.inference.sampling.plain import PlainSampler
from know_thyself.inference.sampling.transformers import TransformersSampler

__all__ = ["BACKENDS", "Answers", "PlainSampler", "ProgressFn", "Sampler", "TransformersSampler", "load_sampler",
           "resolve_backend", "tqdm_progress"]

# The backend option's values; ``auto`` picks the measured-fastest one here.
BACKENDS = ("auto", "transformers", "plain", "vllm")


def resolve_backend(backend: str) -> str:
    """Resolve ``auto`` to the measured-fastest backend here (``transformers``); check the name."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return "transformers" if backend == "auto" else backend


def load_sampler(
    backend: str, model: str, dtype: str = "auto", batch_size: int = 32, seed: int = 0,
    tensor_parallel_size: int = 1, device: str | None = None,
) -> Sampler:
    """Load a model argument into the sampler ``backend`` names.

    Args:
        backend: ``auto`` (the measured-fastest here: ``transformers``), ``transformers``,
            ``plain`` or ``vllm``.
        model: A model argument (see :mod:`know_thyself.inference.models`).
        dtype: Weight dtype for the transformers backends (vLLM picks its own).
        batch_size: Questions per batch (transformers backends; vLLM schedules its own).
        seed: Engine seed (vLLM; the others take a seed per ``sample`` call).
        tensor_parallel_size: GPUs to shard the model over (vLLM).
        device: ``cpu``, ``cuda``...; default: CUDA when available (transformers backends).
    """
    from know_thyself.inference.models import checkpoint_path, load_model, load_tokenizer

    backend = resolve_backend(backend)
    if backend == "vllm":
        from know_thyself.inference.sampling.vllm import VllmSampler

        tokenizer = load_tokenizer(model)
        return VllmSampler(checkpoint_path(model), tokenizer, seed=seed, tensor_parallel_size=tensor_parallel_size)
    loaded, tokenizer = load_model(model, dtype=dtype, device=device)
    cls = TransformersSampler if backend == "transformers" else PlainSampler
    return cls(loaded, tokenizer, batch_size=batch_size)
