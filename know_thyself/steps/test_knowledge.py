"""The test_knowledge step: QA accuracy before and after knowledge training, from two collect runs.

Logs before/after QA accuracy (trial-based and greedy) on both splits, the gains, and
``knowledge_before_after.png``. Given the build_knowledge_data run, also on the taught and the
untaught train questions apart.
"""

from __future__ import annotations

import mlflow

from know_thyself.config import TestKnowledgeConfig
from know_thyself.evaluation import plots
from know_thyself.evaluation.ability import RESPONSES, SPLITS
from know_thyself.evaluation.knowledge_test import check_comparable, knowledge_gains, taught_gains
from know_thyself.steps.collect import TAG_QUESTION_SET, require_collect_run
from know_thyself.tracking import StepRun, describe_run, read_jsonl_artifact, require_step_run, step_run
from know_thyself.tracking.datasets import log_collect_questions
from know_thyself.training.knowledge_examples import DATA_FILE


def run_test_knowledge(cfg: TestKnowledgeConfig, reuse: bool = True) -> StepRun:
    """Log QA accuracy (trial-based and greedy) before/after on both splits, and a before/after figure.

    Both collect runs must be different runs that sampled the same questions with the same
    settings (see :func:`know_thyself.knowledge.check_comparable`).
    """
    if cfg.collect_before_run_id == cfg.collect_after_run_id:
        raise ValueError(
            "collect_before_run_id and collect_after_run_id are the same run; pass the collect run of the "
            "base model and the collect run of the knowledge-trained model"
        )
    before = require_collect_run(cfg.collect_before_run_id, "collect_before_run_id")
    after = require_collect_run(cfg.collect_after_run_id, "collect_after_run_id")
    check_comparable(
        before.data.params, after.data.params,
        before.data.tags.get(TAG_QUESTION_SET), after.data.tags.get(TAG_QUESTION_SET),
    )
    if cfg.knowledge_data_run_id:
        require_step_run(cfg.knowledge_data_run_id, "build_knowledge_data", "knowledge_data_run_id")
    with step_run(cfg.step, cfg.params(), reuse=reuse) as run:
        if not run.reused:
            mlflow.log_params({f"model_{when}": r.data.params.get("model", "") for when, r in (("before", before), ("after", after))})
            log_collect_questions(before)
            values = knowledge_gains(before.data.metrics, after.data.metrics)
            groups = list(SPLITS)
            if cfg.knowledge_data_run_id:
                taught = {e["question_id"] for e in read_jsonl_artifact(cfg.knowledge_data_run_id, DATA_FILE)}
                values.update(taught_gains(read_jsonl_artifact(before.info.run_id, RESPONSES),
                                           read_jsonl_artifact(after.info.run_id, RESPONSES), taught))
                groups += [g for g in ("taught", "untaught") if f"{g}/questions" in values]
            mlflow.log_metrics(values)
            mlflow.log_figure(plots.before_after_figure(values, groups), "knowledge_before_after.png")
            describe_run(
                "Validation QA accuracy before -> after knowledge training: "
                f"{values['before/validation/qa_accuracy_trials']:.2f} -> {values['after/validation/qa_accuracy_trials']:.2f} "
                f"over trials, {values['before/validation/qa_accuracy_greedy']:.2f} -> "
                f"{values['after/validation/qa_accuracy_greedy']:.2f} greedy (train: "
                f"{values['before/train/qa_accuracy_trials']:.2f} -> {values['after/train/qa_accuracy_trials']:.2f})."
            )
    return run
