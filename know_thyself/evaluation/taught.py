"""What Phase 2 taught, seen before answering: the held-out test of judgment v2, and where the merged
model shows what it was taught.

Judgment v2 can call a taught question ``can`` because something in the model tells it so, or
because it memorised that question's label. A seeded share of the taught train questions (and
the same share of the untaught ones) is kept out of its training data
(:func:`know_thyself.training.judgment_examples.hold_out`); on those questions its P(can) either
tells taught from untaught or it does not (AUROC 0.5 is chance). Judgment v1, trained before
Phase 2 and applied unchanged to the merged model, is the reference.

"Where the model knows": how well two scores of the merged model tell the taught train questions
from the untaught ones, and ``can`` questions from the rest: the first answer token's
probability (before answering) and the greedy answer's mean log-probability (after answering).
"""

from __future__ import annotations

import numpy as np

from know_thyself.evaluation import metrics
from know_thyself.evaluation.methods import AFTER_ANSWERING, FIRST_TOKEN, after_answering_confidence

_AUROC = next(m for m in metrics.CONFIDENCE_METRICS if m.name == "auroc")


def _auroc_with_interval(key: str, scores: list[float], positive: list[bool]) -> dict[str, float]:
    """``key`` (AUROC of ``scores`` for ``positive`` against the rest) and its 95% bootstrap interval."""
    interval = metrics.bootstrap_interval(_AUROC, np.clip(np.asarray(scores, dtype=float), 0.0, 1.0), positive)
    out = {}
    for suffix, value in zip(("", "_low", "_high"), interval.as_tuple()):
        if value is not None:
            out[f"{key}{suffix}"] = float(value)
    return out


def heldout_report(
    heldout: list[dict], predicted: dict[str, str], p_can: dict[str, float], actual: dict[str, str], who: str = "judge",
) -> dict[str, float]:
    """A judge on the held-out questions, taught against untaught.

    Args:
        heldout: The held-out questions, each ``{"question_id", "taught"}``.
        predicted: Question id -> the judge's predicted label.
        p_can: Question id -> the judge's probability of ``can``.
        actual: Question id -> the measured label (after Phase 2).
        who: The name the judge's metrics go under (``heldout/<who>/...``).

    Returns:
        ``heldout/<who>/predicted_can/<group>`` (share labelled ``can``), ``heldout/<who>/mean_p_can/<group>``
        and ``heldout/<who>/auroc`` (P(can), taught as positive) with its 95% interval; and the
        groups' sizes (``heldout/<group>/questions``) and measured ``can`` shares (``heldout/actual_can/<group>``),
        for the groups ``taught`` and ``untaught``.
    """
    out: dict[str, float] = {}
    groups = {"taught": [h for h in heldout if h["taught"]], "untaught": [h for h in heldout if not h["taught"]]}
    for group, rows in groups.items():
        out[f"heldout/{group}/questions"] = float(len(rows))
        if rows:
            ids = [r["question_id"] for r in rows]
            out[f"heldout/{who}/predicted_can/{group}"] = float(np.mean([predicted[i] == "can" for i in ids]))
            out[f"heldout/{who}/mean_p_can/{group}"] = float(np.mean([p_can[i] for i in ids]))
            out[f"heldout/actual_can/{group}"] = float(np.mean([actual[i] == "can" for i in ids]))
    if groups["taught"] and groups["untaught"]:
        ordered = groups["taught"] + groups["untaught"]
        out.update(_auroc_with_interval(f"heldout/{who}/auroc", [p_can[r["question_id"]] for r in ordered],
                                        [r["taught"] for r in ordered]))
    return out


# The metrics on which the judge is compared with judgment v1 applied unchanged to the same model.
UNCHANGED_COMPARED = ("auroc", "balanced_accuracy", "qwk")


def _put(out: dict[str, float], key: str, interval: metrics.Interval) -> None:
    for suffix, value in zip(("", "_low", "_high"), interval.as_tuple()):
        if value is not None:
            out[f"{key}{suffix}"] = float(value)


def unchanged_comparison(
    split: str, rows: list[dict], judged: object, unchanged: object, rates: dict[str, float],
) -> dict[str, float]:
    """The judge beside judgment v1 applied unchanged to the same model, on the same questions, with paired intervals.

    Both are scored against the labels measured on this model (Phase 3's): balanced accuracy and
    QWK of the predicted labels, AUROC of the confidence score ``sum_k P(k) rate_k`` (the same
    ``rates`` for both) against the greedy answers' correctness.

    Args:
        split: The split's name (the metrics' first part).
        rows: The split's questions (``ability``, ``greedy_correct``).
        judged: The judge's :class:`~know_thyself.inference.judgments.Judgments` on them.
        unchanged: Judgment v1's judgments on the same questions, in the same order.
        rates: The per-label correctness rates of the confidence score.

    Returns:
        ``<split>/v1_unchanged/<metric>`` and ``<split>/judge_minus_v1_unchanged/<metric>``, each
        with ``_low``/``_high`` (95% bootstrap; the difference paired by question).
    """
    labels = judged.labels
    actual = [r["ability"] for r in rows]
    correct = [bool(r["greedy_correct"]) for r in rows]
    registry = {m.name: m for m in metrics.classification_registry(labels)}
    registry["auroc"] = _AUROC
    out: dict[str, float] = {}
    for name in UNCHANGED_COMPARED:
        if name == "auroc":
            ours, theirs, target = (metrics.confidence_score(judged.probabilities, labels, rates),
                                    metrics.confidence_score(unchanged.probabilities, labels, rates), correct)
        else:
            ours, theirs, target = judged.predicted, unchanged.predicted, actual
        _put(out, f"{split}/v1_unchanged/{name}", metrics.bootstrap_interval(registry[name], theirs, target))
        _put(out, f"{split}/judge_minus_v1_unchanged/{name}",
             metrics.bootstrap_interval(registry[name], ours, target, baseline=theirs))
    return out


def heldout_difference(heldout: list[dict], p_can: dict[str, float], baseline_p_can: dict[str, float]) -> dict[str, float]:
    """The judge's held-out AUROC (P(can), taught as positive) minus the baseline judge's, paired by question.

    Returns ``heldout/judge_minus_baseline_judge/auroc`` with its 95% interval (empty without both groups).
    """
    if not any(h["taught"] for h in heldout) or all(h["taught"] for h in heldout):
        return {}
    ids = [h["question_id"] for h in heldout]
    positive = [bool(h["taught"]) for h in heldout]
    out: dict[str, float] = {}
    _put(out, "heldout/judge_minus_baseline_judge/auroc", metrics.bootstrap_interval(
        _AUROC, np.clip([p_can[i] for i in ids], 0.0, 1.0), positive,
        baseline=np.clip([baseline_p_can[i] for i in ids], 0.0, 1.0)))
    return out


def where_known(rows: list[dict], first_token: dict[str, float], taught_ids: set[str]) -> dict[str, float]:
    """How well the first-token probability and the answer's log-probability tell taught from untaught and ``can`` from the rest.

    Args:
        rows: ``responses.jsonl`` rows of the model after Phase 2 (both splits).
        first_token: Question id -> the first answer token's probability on that model.
        taught_ids: The question ids Phase 2 taught.

    Returns:
        ``where_known/train/<score>/auroc_taught`` (train questions, taught as positive) and
        ``where_known/<split>/<score>/auroc_can`` (``can`` as positive), each with its interval,
        for the scores ``first_token`` and ``answer_logprob``; undefined ones are left out.
    """
    out: dict[str, float] = {}
    for split in ("train", "validation"):
        part = [r for r in rows if r["split"] == split]
        if not part:
            continue
        scores = {
            FIRST_TOKEN: [first_token[r["question_id"]] for r in part],
            AFTER_ANSWERING: list(after_answering_confidence([r["greedy_mean_logprob"] for r in part])),
        }
        for name, values in scores.items():
            if split == "train" and 0 < sum(r["question_id"] in taught_ids for r in part) < len(part):
                out.update(_auroc_with_interval(f"where_known/train/{name}/auroc_taught", values,
                                                [r["question_id"] in taught_ids for r in part]))
            can = [r["ability"] == "can" for r in part]
            if 0 < sum(can) < len(can):
                out.update(_auroc_with_interval(f"where_known/{split}/{name}/auroc_can", values, can))
    return out
