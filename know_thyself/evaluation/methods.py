"""The judge and the baselines it is compared with, scored on one split: the methods, their metrics, their intervals.

Methods (see :mod:`know_thyself.evaluation.judgment` for what each one means): ``judge``,
``prompt_only``, ``majority``, ``prior``, ``probe``, ``oracle``, ``label_noise_ceiling`` and the
after-answering ``answer_logprob``. :func:`fit_references` fits what the baselines learn on
labelled (train) questions; :func:`score_split` scores every method on one split, with 95%
bootstrap intervals for the headline metrics and the judge's paired differences.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from know_thyself.config.judgment import EvaluateConfig
from know_thyself.data.labels import labels_for
from know_thyself.evaluation import metrics
from know_thyself.evaluation.probe import LinearProbe

AFTER_ANSWERING = "answer_logprob"
FIRST_TOKEN = "first_token"
# Methods whose headline metrics get bootstrap intervals; the judge is compared with the others.
HEADLINE_METHODS = ("judge", "probe", FIRST_TOKEN, "prompt_only", "majority")
# The metrics a judge is reported by first (each with its 95% bootstrap interval).
HEADLINE = ("balanced_accuracy", "qwk", "auroc")
CEILING = "label_noise_ceiling"


@dataclass
class MethodOutput:
    """One method's output on one split: labels (None for score-only methods) and a confidence."""

    predicted: list[str] | None
    confidence: np.ndarray


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


@dataclass
class References:
    """What the baselines learn from the labelled questions they are fitted on (the train split).

    Attributes:
        labels: The label scheme, most able first.
        majority: The most common label (ties: the earlier label).
        prior: The label frequencies, in ``labels`` order.
        rates: Share of correct greedy answers per label (the confidence score's ``rate_k``).
        probe: The linear probe fitted on the questions' prompt features.
        first_token: Labels from the first answer token's probability: a logistic regression on
            its logarithm, fitted like the probe (``None`` when no probabilities were given).
    """

    labels: tuple[str, ...]
    majority: str
    prior: np.ndarray
    rates: dict[str, float]
    probe: LinearProbe
    first_token: LinearProbe | None = None


def after_answering_confidence(mean_logprob: Any) -> np.ndarray:
    """The after-answering confidence: the greedy answer's geometric-mean token probability, from its mean log-probability."""
    return np.exp(np.clip(np.asarray(mean_logprob, dtype=float), -50, 0))


def _first_token_features(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=float), 1e-12, 1.0))[:, None]


def fit_references(
    rows: list[dict], features: np.ndarray, labels: tuple[str, ...], first_token: np.ndarray | None = None,
    probe_c: float = EvaluateConfig.probe_c,
) -> References:
    """Fit the baselines on labelled questions (``responses.jsonl`` rows), their prompt features and,
    when given, their first answer tokens' probabilities.

    ``probe_c`` is the inverse regularisation strength of the probe's and first token's logistic
    regressions (the evaluation's ``probe_c`` option).
    """
    actual = [r["ability"] for r in rows]
    counts = Counter(actual)
    majority = max(labels, key=lambda label: (counts.get(label, 0), -labels.index(label)))
    prior = np.array([counts.get(label, 0) / len(actual) for label in labels])
    probe = LinearProbe(labels, c=probe_c).fit(features, actual)
    rates = metrics.label_correctness_rates(actual, [bool(r["greedy_correct"]) for r in rows], labels)
    first = None if first_token is None else LinearProbe(labels, c=probe_c).fit(
        _first_token_features(first_token), actual)
    return References(labels, majority, prior, rates, probe, first)


def judge_scores(judged: Any, rows: list[dict], rates: dict[str, float]) -> dict[str, float]:
    """A judge's headline numbers on labelled questions, without intervals (cheap enough to score every epoch).

    Balanced accuracy and QWK against the measured labels, AUROC of the confidence score against
    the greedy answers' correctness, and the share of questions given each label
    (``predicted/<label>``); undefined values are left out.

    Args:
        judged: The judge's :class:`know_thyself.inference.judgments.Judgments` on the questions.
        rows: The questions, each with ``label`` (or ``ability``) and ``greedy_correct``.
        rates: The per-label correctness rates behind the confidence score (from the questions the judge trained on).
    """
    labels = judged.labels
    actual = [r.get("label", r.get("ability")) for r in rows]
    values = metrics.classification_metrics(actual, judged.predicted, labels)
    values["auroc"] = metrics.auroc(metrics.confidence_score(judged.probabilities, labels, rates),
                                    [bool(r["greedy_correct"]) for r in rows])
    values.update({f"predicted/{label}": share for label, share in metrics.distribution(judged.predicted, labels).items()})
    kept = (*HEADLINE, "exact_match")
    return {key: float(value) for key, value in values.items()
            if value is not None and (key in kept or key.startswith("predicted/"))}


def example_rates(examples: list[dict], labels: tuple[str, ...]) -> dict[str, float]:
    """The confidence score's per-label correctness rates, from judgment examples (``label``, ``greedy_correct``)."""
    return metrics.label_correctness_rates([e["label"] for e in examples], [bool(e["greedy_correct"]) for e in examples],
                                           labels)


def epoch_scorer(tokenizer: Any, dev: list[dict], fit: list[dict], scheme: str, batch_size: int = 32) -> Any:
    """A function of the model being trained -> its :func:`judge_scores` on the ``dev`` examples.

    The confidence score's rates come from the ``fit`` examples (the ones trained on). For
    :class:`know_thyself.training.best_epoch.BestEpoch`.
    """
    from know_thyself.inference.judgments import judge

    rates = example_rates(fit, labels_for(scheme))
    questions = [e["question"] for e in dev]
    return lambda model: judge_scores(judge(model, tokenizer, questions, scheme, batch_size), dev, rates)


@dataclass
class SplitScores:
    """Everything measured on one split: metrics (intervals included), table rows, the methods' outputs."""

    metrics: dict[str, float]
    undefined: list[str]
    rows: list[dict]
    methods: dict[str, MethodOutput]


def score_split(
    split: str, split_rows: list[dict], judged: Any, references: References, features: np.ndarray,
    base_judged: Any = None, reference_labels: list[str] | None = None, first_token: np.ndarray | None = None,
) -> SplitScores:
    """Score the judge and every baseline on one split's labelled questions.

    Args:
        split: The name the metrics are logged under (``<split>/<method>/<metric>``).
        split_rows: The split's ``responses.jsonl`` rows.
        judged: The judge's :class:`know_thyself.inference.judgments.Judgments` on these questions.
        references: The baselines, fitted on the train split.
        features: The questions' prompt features (for the probe).
        base_judged: The same model's judgments with its adapter off (adds ``prompt_only``).
        reference_labels: The labels of a second collect of the same questions, aligned with
            ``split_rows`` (adds ``label_noise_ceiling``: those labels used as predictions).
        first_token: The probability of each question's greedy first answer token (adds
            ``first_token``: that probability as its confidence, labels from ``references.first_token``).
    """
    labels, rates = references.labels, references.rates
    n = len(split_rows)
    actual = [r["ability"] for r in split_rows]
    # The collect run's greedy answers are the answers the judge predicts about.
    correct = [bool(r["greedy_correct"]) for r in split_rows]
    logprob = np.array([r["greedy_mean_logprob"] for r in split_rows], dtype=float)
    probe_probs = references.probe.predict_proba(features)
    majority = [references.majority] * n
    methods = {
        "judge": MethodOutput(judged.predicted, metrics.confidence_score(judged.probabilities, labels, rates)),
        "majority": MethodOutput(majority, metrics.confidence_score(_one_hot(majority, labels), labels, rates)),
        "prior": MethodOutput(None, metrics.confidence_score(np.tile(references.prior, (n, 1)), labels, rates)),
        "probe": MethodOutput([labels[i] for i in probe_probs.argmax(axis=1)], metrics.confidence_score(probe_probs, labels, rates)),
        "oracle": MethodOutput(list(actual), metrics.confidence_score(_one_hot(actual, labels), labels, rates)),
        AFTER_ANSWERING: MethodOutput(None, after_answering_confidence(logprob)),
    }
    if first_token is not None and references.first_token is not None:
        first_probs = references.first_token.predict_proba(_first_token_features(first_token))
        methods[FIRST_TOKEN] = MethodOutput([labels[i] for i in first_probs.argmax(axis=1)],
                                            np.clip(np.asarray(first_token, dtype=float), 0.0, 1.0))
    if base_judged is not None:
        methods["prompt_only"] = MethodOutput(
            base_judged.predicted, metrics.confidence_score(base_judged.probabilities, labels, rates)
        )
    if reference_labels is not None:
        methods[CEILING] = MethodOutput(
            list(reference_labels), metrics.confidence_score(_one_hot(reference_labels, labels), labels, rates)
        )
    results: dict[str, float] = {}
    undefined: list[str] = []
    scored = {}
    for name, output in methods.items():
        scored[name] = score_method(output, actual, correct, labels)
        for metric, value in scored[name].items():
            key = f"{split}/{name}/{metric}"
            if value is None:
                undefined.append(key)
            else:
                results[key] = float(value)
    results.update(_judge_extras(split, judged, actual, labels))
    intervals = _intervals(split, methods, actual, correct, labels)
    results.update(intervals)
    rows = [{"split": split, "method": name, **values, **_bounds(intervals, split, name)} for name, values in scored.items()]
    for name in HEADLINE_METHODS[1:]:  # the judge's paired differences, as rows of their own
        difference = f"judge_minus_{name}"
        if any(key.startswith(f"{split}/{difference}/") for key in intervals):
            estimates = {m: intervals.get(f"{split}/{difference}/{m}") for m in HEADLINE}
            rows.append({"split": split, "method": difference, **estimates, **_bounds(intervals, split, difference)})
    return SplitScores(results, undefined, rows, methods)


def _bounds(intervals: dict[str, float], split: str, method: str) -> dict[str, float | None]:
    """The ``<metric>_low`` / ``<metric>_high`` columns of one method's table row (``None`` where absent)."""
    return {
        f"{metric}_{bound}": intervals.get(f"{split}/{method}/{metric}_{bound}")
        for metric in (*HEADLINE, "exact_match")
        for bound in ("low", "high")
    }


def _intervals(
    split: str, methods: dict[str, MethodOutput], actual: list[str], correct: list[bool], labels: tuple[str, ...]
) -> dict[str, float]:
    """95% bootstrap intervals of the headline metrics, and of the judge's difference to each baseline.

    Balanced accuracy and QWK are paired with the measured labels, AUROC with the greedy answers'
    correctness; all methods of a split share the same resampled question sets (paired). The
    label-noise ceiling also gets one for exact match. Undefined values (e.g. AUROC on one class)
    are left out.
    """
    from threadpoolctl import threadpool_limits

    by_name = {m.name: m for m in metrics.classification_registry(labels)}
    auroc = next(m for m in metrics.CONFIDENCE_METRICS if m.name == "auroc")
    wanted = [(by_name["balanced_accuracy"], "labels"), (by_name["qwk"], "labels"), (auroc, "confidence")]

    def inputs(output: MethodOutput, kind: str) -> tuple:
        return (output.predicted, actual) if kind == "labels" else (output.confidence, correct)

    out: dict[str, float] = {}
    with threadpool_limits(1):  # tiny matrix products: extra BLAS threads only fight for the cores
        for name in (*HEADLINE_METHODS, CEILING):
            if name not in methods:
                continue
            extra = [(by_name["exact_match"], "labels")] if name == CEILING else []
            for metric, kind in wanted + extra:
                predictions, targets = inputs(methods[name], kind)
                interval = metrics.bootstrap_interval(metric, predictions, targets)
                if interval.low is not None:
                    out[f"{split}/{name}/{metric.name}_low"] = float(interval.low)
                    out[f"{split}/{name}/{metric.name}_high"] = float(interval.high)
                if name in ("judge", CEILING):
                    continue
                judge_predictions, _ = inputs(methods["judge"], kind)
                difference = metrics.bootstrap_interval(metric, judge_predictions, targets, baseline=predictions)
                if difference.estimate is not None:
                    key = f"{split}/judge_minus_{name}/{metric.name}"
                    out[key] = float(difference.estimate)
                    out[f"{key}_low"] = float(difference.low)
                    out[f"{key}_high"] = float(difference.high)
    return out


def _judge_extras(split: str, judged: Any, actual: list[str], labels: tuple[str, ...]) -> dict[str, float]:
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
