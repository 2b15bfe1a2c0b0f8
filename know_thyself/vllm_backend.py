"""The vLLM sampling backend (``backend=vllm``): the field's choice for sampling on GPUs.

vLLM is optional and not in the project's pinned environment: ``pip install vllm`` on a GPU
machine (a CPU build exists, see the README's "Backends"). The engine starts worker processes by
spawning, so a script that uses it needs an ``if __name__ == "__main__":`` guard; the entry
points have one.

Samples come from ``SamplingParams(n=num_trials)`` with the same distribution as the other
backends (temperature only, no top-k/top-p) and the same answer clean-up. No per-request seed is
passed (the CPU build's sampler rejects it); the engine is seeded once instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
import numpy as np

from know_thyself.sampling import clean_answer


def available() -> bool:
    """Whether vLLM can be imported here."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


class VllmSampler:
    """One vLLM engine for a checkpoint; optional LoRA adapters served per request.

    Args:
        checkpoint: A local checkpoint folder or Hub id (what ``from_pretrained`` accepts).
        seed: Engine seed.
        tensor_parallel_size: GPUs to shard the model over.
        enable_lora: Start the engine with LoRA support (for judgment adapters without merging).
    """

    def __init__(self, checkpoint: str, seed: int = 0, tensor_parallel_size: int = 1, enable_lora: bool = False) -> None:
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
            enable_lora=enable_lora,
            max_lora_rank=64,
            dtype="auto",
            trust_remote_code=False,
        )
        self.last_generated_tokens = 0

    def sample(
        self, prompts: Sequence[str], num_samples: int, max_new_tokens: int, temperature: float,
        adapter_dir: str | None = None,
    ) -> tuple[list[list[str]], np.ndarray]:
        """Answers per prompt, and each prompt's first answer's mean token log-probability."""
        from vllm import SamplingParams

        params = SamplingParams(
            n=num_samples, temperature=temperature, top_p=1.0, top_k=-1, max_tokens=max_new_tokens,
            stop=["\n"], logprobs=0,
        )
        lora = None
        if adapter_dir is not None:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest("judge", 1, adapter_dir)
        # vLLM's own progress bar divides by its elapsed time, which TQDM_DISABLE leaves at zero.
        show_progress = os.environ.get("TQDM_DISABLE", "") in ("", "0")
        outputs = self.llm.generate(list(prompts), params, lora_request=lora, use_tqdm=show_progress)
        answers, logprobs = [], []
        self.last_generated_tokens = sum(len(c.token_ids) for output in outputs for c in output.outputs)
        for output in outputs:
            answers.append([clean_answer(choice.text) for choice in output.outputs])
            first = output.outputs[0]
            count = max(len(first.token_ids), 1)
            logprobs.append((first.cumulative_logprob or 0.0) / count)
        return answers, np.array(logprobs)
