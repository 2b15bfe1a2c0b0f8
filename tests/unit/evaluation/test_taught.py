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
