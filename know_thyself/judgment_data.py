"""The build_judgment_data step: turn a collect run's labels into chat-format SFT examples.

Each example is a conversational prompt/completion pair: the judgment prompt for a question,
and the one label word the collect step measured for it. TRL computes the loss on the
completion only.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import mlflow

from know_thyself import collect, data
from know_thyself.config import JudgmentDataConfig
from know_thyself.labels import labels_for
from know_thyself.prompts import judgment_completion, judgment_messages
from know_thyself.tracking import StepRun, download, require_step_run, step_run

ARTIFACT_DIR = "judgment_data"


def build_examples(rows: list[dict], scheme: str) -> list[dict]:
    """SFT examples (``prompt``/``completion`` message lists) from ``responses.jsonl`` rows."""
    return [
        {
            "question_id": row["question_id"],
            "label": row["ability"],
            "prompt": judgment_messages(row["question"], scheme),
            "completion": judgment_completion(row["ability"]),
        }
        for row in rows
    ]


def run_build_judgment_data(cfg: JudgmentDataConfig, reuse: bool = True) -> StepRun:
    """Build and log ``judgment_data/{train,validation}.jsonl`` with the label counts as metrics."""
    upstream = require_step_run(cfg.collect_run_id, "collect", "collect_run_id")
    scheme = upstream.data.params.get("label_scheme", "three")
    with step_run(cfg.step, cfg.params(), reuse=reuse) as run:
        if run.reused:
            return run
        rows = collect.read_responses(cfg.collect_run_id)
        mlflow.log_param("label_scheme", scheme)
        for split in collect.SPLITS:
            examples = build_examples([r for r in rows if r["split"] == split], scheme)
            counts = Counter(e["label"] for e in examples)
            mlflow.log_metrics({f"{split}/label_count/{label}": counts.get(label, 0) for label in labels_for(scheme)})
            mlflow.log_metric(f"{split}/examples", len(examples))
            path = data.write_jsonl(examples, Path(tempfile.mkdtemp(prefix="know-thyself-")) / f"{split}.jsonl")
            mlflow.log_artifact(str(path), ARTIFACT_DIR)
    return run


def read_examples(run_id: str, split: str) -> list[dict]:
    """The SFT examples of one split from a finished build_judgment_data run."""
    require_step_run(run_id, "build_judgment_data", "data_run_id")
    return data.read_jsonl(download(run_id, f"{ARTIFACT_DIR}/{split}.jsonl"))
