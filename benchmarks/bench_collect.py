"""Collect-step throughput: the plain loop against the project's sampler and its collect step.

Usage: python benchmarks/bench_collect.py [--questions 64] [--repeats 3]   (or: make bench)

Workload: the embedded SmolLM2-135M-Instruct; the collect step's own question sample of the
bundled set (``--questions`` validation questions and 1 train question, seed 42: the collect
step needs both splits), in the project's answer prompt, 5 samples each at temperature 0.5
(``--temperature``), at most 24 new tokens. Each (variant, repetition) runs in a fresh
subprocess so that its peak memory is its own. Variants are interleaved across repetitions;
medians are printed.

Two tables:

* **Sampler alone** (model load not timed): the plain loop (``generate``, fp32, 16 questions a
  call, ``num_return_sequences=5``, samples only) is the baseline; the project's samplers also
  return each question's greedy answer and its log-probability (:class:`Answers`), which the
  plain loop does not, so their ratio is conservative.
* **End to end** (process start to exit, model load and logging included): the collect entry
  point as ``mlflow run`` starts it (``python entrypoints/collect.py ...`` in a temporary folder
  with its own tracking store), against the plain loop as a script (load, sample, grade, write
  the responses).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from child import load_average as _load  # benchmarks/child.py, beside this script
from child import report, run_child

ROOT = Path(__file__).resolve().parent.parent
SEED, TRAIN_QUESTIONS, TRIALS, MAX_NEW_TOKENS = 42, 1, 5, 24

VARIANTS = {
    # name: (kind, dtype, questions per batch)
    "plain loop: generate, fp32, batch 16, samples only (baseline)": ("loop", "float32", 16),
    "plain sampler: generate + greedy generate, fp32, batch 16": ("plain", "float32", 16),
    "fast sampler, fp32, batch 16": ("transformers", "float32", 16),
    "fast sampler, auto dtype, batch 32, prefix recomputed per batch": ("transformers-noprefix", "auto", 32),
    "fast sampler, auto dtype, batch 32 (project default)": ("transformers", "auto", 32),
    "fast sampler, auto dtype, batch 64": ("transformers", "auto", 64),
    # Only where vLLM is installed (make test-vllm builds such an environment):
    # .venv-vllm/bin/python benchmarks/bench_collect.py --variants 1,7 --no-end-to-end
    "vLLM, samples + greedy in one generate call, engine start not timed": ("vllm", "auto", 0),
}


def _questions(questions: int) -> list[dict]:
    from know_thyself.evaluation.ability import load_questions

    chosen = load_questions("bundled", TRAIN_QUESTIONS, questions, SEED)
    return chosen["train"] + chosen["validation"]


def plain_loop(
    model, tokenizer, prompts: list[str], temperature: float, batch: int, max_new_tokens: int = MAX_NEW_TOKENS,
    stop_ids: list[int] | None = None,
) -> tuple[list[list[str]], int]:
    """The straightforward loop: ``generate`` with ``num_return_sequences``, ``batch`` prompts a call.

    ``stop_ids`` end a row (default: the model's generation config decides, and tokens are counted
    up to the tokenizer's EOS). Returns the cleaned answers per prompt and the tokens generated
    (up to each row's stop token).
    """
    import torch

    from know_thyself.inference.sampling.base import clean_answer

    answers, tokens = [], 0
    stop_kwargs = {"eos_token_id": stop_ids} if stop_ids else {}
    stop = torch.tensor(stop_ids or [tokenizer.eos_token_id], device=model.device)
    for start in range(0, len(prompts), batch):
        chunk = prompts[start : start + batch]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                                 top_k=0, top_p=1.0, num_return_sequences=TRIALS, pad_token_id=tokenizer.pad_token_id,
                                 **stop_kwargs)
        generated = out[:, enc["input_ids"].shape[1]:]
        ended = torch.isin(generated, stop)
        tokens += int(torch.where(ended.any(-1), ended.int().argmax(-1) + 1, generated.shape[1]).sum())
        texts = [clean_answer(t) for t in tokenizer.batch_decode(generated, skip_special_tokens=True)]
        answers.extend(texts[i * TRIALS : (i + 1) * TRIALS] for i in range(len(chunk)))
    return answers, tokens


def measure_sampling(kind: str, dtype: str, batch: int, questions: int, temperature: float) -> dict:
    """Run one sampler variant in this process (model load not timed) and return its numbers."""
    import resource

    import torch

    from know_thyself.data.grading import is_correct
    from know_thyself.data.prompts import answer_messages, render
    from know_thyself.inference.models import checkpoint_path, load_model, load_tokenizer
    from know_thyself.inference.sampling import PlainSampler, TransformersSampler

    records = _questions(questions)
    torch.manual_seed(SEED)
    if kind == "vllm":
        from know_thyself.inference.sampling.vllm import VllmSampler

        tokenizer = load_tokenizer("smollm2-135m-instruct")
        sampler = VllmSampler(checkpoint_path("smollm2-135m-instruct"), tokenizer, seed=SEED)
        dtype_used = "vllm-auto"
    else:
        model, tokenizer = load_model("smollm2-135m-instruct", dtype=dtype, device="cpu")
        dtype_used = str(model.dtype).replace("torch.", "")
        if kind == "plain":
            sampler = PlainSampler(model, tokenizer, batch_size=batch)
        elif kind != "loop":
            sampler = TransformersSampler(model, tokenizer, batch_size=batch, shared_prefix=kind == "transformers")
    prompts = [render(tokenizer, answer_messages(r["question"])) for r in records]
    started = time.perf_counter()
    if kind == "loop":
        samples, tokens = plain_loop(model, tokenizer, prompts, temperature, batch)
    else:
        answers = sampler.sample(prompts, TRIALS, MAX_NEW_TOKENS, temperature, seed=SEED)
        samples, tokens = answers.samples, sum(answers.generated_tokens)
    elapsed = time.perf_counter() - started
    accuracy = sum(is_correct(a, r["answer"]["aliases"]) for r, group in zip(records, samples) for a in group)
    return {
        "seconds": elapsed,
        "tokens_per_s": tokens / elapsed,
        "questions_per_s": len(records) / elapsed,
        "samples_per_s": TRIALS * len(records) / elapsed,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "accuracy": accuracy / (TRIALS * len(records)),
        "dtype": dtype_used,
    }


def plain_script(questions: int, temperature: float, out_dir: str) -> dict:
    """The plain loop end to end, as a user's script would do it: load, sample, grade, write."""
    from know_thyself.data.grading import is_correct
    from know_thyself.data.prompts import answer_messages, render
    from know_thyself.data.questions import write_jsonl
    from know_thyself.inference.models import load_model

    records = _questions(questions)
    model, tokenizer = load_model("smollm2-135m-instruct", dtype="float32", device="cpu")
    prompts = [render(tokenizer, answer_messages(r["question"])) for r in records]
    started = time.perf_counter()
    samples, _ = plain_loop(model, tokenizer, prompts, temperature, 16)
    sampling = time.perf_counter() - started
    rows = [{"question_id": r["question_id"], "responses": group,
             "correct": [is_correct(a, r["answer"]["aliases"]) for a in group]} for r, group in zip(records, samples)]
    write_jsonl(rows, Path(out_dir) / "responses.jsonl")
    return {"sampling_seconds": sampling}


def measure_end_to_end(kind: str, questions: int, temperature: float) -> dict:
    """Wall time from process start to exit: the collect entry point, or the plain script."""
    env = dict(os.environ, TQDM_DISABLE="1", TRANSFORMERS_VERBOSITY="error", PYTHONPATH=str(ROOT))
    env.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory(prefix="bench-collect-") as folder:
        if kind == "collect":
            command = [sys.executable, str(ROOT / "entrypoints" / "collect.py"), "--num_samples", str(TRAIN_QUESTIONS),
                       "--test_samples", str(questions), "--num_trials", str(TRIALS), "--temperature", str(temperature),
                       "--max_new_tokens", str(MAX_NEW_TOKENS), "--seed", str(SEED)]
        else:
            command = [sys.executable, __file__, "--child", "script", str(questions), str(temperature), folder]
        started = time.perf_counter()
        out = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - started
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{out.stderr[-3000:]}")
        result = {"seconds": wall, "samples_per_s": TRIALS * (questions + TRAIN_QUESTIONS) / wall}
        if kind == "collect":
            import mlflow

            mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
            run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
            result["sampling_seconds"] = run.data.metrics["collect_seconds"]
            result["tokens_per_s"] = run.data.metrics["generated_tokens_per_s"]
            mlflow.set_tracking_uri(None)
        else:
            line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
            result.update(json.loads(line[len("RESULT "):]))
        return result


def _child(argv: list[str]) -> None:
    kind, *rest = argv
    if kind == "sample":
        variant, dtype, batch, questions, temperature = rest
        result = measure_sampling(variant, dtype, int(batch), int(questions), float(temperature))
    else:
        result = plain_script(int(rest[0]), float(rest[1]), rest[2])
    report(result)


def _run_child(*args: str) -> dict:
    return run_child(__file__, *args)


def _seconds(runs: list[dict]) -> str:
    return ", ".join(f"{r['seconds']:.1f}" for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=64, help="validation questions (plus 1 train question)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--variants", default="all",
                        help="comma-separated sampler variant numbers (1-based; 1 is the baseline), 'none', "
                             "or 'all' (every variant but vLLM)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads in every measured process (OMP_NUM_THREADS); 0: torch's default. "
                             "On a machine that other work shares, 1 thread per process measures more steadily")
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the end-to-end rows")
    parser.add_argument("--no-training", action="store_true",
                        help="accepted for older commands; training is measured by benchmarks/bench_train.py")
    args = parser.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every child process
    import torch

    from know_thyself.inference.models import bf16_supported, embedded_checkpoint

    embedded_checkpoint()  # dequantise once, outside every measurement
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, bf16 fast: {bf16_supported('cpu')}; {_load()} at start")
    print(f"workload: {args.questions} validation + {TRAIN_QUESTIONS} train bundled questions x {TRIALS} samples, "
          f"temperature {args.temperature}, <= {MAX_NEW_TOKENS} new tokens; median of {args.repeats}\n")
    everything = list(VARIANTS.items())
    if args.variants == "all":
        chosen = [item for item in everything if item[1][0] != "vllm"]
    elif args.variants == "none":
        chosen = []
    else:
        chosen = [everything[int(i) - 1] for i in args.variants.split(",")]
    end_to_end = {} if args.no_end_to_end else {
        "plain loop as a script (load, generate fp32 batch 16, grade, write)": "script",
        "collect entry point (python entrypoints/collect.py, own tracking store)": "collect",
    }
    results: dict[str, list[dict]] = {}
    for repeat in range(args.repeats):  # interleave variants so drift and load hit them alike
        for name, (kind, dtype, batch) in chosen:
            results.setdefault(name, []).append(
                _run_child("sample", kind, dtype, str(batch), str(args.questions), str(args.temperature)))
        for name, kind in end_to_end.items():
            results.setdefault(name, []).append(measure_end_to_end(kind, args.questions, args.temperature))
        print(f"repetition {repeat + 1} done; {_load()}", flush=True)
    baseline = next(iter(VARIANTS))
    if chosen:
        if chosen[0][0] != baseline:
            print("(the baseline, variant 1, was not run: no ratios)")
        base_rate = statistics.median(r["samples_per_s"] for r in results[baseline]) if baseline in results else None
        header = f"{'sampler alone (model load not timed)':66} {'tok/s':>6} {'q/s':>6} {'samples/s':>9} {'peak MB':>8} {'acc':>5} {'x base':>7}"
        print("\n" + header)
        print("-" * len(header))
        for name, _ in chosen:
            runs = results[name]
            med = {key: statistics.median(r[key] for r in runs)
                   for key in ("tokens_per_s", "questions_per_s", "samples_per_s", "peak_rss_mb", "accuracy")}
            ratio = f"{med['samples_per_s'] / base_rate:7.2f}" if base_rate else "      -"
            print(f"{name:66} {med['tokens_per_s']:6.0f} {med['questions_per_s']:6.2f} {med['samples_per_s']:9.1f} "
                  f"{med['peak_rss_mb']:8.0f} {med['accuracy']:5.2f} {ratio}")
            print(f"{'':66} (runs: {_seconds(runs)} s)")
    if end_to_end:
        header = f"{'end to end (process start to exit)':74} {'wall s':>7} {'sampling s':>10} {'x plain':>7}"
        print("\n" + header)
        print("-" * len(header))
        plain = statistics.median(r["seconds"] for r in results[next(iter(end_to_end))])
        for name in end_to_end:
            runs = results[name]
            wall = statistics.median(r["seconds"] for r in runs)
            sampling = statistics.median(r["sampling_seconds"] for r in runs)
            print(f"{name:74} {wall:7.1f} {sampling:10.1f} {plain / wall:7.2f}")
            print(f"{'':74} (runs: {_seconds(runs)} s)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main()
