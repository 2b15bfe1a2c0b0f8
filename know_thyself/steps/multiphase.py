"""The multiphase chain (also the ``main`` entry point): all three phases under one parent run.

Phase 1 (judgment v1), Phase 2 (knowledge, merged into the base) and Phase 3 (judgment v2 on
the merged base) run as child runs of the parent, each step a grandchild. Finished steps with
the same inputs are reused, so rerunning the chain resumes it; runs that a killed earlier start
left RUNNING are marked KILLED first.
"""

from __future__ import annotations

import mlflow
import pandas as pd

from know_thyself.config import MultiphaseConfig, TestKnowledgeConfig
from know_thyself.evaluation.ability import load_questions
from know_thyself.evaluation.summary import PhaseRuns, story_figure, summary_markdown, summary_metrics, summary_table
from know_thyself.inference.models import check_model_exists
from know_thyself.steps import phase1 as phase1_chain
from know_thyself.steps.build_knowledge_data import run_build_knowledge_data
from know_thyself.steps.test_knowledge import run_test_knowledge
from know_thyself.steps.train_knowledge import run_train_knowledge
from know_thyself.tracking import chain_run, close_stale_runs, code, describe_run
from know_thyself.tracking.datasets import log_collect_questions
from know_thyself.tracking.registry import JUDGE_ARTIFACT, KNOWLEDGE_ARTIFACT, register

# The step tags of the runs this chain opens.
STEPS = ("multiphase", *phase1_chain.STEPS, "phase2", "phase3", "build_knowledge_data", "train_knowledge", "test_knowledge")


def run_multiphase(cfg: MultiphaseConfig, reuse: bool = True) -> dict[str, str]:
    """All three phases under one parent run ``multiphase``; each phase a child, each step a grandchild.

    ``cfg.phase`` 0 runs every phase; N runs phases up to N, earlier ones reused when finished.
    Registers ``judgment_v1``, ``knowledge_base`` and ``judgment_v2`` (alias ``current``) as each
    step finishes, and logs the summary table and figure on the parent. Returns run ids by name.
    """
    # Fail on bad data or a missing model before any run exists.
    load_questions(cfg.dataset, cfg.num_samples, cfg.test_samples, cfg.seed)
    check_model_exists(cfg.model)
    close_stale_runs(STEPS)
    last = cfg.phase or 3
    ids: dict[str, str] = {}
    with chain_run("multiphase", cfg.params()) as parent:
        ids["multiphase"] = parent.info.run_id
        tags = _version_tags(cfg, parent.info.run_id)
        with chain_run("phase1"):
            phase1 = phase1_chain.judgment_chain(cfg.phase1(), cfg.model, reuse, suffix="v1")
            describe_run(f"Phase 1, judgment v1 on {code(cfg.model)}: {phase1_chain.CHAIN_LINE}")
        ids.update({f"phase1/{k}": v for k, v in phase1.items()})
        log_collect_questions(mlflow.get_run(phase1["collect"]))  # the questions the whole chain uses
        ids["judgment_v1"] = register(phase1["train_judgment"], JUDGE_ARTIFACT, "judgment_v1", {**tags, "base_model": cfg.model})
        if last >= 2:
            with chain_run("phase2"):
                data_id = run_build_knowledge_data(cfg.knowledge_data(phase1["collect"]), reuse).run_id
                train_id = run_train_knowledge(cfg.knowledge(data_id), reuse).run_id
                describe_run(f"Phase 2, knowledge: question-answer examples from the train questions, a LoRA "
                             f"adapter trained on them and merged into {code(cfg.model)} (registered as knowledge_base).")
            ids.update({"phase2/build_knowledge_data": data_id, "phase2/train_knowledge": train_id})
            version = register(train_id, KNOWLEDGE_ARTIFACT, "knowledge_base", {**tags, "base_model": cfg.model})
            ids["knowledge_base"] = version
        if last >= 3:
            merged = f"models:/knowledge_base/{ids['knowledge_base']}"
            with chain_run("phase3"):
                phase3 = phase1_chain.judgment_chain(
                    cfg.phase3(), merged, reuse, suffix="v2", knowledge_data_run_id=ids["phase2/build_knowledge_data"],
                    baseline_adapter_run_id=phase1["train_judgment"], holdout_fraction=cfg.holdout_fraction,
                    init_adapter_run_id=phase1["train_judgment"] if cfg.v2_start == "v1" else "",
                )
                test_cfg = TestKnowledgeConfig(
                    collect_before_run_id=phase1["collect"], collect_after_run_id=phase3["collect"],
                    knowledge_data_run_id=ids["phase2/build_knowledge_data"],
                )
                phase3["test_knowledge"] = run_test_knowledge(test_cfg, reuse).run_id
                describe_run(f"Phase 3, judgment v2 on the merged model {code(merged)}: {phase1_chain.CHAIN_LINE} "
                             "Then the knowledge test: QA accuracy before and after.")
            ids.update({f"phase3/{k}": v for k, v in phase3.items()})
            ids["judgment_v2"] = register(
                phase3["train_judgment"], JUDGE_ARTIFACT, "judgment_v2", {**tags, "base_model": merged}
            )
        log_summary(ids)
    return ids


def _version_tags(cfg: MultiphaseConfig, parent_run_id: str) -> dict[str, str]:
    return {
        "dataset": cfg.dataset,
        "num_samples": str(cfg.num_samples),
        "test_samples": str(cfg.test_samples),
        "num_trials": str(cfg.num_trials),
        "label_scheme": cfg.label_scheme,
        "parent_run_id": parent_run_id,
    }


def log_summary(ids: dict[str, str]) -> pd.DataFrame:
    """Log the summary table (MLflow table), the story figure and the final numbers on the active (parent) run.

    The run's description (what the MLflow UI shows on the run's page) becomes the summary in markdown.
    """
    phases = {}
    for phase in ("phase1", "phase3"):
        if f"{phase}/collect" in ids:
            collected = mlflow.get_run(ids[f"{phase}/collect"]).data
            evaluation = mlflow.get_run(ids[f"{phase}/evaluate_judgment"]).data
            phases[phase] = PhaseRuns(collected.params, collected.metrics, evaluation.metrics)
    table = summary_table(phases)
    if table.empty:
        return table
    describe_run(summary_markdown(table))
    mlflow.log_table(table, "summary.json")
    mlflow.log_figure(story_figure(table), "summary.png")
    mlflow.log_metrics(summary_metrics(table))
    return table
