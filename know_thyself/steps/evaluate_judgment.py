"""The evaluate_judgment step: a judge (optionally with its adapter) beside cheap baselines.

Fetches the collect run (and the train_judgment run of the adapter, and a reference collect of
the same questions for the label-noise ceiling) once, loads the model, and logs what
:func:`know_thyself.evaluation.judgment.evaluate_judgment` measured: the metrics, the comparison table, the
confusion tables, the figures and ``predictions.jsonl``.
"""

from __future__ import annotations

import mlflow

from know_thyself.config import EvaluateConfig
from know_thyself.data.labels import scheme_of
from know_thyself.evaluation.ability import RESPONSES, check_reference_collect
from know_thyself.evaluation.comparison import describe, headline
from know_thyself.evaluation.judgment import Evaluation, check_same_questions, evaluate_judgment
from know_thyself.inference.models import check_model_exists, load_model
from know_thyself.steps.collect import require_collect_run
from know_thyself.tracking import (
    StepRun,
    code,
    describe_run,
    downloaded,
    log_jsonl,
    read_jsonl_artifact,
    require_step_run,
    step_run,
)
from know_thyself.training.lora import ADAPTER_DIR, load_adapter

PREDICTIONS = "predictions.jsonl"
# The steps whose runs hold a judgment adapter.
TRAINING_STEPS = ("train_judgment",)


def run_evaluate_judgment(cfg: EvaluateConfig, reuse: bool = True, run_name: str | None = None) -> StepRun:
    """Run evaluate_judgment in its own (possibly nested) run, or reuse an identical finished one."""
    collected = require_collect_run(cfg.collect_run_id, "collect_run_id")
    if cfg.adapter_run_id:
        require_step_run(cfg.adapter_run_id, TRAINING_STEPS, "adapter_run_id")
    check_model_exists(cfg.model)
    rows = reference_rows = None
    if cfg.reference_collect_run_id:
        # Checked before the run opens: the same questions, sampled alike but for the seed.
        reference = require_collect_run(cfg.reference_collect_run_id, "reference_collect_run_id", needs=())
        check_reference_collect(collected.data.params, reference.data.params)
        rows = read_jsonl_artifact(collected.info.run_id, RESPONSES)
        reference_rows = read_jsonl_artifact(reference.info.run_id, RESPONSES)
        check_same_questions(rows, reference_rows)
    with step_run(cfg.step, cfg.params(), reuse=reuse, run_name=run_name) as run:
        if run.reused:
            return run
        if rows is None:
            rows = read_jsonl_artifact(collected.info.run_id, RESPONSES)
        scheme = scheme_of(collected.data.params)
        model, tokenizer = load_model(cfg.model, dtype=cfg.dtype)
        if cfg.adapter_run_id:
            with downloaded(cfg.adapter_run_id, ADAPTER_DIR) as adapter_dir:
                model = load_adapter(model, adapter_dir)
        result = evaluate_judgment(
            model, tokenizer, rows, scheme, cfg.inference_batch_size, with_adapter=bool(cfg.adapter_run_id),
            reference_rows=reference_rows,
        )
        log_evaluation(result)
        what = "the judge (base + judgment adapter)" if cfg.adapter_run_id else "the bare model, prompted to judge"
        describe_run(f"Scored {what} of {code(cfg.model)} on collect run {cfg.collect_run_id}'s questions; validation: "
                     f"{describe(headline(result.metrics, 'validation'))} (majority baseline balanced accuracy "
                     f"{result.metrics.get('validation/majority/balanced_accuracy', float('nan')):.2f}).")
    return run


def log_evaluation(result: Evaluation, exclude: frozenset[str] = frozenset()) -> None:
    """Log an evaluation into the active run: metrics (less ``exclude``, logged elsewhere), tables, figures, predictions."""
    mlflow.log_metrics({k: v for k, v in result.metrics.items() if k not in exclude})
    mlflow.log_table(result.table, "comparison.json")
    for name, table in result.tables.items():
        mlflow.log_table(table, name)
    for name, figure in result.figures.items():
        mlflow.log_figure(figure, name)
    mlflow.set_tag("undefined_metrics", ", ".join(result.undefined) if result.undefined else "none")
    log_jsonl(result.predictions, PREDICTIONS)
