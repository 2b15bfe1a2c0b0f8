"""The train_knowledge step: LoRA SFT on QA pairs, then the adapter merged into the base.

Logs the knowledge adapter (``adapter/``) and the merged model as an MLflow transformers model
(``model/``), which the multiphase chain registers as ``knowledge_base``.
"""

from __future__ import annotations

import mlflow

from know_thyself.config import KnowledgeTrainConfig
from know_thyself.inference.models import check_model_exists
from know_thyself.tracking import StepRun, code, describe_run, read_jsonl_artifact, require_step_run, step_run
from know_thyself.tracking.datasets import log_collect_questions
from know_thyself.tracking.registry import KNOWLEDGE_ARTIFACT, requirements
from know_thyself.tracking.training_log import MlflowMetricsCallback, log_adapter, log_training
from know_thyself.training.divergence import check_training
from know_thyself.training.knowledge_examples import DATA_FILE
from know_thyself.training.lora import ADAPTER_DIR, train_lora


def run_train_knowledge(cfg: KnowledgeTrainConfig, reuse: bool = True) -> StepRun:
    """Train the knowledge adapter, merge it, and log the merged model (``model/``) and the adapter."""
    upstream = require_step_run(cfg.data_run_id, "build_knowledge_data", "data_run_id")
    check_model_exists(cfg.model)
    with step_run(cfg.step, cfg.params(), reuse=reuse, system_metrics=True, requires=(f"{ADAPTER_DIR}/",)) as run:
        if not run.reused:
            examples = read_jsonl_artifact(upstream.info.run_id, DATA_FILE)
            log_collect_questions(mlflow.get_run(upstream.data.params["collect_run_id"]), splits=("train",))
            trained = train_lora(examples, cfg, callbacks=(MlflowMetricsCallback(),))
            check_training(trained.trainer, cfg, trained.metrics["train/final_loss"])  # diverged: the run fails, nothing saved
            log_training(trained)
            trainer = trained.trainer
            log_adapter(trainer, cfg.model)
            if trainer.is_world_process_zero():
                merged = trainer.model.merge_and_unload()
                merged.eval()
                mlflow.transformers.log_model(
                    transformers_model={"model": merged, "tokenizer": trainer.processing_class},
                    name=KNOWLEDGE_ARTIFACT,
                    task="text-generation",
                    pip_requirements=requirements(),
                )
                describe_run(f"Trained the knowledge LoRA adapter on {code(cfg.model)} with {len(examples)} question-answer "
                             f"examples for {trainer.state.global_step} steps and merged it into the base (model/).")
    return run
