"""The fast sampler against ``generate`` on a GPU, with random weights in the real models' shapes.

Prepared for a lent GPU machine, which has torch, transformers and accelerate but neither the
project's other dependencies nor the model files: the models are built from their configurations
with random weights (the SmolLM2-135M and Qwen2.5-0.5B shapes), and the tokenizer travels as a
small folder saved here beforehand. Only the project's modules that need nothing but torch,
numpy and transformers are imported (sampling, prompts, data), and ``bench_collect.plain_loop``.

Usage:

    # here, once (the project's environment; writes the SmolLM2 tokenizer, a few MB):
    python benchmarks/bench_gpu.py --save-tokenizer .bench-gpu
    # the same code on this CPU, tiny shapes, a minute: check it before spending device time
    python benchmarks/bench_gpu.py --tokenizer .bench-gpu --device cpu --shapes tiny \
        --questions 24 --batch 8 --repeats 1
    # on the GPU machine (the `device` tool's run, carry .bench-gpu):
    python benchmarks/bench_gpu.py --tokenizer .bench-gpu --out $OUT/bench_gpu.json

What it measures, per shape:

1. **The plain backend on the device** (``PlainSampler`` with a generator on the model's device;
   it once crashed on CUDA): runs or not.
2. **Greedy agreement**, fp32: the fast sampler's greedy answers against ``generate``'s, token
   for token.
3. **Throughput**, bf16: ``--questions`` questions of the bundled set in the project's answer
   prompt, 5 samples each at temperature 1.0, at most 32 new tokens, ``--batch`` questions a
   call. The baseline is ``generate(num_return_sequences=5)``, samples only (``bench_collect``'s
   plain loop); the fast sampler
   also decodes each question's greedy answer. Both stop on the same token set (EOS and every
   token that contains a newline). Twice: at fixed length (random weights almost never draw a
   stop token) and with real stop tokens, made by raising the EOS logit so that a sampled
   answer ends after ``--mean-answer-tokens`` tokens on average (the tokens decoded per row are
   printed). With real stops the fast sampler's greedy row ends at once (the raised EOS is the
   most probable token of near-uniform random logits), where a real model's greedy answer is
   about as long as its samples: there its time ratio is optimistic by up to the greedy rows'
   share of the work, a sixth; tokens/s is not. The fast sampler runs at several compaction
   fractions (finished rows are dropped from the KV cache once this fraction of the batch has
   ended; 1.0 never drops them), with the cascade attention over the shared prefix off (the GPU
   default) and on.

Every timing is the median of ``--repeats`` after one untimed warm-up call per variant.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_collect import plain_loop  # benchmarks/, beside this script

from know_thyself import data
from know_thyself.data.prompts import answer_messages, render
from know_thyself.inference.sampling import PlainSampler, TransformersSampler
from know_thyself.inference.sampling.base import eos_ids

TRIALS, MAX_NEW_TOKENS, TEMPERATURE, SEED = 5, 32, 1.0, 0

# Configurations of the two real models (random weights are drawn in these shapes), and a tiny
# one for checking this script on a CPU.
SHAPES = {
    "smollm2-135m": {
        "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152, "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": True,
    },
    "qwen2.5-0.5b": {
        "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
    },
    "tiny": {
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 50000, "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
    },
}
COMPACT_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def build_model(shape: str, dtype: torch.dtype, device: str, eos: int, mean_answer_tokens: float | None):
    """A random-weight causal LM of ``shape``; with ``mean_answer_tokens``, EOS raised to end answers at that mean.

    The LM head gets a bias that is zero except at ``eos``, where it is set (from one forward
    over random tokens) so that EOS is drawn with probability ``1 / mean_answer_tokens`` a step
    at temperature 1.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = dict(SHAPES[shape])
    config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    torch.manual_seed(SEED)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.eval()
    head = model.get_output_embeddings()
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True, device=device, dtype=dtype)
    with torch.no_grad():
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
    model.set_output_embeddings(biased)
    model.config.tie_word_embeddings = False
    if mean_answer_tokens:
        with torch.no_grad():
            ids = torch.randint(0, config.vocab_size, (8, 64), device=device)
            logits = model(input_ids=ids).logits.float()
            others = torch.cat([logits[..., :eos], logits[..., eos + 1 :]], dim=-1).logsumexp(-1)
            p = 1.0 / mean_answer_tokens
            target = math.log(p / (1 - p)) + float(others.mean())
            biased.bias[eos] = target - float(logits[..., eos].mean())
    return model


def load_prompts(tokenizer, questions: int) -> list[str]:
    """The first ``questions`` bundled questions (train split, then validation) in the answer prompt."""
    records = data.load_split("bundled", "train") + data.load_split("bundled", "validation")
    if questions > len(records):
        raise SystemExit(f"--questions {questions}: the bundled set has {len(records)} questions")
    return [render(tokenizer, answer_messages(r["question"])) for r in records[:questions]]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, fn, repeats: int) -> tuple[float, object]:
    """Median seconds of ``fn()`` over ``repeats`` calls after one untimed warm-up, and its last result."""
    fn()
    times, result = [], None
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def check_plain(model, tokenizer, prompts) -> str:
    """Run the plain backend once on the model's device: ``ok`` or the error it raised."""
    try:
        answers = PlainSampler(model, tokenizer, batch_size=4).sample(prompts[:4], 2, 8, 1.0, seed=SEED)
        return f"ok ({sum(len(s) for s in answers.samples)} samples)"
    except Exception as error:  # noqa: BLE001 - the point is to report it, whatever it is
        return f"failed: {type(error).__name__}: {error}"


def greedy_agreement(model, tokenizer, prompts, batch) -> dict:
    """The fast sampler's greedy answers against ``generate``'s (the plain backend's), token for token."""
    fast = TransformersSampler(model, tokenizer, batch_size=batch).sample(prompts, 1, 16, temperature=0.0, seed=SEED)
    reference = PlainSampler(model, tokenizer, batch_size=batch).sample(prompts, 1, 16, temperature=0.0, seed=SEED)
    same = sum(a == b for a, b in zip(fast.greedy_tokens, reference.greedy_tokens))
    return {"questions": len(prompts), "identical": same}


def throughput(model, tokenizer, prompts, args, stop_ids, label: str) -> list[dict]:
    """The baseline and the fast sampler's variants on ``prompts``; one row per variant."""
    device = args.device
    rows = []

    def row(name: str, seconds: float, tokens: int, **extra) -> dict:
        entry = {"stops": label, "variant": name, "seconds": round(seconds, 3), "tokens": tokens,
                 "tokens_per_s": round(tokens / seconds), **extra}
        if device.startswith("cuda"):
            entry["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            torch.cuda.reset_peak_memory_stats()
        print(f"  {label:14s} {name:44s} {seconds:8.2f} s {entry['tokens_per_s']:>9,} tok/s "
              f"{entry['tokens_per_row']:6.2f} tok/row {entry.get('speedup', 1.0):6.2f}x", flush=True)
        rows.append(entry)
        return entry

    seconds, (_, tokens) = timed(device, lambda: plain_loop(
        model, tokenizer, prompts, TEMPERATURE, args.batch, MAX_NEW_TOKENS, stop_ids), args.repeats)
    base = row("generate, samples only (baseline)", seconds, tokens,
               tokens_per_row=round(tokens / (len(prompts) * TRIALS), 2))
    variants = [(f"fast, compact at {f:.2f}, copied prefix", f, False) for f in COMPACT_FRACTIONS]
    variants += [(f"fast, compact at {f:.2f}, cascade", f, True) for f in (0.1, 0.5)]
    for name, fraction, cascade in variants:
        sampler = TransformersSampler(model, tokenizer, batch_size=args.batch, compact_fraction=fraction,
                                      cascade=cascade)
        seconds, answers = timed(device, lambda sampler=sampler: sampler.sample(
            prompts, TRIALS, MAX_NEW_TOKENS, TEMPERATURE, seed=SEED), args.repeats)
        tokens = sum(answers.generated_tokens)
        row(name, seconds, tokens, speedup=round(base["seconds"] / seconds, 2),
            tokens_per_row=round(tokens / (len(prompts) * (TRIALS + 1)), 2))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--save-tokenizer", metavar="DIR", help="save the SmolLM2 tokenizer to DIR and exit")
    parser.add_argument("--tokenizer", metavar="DIR", help="a tokenizer folder saved with --save-tokenizer")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shapes", default="smollm2-135m,qwen2.5-0.5b", help=f"comma-separated: {', '.join(SHAPES)}")
    parser.add_argument("--questions", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=512, help="questions per call")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mean-answer-tokens", type=float, default=8.0)
    parser.add_argument("--out", help="write the results here as JSON")
    args = parser.parse_args()

    if args.save_tokenizer:
        from know_thyself.inference.models import load_tokenizer

        load_tokenizer("smollm2-135m-instruct").save_pretrained(args.save_tokenizer)
        print(f"tokenizer saved to {args.save_tokenizer}")
        return
    if not args.tokenizer:
        parser.error("--tokenizer DIR is needed (make it with --save-tokenizer DIR where the model is installed)")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompts = load_prompts(tokenizer, args.questions)
    device = args.device
    card = torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu"
    results = {"device": card, "torch": torch.__version__, "questions": args.questions, "batch": args.batch,
               "samples": TRIALS, "max_new_tokens": MAX_NEW_TOKENS, "temperature": TEMPERATURE,
               "mean_answer_tokens_target": args.mean_answer_tokens, "shapes": {}}
    print(f"{card}, torch {torch.__version__}; {args.questions} questions x {TRIALS}, batch {args.batch}", flush=True)
    for shape in args.shapes.split(","):
        print(f"{shape}:", flush=True)
        eos = tokenizer.eos_token_id
        fp32 = build_model(shape, torch.float32, device, eos, None)
        stop_ids = TransformersSampler(fp32, tokenizer).stop.nonzero().squeeze(-1).tolist()
        entry = {"stop_tokens": len(stop_ids), "eos": eos_ids(tokenizer, fp32)}
        entry["plain_backend"] = check_plain(fp32, tokenizer, prompts)
        print(f"  plain backend on {device}: {entry['plain_backend']}", flush=True)
        entry["greedy_agreement_fp32"] = greedy_agreement(fp32, tokenizer, prompts[:64], 32)
        print(f"  greedy agreement, fp32: {entry['greedy_agreement_fp32']}", flush=True)
        del fp32
        entry["throughput"] = []
        for label, mean in (("fixed length", None), ("real stops", args.mean_answer_tokens)):
            model = build_model(shape, torch.bfloat16, device, eos, mean)
            entry["throughput"] += throughput(model, tokenizer, prompts, args, stop_ids, label)
            del model
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        results["shapes"][shape] = entry
        if args.out:  # after every shape: a run cut off by the machine's time limit keeps what it measured
            Path(args.out).write_text(json.dumps(results, indent=2))
            print(f"written to {args.out}", flush=True)


if __name__ == "__main__":
    main()
