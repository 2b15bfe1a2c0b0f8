"""The vLLM sampling backend (``backend=vllm``): the field's choice for sampling on GPUs.

vLLM is optional and not in the project's pinned environment: ``pip install vllm`` on a GPU
machine (a CPU build exists, see the README's "Backends"). The engine starts worker processes by
spawning, so a script that uses it needs an ``if __name__ == "__main__":`` guard; the entry
points have one.

:class:`VllmSampler` implements :class:`know_thyself.inference.sampling.Sampler`. One ``generate``
call serves a whole list of prompts: each prompt is sent twice, once with
``SamplingParams(n=num_trials)`` (the same distribution as the other backends: temperature only,
no top-k/top-p) and once greedy with the sampled token's log-probability per step
(``logprobs=0``; vLLM's default log-prob mode reports the raw, unscaled distribution). vLLM's
prefix caching lets the two requests, and every prompt's shared system text, reuse one prefill.
The greedy answer's mean log-probability follows the definition in
:class:`know_thyself.inference.sampling.Answers` (tokens before the first stop token). No
per-request seed is passed (the CPU build's sampler rejects it); the engine is seeded once, so
``sample``'s ``seed`` is not used.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from know_thyself.inference.sampling.base import (
    Answers,
    ProgressFn,
    answer_span,
    check_sample_args,
    clean_answer,
    eos_ids,
    mean_logprob,
    stop_token_mask,
)


def available() -> bool:
    """Whether vLLM can be imported here."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


class VllmSampler:
    """One vLLM engine for a checkpoint.

    Args:
        checkpoint: A local checkpoint folder or Hub id (what ``from_pretrained`` accepts).
        tokenizer: The checkpoint's tokenizer (prompts are rendered with its chat template).
        seed: Engine seed.
        tensor_parallel_size: GPUs to shard the model over.
    """

    name = "vllm"

    def __init__(self, checkpoint: str, tokenizer: Any, seed: int = 0, tensor_parallel_size: int = 1) -> None:
        if not available():
            raise ValueError("backend 'vllm' needs the vllm package: pip install vllm (GPU) or see the README for the CPU build")
        import torch
        from vllm import LLM

        # On the CPU build this fraction reserves *system* memory for the KV cache; keep it modest.
        memory = 0.9 if torch.cuda.is_available() else 0.25
        self.llm = LLM(
            gpu_memory_utilization=memory,
            model=checkpoint,
            seed=seed,
            tensor_parallel_size=tensor_parallel_size,
            dtype="auto",
            trust_remote_code=False,
        )
        self.tokenizer = tokenizer
        self.stop = stop_token_mask(tokenizer, len(tokenizer), eos_ids(tokenizer))

    def tags(self) -> dict[str, str]:
        return {"know_thyself.backend": self.name}

    def sample(
        self, prompts: Sequence[str], num_trials: int, max_new_tokens: int = 24, temperature: float = 1.0,
        seed: int = 0, progress: ProgressFn | None = None,
    ) -> Answers:
        """See :meth:`know_thyself.inference.sampling.Sampler.sample`."""
        from vllm import SamplingParams

        check_sample_args(num_trials, max_new_tokens)
        del seed  # the engine's seed applies
        sampled = SamplingParams(
            n=num_trials, temperature=temperature, top_p=1.0, top_k=-1, max_tokens=max_new_tokens, stop=["\n"],
        )
        greedy = SamplingParams(n=1, temperature=0.0, max_tokens=max_new_tokens, stop=["\n"], logprobs=0)
        prompts = list(prompts)
        # vLLM's own progress bar divides by its elapsed time, which TQDM_DISABLE leaves at zero.
        show_progress = os.environ.get("TQDM_DISABLE", "") in ("", "0")
        requests = prompts + (prompts if temperature > 0 else [])
        params = [greedy] * len(prompts) + ([sampled] * len(prompts) if temperature > 0 else [])
        outputs = self.llm.generate(requests, params, use_tqdm=show_progress)
        answers = Answers([], [], [], np.zeros(len(prompts)), [])
        for i, output in enumerate(outputs[: len(prompts)]):
            choice = output.outputs[0]
            ids = list(choice.token_ids)
            span = answer_span(ids, self.stop)
            total = sum(choice.logprobs[step][token].logprob for step, token in enumerate(ids[:span]))
            answers.greedy.append(clean_answer(choice.text))
            answers.greedy_tokens.append(ids[:span])
            answers.greedy_mean_logprob[i] = mean_logprob(total, span)
            answers.generated_tokens.append(len(ids))
        for i in range(len(prompts)):
            if temperature > 0:
                choices = outputs[len(prompts) + i].outputs
                answers.samples.append([clean_answer(c.text) for c in choices])
                answers.generated_tokens[i] += sum(len(c.token_ids) for c in choices)
            else:
                answers.samples.append([answers.greedy[i]] * num_trials)
        if progress is not None:
            progress(len(prompts), len(prompts) * num_trials)
        return answers
