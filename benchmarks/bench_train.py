"""Training throughput: LoRA SFT tokens/s against this machine's bf16 matmul rate, variant by variant.

Usage: python benchmarks/bench_train.py [--examples 400] [--steps 8] [--repeats 3] [--threads 1] [--kind judgment]
       (``make bench`` runs it after the collect benchmark)

Workload: judgment SFT examples (the judgment prompt of a bundled train question, completion one
label word, labels cycling through can / uncertain / cannot; ``--kind knowledge``: the answer
prompt with its worked examples, the short answer as completion), trained with the project's own
trainer (:func:`know_thyself.training.lora.build_trainer`: TRL's SFTTrainer, LoRA r 16 on the
attention projections, batch 8, completion-only loss, bf16 autocast where the CPU is fast at
it) on the embedded SmolLM2-135M-Instruct for ``--steps`` optimiser steps. Model load and dataset
preparation are timed apart from training.

Each (variant, repetition) runs in a fresh subprocess; variants and the matmul measurement are
interleaved across repetitions so that load on a shared machine hits them alike; medians and the
ratio to the baseline variant (TRL's behaviour before the project's changes) are printed.

Model FLOPs utilisation (MFU) = model FLOPs per token x tokens/s / measured bf16 matmul FLOP/s,
with N the parameters a token passes through as matrix products (every linear layer and the LM
head; embeddings lookups and norms left out). Two counts are printed:

* ``6N``: the usual full fine-tuning count (forward 2N, backward 4N);
* ``4N``: what LoRA needs: the forward (2N) and the backward's gradients with respect to the
  activations (2N) through the frozen base; the weight gradients are the adapters' only, which
  are negligible (r 16 on four projections).

With the shared prompt prefix run once per batch (the last variant), the model computes fewer
token positions than the examples hold; tokens/s still counts the examples' tokens, so its MFU
columns are "as if every row were computed in full" and can pass 100%.

Tokens are the real (non-padding) tokens of the batches trained on (``pad``: the share of padding
the batches carried), over every optimiser step but the first (which pays one-time costs), per
wall second and per second of the process's CPU time. With one thread per process
(``--threads 1``) the CPU-time rate is what the variant costs, and is far less disturbed than the
wall-clock rate when other work shares the cores; the matmul rate is the best of repeated
timings, the machine's capability.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from child import load_average as _load  # benchmarks/child.py, beside this script
from child import report, run_child
from transformers import TrainerCallback

ROOT = Path(__file__).resolve().parent.parent
BATCH = 8
LABELS = ("can", "uncertain", "cannot")

VARIANTS = {
    # name: (score labelled positions only, length-grouped batches, frozen base dtype, shared prefix once per batch,
    #        LoRA on the top this-many blocks, 0: all)
    "TRL as it comes: LM head on every position, random batches (baseline)": (False, False, "float32", False, 0),
    "LM head on labelled positions only": (True, False, "float32", False, 0),
    "length-grouped batches only": (False, True, "float32", False, 0),
    "both, every row's prompt in full": (True, True, "float32", False, 0),
    "both, frozen base weights stored in bf16": (True, True, "bfloat16", False, 0),
    "all three: shared prompt prefix once per batch (the project's default)": (True, True, "float32", True, 0),
    "all three, LoRA on the top 15 of 30 blocks only (lora_layers 15)": (True, True, "float32", True, 15),
    "all three, LoRA on the top 8 of 30 blocks only (lora_layers 8)": (True, True, "float32", True, 8),
}
# Measured once and not adopted (see benchmarks/RESULTS.md); left out of 'all', run with --variants 1,5.
MEASURED_NOT_KEPT = ("both, frozen base weights stored in bf16",)


def examples(n: int, kind: str = "judgment") -> list[dict]:
    """``n`` SFT examples from bundled train questions: judgment examples, or knowledge (QA) examples."""
    from know_thyself import data
    from know_thyself.data.prompts import answer_completion, answer_messages, judgment_completion, judgment_messages

    records = data.load_split("bundled", "train")[:n]
    if kind == "knowledge":
        return [{"prompt": answer_messages(r["question"]), "completion": answer_completion(r["answer"]["value"])}
                for r in records]
    return [{"prompt": judgment_messages(r["question"]), "completion": judgment_completion(LABELS[i % 3])}
            for i, r in enumerate(records)]


def matmul_rate(size: int = 2048, seconds: float = 3.0) -> dict:
    """FLOP/s of ``torch.matmul`` on square bf16 (and fp32) matrices, best of repeated timings.

    Timed by the wall clock (``<dtype>``) and by the process's CPU time (``<dtype>_cpu``), the
    same two clocks as the training rates.
    """
    import torch

    out = {}
    for dtype in (torch.bfloat16, torch.float32):
        a = torch.randn(size, size).to(dtype)
        b = torch.randn(size, size).to(dtype)
        torch.matmul(a, b)  # warm up
        best_wall = best_cpu = 0.0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            wall, cpu = time.perf_counter(), time.process_time()
            torch.matmul(a, b)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best_wall = max(best_wall, 2 * size**3 / wall)
            best_cpu = max(best_cpu, 2 * size**3 / max(cpu, 1e-9))
        name = str(dtype).replace("torch.", "")
        out[name], out[f"{name}_cpu"] = best_wall, best_cpu
    return out


def matmul_parameters(model) -> int:
    """Parameters used as matrix products per token: linear layers and the LM head (tied or not)."""
    import torch

    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return linear


def measure_training(only_labels: bool, grouped: bool, base_dtype: str, n_examples: int, steps: int,
                     kind: str = "judgment", shared_prefix: bool = True, lora_layers: int = 0) -> dict:
    """Train one variant for ``steps`` optimiser steps in this process and return its numbers."""
    import torch

    from know_thyself.config import TrainConfig
    from know_thyself.inference.models import load_model
    from know_thyself.training import lora as training
    from know_thyself.training import speedups

    # The switches live in training/speedups.py, which the trainer reads (set on the lora module they did nothing).
    speedups.SCORE_LABEL_POSITIONS_ONLY = only_labels
    speedups.GROUP_BY_LENGTH = grouped
    speedups.SHARE_PROMPT_PREFIX = shared_prefix
    started = time.perf_counter()
    model, tokenizer = load_model("smollm2-135m-instruct", dtype=base_dtype, device="cpu")
    loaded = time.perf_counter()
    n_params = matmul_parameters(model)
    cfg = TrainConfig(data_run_id="0" * 32, max_steps=steps, batch_size=BATCH, lora_targets="attention",
                      lora_layers=lora_layers)
    trainer = training.build_trainer(examples(n_examples, kind), cfg, tempfile.mkdtemp(), (model, tokenizer))
    built = time.perf_counter()
    counted = {"per_batch": [], "padded_per_batch": [], "trained": 0}
    collate = trainer.data_collator

    def counting_collator(features):
        batch = collate(features)
        counted["per_batch"].append(int(batch["attention_mask"].sum()))
        counted["padded_per_batch"].append(batch["input_ids"].numel())
        counted["trained"] += int((batch["labels"] != -100).sum())
        return batch

    trainer.data_collator = counting_collator
    clock = StepClock()
    trainer.add_callback(clock)
    begun = time.perf_counter()
    result = trainer.train()
    elapsed = time.perf_counter() - begun
    # The first step pays one-time costs (allocations, autocast's weight caches): left out.
    timed = slice(1, None)
    tokens = sum(counted["per_batch"][timed])
    padded = sum(counted["padded_per_batch"][timed])
    wall, cpu = sum(clock.wall[timed]), sum(clock.cpu[timed])
    return {
        "seconds": elapsed,
        "load_seconds": loaded - started,
        "prepare_seconds": built - loaded,
        "tokens_per_s": tokens / wall,
        "tokens_per_cpu_s": tokens / cpu,
        "padding_share": 1 - tokens / padded,
        "trained_tokens": counted["trained"],
        "loss": float(result.training_loss),
        "matmul_parameters": n_params,
        "threads": torch.get_num_threads(),
    }


class StepClock(TrainerCallback):
    """A trainer callback that records each optimiser step's wall and process CPU seconds."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def on_step_begin(self, *args, **kwargs) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def on_step_end(self, *args, **kwargs) -> None:
        self.wall.append(time.perf_counter() - self._wall)
        self.cpu.append(time.process_time() - self._cpu)


def _child(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "matmul":
        result = matmul_rate()
    else:
        only_labels, grouped, base_dtype, n_examples, steps, kind, shared, layers = rest
        result = measure_training(only_labels == "1", grouped == "1", base_dtype, int(n_examples), int(steps), kind,
                                  shared == "1", int(layers))
    report(result)


def _run_child(*args: str) -> dict:
    return run_child(__file__, *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=400, help="examples in the training set")
    parser.add_argument("--kind", choices=("judgment", "knowledge"), default="judgment",
                        help="judgment examples (one label word) or knowledge examples (answer prompt, short answer)")
    parser.add_argument("--steps", type=int, default=8, help="optimiser steps per measurement (batch 8)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default="all",
                        help="comma-separated variant numbers (1 is the baseline), or 'all' (every variant but 5)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads in every measured process (OMP_NUM_THREADS); 0: torch's default. "
                             "On a machine that other work shares, 1 thread per process measures more steadily")
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every child process
    import torch

    from know_thyself.inference.models import bf16_supported, embedded_checkpoint

    embedded_checkpoint()  # dequantise once, outside every measurement
    everything = list(VARIANTS.items())
    if args.variants == "all":
        chosen = [item for item in everything if item[0] not in MEASURED_NOT_KEPT]
    else:
        chosen = [everything[int(i) - 1] for i in args.variants.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, bf16 fast: {bf16_supported('cpu')}; "
          f"{_load()} at start")
    print(f"workload: {args.examples} {args.kind} examples, batch {BATCH}, {args.steps} optimiser steps; "
          f"median of {args.repeats}\n", flush=True)
    results: dict[str, list[dict]] = {}
    for repeat in range(args.repeats):  # interleaved: drift and other load hit every variant alike
        results.setdefault("matmul", []).append(_run_child("matmul"))
        for name, (only_labels, grouped, base_dtype, shared, layers) in chosen:
            results.setdefault(name, []).append(_run_child(
                "train", "1" if only_labels else "0", "1" if grouped else "0", base_dtype, str(args.examples),
                str(args.steps), args.kind, "1" if shared else "0", str(layers)))
        print(f"repetition {repeat + 1} done; {_load()}", flush=True)

    for clock, suffix in (("wall clock", ""), ("process CPU time", "_cpu")):
        bf16 = [r[f"bfloat16{suffix}"] for r in results["matmul"]]
        fp32 = statistics.median(r[f"float32{suffix}"] for r in results["matmul"])
        print(f"\nmatmul 2048x2048, {clock}: bf16 {statistics.median(bf16) / 1e9:.0f} GFLOP/s, fp32 {fp32 / 1e9:.0f} "
              f"GFLOP/s (runs bf16: {', '.join(format(x / 1e9, '.0f') for x in bf16)})")
    baseline = everything[0][0]
    for key, title, suffix in (("tokens_per_cpu_s", "tokens per process CPU second", "_cpu"),
                               ("tokens_per_s", "tokens per wall second", "")):
        bf16_rate = statistics.median(r[f"bfloat16{suffix}"] for r in results["matmul"])
        base_rate = statistics.median(r[key] for r in results[baseline]) if baseline in results else None
        header = (f"{title:66} {'tok/s':>6} {'x base':>6} {'MFU 6N':>6} {'MFU 4N':>6} {'pad':>5} "
                  f"{'loss':>6} {'prep s':>6}")
        print("\n" + header)
        print("-" * len(header))
        for name, _ in chosen:
            runs = results[name]
            rate = statistics.median(r[key] for r in runs)
            n = runs[0]["matmul_parameters"]
            ratio = f"{rate / base_rate:6.2f}" if base_rate else "     -"
            print(f"{name:66} {rate:6.0f} {ratio} {6 * n * rate / bf16_rate:6.1%} {4 * n * rate / bf16_rate:6.1%} "
                  f"{statistics.median(r['padding_share'] for r in runs):5.1%} "
                  f"{statistics.median(r['loss'] for r in runs):6.3f} "
                  f"{statistics.median(r['prepare_seconds'] for r in runs):6.1f}")
            rates = ", ".join(format(r[key], ".0f") for r in runs)
            paired = ", ".join(format(r[key] / b[key], ".2f") for r, b in zip(runs, results.get(baseline, runs)))
            print(f"{'':66} (runs: {rates} tok/s; paired by repetition, x base: {paired})")
    print(f"\nN (matrix-product parameters per token) = {runs[0]['matmul_parameters'] / 1e6:.1f}M; "
          f"6N and 4N: FLOPs per token counted as full fine-tuning and as LoRA through a frozen base")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main()
