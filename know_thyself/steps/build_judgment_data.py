"""The build_judgment_data step: a collect run's labels as chat-format SFT examples.

Logs ``judgment_data/{train,validation}.jsonl`` and the label counts of each split.
"""

from __future__ import annotations

from collections import Counter

import mlflow

from know_thyself.config import JudgmentDataConfig
from know_thyself.data.labels import labels_for, scheme_of
from know_thyself.evaluation.ability import RESPONSES, SPLITS
from know_thyself.steps.collect import require_collect_run
from know_thyself.tracking import StepRun, describe_run, log_jsonl, read_jsonl_artifact, step_run
from know_thyself.training.judgment_examples import ARTIFACT_DIR, build_examples


def run_build_judgment_data(cfg: JudgmentDataConfig, reuse: bool = True) -> StepRun:
    """Build and log ``judgment_data/{train,validation}.jsonl`` with the label counts as metrics."""
    upstream = require_collect_run(cfg.collect_run_id, "collect_run_id")
    scheme = scheme_of(upstream.data.params)
    with step_run(cfg.step, cfg.params(), reuse=reuse) as run:
        if run.reused:
            return run
        rows = read_jsonl_artifact(upstream.info.run_id, RESPONSES)
        mlflow.log_param("label_scheme", scheme)
        sizes = []
        for split in SPLITS:
            examples = build_examples([r for r in rows if r["split"] == split], scheme)
            counts = Counter(e["label"] for e in examples)
            mlflow.log_metrics({f"{split}/label_count/{label}": counts.get(label, 0) for label in labels_for(scheme)})
            mlflow.log_metric(f"{split}/examples", len(examples))
            log_jsonl(examples, f"{ARTIFACT_DIR}/{split}.jsonl")
            sizes.append(f"{len(examples)} {split} ({', '.join(f'{counts.get(label, 0)} {label}' for label in labels_for(scheme))})")
        describe_run(f"Turned the ability labels of collect run {upstream.info.run_id} into judgment examples: {'; '.join(sizes)}.")
    return run
