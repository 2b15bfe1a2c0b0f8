"""What the registered judge costs per question: its pyfunc ``predict``, as ``mlflow models serve`` calls it.

Usage: python benchmarks/bench_serve.py [--questions 50] [--repeats 3] [--threads 1]

Workload: ``--questions`` bundled validation questions, judged by a judge logged and loaded exactly
as train_judgment logs it (:func:`know_thyself.tracking.registry.log_judge`): the embedded
SmolLM2-135M-Instruct (auto dtype) with a LoRA adapter of the default shape (r 16 on the attention
and MLP projections, random weights: the speed does not depend on what it learnt), in a temporary
store. Timed: one request of all questions (the batch), and one request per question (a client
asking one at a time); medians over ``--repeats`` of the wall time and of the CPU time the process
used (all its threads), which a machine shared with other jobs inflates less. Loading the model is
not timed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import mlflow
    import pandas as pd
    import torch
    from peft import get_peft_model

    from know_thyself.config import TrainingOptions
    from know_thyself.data import load_split
    from know_thyself.inference.models import EMBEDDED, load_model
    from know_thyself.tracking.registry import log_judge
    from know_thyself.training.lora import lora_config

    if args.threads:
        torch.set_num_threads(args.threads)
    questions = [r["question"] for r in load_split("bundled", "validation")[: args.questions]]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        mlflow.set_tracking_uri(f"sqlite:///{Path(scratch) / 'mlflow.db'}")
        model, _ = load_model(EMBEDDED, dtype="float32", device="cpu")
        torch.manual_seed(0)
        get_peft_model(model, lora_config(TrainingOptions())).save_pretrained(Path(scratch) / "adapter")
        with mlflow.start_run() as run:
            log_judge(str(Path(scratch) / "adapter"), EMBEDDED, "three")
        judge = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/judge")
        judge.predict(questions[:2])  # warm up
        timings = {"in one request": [], "asked one at a time": []}
        for _ in range(args.repeats):
            for way, requests in (("in one request", [pd.DataFrame({"question": questions})]),
                                  ("asked one at a time", [[q] for q in questions])):
                wall, cpu = time.perf_counter(), time.process_time()
                for request in requests:
                    judge.predict(request)
                timings[way].append(((time.perf_counter() - wall) / len(questions),
                                     (time.process_time() - cpu) / len(questions)))
    print(f"{len(questions)} questions, {torch.get_num_threads()} threads, medians of {args.repeats}:")
    for way, values in timings.items():
        wall, cpu = (statistics.median(v[i] for v in values) * 1000 for i in (0, 1))
        print(f"  {way}: {wall:.0f} ms wall, {cpu:.0f} ms CPU per question")


if __name__ == "__main__":
    main()
