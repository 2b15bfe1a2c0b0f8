"""Phase 3's test of what was taught, against hand-computed values: the held-out draw, the judge on the
held-out questions, where the merged model shows what it was taught, and the summary's verdict."""

import numpy as np
import pandas as pd
import pytest

from know_thyself.evaluation.summary import summary_markdown
from know_thyself.evaluation.taught import heldout_report, where_known
from know_thyself.training.judgment_examples import hold_out


def test_the_held_out_draw_is_seeded_proportional_and_disjoint():
    examples = [{"question_id": f"q{i}", "label": "can"} for i in range(20)]
    taught = {f"q{i}" for i in range(10)}
    kept, held = hold_out(examples, taught, 0.3, seed=5)
    assert sum(h["taught"] for h in held) == 3 and sum(not h["taught"] for h in held) == 3  # 30% of 10 each
    assert {e["question_id"] for e in kept}.isdisjoint(h["question_id"] for h in held)
    assert len(kept) + len(held) == 20
    assert all(h["taught"] == (h["question_id"] in taught) for h in held)
    assert hold_out(examples, taught, 0.3, seed=5) == (kept, held)
    assert hold_out(examples, taught, 0.3, seed=6)[1] != held
    # Every example comes back marked, the kept ones too (balance taught reads the mark).
    assert all(e["taught"] == (e["question_id"] in taught) for e in kept)
    assert hold_out(examples, taught, 0.0, seed=5) == ([{**e, "taught": e["question_id"] in taught} for e in examples], [])
    with pytest.raises(ValueError, match=r"holdout_fraction must be in \[0, 1\)"):
        hold_out(examples, taught, 1.0, seed=5)


def test_the_judge_on_held_out_questions_by_hand():
    heldout = [{"question_id": "t1", "taught": True}, {"question_id": "t2", "taught": True},
               {"question_id": "u1", "taught": False}, {"question_id": "u2", "taught": False}]
    predicted = {"t1": "can", "t2": "cannot", "u1": "cannot", "u2": "can"}
    p_can = {"t1": 0.9, "t2": 0.3, "u1": 0.2, "u2": 0.6}
    actual = {"t1": "can", "t2": "can", "u1": "cannot", "u2": "uncertain"}
    got = heldout_report(heldout, predicted, p_can, actual)
    # taught (0.9, 0.3) against untaught (0.2, 0.6): pairs won 0.9>0.2, 0.9>0.6, 0.3>0.2; lost 0.3<0.6 -> 3/4
    assert got["heldout/judge/auroc"] == pytest.approx(0.75)
    assert got["heldout/judge/auroc_low"] <= 0.75 <= got["heldout/judge/auroc_high"]
    assert got["heldout/judge/predicted_can/taught"] == 0.5 and got["heldout/judge/predicted_can/untaught"] == 0.5
    assert got["heldout/judge/mean_p_can/taught"] == pytest.approx(0.6)
    assert got["heldout/actual_can/taught"] == 1.0 and got["heldout/actual_can/untaught"] == 0.0
    assert (got["heldout/taught/questions"], got["heldout/untaught/questions"]) == (2.0, 2.0)
    other = heldout_report(heldout, predicted, p_can, actual, who="baseline_judge")
    assert "heldout/baseline_judge/auroc" in other


def test_where_the_model_knows_by_hand():
    rows = [
        {"split": "train", "question_id": "a", "ability": "can", "greedy_mean_logprob": np.log(0.9)},
        {"split": "train", "question_id": "b", "ability": "can", "greedy_mean_logprob": np.log(0.4)},
        {"split": "train", "question_id": "c", "ability": "cannot", "greedy_mean_logprob": np.log(0.5)},
        {"split": "validation", "question_id": "d", "ability": "cannot", "greedy_mean_logprob": np.log(0.1)},
        {"split": "validation", "question_id": "e", "ability": "can", "greedy_mean_logprob": np.log(0.2)},
    ]
    first_token = {"a": 0.8, "b": 0.7, "c": 0.9, "d": 0.3, "e": 0.6}
    got = where_known(rows, first_token, taught_ids={"a", "c"})
    # train, taught (a, c) vs untaught (b): first token 0.8 > 0.7, 0.9 > 0.7 -> 1.0; log-prob 0.9 > 0.4, 0.5 > 0.4 -> 1.0
    assert got["where_known/train/first_token/auroc_taught"] == pytest.approx(1.0)
    assert got["where_known/train/answer_logprob/auroc_taught"] == pytest.approx(1.0)
    # train, can (a, b) vs cannot (c): first token 0.8 < 0.9, 0.7 < 0.9 -> 0.0
    assert got["where_known/train/first_token/auroc_can"] == pytest.approx(0.0)
    # validation: can (e 0.6) vs cannot (d 0.3) -> 1.0; no taught questions there
    assert got["where_known/validation/first_token/auroc_can"] == pytest.approx(1.0)
    assert not [k for k in got if k.startswith("where_known/validation") and "taught" in k]


def _summary_table(low: float, high: float) -> pd.DataFrame:
    base = {"model": "m", "qa_accuracy": 0.5}
    return pd.DataFrame([
        {**base, "phase": "phase1", "split": "validation"},
        {**base, "phase": "phase3", "split": "train", "heldout_judge_auroc": (low + high) / 2, "heldout_judge_auroc_low": low,
         "heldout_judge_auroc_high": high, "heldout_baseline_judge_auroc": 0.5, "heldout_taught_questions": 52.0,
         "heldout_untaught_questions": 98.0, "heldout_judge_predicted_can_taught": 0.1,
         "heldout_judge_predicted_can_untaught": 0.05, "heldout_actual_can_taught": 0.9, "heldout_actual_can_untaught": 0.2,
         "first_token_auroc_taught": 0.74, "answer_logprob_auroc_taught": 0.93},
        {**base, "phase": "phase3", "split": "validation"},
    ])


def test_the_summary_says_when_the_held_out_test_is_no_better_than_chance():
    chance = summary_markdown(_summary_table(0.42, 0.61))
    assert "**No better than chance:**" in chance and "52 taught and 98 untaught" in chance
    assert "first answer token's probability, before answering, 0.74" in chance
    assert "No better than chance" not in summary_markdown(_summary_table(0.58, 0.74))


def test_the_summary_warns_when_a_judge_gives_every_question_one_label():
    table = _summary_table(0.42, 0.61)
    table.loc[2, ["predicted_can", "predicted_uncertain", "predicted_cannot"]] = [1.0, 0.0, 0.0]
    table.loc[0, ["predicted_can", "predicted_uncertain", "predicted_cannot"]] = [0.13, 0.22, 0.65]
    text = summary_markdown(table)
    assert "**judgment v2 (knowledge merged) predicts `can` for 100% of the validation questions:**" in text
    assert text.count("collapsed onto one label") == 1  # not the spread v1 row
    table.loc[2, ["predicted_can", "predicted_uncertain", "predicted_cannot"]] = [0.94, 0.06, 0.0]
    assert "collapsed onto one label" not in summary_markdown(table)


def _judgments(predicted, p_can):
    from know_thyself.inference.judgments import Judgments

    labels = ("can", "uncertain", "cannot")
    probabilities = np.array([[p, 0.0, 1.0 - p] for p in p_can])
    return Judgments(labels, list(predicted), probabilities, [False] * len(predicted), np.ones(len(predicted)))


def test_the_judge_beside_v1_unchanged_on_the_same_questions_by_hand():
    from know_thyself.evaluation.taught import unchanged_comparison

    rows = [{"ability": a, "greedy_correct": c} for a, c in
            (("can", True), ("can", True), ("cannot", False), ("cannot", False), ("uncertain", True), ("cannot", False))]
    rates = {"can": 1.0, "uncertain": 0.5, "cannot": 0.0}
    # The judge ranks every correct answer above every wrong one; v1 unchanged inverts one pair.
    judge = _judgments(["can", "can", "cannot", "cannot", "can", "cannot"], [0.9, 0.8, 0.1, 0.2, 0.7, 0.3])
    v1 = _judgments(["can", "cannot", "cannot", "cannot", "cannot", "cannot"], [0.9, 0.15, 0.1, 0.2, 0.7, 0.3])
    got = unchanged_comparison("validation", rows, judge, v1, rates)
    assert got["validation/v1_unchanged/auroc"] == pytest.approx(7 / 9)  # 0.15 loses to 0.2 and 0.3: 7 of 9 pairs
    assert got["validation/judge_minus_v1_unchanged/auroc"] == pytest.approx(1 - 7 / 9)
    # balanced accuracy: judge recalls can 2/2, uncertain 0/1, cannot 3/3; v1 can 1/2, uncertain 0/1, cannot 3/3
    assert got["validation/v1_unchanged/balanced_accuracy"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert got["validation/judge_minus_v1_unchanged/balanced_accuracy"] == pytest.approx(0.5 / 3)
    for key in ("v1_unchanged/auroc", "judge_minus_v1_unchanged/auroc", "judge_minus_v1_unchanged/qwk"):
        assert got[f"validation/{key}_low"] <= got[f"validation/{key}"] <= got[f"validation/{key}_high"]
    same = unchanged_comparison("validation", rows, judge, judge, rates)
    assert same["validation/judge_minus_v1_unchanged/auroc"] == 0.0
    assert same["validation/judge_minus_v1_unchanged/auroc_low"] == same["validation/judge_minus_v1_unchanged/auroc_high"] == 0.0


def test_the_held_out_difference_is_paired_by_question():
    from know_thyself.evaluation.taught import heldout_difference

    heldout = [{"question_id": "t1", "taught": True}, {"question_id": "t2", "taught": True},
               {"question_id": "u1", "taught": False}, {"question_id": "u2", "taught": False}]
    judge = {"t1": 0.9, "t2": 0.8, "u1": 0.2, "u2": 0.6}  # AUROC 1
    v1 = {"t1": 0.9, "t2": 0.3, "u1": 0.2, "u2": 0.6}  # AUROC 3/4
    got = heldout_difference(heldout, judge, v1)
    assert got["heldout/judge_minus_baseline_judge/auroc"] == pytest.approx(0.25)
    assert got["heldout/judge_minus_baseline_judge/auroc_low"] <= 0.25 <= got["heldout/judge_minus_baseline_judge/auroc_high"]
    assert heldout_difference(heldout[:2], judge, v1) == {}  # one group only: no AUROC
