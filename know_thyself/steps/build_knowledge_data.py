"""The build_knowledge_data step: QA SFT examples from a collect run's train questions."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow

from know_thyself import collect, data
from know_thyself.config import KnowledgeDataConfig
from know_thyself.knowledge import build_qa_examples
from know_thyself.tracking import StepRun, require_step_run, step_run


def run_build_knowledge_data(cfg: KnowledgeDataConfig, reuse: bool = True) -> StepRun:
    """Log ``knowledge_data/train.jsonl`` built from the collect run's train split."""
    require_step_run(cfg.collect_run_id, "collect", "collect_run_id")
    with step_run(cfg.step, cfg.params(), reuse=reuse) as run:
        if not run.reused:
            rows = [r for r in collect.read_responses(cfg.collect_run_id) if r["split"] == "train"]
            examples = build_qa_examples(rows)
            path = data.write_jsonl(examples, Path(tempfile.mkdtemp(prefix="know-thyself-")) / "train.jsonl")
            mlflow.log_artifact(str(path), "knowledge_data")
            mlflow.log_metric("train/examples", len(examples))
    return run
