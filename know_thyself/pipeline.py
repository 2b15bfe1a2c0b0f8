"""Chains of steps under one parent run: ``phase1`` (judgment v1) and ``multiphase`` (all three).

Every step runs as a nested child run of the parent and hands the next step run ids, never
paths. A step whose finished run already exists with the same parameters, upstream run ids and
code version is reused (see :mod:`know_thyself.tracking`), so rerunning a chain resumes it.
"""

from __future__ import annotations

import logging

import mlflow

from know_thyself.collect import load_questions, run_collect
from know_thyself.config import (
    JudgmentDataConfig,
    KnowledgeDataConfig,
    MultiphaseConfig,
    Phase1Config,
    TestKnowledgeConfig,
)
from know_thyself.evaluate import run_evaluate_judgment
from know_thyself.judgment_data import run_build_judgment_data
from know_thyself.knowledge import run_build_knowledge_data, run_test_knowledge, run_train_knowledge
from know_thyself.registry import JUDGE_ARTIFACT, KNOWLEDGE_ARTIFACT, register
from know_thyself.summary import log_summary
from know_thyself.tracking import TAG_STEP
from know_thyself.training import run_train_judgment

logger = logging.getLogger(__name__)


def run_phase1(cfg: Phase1Config, reuse: bool = True) -> dict[str, str]:
    """collect -> build_judgment_data -> baseline evaluation -> train_judgment -> evaluation.

    Opens the parent run ``phase1`` (or continues the run ``mlflow run`` opened, or nests under an
    active run) and returns the run id of every step, keyed by step.
    """
    # Fail on bad data before any run exists.
    load_questions(cfg.dataset, cfg.num_samples, cfg.test_samples, cfg.seed)
    with mlflow.start_run(run_name="phase1", nested=mlflow.active_run() is not None) as parent:
        mlflow.set_tag(TAG_STEP, "phase1")
        _log_params_once(cfg.params())
        ids = {"phase1": parent.info.run_id}
        ids.update(_judgment_chain(cfg, cfg.model, reuse, suffix="v1"))
        _log_headline(ids, "v1")
    return ids


def _judgment_chain(cfg: Phase1Config, model: str, reuse: bool, suffix: str) -> dict[str, str]:
    """collect -> build -> baseline evaluate -> train -> evaluate, for ``model``; returns step run ids."""
    ids = {}
    collect_cfg = cfg.collect()
    collect_cfg.model = model
    collect_cfg.validate()
    ids["collect"] = run_collect(collect_cfg, reuse=reuse).run_id
    ids["build_judgment_data"] = run_build_judgment_data(
        JudgmentDataConfig(collect_run_id=ids["collect"]), reuse=reuse
    ).run_id
    ids["evaluate_baseline"] = run_evaluate_judgment(
        cfg.evaluate(model, ids["collect"]), reuse=reuse, run_name=f"evaluate_baseline_{suffix}"
    ).run_id
    ids["train_judgment"] = run_train_judgment(cfg.train(ids["build_judgment_data"], model=model), reuse=reuse).run_id
    ids["evaluate_judgment"] = run_evaluate_judgment(
        cfg.evaluate(model, ids["collect"], ids["train_judgment"]), reuse=reuse, run_name=f"evaluate_judgment_{suffix}"
    ).run_id
    return ids


def run_multiphase(cfg: MultiphaseConfig, reuse: bool = True) -> dict[str, str]:
    """All three phases under one parent run ``multiphase``; each phase a child, each step a grandchild.

    ``cfg.phase`` 0 runs every phase; N runs phases up to N, earlier ones reused when finished.
    Registers ``judgment_v1``, ``knowledge_base`` and ``judgment_v2`` (alias ``current``) as each
    step finishes, and logs the summary table and figure on the parent. Returns run ids by name.
    """
    load_questions(cfg.dataset, cfg.num_samples, cfg.test_samples, cfg.seed)
    last = cfg.phase or 3
    ids: dict[str, str] = {}
    with mlflow.start_run(run_name="multiphase", nested=mlflow.active_run() is not None) as parent:
        mlflow.set_tag(TAG_STEP, "multiphase")
        _log_params_once(cfg.params())
        ids["multiphase"] = parent.info.run_id
        tags = _version_tags(cfg, parent.info.run_id)
        with mlflow.start_run(run_name="phase1", nested=True):
            mlflow.set_tag(TAG_STEP, "phase1")
            phase1 = _judgment_chain(cfg.phase1(), cfg.model, reuse, suffix="v1")
        ids.update({f"phase1/{k}": v for k, v in phase1.items()})
        ids["judgment_v1"] = register(phase1["train_judgment"], JUDGE_ARTIFACT, "judgment_v1", {**tags, "base_model": cfg.model})
        if last >= 2:
            with mlflow.start_run(run_name="phase2", nested=True):
                mlflow.set_tag(TAG_STEP, "phase2")
                data_id = run_build_knowledge_data(KnowledgeDataConfig(collect_run_id=phase1["collect"]), reuse).run_id
                train_id = run_train_knowledge(cfg.knowledge(data_id), reuse).run_id
            ids.update({"phase2/build_knowledge_data": data_id, "phase2/train_knowledge": train_id})
            version = register(train_id, KNOWLEDGE_ARTIFACT, "knowledge_base", {**tags, "base_model": cfg.model})
            ids["knowledge_base"] = version
        if last >= 3:
            merged = f"models:/knowledge_base/{ids['knowledge_base']}"
            with mlflow.start_run(run_name="phase3", nested=True):
                mlflow.set_tag(TAG_STEP, "phase3")
                phase3 = _judgment_chain(cfg.phase1(), merged, reuse, suffix="v2")
                test_cfg = TestKnowledgeConfig(
                    collect_before_run_id=phase1["collect"], collect_after_run_id=phase3["collect"]
                )
                phase3["test_knowledge"] = run_test_knowledge(test_cfg, reuse).run_id
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


def _log_params_once(params: dict[str, str]) -> None:
    """Log parameters, skipping those a resumed run already holds (MLflow refuses to change them)."""
    existing = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    mlflow.log_params({k: v for k, v in params.items() if k not in existing})


def _log_headline(ids: dict[str, str], suffix: str) -> None:
    """Copy the evaluations' headline numbers onto the parent run."""
    for name, key in (("baseline", "evaluate_baseline"), (f"judgment_{suffix}", "evaluate_judgment")):
        child = mlflow.get_run(ids[key]).data.metrics
        wanted = [f"{split}/judge/{metric}" for split in ("train", "validation") for metric in ("exact_match", "auroc")]
        mlflow.log_metrics({f"{name}/{metric}": child[metric] for metric in wanted if metric in child})
    collected = mlflow.get_run(ids["collect"]).data.metrics
    mlflow.log_metrics({k: v for k, v in collected.items() if k.endswith("qa_accuracy")})
