"""The evaluate_judgment step: a judge (optionally with its adapter) beside cheap baselines.

Fetches the collect run (and the train_judgment run of the adapter, and a reference collect of
the same questions for the label-noise ceiling) once, loads the model, and logs what
:func:`know_thyself.evaluation.judgment.evaluate_judgment` measured: the metrics, the comparison table, the
confusion tables, the figures and ``predictions.jsonl``.
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow

from know_thyself.config import EvaluateConfig
from know_thyself.data.labels import CAN, scheme_of
from know_thyself.evaluation.ability import RESPONSES, check_reference_collect
from know_thyself.evaluation.comparison import describe, headline
from know_thyself.evaluation.judgment import Evaluation, check_same_questions, evaluate_judgment
from know_thyself.evaluation.taught import heldout_difference, heldout_report, unchanged_comparison, where_known
from know_thyself.inference.judgments import judge
from know_thyself.inference.models import check_model_exists, load_model
from know_thyself.steps.collect import require_collect_run
from know_thyself.tracking import (
    StepRun,
    code,
    describe_run,
    downloaded,
    log_jsonl,
    read_jsonl_artifact,
    read_readout,
    require_step_run,
    step_run,
)
from know_thyself.tracking.datasets import log_questions
from know_thyself.tracking.judges import judge_precision, recorded_precision
from know_thyself.tracking.registry import TAG_PRECISION
from know_thyself.training.judgment_examples import ARTIFACT_DIR as JUDGMENT_DATA
from know_thyself.training.judgment_examples import HELDOUT
from know_thyself.training.knowledge_examples import DATA_FILE as KNOWLEDGE_DATA
from know_thyself.training.lora import ADAPTER_DIR, load_adapter

logger = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
# The steps whose runs hold a judgment adapter.
TRAINING_STEPS = ("train_judgment",)


def run_evaluate_judgment(cfg: EvaluateConfig, reuse: bool = True, run_name: str | None = None) -> StepRun:
    """Run evaluate_judgment in its own (possibly nested) run, or reuse an identical finished one."""
    collected = require_collect_run(cfg.collect_run_id, "collect_run_id")
    heldout_data = trained = None
    if cfg.adapter_run_id:
        trained = require_step_run(cfg.adapter_run_id, TRAINING_STEPS, "adapter_run_id")
        heldout_data = _heldout_data_run(trained)
    if cfg.baseline_adapter_run_id:
        require_step_run(cfg.baseline_adapter_run_id, TRAINING_STEPS, "baseline_adapter_run_id")
    check_model_exists(cfg.model)
    rows = reference_rows = None
    if cfg.reference_collect_run_id:
        # Checked before the run opens: the same questions, sampled alike but for the seed.
        reference = require_collect_run(cfg.reference_collect_run_id, "reference_collect_run_id", needs=())
        check_reference_collect(collected.data.params, reference.data.params)
        rows = read_jsonl_artifact(collected.info.run_id, RESPONSES)
        reference_rows = read_jsonl_artifact(reference.info.run_id, RESPONSES)
        check_same_questions(rows, reference_rows)
    with step_run(cfg.step, cfg.params(), reuse=reuse, run_name=run_name, requires=(PREDICTIONS,)) as run:
        if run.reused:
            return run
        if rows is None:
            rows = read_jsonl_artifact(collected.info.run_id, RESPONSES)
        log_questions(rows, collected.data.params.get("dataset", ""))
        scheme = scheme_of(collected.data.params)
        precision, precision_note = judge_precision(cfg.dtype, recorded_precision(trained))
        if precision_note:
            logger.warning("%s", precision_note)
        mlflow.set_tag(TAG_PRECISION, precision)
        model, tokenizer = load_model(cfg.model, dtype=precision)
        readout = None
        if cfg.adapter_run_id:
            with downloaded(cfg.adapter_run_id, ADAPTER_DIR) as adapter_dir:
                model = load_adapter(model, adapter_dir)
            readout = read_readout(cfg.adapter_run_id)
        result = evaluate_judgment(
            model, tokenizer, rows, scheme, cfg.inference_batch_size, with_adapter=bool(cfg.adapter_run_id),
            reference_rows=reference_rows, readout=readout, probe_c=cfg.probe_c,
        )
        if heldout_data is not None:
            result.metrics.update(_taught_report(cfg, model, tokenizer, rows, result, heldout_data, scheme))
        log_evaluation(result)
        what = "the judge (base + judgment adapter)" if cfg.adapter_run_id else "the bare model, prompted to judge"
        describe_run(f"Scored {what} of {code(cfg.model)} on collect run {cfg.collect_run_id}'s questions; validation: "
                     f"{describe(headline(result.metrics, 'validation'))} (majority baseline balanced accuracy "
                     f"{result.metrics.get('validation/majority/balanced_accuracy', float('nan')):.2f}); "
                     f"in {precision}" + (f" ({precision_note})." if precision_note else "."))
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


def _heldout_data_run(trained: Any) -> Any:
    """The build_judgment_data run behind a judge, when it held taught questions out (Phase 3); else None."""
    data_run = mlflow.get_run(trained.data.params.get("data_run_id", ""))
    # Read from the run's metrics, not its knowledge_data_run_id param: under ``mlflow run`` an
    # empty optional parameter is logged shell-quoted (``''``), which is not empty.
    return data_run if "train/heldout/taught" in data_run.data.metrics else None


def _taught_report(
    cfg: EvaluateConfig, model: Any, tokenizer: Any, rows: list[dict], result: Evaluation, data_run: Any, scheme: str,
) -> dict[str, float]:
    """The held-out test of a judge trained after Phase 2, and where the model shows what it was taught.

    The judge (and, given ``baseline_adapter_run_id``, judgment v1 applied unchanged to the same
    model, with the paired difference) on the held-out taught and untaught train questions; judgment
    v1 unchanged beside the judge on the other splits (validation), with paired intervals; the first-token probability and
    the answer's log-probability on the taught and ``can`` questions (:mod:`know_thyself.evaluation.taught`).
    """
    heldout = read_jsonl_artifact(data_run.info.run_id, f"{JUDGMENT_DATA}/{HELDOUT}")
    taught = {e["question_id"] for e in read_jsonl_artifact(data_run.data.params["knowledge_data_run_id"], KNOWLEDGE_DATA)}
    train = [r for r in rows if r["split"] == "train"]
    actual = {r["question_id"]: r["ability"] for r in train}
    judged = result.forwards["train"].judged
    predicted = dict(zip((r["question_id"] for r in train), judged.predicted))
    can = judged.labels.index(CAN)
    p_can = dict(zip((r["question_id"] for r in train), judged.probabilities[:, can]))
    values = heldout_report(heldout, predicted, p_can, actual)
    if cfg.baseline_adapter_run_id:
        with downloaded(cfg.baseline_adapter_run_id, ADAPTER_DIR) as adapter_dir:
            model.load_adapter(str(adapter_dir), adapter_name="baseline")
        baseline_readout = read_readout(cfg.baseline_adapter_run_id)
        rates = {label: result.metrics[f"train/correct_rate/{label}"] for label in judged.labels}

        def unchanged(questions: list[str], first: Any) -> Any:
            """Judgment v1 as it is registered, on this model: its adapter, and its readout on this model's first tokens."""
            model.set_adapter("baseline")
            try:
                out = judge(model, tokenizer, questions, scheme, cfg.inference_batch_size)
            finally:
                model.set_adapter("default")
            return out if baseline_readout is None else baseline_readout.apply(out, first)

        by_id = {r["question_id"]: r["question"] for r in train}
        ids = [h["question_id"] for h in heldout]
        by_position = {r["question_id"]: i for i, r in enumerate(train)}
        baseline = unchanged([by_id[i] for i in ids], result.forwards["train"].first_token[[by_position[i] for i in ids]])
        baseline_p_can = dict(zip(ids, baseline.probabilities[:, can]))
        values.update(heldout_report(heldout, dict(zip(ids, baseline.predicted)), baseline_p_can, actual,
                                     who="baseline_judge"))
        values.update(heldout_difference(heldout, p_can, baseline_p_can))
        for split, forwards in result.forwards.items():
            if split == "train":
                continue  # the judge trained on most of them; the held-out ones are reported above
            split_rows = [r for r in rows if r["split"] == split]
            values.update(unchanged_comparison(split, split_rows, forwards.judged,
                                               unchanged([r["question"] for r in split_rows], forwards.first_token), rates))
    first_token = {r["question_id"]: float(p) for split, forwards in result.forwards.items()
                   for r, p in zip((r for r in rows if r["split"] == split), forwards.first_token)}
    values.update(where_known(rows, first_token, taught))
    return values
