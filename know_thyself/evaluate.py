"""Evaluating a judge: how well a judge predicts its model's ability, beside cheap baselines.

For each split of a collect run (or the one split an evaluation-only collect run holds), the model (with the judgment adapter, if given) predicts each
question's ability before answering (:mod:`know_thyself.judge`). Methods compared in one run:

* ``judge``: the model being evaluated (prompt-only when no adapter is given);
* ``prompt_only``: the same model with its adapter switched off (only when an adapter is given);
* ``majority``: always the train split's most common label;
* ``prior``: the train split's label frequencies as probabilities for every question. Its most
  probable label is the majority label, so its label metrics would repeat ``majority``'s
  exactly: it is scored as a confidence method only (no label metrics, no selective answering);
* ``probe``: logistic regression on the hidden state at the end of the judgment prompt, fitted
  on the train split (its train numbers are in-sample);
* ``oracle``: the measured labels themselves as predictions, the ceiling of the label metrics;
* ``answer_logprob``: mean token log-probability of the model's greedy answer, an
  *after-answering* reference that needs the answer first (confidence metrics only).

Metrics, per split and method, named ``<split>/<method>/<metric>``:

* against the measured ability: exact_match, balanced_accuracy, macro_f1, qwk (quadratic-weighted
  kappa, labels ordered can > uncertain > cannot);
* against whether the model's greedy answer (from the collect run) is correct, using the confidence score
  sum_k P(k) * rate_k, where rate_k is the share of correct greedy answers among the train
  questions labelled k (logged as ``train/correct_rate/<label>``; no value is assumed for
  ``uncertain``): auroc, brier, ece, aurc (area under the risk-coverage curve), prr
  (prediction-rejection ratio);
* selective answering, answering exactly when the method says ``can``: coverage,
  answered_accuracy, handled_well (answered and right, or abstained and would be wrong).

A metric that is undefined on the data (e.g. AUROC when every answer is right) is left out of
the metrics and written as empty in the table; the run's ``undefined_metrics`` tag lists them.
For the judge, the probe, prompt_only and majority, balanced_accuracy, qwk and auroc also get a
95% paired percentile bootstrap interval over questions (``..._low`` / ``..._high``), and
``<split>/judge_minus_<baseline>/<metric>`` (with its interval) is the paired difference.

Figures: confusion matrix, distribution, reliability diagram and risk-coverage curves per split.
:func:`evaluate_judgment` returns all of it as an :class:`Evaluation`; the evaluate_judgment step
(:mod:`know_thyself.steps.evaluate_judgment`) logs it.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from know_thyself import metrics, plots
from know_thyself.data import SPLITS
from know_thyself.judge import judge
from know_thyself.scores import LinearProbe, prompt_features

TRAINING_STEPS = ("train_judgment",)
AFTER_ANSWERING = "answer_logprob"


@dataclass
class MethodOutput:
    """One method's output on one split: labels (None for score-only methods) and a confidence."""

    predicted: list[str] | None
    confidence: np.ndarray


@dataclass
class Evaluation:
    """Everything one evaluation measured, ready to log.

    Attributes:
        metrics: ``<split>/<method>/<metric>`` -> value, defined metrics only.
        undefined: Names of the metrics undefined on this data (left out of ``metrics``).
        table: One row per (split, method) with every metric (``None`` where undefined).
        predictions: One record per question: actual and predicted ability, probabilities, greedy answer.
        tables: Other tables by artifact file name (the confusion matrices).
        figures: Figures by artifact file name.
    """

    metrics: dict[str, float]
    undefined: list[str]
    table: pd.DataFrame
    predictions: list[dict]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def adapter_off(model: Any) -> Iterator[Any]:
    """The bare base model inside the block (a no-op for a model without adapter)."""
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield model
    else:
        yield model


def score_method(output: MethodOutput, actual: list[str], correct: list[bool], labels: tuple[str, ...]) -> dict[str, float | None]:
    """Every metric of one method on one split (``None`` where undefined)."""
    result: dict[str, float | None] = {}
    if output.predicted is not None:
        result.update(metrics.classification_metrics(actual, output.predicted, labels))
        result.update(metrics.selective_metrics([p == labels[0] for p in output.predicted], correct))
    result.update(metrics.confidence_metrics(output.confidence, correct))
    return result


def _one_hot(predicted: list[str], labels: tuple[str, ...]) -> np.ndarray:
    return np.array([[1.0 if p == label else 0.0 for label in labels] for p in predicted])


def evaluate_judgment(
    model: Any, tokenizer: Any, rows: list[dict], scheme: str, batch_size: int = 32, with_adapter: bool = False,
    reference: list[dict] | None = None,
) -> Evaluation:
    """Judge every question of a collect run on each of its splits, beside the baselines.

    What the baselines and the confidence score learn from labelled questions (the majority
    label, the prior, the per-label correctness rates, the probe's fit) comes from the reference
    questions: the train split of ``rows`` by default, or ``reference`` when given (a registered
    judge scored on a new question set takes them from the collect run it was trained on).

    Args:
        model: The model to evaluate, in eval mode (a PEFT model when ``with_adapter``).
        tokenizer: Its tokenizer.
        rows: The collect run's ``responses.jsonl`` rows; every split they hold is scored.
        scheme: The collect run's label scheme.
        batch_size: Questions per forward pass.
        with_adapter: Whether ``model`` carries a judgment adapter (adds the ``prompt_only`` method,
            the same model with the adapter switched off).
        reference: Labelled train rows to fit the baselines on, when ``rows`` should not supply them.
    """
    by_split = {split: [r for r in rows if r["split"] == split] for split in SPLITS}
    by_split = {split: split_rows for split, split_rows in by_split.items() if split_rows}
    reference_rows = reference if reference is not None else by_split.get("train", [])
    if not reference_rows:
        raise ValueError("no train questions to fit the baselines on: the rows hold no train split; pass reference rows")
    if not by_split:
        raise ValueError("no questions to evaluate: the rows are empty")
    judged, base_judged, features = {}, {}, {}
    for split, split_rows in by_split.items():
        questions = [r["question"] for r in split_rows]
        judged[split] = judge(model, tokenizer, questions, scheme, batch_size)
        with adapter_off(model) as base:
            if with_adapter:
                base_judged[split] = judge(base, tokenizer, questions, scheme, batch_size)
            features[split] = prompt_features(base, tokenizer, questions, scheme, batch_size)
    if reference is None:
        reference_features = features["train"]
    else:
        with adapter_off(model) as base:
            reference_features = prompt_features(base, tokenizer, [r["question"] for r in reference_rows], scheme, batch_size)
    labels = next(iter(judged.values())).labels
    train_actual = [r["ability"] for r in reference_rows]
    counts = Counter(train_actual)
    majority = max(labels, key=lambda label: (counts.get(label, 0), -labels.index(label)))
    prior = np.array([counts.get(label, 0) / len(train_actual) for label in labels])
    probe = LinearProbe(labels).fit(reference_features, train_actual)
    rates = metrics.label_correctness_rates(train_actual, [bool(r["greedy_correct"]) for r in reference_rows], labels)

    results: dict[str, float] = {f"train/correct_rate/{label}": rate for label, rate in rates.items()}
    table_rows, undefined, predictions = [], [], []
    tables: dict[str, pd.DataFrame] = {}
    figures: dict[str, Any] = {}
    for split, split_rows in by_split.items():
        n = len(split_rows)
        actual = [r["ability"] for r in split_rows]
        # The collect run's greedy answers are the answers the judge predicts about.
        correct = [bool(r["greedy_correct"]) for r in split_rows]
        logprob = np.array([r["greedy_mean_logprob"] for r in split_rows], dtype=float)
        probe_probs = probe.predict_proba(features[split])
        methods = {
            "judge": MethodOutput(judged[split].predicted, metrics.confidence_score(judged[split].probabilities, labels, rates)),
            "majority": MethodOutput([majority] * n, metrics.confidence_score(_one_hot([majority] * n, labels), labels, rates)),
            "prior": MethodOutput(None, metrics.confidence_score(np.tile(prior, (n, 1)), labels, rates)),
            "probe": MethodOutput(
                [labels[i] for i in probe_probs.argmax(axis=1)], metrics.confidence_score(probe_probs, labels, rates)
            ),
            "oracle": MethodOutput(list(actual), metrics.confidence_score(_one_hot(actual, labels), labels, rates)),
            AFTER_ANSWERING: MethodOutput(None, np.exp(np.clip(logprob, -50, 0))),
        }
        if with_adapter:
            methods["prompt_only"] = MethodOutput(
                base_judged[split].predicted, metrics.confidence_score(base_judged[split].probabilities, labels, rates)
            )
        for name, output in methods.items():
            scores = score_method(output, actual, correct, labels)
            table_rows.append({"split": split, "method": name, **scores})
            for metric, value in scores.items():
                key = f"{split}/{name}/{metric}"
                if value is None:
                    undefined.append(key)
                else:
                    results[key] = float(value)
        results.update(_judge_extras(split, judged[split], actual, labels, correct))
        results.update(_intervals(split, methods, actual, correct, labels))
        split_tables, split_figures = _figures(split, actual, judged[split].predicted, labels, methods, correct)
        tables.update(split_tables)
        figures.update(split_figures)
        for i, row in enumerate(split_rows):
            predictions.append(
                {
                    "split": split,
                    "question_id": row["question_id"],
                    "question": row["question"],
                    "actual": row["ability"],
                    "predicted": judged[split].predicted[i],
                    "probabilities": dict(zip(labels, map(float, judged[split].probabilities[i]))),
                    "off_label": judged[split].off_label[i],
                    "greedy_answer": row["greedy_response"],
                    "greedy_correct": row["greedy_correct"],
                }
            )
    return Evaluation(results, undefined, pd.DataFrame(table_rows), predictions, tables, figures)


HEADLINE_METHODS = ("judge", "probe", "prompt_only", "majority")


def _intervals(
    split: str, methods: dict[str, MethodOutput], actual: list[str], correct: list[bool], labels: tuple[str, ...]
) -> dict[str, float]:
    """95% bootstrap intervals of the headline metrics, and of the judge's difference to each baseline.

    Balanced accuracy and QWK are paired with the measured labels, AUROC with the greedy answers'
    correctness; all methods of a split share the same resampled question sets (paired). Undefined
    values (e.g. AUROC on one class) are left out.
    """
    from threadpoolctl import threadpool_limits

    by_name = {m.name: m for m in metrics.classification_registry(labels)}
    auroc = next(m for m in metrics.CONFIDENCE_METRICS if m.name == "auroc")
    wanted = [(by_name["balanced_accuracy"], "labels"), (by_name["qwk"], "labels"), (auroc, "confidence")]

    def inputs(output: MethodOutput, kind: str) -> tuple:
        return (output.predicted, actual) if kind == "labels" else (output.confidence, correct)

    out: dict[str, float] = {}
    with threadpool_limits(1):  # tiny matrix products: extra BLAS threads only fight for the cores
        for name in HEADLINE_METHODS:
            if name not in methods:
                continue
            for metric, kind in wanted:
                predictions, targets = inputs(methods[name], kind)
                interval = metrics.bootstrap_interval(metric, predictions, targets)
                if interval.low is not None:
                    out[f"{split}/{name}/{metric.name}_low"] = float(interval.low)
                    out[f"{split}/{name}/{metric.name}_high"] = float(interval.high)
                if name == "judge":
                    continue
                judge_predictions, _ = inputs(methods["judge"], kind)
                difference = metrics.bootstrap_interval(metric, judge_predictions, targets, baseline=predictions)
                if difference.estimate is not None:
                    key = f"{split}/judge_minus_{name}/{metric.name}"
                    out[key] = float(difference.estimate)
                    out[f"{key}_low"] = float(difference.low)
                    out[f"{key}_high"] = float(difference.high)
    return out


def _judge_extras(split: str, judged: Any, actual: list[str], labels: tuple[str, ...], correct: list[bool]) -> dict[str, float]:
    """Distributions, off-label rate and greedy QA accuracy of one split."""
    extras = {
        f"{split}/judge/off_label_rate": sum(judged.off_label) / len(actual),
        f"{split}/judge/label_mass": float(judged.label_mass.mean()),
    }
    for label, share in metrics.distribution(actual, labels).items():
        extras[f"{split}/actual/{label}"] = share
    for label, share in metrics.distribution(judged.predicted, labels).items():
        extras[f"{split}/judge/predicted/{label}"] = share
    return extras


def _figures(split, actual, predicted, labels, methods, correct) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The confusion table and the figures of one split, by artifact file name."""
    matrix = metrics.confusion(actual, predicted, labels)
    exact = metrics.classification_metrics(actual, predicted, labels)["exact_match"]
    table = pd.DataFrame(matrix, columns=[f"predicted_{label}" for label in labels])
    table.insert(0, "actual", list(labels))
    bins = metrics.reliability_bins(methods["judge"].confidence, correct)
    curves = {name: metrics.risk_coverage_curve(out.confidence, correct) for name, out in methods.items()}
    figures = {
        f"confusion_{split}.png": plots.confusion_matrix_figure(matrix, labels, f"{split}: exact match {exact:.3f}"),
        f"distribution_{split}.png": plots.distribution_figure(
            metrics.distribution(actual, labels), metrics.distribution(predicted, labels), labels,
            f"{split}: ability, actual vs predicted",
        ),
        f"reliability_{split}.png": plots.reliability_figure(bins, f"{split}: judge reliability"),
        f"risk_coverage_{split}.png": plots.risk_coverage_figure(curves, f"{split}: risk vs coverage"),
    }
    return {f"confusion_{split}.json": table}, figures
