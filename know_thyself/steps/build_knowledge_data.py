"""The build_knowledge_data step: QA SFT examples from a collect run's train questions.

Logs ``knowledge_data/train.jsonl``.
"""

from __future__ import annotations

import mlflow

from know_thyself.collect import RESPONSES
from know_thyself.config import KnowledgeDataConfig
from know_thyself.knowledge import DATA_FILE, build_qa_examples
from know_thyself.steps.collect import require_collect_run
from know_thyself.tracking import StepRun, describe_run, log_jsonl, read_jsonl_artifact, step_run


def run_build_knowledge_data(cfg: KnowledgeDataConfig, reuse: bool = True) -> StepRun:
    """Log ``knowledge_data/train.jsonl`` built from the collect run's train split."""
    upstream = require_collect_run(cfg.collect_run_id, "collect_run_id", needs=("train",))
    with step_run(cfg.step, cfg.params(), reuse=reuse) as run:
        if not run.reused:
            rows = [r for r in read_jsonl_artifact(upstream.info.run_id, RESPONSES) if r["split"] == "train"]
            examples = build_qa_examples(rows)
            log_jsonl(examples, DATA_FILE)
            mlflow.log_metric("train/examples", len(examples))
            describe_run(f"Built {len(examples)} question-answer examples from the train questions of collect run "
                         f"{upstream.info.run_id}.")
    return run
