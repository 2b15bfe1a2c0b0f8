"""Phase 2 steps: teach the model the answers, merge the adapter into the base, measure what it learned.

* build_knowledge_data: QA examples (the collect step's answer prompt -> ``answer.value``) from
  the train questions of a collect run, so what is learned shows up in grading.
* train_knowledge: LoRA SFT on them, the adapter kept as an artifact, then ``merge_and_unload``
  and the merged model logged as an MLflow transformers model (``model/``), which the pipeline
  registers as ``knowledge_base``.
* test_knowledge: QA accuracy before and after, trial-based (from two collect runs, one per
  model) and greedy (one greedy answer per question and model), on train and validation.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow

from know_thyself import collect, data, plots
from know_thyself.config import KnowledgeDataConfig, KnowledgeTrainConfig, TestKnowledgeConfig
from know_thyself.grading import is_correct
from know_thyself.models import load_model
from know_thyself.prompts import answer_completion, answer_messages, render
from know_thyself.registry import KNOWLEDGE_ARTIFACT, requirements
from know_thyself.sampling import sample_answers
from know_thyself.tracking import StepRun, download, require_step_run, step_run
from know_thyself.training import log_adapter, train_lora

DATA_FILE = "knowledge_data/train.jsonl"


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


def greedy_accuracy(model_spec: str, rows: list[dict], cfg: TestKnowledgeConfig) -> dict[str, float]:
    """Share of questions whose greedy answer is correct, per split."""
    model, tokenizer = load_model(model_spec, dtype=cfg.dtype)
    prompts = [render(tokenizer, answer_messages(r["question"])) for r in rows]
    answers = sample_answers(
        model, tokenizer, prompts, 1, cfg.max_new_tokens, temperature=0, batch_size=cfg.inference_batch_size
    )
    result = {}
    for split in collect.SPLITS:
        flags = [is_correct(a[0], r["aliases"]) for a, r in zip(answers, rows) if r["split"] == split]
        result[split] = sum(flags) / len(flags)
    return result


def run_test_knowledge(cfg: TestKnowledgeConfig, reuse: bool = True) -> StepRun:
    """Log QA accuracy (trial-based and greedy) before/after on both splits, and a before/after figure."""
    before_run = require_step_run(cfg.collect_before_run_id, "collect", "collect_before_run_id")
    after_run = require_step_run(cfg.collect_after_run_id, "collect", "collect_after_run_id")
    with step_run(cfg.step, cfg.params(), reuse=reuse) as run:
        if run.reused:
            return run
        rows = collect.read_responses(cfg.collect_before_run_id)
        flat: dict[str, float] = {}
        for when, model_spec, upstream in (("before", cfg.model_before, before_run), ("after", cfg.model_after, after_run)):
            greedy = greedy_accuracy(model_spec, rows, cfg)
            for split in collect.SPLITS:
                flat[f"{when}/{split}/qa_accuracy_trials"] = upstream.data.metrics[f"{split}/qa_accuracy"]
                flat[f"{when}/{split}/qa_accuracy_greedy"] = greedy[split]
        for split in collect.SPLITS:
            for kind in ("trials", "greedy"):
                gain = flat[f"after/{split}/qa_accuracy_{kind}"] - flat[f"before/{split}/qa_accuracy_{kind}"]
                flat[f"{split}/qa_accuracy_gain_{kind}"] = gain
        mlflow.log_metrics(flat)
        mlflow.log_figure(plots.before_after_figure(flat, collect.SPLITS), "knowledge_before_after.png")
    return run
