"""The ``plain`` backend: ``model.generate``, the straightforward reference the ``transformers`` backend's own
decode loop is measured against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from know_thyself.inference.prefix_cache import tokenize
from know_thyself.inference.sampling.base import (
    Answers,
    ProgressFn,
    answer_span,
    check_batch_size,
    check_sample_args,
    clean_answer,
    draw_seed,
    dtype_tags,
    eos_ids,
    mean_logprob,
    stop_token_mask,
)


class PlainSampler:
    """The reference: ``model.generate`` for the samples, and a second greedy ``generate`` call.

    Args:
        model: A causal LM in eval mode.
        tokenizer: Its tokenizer (left padding).
        batch_size: Questions per ``generate`` call.
    """

    name = "plain"

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 16) -> None:
        check_batch_size(batch_size)
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.eos = eos_ids(tokenizer, model)
        self.stop = stop_token_mask(tokenizer, model.get_output_embeddings().weight.shape[0], self.eos)

    def tags(self) -> dict[str, str]:
        return dtype_tags(self.name, self.model)

    def _decoded_length(self, generated: torch.Tensor) -> torch.Tensor:
        """Tokens generate decoded per row: up to its EOS (the padding after it is not decoded)."""
        ended = torch.isin(generated, torch.tensor(self.eos, device=generated.device))
        return torch.where(ended.any(-1), ended.int().argmax(-1) + 1, generated.shape[1])

    @torch.inference_mode()
    def sample(
        self, prompts: Sequence[str], num_trials: int, max_new_tokens: int = 24, temperature: float = 1.0,
        seed: int = 0, progress: ProgressFn | None = None,
    ) -> Answers:
        check_sample_args(num_trials, max_new_tokens)
        model, tokenizer = self.model, self.tokenizer
        generator = torch.Generator(device=model.device).manual_seed(seed)
        # Prompts of similar length share a call (less padding), as in the transformers backend.
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
                    **enc, max_new_tokens=max_new_tokens, num_return_sequences=num_trials,
                    pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                )[:, width:]
                texts = [clean_answer(t) for t in tokenizer.batch_decode(sequences, skip_special_tokens=True)]
                sample_counts = self._decoded_length(sequences).view(len(chunk), num_trials).sum(-1)
                samples.extend(texts[i * num_trials : (i + 1) * num_trials] for i in range(len(chunk)))
            else:
                sample_counts = torch.zeros(len(chunk), dtype=torch.long)
                samples.extend([g] * num_trials for g in greedy[-len(chunk) :])
            used.extend(int(a) + int(b) for a, b in zip(counts.cpu(), sample_counts.cpu()))
            if progress is not None:
                progress(len(chunk), len(chunk) * num_trials)
        back = np.argsort(order)  # from sorted order to the order of ``prompts``
        return Answers(
            samples=[samples[i] for i in back],
            greedy=[greedy[i] for i in back],
            greedy_tokens=[greedy_tokens[i] for i in back],
            greedy_mean_logprob=np.array([logprobs[i] for i in back], dtype=float),
            generated_tokens=[used[i] for i in back],
        )
