"""Evaluating a judge: how well a judge predicts its model's ability, beside cheap baselines.

For each split of a collect run, the model (with the judgment adapter, if given) predicts each
question's ability before answering (:mod:`know_thyself.inference.judgments`). Methods compared in one run:

* ``judge``: the model being evaluated (prompt-only when no adapter is given), its label read
  through its stacked readout when it was trained with one;
* ``prompt_only``: the same model with its adapter switched off (only when an adapter is given):
  the numbers an evaluation of the bare model reports as ``judge``, so a chain that evaluates the
  trained judge needs no separate evaluation of the bare model;
* ``majority``: always the train split's most common label;
* ``prior``: the train split's label frequencies as probabilities for every question. Its most
  probable label is the majority label, so its label metrics would repeat ``majority``'s
  exactly: it is scored as a confidence method only (no label metrics, no selective answering);
* ``probe``: logistic regression on the hidden state at the end of the judgment prompt, fitted
  on the train split (its train numbers are in-sample);
* ``oracle``: the measured labels themselves as predictions, the ceiling of the label metrics;
* ``label_noise_ceiling`` (only when a reference collect is given): the labels of a second
  collect of the same questions with another answer-sampling seed, used as predictions of the
  first. Labels measured from a few sampled answers are noisy; no judge can agree with them
  much better than they agree with themselves;
* ``first_token``: the probability of the model's greedy first answer token at the end of the
  answer prompt (one forward, nothing generated): the strongest cheap signal the model gives
  *before* answering. Its confidence is that probability; its labels come from a logistic
  regression on its logarithm fitted on the train split, like the probe's;
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
For the judge, the probe, first_token, prompt_only and majority, balanced_accuracy, qwk and auroc also get a
95% paired percentile bootstrap interval over questions (``..._low`` / ``..._high``), and
``<split>/judge_minus_<baseline>/<metric>`` (with its interval) is the paired difference. The
label-noise ceiling gets intervals for balanced_accuracy, qwk, auroc and exact_match. The
comparison table holds the intervals as ``<metric>_low`` / ``<metric>_high`` columns, and one row
per paired difference (method ``judge_minus_<baseline>``).

Figures: confusion matrix, distribution, reliability diagram and risk-coverage curves per split.
:func:`evaluate_judgment` returns all of it as an :class:`Evaluation`; the evaluate_judgment step
(:mod:`know_thyself.steps.evaluate_judgment`) logs it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from know_thyself.config.judgment import EvaluateConfig
from know_thyself.data.questions import SPLITS
from know_thyself.evaluation import metrics, plots
from know_thyself.evaluation.methods import fit_references, score_split
from know_thyself.inference.judgments import (
    Judgments,
    first_token_probability,
    judgment_forward,
    judgment_ids,
    judgments_from_logits,
)
from know_thyself.inference.readout import Readout


@dataclass
class Forwards:
    """What the model's forwards give on one split's questions.

    Attributes:
        judged: The judge's judgments (the model as it is, adapter on).
        prompt_only: The bare model's judgments (adapter off); None without an adapter.
        features: The bare model's last hidden state at the end of each judgment prompt (the probe's input).
        first_token: The bare model's probability of its greedy first answer token at the end of
            each answer prompt (:func:`know_thyself.inference.judgments.first_token_probability`).
        label_words: The adapter's own judgments (its label words' probabilities) when a stacked
            readout turned them into ``judged``; None otherwise.
    """

    judged: Judgments
    prompt_only: Judgments | None
    features: np.ndarray
    first_token: np.ndarray
    label_words: Judgments | None = None


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
        forwards: What the model's forwards gave on each split (not logged; for callers that
            report more on the same questions).
    """

    metrics: dict[str, float]
    undefined: list[str]
    table: pd.DataFrame
    predictions: list[dict]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    forwards: dict[str, Forwards] = field(default_factory=dict)


@contextlib.contextmanager
def adapter_off(model: Any) -> Iterator[Any]:
    """The bare base model inside the block (a no-op for a model without adapter)."""
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield model
    else:
        yield model


def judge_split(
    model: Any, tokenizer: Any, questions: list[str], scheme: str, batch_size: int, with_adapter: bool,
    readout: Readout | None = None,
) -> Forwards:
    """The judge's judgments, the bare model's, the probe features and the first-token probabilities, in as few forwards as possible.

    The judgment prompts are tokenised once. The base model's forward over them (adapter switched
    off) returns the next-token logits and the last hidden state together: the logits give the
    prompt-only judgments, the hidden state the probe features. One forward of the base model over
    the answer prompts gives the first-token probabilities. With an adapter, one more forward
    gives the judge's logits; without one, the base model *is* the judge and no more forwards run.
    A stacked ``readout`` turns the adapter's label probabilities and the first-token
    probabilities into the judge's judgments (:mod:`know_thyself.inference.readout`).
    """
    ids = judgment_ids(tokenizer, questions, scheme)
    with adapter_off(model) as base:
        logits, hidden = judgment_forward(base, tokenizer, questions, scheme, batch_size, hidden=True, ids=ids)
        first_token = first_token_probability(base, tokenizer, questions, batch_size)
    base_judged = judgments_from_logits(logits, tokenizer, scheme)
    features = hidden.numpy() if len(questions) else np.zeros((0, 0))
    if not with_adapter:
        return Forwards(base_judged, None, features, first_token)
    logits, _ = judgment_forward(model, tokenizer, questions, scheme, batch_size, ids=ids)
    judged = judgments_from_logits(logits, tokenizer, scheme)
    if readout is None:
        return Forwards(judged, base_judged, features, first_token)
    return Forwards(readout.apply(judged, first_token), base_judged, features, first_token, label_words=judged)


def check_same_questions(rows: list[dict], reference_rows: list[dict]) -> dict[str, list[str]]:
    """The reference collect's labels per split, aligned with ``rows``; refuses different question sets.

    Only the splits the reference collected are compared (a reference may hold validation alone).

    Raises:
        ValueError: naming the split and the first question that differs.
    """
    aligned: dict[str, list[str]] = {}
    for split in SPLITS:
        reference = {r["question_id"]: r for r in reference_rows if r["split"] == split}
        if not reference:
            continue
        own = [r for r in rows if r["split"] == split]
        ids, reference_ids = [r["question_id"] for r in own], set(reference)
        missing = [i for i in ids if i not in reference_ids] or sorted(reference_ids - set(ids))
        if missing or len(reference) != len(own):
            raise ValueError(
                f"the reference collect run holds different {split} questions (e.g. {missing[0] if missing else '?'!r}); "
                "collect the reference with the same dataset, num_samples, test_samples and seed, "
                "changing only sample_seed"
            )
        for row in own:
            if reference[row["question_id"]]["question"] != row["question"]:
                raise ValueError(
                    f"the reference collect run's {split} question {row['question_id']!r} has another text; "
                    "collect the reference from the same dataset"
                )
        aligned[split] = [reference[r["question_id"]]["ability"] for r in own]
    if not aligned:
        raise ValueError("the reference collect run holds no questions; pass a finished collect run")
    return aligned


def evaluate_judgment(
    model: Any, tokenizer: Any, rows: list[dict], scheme: str, batch_size: int = 32, with_adapter: bool = False,
    reference_rows: list[dict] | None = None, fit_rows: list[dict] | None = None, readout: Readout | None = None,
    probe_c: float = EvaluateConfig.probe_c,
) -> Evaluation:
    """Judge every question of a collect run on each split it holds, beside the baselines.

    The baselines and the confidence score are fitted (:func:`fit_references`) on the train split
    of ``rows``, or on ``fit_rows`` when given: a registered judge scored on a question set of the
    user's choice takes them from the collect run it was trained on, so none of the scored
    questions is spent on fitting.

    Args:
        model: The model to evaluate, in eval mode (a PEFT model when ``with_adapter``).
        tokenizer: Its tokenizer.
        rows: The collect run's ``responses.jsonl`` rows; every split they hold is scored.
        scheme: The collect run's label scheme.
        batch_size: Questions per forward pass.
        with_adapter: Whether ``model`` carries a judgment adapter (adds the ``prompt_only`` method,
            the same model with the adapter switched off).
        reference_rows: The ``responses.jsonl`` rows of a second collect of the same questions
            with another answer-sampling seed (adds the ``label_noise_ceiling`` row on the splits
            it holds; see :func:`check_same_questions`).
        fit_rows: Labelled train rows to fit the baselines on instead of the train split of ``rows``.
        readout: The judge's stacked readout, when it was trained with one (needs ``with_adapter``).
        probe_c: Inverse regularisation strength of the probe's (and first token's) logistic regressions.

    Each question's prompts are tokenised once and forwarded once per model (:func:`judge_split`):
    the bare model's forwards serve the prompt-only judgments, the probe's features and the
    first-token probabilities, the adapter's forward the judge.
    """
    reference = check_same_questions(rows, reference_rows) if reference_rows is not None else {}
    by_split = {split: [r for r in rows if r["split"] == split] for split in SPLITS}
    by_split = {split: split_rows for split, split_rows in by_split.items() if split_rows}
    if not by_split:
        raise ValueError("no questions to evaluate: the rows are empty")
    if readout is not None and not with_adapter:
        raise ValueError("a stacked readout reads a judgment adapter's label probabilities; pass the adapter too")
    if fit_rows is None and "train" not in by_split:
        raise ValueError("no train questions to fit the baselines on: the rows hold no train split; pass fit_rows")
    forwards = {
        split: judge_split(model, tokenizer, [r["question"] for r in split_rows], scheme, batch_size, with_adapter, readout)
        for split, split_rows in by_split.items()
    }
    labels = next(iter(forwards.values())).judged.labels
    if fit_rows is None:
        fit_rows, fitted = by_split["train"], forwards["train"]
    else:  # the bare model's forwards on the fit rows (their judgments are not needed)
        fitted = judge_split(model, tokenizer, [r["question"] for r in fit_rows], scheme, batch_size, False)
    references = fit_references(fit_rows, fitted.features, labels, fitted.first_token, probe_c=probe_c)

    results: dict[str, float] = {f"train/correct_rate/{label}": rate for label, rate in references.rates.items()}
    table_rows, undefined, predictions = [], [], []
    tables: dict[str, pd.DataFrame] = {}
    figures: dict[str, Any] = {}
    for split, split_rows in by_split.items():
        done = forwards[split]
        scores = score_split(split, split_rows, done.judged, references, done.features, done.prompt_only,
                             reference.get(split), done.first_token)
        results.update(scores.metrics)
        undefined.extend(scores.undefined)
        table_rows.extend(scores.rows)
        actual = [r["ability"] for r in split_rows]
        correct = [bool(r["greedy_correct"]) for r in split_rows]
        split_tables, split_figures = _figures(split, actual, done.judged.predicted, labels, scores.methods, correct)
        tables.update(split_tables)
        figures.update(split_figures)
        for i, row in enumerate(split_rows):
            predictions.append(
                {
                    "split": split,
                    "question_id": row["question_id"],
                    "question": row["question"],
                    "actual": row["ability"],
                    "predicted": done.judged.predicted[i],
                    "probabilities": dict(zip(labels, map(float, done.judged.probabilities[i]))),
                    "off_label": done.judged.off_label[i],
                    "first_token": float(done.first_token[i]),
                    "greedy_answer": row["greedy_response"],
                    "greedy_correct": row["greedy_correct"],
                }
            )
            if done.label_words is not None:  # what the readout read, so that it can be studied offline
                predictions[-1]["label_word_probabilities"] = dict(
                    zip(labels, map(float, done.label_words.probabilities[i]))
                )
    return Evaluation(results, undefined, pd.DataFrame(table_rows), predictions, tables, figures, forwards)


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
