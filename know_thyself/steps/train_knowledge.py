"""The train_knowledge step: LoRA SFT on QA pairs, then the adapter merged into the base.

Logs the knowledge adapter (``adapter/``) and the merged model as an MLflow transformers model
(``model/``), which the multiphase chain registers as ``knowledge_base``.
"""

from __future__ import annotations

from typing import Any

import mlflow

from know_thyself.config import KnowledgeTrainConfig
from know_thyself.evaluation.ability import RESPONSES
from know_thyself.inference.models import check_model_exists, load_model
from know_thyself.tracking import StepRun, code, describe_run, read_jsonl_artifact, require_step_run, step_run
from know_thyself.tracking.datasets import log_collect_questions
from know_thyself.tracking.registry import KNOWLEDGE_ARTIFACT, requirements
from know_thyself.tracking.training_log import MlflowMetricsCallback, log_adapter, log_learned, log_training
from know_thyself.training.divergence import check_training
from know_thyself.training.knowledge_examples import DATA_FILE
from know_thyself.training.learned import LearnedStop, greedy_accuracy_check
from know_thyself.training.lora import ADAPTER_DIR, train_lora


def run_train_knowledge(cfg: KnowledgeTrainConfig, reuse: bool = True) -> StepRun:
    """Train the knowledge adapter, merge it, and log the merged model (``model/``) and the adapter."""
    upstream = require_step_run(cfg.data_run_id, "build_knowledge_data", "data_run_id")
    check_model_exists(cfg.model)
    with step_run(cfg.step, cfg.params(), reuse=reuse, system_metrics=True, requires=(f"{ADAPTER_DIR}/",)) as run:
        if not run.reused:
            examples = read_jsonl_artifact(upstream.info.run_id, DATA_FILE)
            collected = mlflow.get_run(upstream.data.params["collect_run_id"])
            log_collect_questions(collected, splits=("train",))
            model, tokenizer = load_model(cfg.model, dtype="float32")
            stop = LearnedStop(cfg.stop_when_learned, _taught_check(collected, examples, tokenizer, cfg))
            trained = train_lora(examples, cfg, (model, tokenizer), callbacks=(MlflowMetricsCallback(), stop))
            check_training(trained.trainer, cfg, trained.metrics["train/final_loss"])  # diverged: the run fails, nothing saved
            log_training(trained)
            log_learned(stop)
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
                             f"examples for {trainer.state.global_step} steps ({_epochs_line(stop, cfg, trainer.state.num_train_epochs)}) and merged it "
                             "into the base (model/).")
    return run


def _taught_check(collected: Any, examples: list[dict], tokenizer: Any, cfg: KnowledgeTrainConfig) -> Any:
    """The greedy accuracy on the taught questions, graded as the collect run graded its answers (None: no stop)."""
    if not cfg.stop_when_learned:
        return None
    rows = {r["question_id"]: r for r in read_jsonl_artifact(collected.info.run_id, RESPONSES)}
    taught = [rows[e["question_id"]] for e in examples]
    return greedy_accuracy_check(tokenizer, [r["question"] for r in taught], [r["aliases"] for r in taught],
                                 int(collected.data.params.get("max_new_tokens", 24)))


def _epochs_line(stop: LearnedStop, cfg: KnowledgeTrainConfig, planned: float) -> str:
    """How many epochs ran and why; ``planned`` is the most the trainer would run (``epochs``, or what ``max_steps`` makes)."""
    checked = ", ".join(f"{accuracy:.3f} after epoch {epoch}" for epoch, accuracy in stop.accuracy)
    if stop.stopped_after is not None:
        return (f"stopped after epoch {stop.stopped_after} of at most {planned:g}: its greedy answers to the taught "
                f"questions were graded correct for at least {cfg.stop_when_learned:g} of them ({checked})")
    return f"{len(stop.reproduced)} epochs" + (f"; greedy accuracy on the taught questions {checked}" if checked else "")
