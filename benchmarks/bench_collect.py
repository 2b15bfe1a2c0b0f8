"""Collect-step throughput: the plain baseline against the project's sampler, in one run.

Usage: python benchmarks/bench_collect.py [--questions 64] [--repeats 3]   (or: make bench)

Workload: the embedded SmolLM2-135M-Instruct, the first N bundled validation questions in the
project's answer prompt, 5 samples each at temperature 1.0, at most 24 new tokens. Each
(variant, repetition) runs in a fresh subprocess so that its peak memory is its own; model
loading is not timed. Prints generated tokens/s, questions/s, samples/s, peak RSS and the ratio
of samples/s to the baseline (median over repetitions), then LoRA training throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

VARIANTS = {
    # name: (backend, dtype, questions per batch)
    "baseline: generate, fp32, batch 16": ("plain", "float32", 16),
    "generate, bf16, batch 16": ("plain", "bfloat16", 16),
    "fast loop, fp32, batch 16": ("transformers", "float32", 16),
    "fast loop, bf16, batch 16": ("transformers", "bfloat16", 16),
    "fast loop, auto dtype, batch 32 (project default)": ("transformers", "auto", 32),
    "fast loop, auto dtype, batch 64": ("transformers", "auto", 64),
    # Only where vLLM is installed (make test-vllm builds such an environment):
    # .venv-vllm/bin/python benchmarks/bench_collect.py --variants 1,7
    "vLLM CPU build, SamplingParams(n=5), engine start not timed": ("vllm", "auto", 0),
}


def measure_sampling(backend: str, dtype: str, batch: int, questions: int, seed: int) -> dict:
    """Run one variant in this process and return its numbers."""
    import resource

    import torch

    from know_thyself import data
    from know_thyself.grading import is_correct
    from know_thyself.models import load_model
    from know_thyself.prompts import answer_messages, render
    from know_thyself.sampling import sample_answers

    records = data.load_split("bundled", "validation")[:questions]
    if backend == "vllm":
        return _measure_vllm(records, seed)
    model, tokenizer = load_model("smollm2-135m-instruct", dtype=dtype, device="cpu")
    prompts = [render(tokenizer, answer_messages(r["question"])) for r in records]
    stats: dict = {}
    torch.manual_seed(seed)
    started = time.perf_counter()
    answers = sample_answers(model, tokenizer, prompts, 5, max_new_tokens=24, temperature=1.0,
                             batch_size=batch, seed=seed, backend=backend, stats=stats)
    elapsed = time.perf_counter() - started
    accuracy = sum(is_correct(a, r["answer"]["aliases"]) for r, group in zip(records, answers) for a in group)
    return {
        "seconds": elapsed,
        "tokens_per_s": stats["generated_tokens"] / elapsed,
        "questions_per_s": len(records) / elapsed,
        "samples_per_s": 5 * len(records) / elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "accuracy": accuracy / (5 * len(records)),
        "dtype": str(model.dtype).replace("torch.", ""),
    }


def _measure_vllm(records: list[dict], seed: int) -> dict:
    import resource

    from know_thyself.grading import is_correct
    from know_thyself.models import checkpoint_path, load_tokenizer
    from know_thyself.prompts import answer_messages, render
    from know_thyself.vllm_backend import VllmSampler

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    prompts = [render(tokenizer, answer_messages(r["question"])) for r in records]
    sampler = VllmSampler(checkpoint_path("smollm2-135m-instruct"), seed=seed)
    started = time.perf_counter()
    answers, _ = sampler.sample(prompts, 5, 24, 1.0)
    elapsed = time.perf_counter() - started
    accuracy = sum(is_correct(a, r["answer"]["aliases"]) for r, group in zip(records, answers) for a in group)
    return {
        "seconds": elapsed,
        "tokens_per_s": sampler.last_generated_tokens / elapsed,
        "questions_per_s": len(records) / elapsed,
        "samples_per_s": 5 * len(records) / elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "accuracy": accuracy / (5 * len(records)),
        "dtype": "vllm-auto",
    }


def measure_training(step: str, examples: int) -> dict:
    """LoRA training tokens/s on judgment or knowledge examples built from bundled questions."""
    from know_thyself import data
    from know_thyself.config import KnowledgeTrainConfig, TrainConfig
    from know_thyself.prompts import answer_completion, answer_messages, judgment_completion, judgment_messages
    from know_thyself.training import build_trainer

    records = data.load_split("bundled", "train")[:examples]
    if step == "judgment":
        rows = [{"prompt": judgment_messages(r["question"]), "completion": judgment_completion("cannot")} for r in records]
        cfg = TrainConfig(data_run_id="0" * 32, max_steps=6, batch_size=8)
    else:
        rows = [{"prompt": answer_messages(r["question"]), "completion": answer_completion(r["answer"]["value"])} for r in records]
        cfg = KnowledgeTrainConfig(data_run_id="0" * 32, max_steps=6, batch_size=8)
    import tempfile

    trainer = build_trainer(rows, cfg, tempfile.mkdtemp())
    started = time.perf_counter()
    trainer.train()
    elapsed = time.perf_counter() - started
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"][: cfg.max_steps * cfg.batch_size])
    return {"seconds": elapsed, "tokens_per_s": tokens / elapsed, "examples_per_s": cfg.max_steps * cfg.batch_size / elapsed}


def _child(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "sample":
        backend, dtype, batch, questions, seed = rest
        result = measure_sampling(backend, dtype, int(batch), int(questions), int(seed))
    else:
        result = measure_training(rest[0], int(rest[1]))
    print("RESULT " + json.dumps(result))


def _run_child(*args: str) -> dict:
    env = dict(os.environ, TQDM_DISABLE="1", TRANSFORMERS_VERBOSITY="error")
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env, check=True)
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default="all",
                        help="comma-separated variant numbers (1-based) or 'all' (every variant but vLLM)")
    parser.add_argument("--no-training", action="store_true", help="skip the training measurement")
    args = parser.parse_args()
    import torch

    from know_thyself.models import bf16_supported, embedded_checkpoint

    embedded_checkpoint()  # dequantise once, outside every measurement
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, bf16 fast: {bf16_supported('cpu')}")
    print(f"workload: {args.questions} bundled validation questions x 5 samples, temperature 1.0, <= 24 new tokens; "
          f"median of {args.repeats}\n")
    chosen = [item for item in VARIANTS.items() if item[1][0] != "vllm"]
    if args.variants != "all":
        chosen = list(VARIANTS.items())
        chosen = [chosen[int(i) - 1] for i in args.variants.split(",")]
    results = {}
    for repeat in range(args.repeats):  # interleave variants so drift hits them alike
        for name, (backend, dtype, batch) in chosen:
            results.setdefault(name, []).append(_run_child("sample", backend, dtype, str(batch), str(args.questions), str(repeat)))
    baseline = next(iter(results))
    base_rate = statistics.median(r["samples_per_s"] for r in results[baseline])
    header = f"{'variant':52} {'tok/s':>7} {'q/s':>6} {'samples/s':>9} {'peak MB':>8} {'acc':>5} {'x base':>7}"
    print(header)
    print("-" * len(header))
    for name, runs in results.items():
        med = {key: statistics.median(r[key] for r in runs) for key in ("tokens_per_s", "questions_per_s", "samples_per_s", "peak_rss_mb", "accuracy")}
        print(f"{name:52} {med['tokens_per_s']:7.0f} {med['questions_per_s']:6.2f} {med['samples_per_s']:9.1f} "
              f"{med['peak_rss_mb']:8.0f} {med['accuracy']:5.2f} {med['samples_per_s'] / base_rate:7.2f}")
    if args.no_training:
        return
    print("\nLoRA training (SFTTrainer, batch 8, 6 steps, bf16 autocast where fast):")
    for step in ("judgment", "knowledge"):
        runs = [_run_child("train", step, "48") for _ in range(args.repeats)]
        print(f"  {step:10} {statistics.median(r['tokens_per_s'] for r in runs):7.0f} tokens/s  "
              f"{statistics.median(r['examples_per_s'] for r in runs):5.2f} examples/s")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main()
