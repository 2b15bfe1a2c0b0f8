"""Evaluation forwards: the judgment chain's model passes before and after sharing them, timed.

Usage: python benchmarks/bench_evaluate.py [--questions 200] [--repeats 3] [--threads 1]

Workload: the judgment prompts of ``--questions`` bundled train questions and as many validation
questions, on the embedded SmolLM2-135M-Instruct (auto dtype) with a LoRA adapter (r 16 on the
attention projections, random weights: the speed does not depend on what it learnt). Only the
model forwards are timed; the metrics after them are the same either way.

* before: the chain evaluated the bare model (judge forward, then a probe-feature forward), then
  the adapter (judge forward with the adapter, prompt-only forward with it switched off, probe
  forward): five forwards per question;
* after: one forward of the bare model (logits and hidden state together) and one with the
  adapter, over prompts tokenised once (:func:`know_thyself.evaluation.judgment.judge_split`);
* after, head copied: the same, but the LM head gets its input as the model passes it (a strided
  view of the last positions), so that ``torch.matmul`` copies the frozen head's weight for
  every row (what :func:`know_thyself.inference.prefix_cache.contiguous_head_input` prevents).

Both run in the same process, alternating, ``--repeats`` times; medians and their ratio are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200, help="questions per split")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    import contextlib

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from peft import LoraConfig, get_peft_model

    from know_thyself import data
    from know_thyself.evaluation.judgment import adapter_off, judge_split
    from know_thyself.evaluation.probe import prompt_features
    from know_thyself.inference import prefix_cache
    from know_thyself.inference.judgments import judge
    from know_thyself.inference.models import load_model

    model, tokenizer = load_model("smollm2-135m-instruct", dtype="auto", device="cpu")
    torch.manual_seed(0)
    adapted = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                               init_lora_weights=False))
    adapted.eval()
    splits = {split: [r["question"] for r in data.load_split("bundled", split)[: args.questions]]
              for split in ("train", "validation")}

    def before() -> None:
        for questions in splits.values():
            with adapter_off(adapted) as bare:  # the separate evaluation of the bare model
                judge(bare, tokenizer, questions, "three", 32)
                prompt_features(bare, tokenizer, questions, "three", 32)
            judge(adapted, tokenizer, questions, "three", 32)  # the evaluation with the adapter
            with adapter_off(adapted) as bare:
                judge(bare, tokenizer, questions, "three", 32)
                prompt_features(bare, tokenizer, questions, "three", 32)

    def after() -> None:
        for questions in splits.values():
            judge_split(adapted, tokenizer, questions, "three", 32, with_adapter=True)

    def head_copied() -> None:
        fixed = prefix_cache.contiguous_head_input
        prefix_cache.contiguous_head_input = lambda model: contextlib.nullcontext()
        try:
            after()
        finally:
            prefix_cache.contiguous_head_input = fixed

    variants = {"before": before, "after": after, "after, head copied": head_copied}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, run in variants.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    print(f"{2 * args.questions} questions, dtype {model.dtype}, {torch.get_num_threads()} threads, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
    for name, runs in times.items():
        print(f"{name:18} {statistics.median(runs):7.1f} s   (runs: {', '.join(f'{t:.1f}' for t in runs)})")
    for name in ("before", "after, head copied"):
        paired = [b / a for b, a in zip(times[name], times["after"])]
        print(f"{name} / after: {statistics.median(times[name]) / statistics.median(times['after']):.2f}x "
              f"(paired by repetition: {', '.join(f'{x:.2f}' for x in paired)})")


if __name__ == "__main__":
    main()
