"""Evaluating a judge: how well a judge predicts its model's ability, beside cheap baselines.

For each split of a collect run, the model (with the judgment adapter, if given) predicts each
question's ability before answering (:mod:`know_thyself.judge`). Methods compared in one run:

* ``judge``: the model being evaluated (prompt-only when no adapter is given);
* ``prompt_only``: the same model with its adapter switched off (only when an adapter is given);
* ``majority``: always the train split's most common label; ``prior``: the train split's label
  frequencies as probabilities for every question;
* ``probe``: logistic regression on the hidden state at the end of the judgment prompt, fitted
  on the train split (its train numbers are in-sample);
* ``answer_logprob``: mean token log-probability of the model's greedy answer, an
  *after-answering* reference that needs the answer first (confidence metrics only).

Metrics, per split and method, named ``<split>/<method>/<metric>``:

* against the measured ability: exact_match, balanced_accuracy, macro_f1, qwk (quadratic-weighted
  kappa, labels ordered can > uncertain > cannot);
* against whether the model's greedy answer (from the collect run) is correct, using the confidence score
  P(can) + 0.5 P(uncertain) (the expected chance of answering correctly implied by the label
  probabilities; P(can) in the binary scheme): auroc, brier, ece, aurc (area under the
  risk-coverage curve), prr (prediction-rejection ratio);
* selective answering, answering exactly when the method says ``can``: coverage,
  answered_accuracy, handled_well (answered and right, or abstained and would be wrong).

A metric that is undefined on the data (e.g. AUROC when every answer is right) is left out of
the metrics and written as empty in the table; the run's ``undefined_metrics`` tag lists them.
Figures: confusion matrix, distribution, reliability diagram and risk-coverage curves per split.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from know_thyself import collect, metrics, plots
from know_thyself.config import EvaluateConfig
from know_thyself.judge import judge
from know_thyself.models import load_model
from know_thyself.scores import LinearProbe, prompt_features
from know_thyself.training import load_adapter

TRAINING_STEPS = ("train_judgment",)
AFTER_ANSWERING = "answer_logprob"


@dataclass
class MethodOutput:
    """One method's output on one split: labels (None for score-only methods) and a confidence."""

    predicted: list[str] | None
    confidence: np.ndarray


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
    result.update(metrics.probabilistic_metrics(output.confidence, correct))
    result["aurc"] = metrics.aurc(output.confidence, correct)
    result["prr"] = metrics.prediction_rejection_ratio(output.confidence, correct)
    return result


def _one_hot(predicted: list[str], labels: tuple[str, ...]) -> np.ndarray:
    return np.array([[1.0 if p == label else 0.0 for label in labels] for p in predicted])


def evaluate_judgment(cfg: EvaluateConfig) -> dict[str, float]:
    """Judge every question of the collect run on both splits, with the baselines; log it all."""
    rows = collect.read_responses(cfg.collect_run_id)
    scheme = mlflow.get_run(cfg.collect_run_id).data.params.get("label_scheme", "three")
    model, tokenizer = load_model(cfg.model, dtype=cfg.dtype)
    if cfg.adapter_run_id:
        model = load_adapter(model, cfg.adapter_run_id)
    by_split = {split: [r for r in rows if r["split"] == split] for split in collect.SPLITS}
    batch = cfg.inference_batch_size
    judged, base_judged, features = {}, {}, {}
    for split, split_rows in by_split.items():
        questions = [r["question"] for r in split_rows]
        judged[split] = judge(model, tokenizer, questions, scheme, batch)
        with adapter_off(model) as base:
            if cfg.adapter_run_id:
                base_judged[split] = judge(base, tokenizer, questions, scheme, batch)
            features[split] = prompt_features(base, tokenizer, questions, scheme, batch)
    labels = judged["train"].labels
    train_actual = [r["ability"] for r in by_split["train"]]
    counts = Counter(train_actual)
    majority = max(labels, key=lambda label: (counts.get(label, 0), -labels.index(label)))
    prior = np.array([counts.get(label, 0) / len(train_actual) for label in labels])
    probe = LinearProbe(labels).fit(features["train"], train_actual)

    results: dict[str, float] = {}
    table_rows, undefined, predictions = [], [], []
    for split, split_rows in by_split.items():
        n = len(split_rows)
        actual = [r["ability"] for r in split_rows]
        # The collect run's greedy answers are the answers the judge predicts about.
        correct = [bool(r["greedy_correct"]) for r in split_rows]
        logprob = np.array([r["greedy_mean_logprob"] for r in split_rows], dtype=float)
        probe_probs = probe.predict_proba(features[split])
        methods = {
            "judge": MethodOutput(judged[split].predicted, metrics.confidence_score(judged[split].probabilities, labels)),
            "majority": MethodOutput([majority] * n, metrics.confidence_score(_one_hot([majority] * n, labels), labels)),
            "prior": MethodOutput([majority] * n, metrics.confidence_score(np.tile(prior, (n, 1)), labels)),
            "probe": MethodOutput([labels[i] for i in probe_probs.argmax(axis=1)], metrics.confidence_score(probe_probs, labels)),
            AFTER_ANSWERING: MethodOutput(None, np.exp(np.clip(logprob, -50, 0))),
        }
        if cfg.adapter_run_id:
            methods["prompt_only"] = MethodOutput(
                base_judged[split].predicted, metrics.confidence_score(base_judged[split].probabilities, labels)
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
        _log_figures(split, actual, judged[split].predicted, labels, methods, correct)
        for i, row in enumerate(split_rows):
            predictions.append(
                {
                    "split": split,
                    "question_id": row["question_id"],
                    "actual": row["ability"],
                    "predicted": judged[split].predicted[i],
                    "probabilities": dict(zip(labels, map(float, judged[split].probabilities[i]))),
                    "off_label": judged[split].off_label[i],
                    "greedy_answer": row["greedy_response"],
                    "greedy_correct": row["greedy_correct"],
                }
            )
    mlflow.log_metrics(results)
    mlflow.log_table(pd.DataFrame(table_rows), "comparison.json")
    mlflow.set_tag("undefined_metrics", ", ".join(undefined) if undefined else "none")
    mlflow.log_text("".join(json.dumps(p) + "\n" for p in predictions), "predictions.jsonl")
    return results


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


def _log_figures(split, actual, predicted, labels, methods, correct) -> None:
    matrix = metrics.confusion(actual, predicted, labels)
    exact = metrics.classification_metrics(actual, predicted, labels)["exact_match"]
    mlflow.log_figure(plots.confusion_matrix_figure(matrix, labels, f"{split}: exact match {exact:.3f}"), f"confusion_{split}.png")
    table = pd.DataFrame(matrix, columns=[f"predicted_{label}" for label in labels])
    table.insert(0, "actual", list(labels))
    mlflow.log_table(table, f"confusion_{split}.json")
    mlflow.log_figure(
        plots.distribution_figure(metrics.distribution(actual, labels), metrics.distribution(predicted, labels), labels,
                                  f"{split}: ability, actual vs predicted"),
        f"distribution_{split}.png",
    )
    bins = metrics.reliability_bins(methods["judge"].confidence, correct)
    mlflow.log_figure(plots.reliability_figure(bins, f"{split}: judge reliability"), f"reliability_{split}.png")
    curves = {name: metrics.risk_coverage_curve(out.confidence, correct) for name, out in methods.items()}
    mlflow.log_figure(plots.risk_coverage_figure(curves, f"{split}: risk vs coverage"), f"risk_coverage_{split}.png")
