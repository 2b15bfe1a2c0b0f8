"""The build_judgment_data step: a collect run's labels as chat-format SFT examples.

Logs ``judgment_data/{train,validation}.jsonl`` and the label counts of each split. Given the
build_knowledge_data run that taught the model, a seeded share of the taught train questions and as
many of the untaught are kept out of the train examples (``judgment_data/heldout.jsonl``): the
questions the judge's held-out test reads.
"""

from __future__ import annotations

from collections import Counter

import mlflow

from know_thyself.config import JudgmentDataConfig
from know_thyself.data.labels import labels_for, scheme_of
from know_thyself.evaluation.ability import RESPONSES, SPLITS
from know_thyself.steps.collect import require_collect_run
from know_thyself.tracking import StepRun, describe_run, log_jsonl, read_jsonl_artifact, require_step_run, step_run
from know_thyself.tracking.datasets import log_questions
from know_thyself.training.judgment_examples import ARTIFACT_DIR, HELDOUT, build_examples, hold_out
from know_thyself.training.knowledge_examples import DATA_FILE as KNOWLEDGE_DATA

# What the steps after it read: a finished run without them is built again, not reused.
REQUIRES = tuple(f"{ARTIFACT_DIR}/{split}.jsonl" for split in SPLITS)


def run_build_judgment_data(cfg: JudgmentDataConfig, reuse: bool = True) -> StepRun:
    """Build and log ``judgment_data/{train,validation}.jsonl`` with the label counts as metrics."""
    upstream = require_collect_run(cfg.collect_run_id, "collect_run_id")
    scheme = scheme_of(upstream.data.params)
    if cfg.knowledge_data_run_id:
        require_step_run(cfg.knowledge_data_run_id, "build_knowledge_data", "knowledge_data_run_id")
    with step_run(cfg.step, cfg.params(), reuse=reuse, requires=REQUIRES) as run:
        if run.reused:
            return run
        rows = read_jsonl_artifact(upstream.info.run_id, RESPONSES)
        log_questions(rows, upstream.data.params.get("dataset", ""))
        mlflow.log_param("label_scheme", scheme)
        sizes = []
        for split in SPLITS:
            examples = build_examples([r for r in rows if r["split"] == split], scheme)
            if split == "train" and cfg.knowledge_data_run_id:
                taught = {e["question_id"] for e in read_jsonl_artifact(cfg.knowledge_data_run_id, KNOWLEDGE_DATA)}
                examples, held = hold_out(examples, taught, cfg.holdout_fraction, cfg.seed)
                log_jsonl(held, f"{ARTIFACT_DIR}/{HELDOUT}")
                mlflow.log_metrics({"train/heldout/taught": sum(h["taught"] for h in held),
                                    "train/heldout/untaught": sum(not h["taught"] for h in held)})
                sizes.append(f"{len(held)} train questions held out ({sum(h['taught'] for h in held)} taught)")
            counts = Counter(e["label"] for e in examples)
            mlflow.log_metrics({f"{split}/label_count/{label}": counts.get(label, 0) for label in labels_for(scheme)})
            mlflow.log_metric(f"{split}/examples", len(examples))
            log_jsonl(examples, f"{ARTIFACT_DIR}/{split}.jsonl")
            sizes.append(f"{len(examples)} {split} ({', '.join(f'{counts.get(label, 0)} {label}' for label in labels_for(scheme))})")
        describe_run(f"Turned the ability labels of collect run {upstream.info.run_id} into judgment examples: {'; '.join(sizes)}.")
    return run
