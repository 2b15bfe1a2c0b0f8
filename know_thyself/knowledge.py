"""Phase 2 steps: teach the model the answers, merge the adapter into the base, measure what it learned.

* build_knowledge_data: QA examples (the collect step's answer prompt -> ``answer.value``) from
  the train questions of a collect run, so what is learned shows up in grading.
* train_knowledge: LoRA SFT on them, the adapter kept as an artifact, then ``merge_and_unload``
  and the merged model logged as an MLflow transformers model (``model/``), which the pipeline
  registers as ``knowledge_base``.
* test_knowledge: QA accuracy before and after, trial-based and greedy, on train and validation,
  from two collect runs of the same questions (one per model).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow

from know_thyself import collect, data, plots
from know_thyself.config import KnowledgeDataConfig, KnowledgeTrainConfig, TestKnowledgeConfig
from know_thyself.prompts import answer_completion, answer_messages
from know_thyself.registry import KNOWLEDGE_ARTIFACT, requirements
from know_thyself.tracking import StepRun, download, require_step_run, step_run
from know_thyself.training import log_adapter, train_lora

DATA_FILE = "knowledge_data/train.jsonl"
# Collect parameters that must agree for a before/after comparison: the same questions, sampled alike.
COMPARABLE_PARAMS = (
    "dataset", "num_samples", "test_samples", "seed", "num_trials", "temperature", "max_new_tokens", "label_scheme",
)


def build_qa_examples(rows: list[dict]) -> list[dict]:
    """QA SFT examples from ``responses.jsonl`` rows: answer prompt -> the reference answer."""
    return [
        {
            "question_id": row["question_id"],
            "prompt": answer_messages(row["question"]),
            "completion": answer_completion(row["answer"]),
        }
        for row in rows
    ]


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
