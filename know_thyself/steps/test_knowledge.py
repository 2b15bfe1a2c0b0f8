"""The test_knowledge step: QA accuracy before and after knowledge training, from two collect runs."""

from __future__ import annotations

import mlflow

from know_thyself import collect, plots
from know_thyself.config import TestKnowledgeConfig
from know_thyself.knowledge import COMPARABLE_PARAMS
from know_thyself.tracking import StepRun, require_step_run, step_run


def run_test_knowledge(cfg: TestKnowledgeConfig, reuse: bool = True) -> StepRun:
    """Log QA accuracy (trial-based and greedy) before/after on both splits, and a before/after figure.

    Both collect runs must be different runs that sampled the same questions with the same settings
    (:data:`COMPARABLE_PARAMS`).
    """
    if cfg.collect_before_run_id == cfg.collect_after_run_id:
        raise ValueError(
            "collect_before_run_id and collect_after_run_id are the same run; pass the collect run of the "
            "base model and the collect run of the knowledge-trained model"
        )
    before = require_step_run(cfg.collect_before_run_id, "collect", "collect_before_run_id")
    after = require_step_run(cfg.collect_after_run_id, "collect", "collect_after_run_id")
    for key in COMPARABLE_PARAMS:
        if before.data.params.get(key) != after.data.params.get(key):
            raise ValueError(
                f"the two collect runs differ in {key} ({before.data.params.get(key)!r} vs "
                f"{after.data.params.get(key)!r}); compare collect runs of the same questions, "
                "sampled with the same settings"
            )
    with step_run(cfg.step, cfg.params(), reuse=reuse) as run:
        if run.reused:
            return run
        values: dict[str, float] = {}
        for when, upstream in (("before", before), ("after", after)):
            mlflow.log_param(f"model_{when}", upstream.data.params.get("model", ""))
            for split in collect.SPLITS:
                values[f"{when}/{split}/qa_accuracy_trials"] = upstream.data.metrics[f"{split}/qa_accuracy"]
                values[f"{when}/{split}/qa_accuracy_greedy"] = upstream.data.metrics[f"{split}/greedy_qa_accuracy"]
        for split in collect.SPLITS:
            for kind in ("trials", "greedy"):
                gain = values[f"after/{split}/qa_accuracy_{kind}"] - values[f"before/{split}/qa_accuracy_{kind}"]
                values[f"{split}/qa_accuracy_gain_{kind}"] = gain
        mlflow.log_metrics(values)
        mlflow.log_figure(plots.before_after_figure(values, collect.SPLITS), "knowledge_before_after.png")
    return run
