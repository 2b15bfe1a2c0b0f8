"""The train_knowledge step: LoRA SFT on QA pairs, then the adapter merged into the base."""

from __future__ import annotations

import mlflow

from know_thyself import data
from know_thyself.config import KnowledgeTrainConfig
from know_thyself.knowledge import DATA_FILE
from know_thyself.registry import KNOWLEDGE_ARTIFACT, requirements
from know_thyself.tracking import StepRun, download, require_step_run, step_run
from know_thyself.training import log_adapter, train_lora


def run_train_knowledge(cfg: KnowledgeTrainConfig, reuse: bool = True) -> StepRun:
    """Train the knowledge adapter, merge it, and log the merged model (``model/``) and the adapter."""
    require_step_run(cfg.data_run_id, "build_knowledge_data", "data_run_id")
    with step_run(cfg.step, cfg.params(), reuse=reuse) as run:
        if not run.reused:
            examples = data.read_jsonl(download(cfg.data_run_id, DATA_FILE))
            trainer = train_lora(examples, cfg)
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
    return run
