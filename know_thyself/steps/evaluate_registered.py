"""The evaluate_registered step: a registered judge (or two) scored on a question set of the user's choice.

Everything the evaluation needs is found from the registered version itself:

* the judge: the version's source run, a ``train_judgment`` run holding the adapter;
* its base model: the version's ``base_model`` tag (for ``judgment_v2`` a merged
  ``models:/knowledge_base/<version>``), else the training run's ``model`` parameter;
* the judge's training collect run (training run -> ``data_run_id`` -> ``collect_run_id``),
  which supplies the sampling settings of the ground truth (trials, temperature, answer length,
  label scheme) and the labelled train questions that the baselines and the confidence score
  are fitted on (majority label, prior, per-label correctness rates, probe). The scored question
  set is not split in two for that: every question of it is scored, and nothing about it is
  learned from its own labels.

The ground truth is a collect run of the base model on the chosen questions (validation split
only, or train only when ``split=train``; a single file is scored whole as validation); an
identical finished collect run is reused. Each judge's evaluation is a child run linked to its
model version (tags on both sides; its headline metrics also logged as metrics of the version's
MLflow logged model, against the question set as a dataset). An evaluation on fewer than
``MIN_LINKED_QUESTIONS`` questions is not linked to the version: its bootstrap intervals collapse
(``[0.00, 0.00]``) and would stand on the model's page as if measured; a warning says so. On
questions that all have one label, balanced accuracy and QWK measure nothing (their intervals are
constant, e.g. ``[1.00, 1.00]``): they are left off the version, its logged model and the parent
run, and the tag says they are undefined and why (:func:`version_headline`). With two
judges the parent run also holds the paired comparison. The parent run continues the run
``mlflow run`` opened.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
import pandas as pd

from know_thyself import data
from know_thyself.config import CollectConfig, EvaluateRegisteredConfig
from know_thyself.data.labels import labels_for
from know_thyself.evaluation import comparison as downstream
from know_thyself.evaluation.ability import RESPONSES
from know_thyself.evaluation.judgment import evaluate_judgment
from know_thyself.inference.models import check_model_exists, load_model
from know_thyself.steps.collect import run_collect
from know_thyself.steps.evaluate_judgment import PREDICTIONS, log_evaluation
from know_thyself.tracking import (
    TAG_NOTE,
    chain_run,
    close_stale_runs,
    code,
    downloaded,
    read_jsonl_artifact,
    read_readout,
    step_run,
)
from know_thyself.tracking.judges import RegisteredJudge, judge_precision, resolve_judge, tag_version
from know_thyself.tracking.registry import TAG_PRECISION
from know_thyself.training.lora import ADAPTER_DIR, load_adapter

logger = logging.getLogger(__name__)

STEP = "evaluate_registered"
# The step of each judge's own evaluation run (a child of the evaluate_registered run).
JUDGE_STEP = "evaluate_registered_judge"
STEPS = (STEP, JUDGE_STEP, "collect")
TAG_MODEL = "know_thyself.registered_model"
TAG_VERSION = "know_thyself.model_version"
TAG_QUESTIONS = "know_thyself.questions"
# Fewer questions than this make degenerate bootstrap intervals: such an evaluation is not linked to the version.
MIN_LINKED_QUESTIONS = 5
# The headline metrics scored against the measured labels: they measure nothing when every question has one label.
LABEL_METRICS = ("balanced_accuracy", "qwk")
ONE_LABEL = "every question has one label"


@dataclass
class Outcome:
    """What the step made: run ids by name (for chaining by hand) and the report it prints."""

    run_ids: dict[str, str]
    report: str


def run_evaluate_registered(cfg: EvaluateRegisteredConfig, reuse: bool = True) -> Outcome:
    """Score each judge ``cfg.model_uri`` names on the question set; compare two. See the module doc."""
    judges = [resolve_judge(uri) for uri in cfg.uris()]
    if len({judge.title for judge in judges}) < len(judges):
        raise ValueError(f"model_uri {cfg.model_uri!r} names {judges[0].title} twice; give two different versions")
    if len({judge.scheme for judge in judges}) > 1:
        raise ValueError(f"the judges of {cfg.model_uri!r} use different label schemes "
                         f"({', '.join(j.scheme for j in judges)}); compare judges of one scheme")
    single = data.single_file(cfg.dataset) is not None
    split = "validation" if single else cfg.split
    available = len(data.load_split(cfg.dataset, split))  # a bad file fails here, before any run
    count = cfg.num_questions or available
    if count > available:
        raise ValueError(f"num_questions is {count} but {cfg.dataset!r} ({split}) holds {available} questions; "
                         f"lower num_questions to <= {available} (0 scores them all)")
    collects = [_collect_config(cfg, judge, split, count) for judge in judges]
    for judge in judges:
        check_model_exists(judge.base_model)
    label = downstream.dataset_label(cfg.dataset, split, single)
    close_stale_runs(STEPS)
    ids: dict[str, str] = {}
    with chain_run(STEP, cfg.params()) as parent:
        ids[STEP] = parent.info.run_id
        lines = []
        for judge, collect_cfg in zip(judges, collects):
            collect_id = run_collect(collect_cfg, reuse=reuse).run_id
            run_id = _evaluate_one(cfg, judge, collect_id, split, label, reuse)
            ids[f"{judge.title}/collect"], ids[f"{judge.title}/evaluation"] = collect_id, run_id
            lines.append(_link_version(judge, run_id, split, label, collect_cfg))
        mlflow.set_tags({TAG_QUESTIONS: label, "know_thyself.judges": ", ".join(j.title for j in judges)})
        if len(judges) == 1:
            values = mlflow.get_run(ids[f"{judges[0].title}/evaluation"]).data.metrics
            mlflow.log_metrics({f"{split}/judge/{k}": v for k, v in version_headline(values, split)[0].items()})
            note = lines[0]
        else:
            table = _compare(judges, [ids[f"{j.title}/evaluation"] for j in judges], split)
            note = "\n\n".join([downstream.comparison_markdown(table, (judges[0].title, judges[1].title), count),
                                *(f"* {line}" for line in lines)])
            lines.append(note)
        mlflow.set_tag(TAG_NOTE, note)
    return Outcome(ids, "\n".join(lines))


def _collect_config(cfg: EvaluateRegisteredConfig, judge: RegisteredJudge, split: str, count: int) -> CollectConfig:
    """The ground-truth collect run: the judge's base on the chosen questions, sampled as in its training."""
    trained = judge.training_collect.data.params
    return CollectConfig(
        model=judge.base_model,
        dataset=cfg.dataset,
        num_samples=count if split == "train" else 0,
        test_samples=count if split == "validation" else 0,
        splits=split,
        num_trials=cfg.num_trials or int(trained.get("num_trials", 5)),
        temperature=float(trained.get("temperature", 0.5)),
        max_new_tokens=int(trained.get("max_new_tokens", 24)),
        label_scheme=judge.scheme,
        inference_batch_size=cfg.inference_batch_size,
        dtype=cfg.dtype,
        seed=cfg.seed,
    )


def _evaluate_one(cfg: EvaluateRegisteredConfig, judge: RegisteredJudge, collect_id: str, split: str, label: str,
                  reuse: bool) -> str:
    """The judge's evaluation run on the collected questions (reused when an identical one finished)."""
    params = {
        "model_uri": f"models:/{judge.name}/{judge.version}",
        "judge_run_id": judge.run_id,
        "base_model": judge.base_model,
        "collect_run_id": collect_id,
        "training_collect_run_id": judge.training_collect.info.run_id,
        "inference_batch_size": str(cfg.inference_batch_size),
        "dtype": cfg.dtype,
        "probe_c": str(cfg.probe_c),
    }
    with step_run(JUDGE_STEP, params, reuse=reuse, run_name=f"evaluate {judge.title}") as run:
        if run.reused:
            return run.run_id
        rows = read_jsonl_artifact(collect_id, RESPONSES)
        trained_on = [r for r in read_jsonl_artifact(judge.training_collect.info.run_id, RESPONSES) if r["split"] == "train"]
        precision, precision_note = judge_precision(cfg.dtype, judge.precision)
        if precision_note:
            logger.warning("%s: %s", judge.title, precision_note)
        mlflow.set_tag(TAG_PRECISION, precision)
        model, tokenizer = load_model(judge.base_model, dtype=precision)
        with downloaded(judge.run_id, ADAPTER_DIR) as adapter_dir:
            model = load_adapter(model, adapter_dir)
        result = evaluate_judgment(model, tokenizer, rows, judge.scheme, cfg.inference_batch_size,
                                   with_adapter=True, fit_rows=trained_on, readout=read_readout(judge.run_id),
                                   probe_c=cfg.probe_c)
        seen = {" ".join(r["question"].lower().split()) for r in trained_on}
        overlap = sum(" ".join(r["question"].lower().split()) in seen for r in rows) / len(rows)
        result.metrics[f"{split}/overlap_with_judge_training"] = overlap
        headline, summary = version_headline(result.metrics, split)
        linked = {f"{split}/judge/{k}": v for k, v in headline.items()}
        if judge.model_id and len(rows) >= MIN_LINKED_QUESTIONS and linked:
            questions = pd.DataFrame({"question_id": [r["question_id"] for r in rows], "question": [r["question"] for r in rows]})
            dataset = mlflow.data.from_pandas(questions, name=label)
            mlflow.log_metrics(linked, model_id=judge.model_id, dataset=dataset)
            log_evaluation(result, exclude=frozenset(linked))
        else:
            log_evaluation(result)
        mlflow.set_tags({TAG_MODEL: judge.name, TAG_VERSION: judge.version, TAG_QUESTIONS: label,
                         "know_thyself.model_uri": judge.uri})
        mlflow.set_tag(TAG_NOTE, f"Scored {judge.title} on {len(rows)} questions ({label}): {summary}.")
    return run.run_id


def _link_version(judge: RegisteredJudge, run_id: str, split: str, label: str, collect_cfg: CollectConfig) -> str:
    """Tag the model version with the evaluation's headline; return the line that describes it."""
    values = mlflow.get_run(run_id).data.metrics
    questions = collect_cfg.num_samples + collect_cfg.test_samples
    summary = version_headline(values, split)[1]
    overlap = values.get(f"{split}/overlap_with_judge_training", 0.0)
    line = (f"{judge.title} on {questions} questions ({label}): {summary}; ground truth from {code(collect_cfg.model)} "
            f"with {collect_cfg.num_trials} trials per question; {overlap:.0%} of the questions were among "
            f"its training questions (run {run_id})")
    if questions < MIN_LINKED_QUESTIONS:
        warning = (f"{questions} questions are too few for meaningful intervals, so {judge.title} was not tagged "
                   f"with this evaluation; score at least {MIN_LINKED_QUESTIONS} questions to link it to the version")
        logger.warning(warning)
        return f"{line}; {warning}"
    tag_version(judge, f"downstream.{label}", f"{summary} on {questions} questions (run {run_id})", run_id)
    return line


def one_label(values: dict[str, float], split: str) -> str | None:
    """The label every scored question has, when they all have one (read from ``<split>/actual/<label>``); else None."""
    prefix = f"{split}/actual/"
    present = [key[len(prefix):] for key, share in values.items() if key.startswith(prefix) and share > 0]
    return present[0] if len(present) == 1 else None


def version_headline(values: dict[str, float], split: str) -> tuple[dict[str, float], str]:
    """The headline numbers an evaluation may put on the model version, and the line that describes them.

    When every scored question has one label, the metrics scored against the labels measure
    nothing: balanced accuracy is then the share of questions judged that label (a judge that
    always says it scores 1.00, and its bootstrap interval is [1.00, 1.00] however few the
    questions) and QWK is 0 or undefined. They are left out, and the line says they are undefined
    and why (``balanced accuracy undefined, QWK undefined, AUROC ... (every question has one label,
    'cannot')``); AUROC, scored against the greedy answers' correctness, stays where it is defined.
    The evaluation run itself keeps every number it measured.

    Args:
        values: An evaluation's metrics (``<split>/judge/<metric>``, ``<split>/actual/<label>``).
        split: The scored split.
    """
    numbers = downstream.headline(values, split)
    label = one_label(values, split)
    if label is None:
        return numbers, downstream.describe(numbers)
    kept = {key: value for key, value in numbers.items() if not key.startswith(LABEL_METRICS)}
    return kept, f"{downstream.describe(kept)} ({ONE_LABEL}, {label!r})"


def _compare(judges: list[RegisteredJudge], run_ids: list[str], split: str) -> pd.DataFrame:
    """The paired comparison of two judges' evaluation runs, logged into the active (parent) run."""
    labels = labels_for(judges[0].scheme)
    predictions, rates = [], []
    for run_id in run_ids:
        predictions.append([p for p in read_jsonl_artifact(run_id, PREDICTIONS) if p["split"] == split])
        values = mlflow.get_run(run_id).data.metrics
        rates.append({label: values[f"train/correct_rate/{label}"] for label in labels})
    table, values = downstream.paired_comparison(
        predictions[0], predictions[1], labels, rates[0], rates[1], (judges[0].title, judges[1].title)
    )
    mlflow.log_table(table, "paired_comparison.json")
    mlflow.log_metrics({f"{split}/{key}": value for key, value in values.items()})
    mlflow.set_tags({"know_thyself.first": judges[0].title, "know_thyself.second": judges[1].title})
    return table
