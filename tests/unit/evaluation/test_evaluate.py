"""Judging and evaluation: label probabilities, greedy prediction, metrics equal hand-computed ones."""

import json

import mlflow
import numpy as np
import pytest
from helpers import fake_collect_run, fixed_judge_split

from know_thyself.config import EvaluateConfig
from know_thyself.evaluation import judgment as evaluate
from know_thyself.evaluation import metrics
from know_thyself.inference.judgments import judge, label_token_ids
from know_thyself.steps.evaluate_judgment import run_evaluate_judgment
from know_thyself.tracking import TAG_STEP, read_jsonl_artifact

ACTUAL = {"train": ["can", "can", "uncertain", "cannot"], "validation": ["cannot", "cannot", "uncertain", "can", "can"]}
PREDICTED = {"train": ["can", "cannot", "uncertain", "cannot"], "validation": ["cannot", "can", "cannot", "can", "can"]}


GREEDY_CORRECT = {"train": [True, False, False, False], "validation": [False, True, False, True, True]}


def _fake_collect_run(greedy_correct=GREEDY_CORRECT) -> str:
    return fake_collect_run([
        {"split": split, "question_id": f"{split}-{i}", "question": f"Question {split} {i}?", "ability": label,
         "aliases": ["yes"], "greedy_response": "x", "greedy_correct": greedy_correct[split][i],
         # mean token log-probability rising along the rows: exp() = .2 .375 .55 .725 .9 (validation)
         "greedy_mean_logprob": float(np.log(np.linspace(0.2, 0.9, len(labels))[i]))}
        for split, labels in ACTUAL.items()
        for i, label in enumerate(labels)
    ])


def _split_of(questions: list[str]) -> str:
    return "train" if questions[0].startswith("Question train") else "validation"


def test_judge_on_tiny_model(tiny):
    model, tokenizer = tiny
    judged = judge(model, tokenizer, ["Is this a question?", "What is the capital of Peru?", "Why?"], batch_size=2)
    assert judged.probabilities.shape == (3, 3)
    assert np.allclose(judged.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert all(0 < m <= 1 for m in judged.label_mass)
    for label, probs, off in zip(judged.predicted, judged.probabilities, judged.off_label):
        if off:  # fallback: the most probable label
            assert label == judged.labels[int(np.argmax(probs))]
    assert len(set(label_token_ids(tokenizer, judged.labels))) == 3


def test_judge_logits_are_float32_for_a_bf16_model(tiny_model_dir):
    import torch

    from know_thyself.inference.judgments import judgment_forward
    from know_thyself.inference.models import load_model

    model, tokenizer = load_model(tiny_model_dir, dtype="bfloat16", device="cpu")
    questions = ["What is the capital of Peru?", "Who wrote Hamlet?", "Why?"]
    logits, hidden = judgment_forward(model, tokenizer, questions, batch_size=2, hidden=True)
    # the head's product redone in float32 from the (bf16) final hidden state
    with torch.no_grad():
        expected = hidden.clone() @ model.get_output_embeddings().weight.float().T
    assert logits.dtype == torch.float32
    assert torch.allclose(logits, expected, atol=1e-4)
    # not merely bf16 values cast up: many logits fall between bf16's steps
    assert (logits.bfloat16().float() != logits).float().mean() > 0.5


def test_evaluation_metrics_equal_hand_computed(tracking, tiny_model_dir, monkeypatch):
    collect_id = _fake_collect_run()

    # the tiny model's real probe features; the judge's labels fixed by hand
    monkeypatch.setattr(evaluate, "judge_split", fixed_judge_split(PREDICTED, _split_of))
    run = run_evaluate_judgment(EvaluateConfig(model=tiny_model_dir, collect_run_id=collect_id))
    got = mlflow.get_run(run.run_id).data.metrics
    # train: 3 of 4 right; validation: 3 of 5 right
    assert got["train/judge/exact_match"] == pytest.approx(3 / 4)
    assert got["validation/judge/exact_match"] == pytest.approx(3 / 5)
    # validation distribution: predicted can 3/5, cannot 2/5; actual can 2/5, uncertain 1/5, cannot 2/5
    assert got["validation/judge/predicted/can"] == pytest.approx(3 / 5)
    assert got["validation/judge/predicted/uncertain"] == 0
    assert got["validation/actual/uncertain"] == pytest.approx(1 / 5)
    # per-label rates of correct greedy answers on train (can T,F; uncertain F; cannot F)
    assert got["train/correct_rate/can"] == pytest.approx(0.5)
    assert got["train/correct_rate/uncertain"] == 0 and got["train/correct_rate/cannot"] == 0
    # confidence sum_k P(k) rate_k of the one-hot judge on validation: [0, .5, 0, .5, .5],
    # the greedy answers' correctness: [F, T, F, T, T] -> a perfect ranking, squared error 3 * .25 / 5
    assert got["validation/judge/auroc"] == pytest.approx(1.0)
    assert got["validation/judge/brier"] == pytest.approx(0.15)
    assert got["validation/judge/prr"] == pytest.approx(1.0)
    # the oracle predicts the measured labels: exact match 1; its confidence [0, 0, 0, .5, .5]
    # against [F, T, F, T, T]: 4 of 6 pairs ranked right, 2 tied -> AUROC 5/6
    assert got["validation/oracle/exact_match"] == 1.0
    assert got["validation/oracle/auroc"] == pytest.approx(5 / 6)
    # intervals around the estimates, and the judge's paired difference to the majority
    for key in ("validation/judge/balanced_accuracy", "validation/judge/qwk", "validation/probe/balanced_accuracy"):
        assert got[f"{key}_low"] <= got[key] <= got[f"{key}_high"]
    difference = "validation/judge_minus_majority/balanced_accuracy"
    assert got[difference] == pytest.approx(got["validation/judge/balanced_accuracy"] - got["validation/majority/balanced_accuracy"])
    assert got[f"{difference}_low"] <= got[difference] <= got[f"{difference}_high"]
    # answering exactly when the judge says "can": 3 of 5 answered, all right; abstentions all wrong
    assert got["validation/judge/coverage"] == pytest.approx(3 / 5)
    assert got["validation/judge/answered_accuracy"] == pytest.approx(1.0)
    assert got["validation/judge/handled_well"] == pytest.approx(1.0)
    # majority label of train (can, can, uncertain, cannot) is "can": right on 2 of 5 validation rows
    assert got["validation/majority/exact_match"] == pytest.approx(2 / 5)
    assert got["validation/majority/coverage"] == pytest.approx(1.0)
    assert got["validation/majority/answered_accuracy"] == pytest.approx(3 / 5)
    # after-answering score rises along the rows: [.2 .375 .55 .725 .9] vs [F T F T T] -> AUROC 5/6
    assert got["validation/answer_logprob/auroc"] == pytest.approx(5 / 6)
    assert all(np.isfinite(v) for v in got.values())
    comparison = mlflow.load_table("comparison.json", run_ids=[run.run_id])
    assert {"judge", "majority", "prior", "probe", "oracle", "answer_logprob"} <= set(comparison["method"])
    # the table carries every headline metric's interval beside its estimate, and the paired differences
    rows = comparison.set_index(["split", "method"])
    for method in ("judge", "probe", "majority"):
        for metric in ("balanced_accuracy", "qwk", "auroc"):
            key = f"validation/{method}/{metric}"
            if key not in got:
                continue
            row = rows.loc[("validation", method)]
            assert row[metric] == pytest.approx(got[key])
            assert (row[f"{metric}_low"], row[f"{metric}_high"]) == pytest.approx((got[f"{key}_low"], got[f"{key}_high"]))
    assert rows.loc[("validation", "judge"), "balanced_accuracy_low"] <= rows.loc[("validation", "judge"), "balanced_accuracy"]
    difference_row = rows.loc[("validation", "judge_minus_majority")]
    assert difference_row["balanced_accuracy"] == pytest.approx(got[difference])
    assert difference_row["balanced_accuracy_low"] == pytest.approx(got[f"{difference}_low"])
    table = mlflow.load_table("confusion_validation.json", run_ids=[run.run_id])
    # rows actual (can, uncertain, cannot) x columns predicted
    assert table["actual"].tolist() == ["can", "uncertain", "cannot"]
    assert table["predicted_can"].tolist() == [2, 0, 1]
    assert table["predicted_cannot"].tolist() == [0, 1, 1]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.run_id)}
    assert {"confusion_train.png", "confusion_validation.png", "distribution_validation.png", "predictions.jsonl",
            "reliability_validation.png", "risk_coverage_validation.png", "comparison.json"} <= artifacts


def test_undefined_metrics_are_named_not_logged_as_nan(tracking, tiny_model_dir):
    collect_id = _fake_collect_run({split: [False] * len(labels) for split, labels in ACTUAL.items()})
    run = run_evaluate_judgment(EvaluateConfig(model=tiny_model_dir, collect_run_id=collect_id))
    result = mlflow.get_run(run.run_id)
    assert "validation/judge/auroc" not in result.data.metrics  # one class only: AUROC undefined
    assert "validation/judge/auroc" in result.data.tags["undefined_metrics"]
    assert "validation/judge/prr" in result.data.tags["undefined_metrics"]
    assert result.data.metrics["validation/judge/brier"] >= 0
    assert all(np.isfinite(v) for v in result.data.metrics.values())


def test_evaluation_refuses_an_adapter_from_the_wrong_step(tracking, tiny_model_dir):
    collect_id = _fake_collect_run()
    with pytest.raises(ValueError, match="not a train_judgment run"):
        run_evaluate_judgment(
            EvaluateConfig(model=tiny_model_dir, collect_run_id=collect_id, adapter_run_id=collect_id)
        )


def _rows(questions_by_split):
    return [
        {"split": split, "question_id": f"{split}-{i}", "question": q, "ability": ACTUAL[split][i],
         "greedy_response": "x", "greedy_correct": GREEDY_CORRECT[split][i], "greedy_mean_logprob": -1.0 - i}
        for split, questions in questions_by_split.items()
        for i, q in enumerate(questions)
    ]


def test_one_forward_per_model_and_prompt_only_is_the_bare_model(tiny, monkeypatch):
    """With an adapter: the bare model runs once over the judgment prompts (logits and hidden state) and
    once over the answer prompts (the first token), the adapter once; its prompt_only, probe and
    first_token rows equal an evaluation of the bare model on its own."""
    import torch
    from peft import LoraConfig, get_peft_model

    from know_thyself.inference import judgments as judge_module

    model, tokenizer = tiny
    questions = {split: [f"Which city is number {i} in {split}?" for i in range(len(labels))]
                 for split, labels in ACTUAL.items()}
    rows = _rows(questions)
    calls = []
    real_forward = judge_module.last_position_ids

    def counting_forward(model, ids, pad_id, batch_size=32, hidden=False):
        calls.append((len(ids), hidden))
        return real_forward(model, ids, pad_id, batch_size, hidden)

    monkeypatch.setattr(judge_module, "last_position_ids", counting_forward)
    bare = evaluate.evaluate_judgment(model, tokenizer, rows, "three", batch_size=3)
    # per split: one judgment forward serves the judge and the probe, one answer forward the first token
    assert calls == [(4, True), (4, False), (5, True), (5, False)]

    torch.manual_seed(1)
    adapted = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapted.eval()
    calls.clear()
    with_adapter = evaluate.evaluate_judgment(adapted, tokenizer, rows, "three", batch_size=3, with_adapter=True)
    # bare judgment (with hidden state), bare answer prompts, then the adapter's judgment
    assert calls == [(4, True), (4, False), (4, False), (5, True), (5, False), (5, False)]
    for split in ACTUAL:
        for metric in ("exact_match", "balanced_accuracy", "qwk", "brier"):
            assert with_adapter.metrics[f"{split}/prompt_only/{metric}"] == pytest.approx(
                bare.metrics[f"{split}/judge/{metric}"], abs=1e-6)
            assert with_adapter.metrics[f"{split}/probe/{metric}"] == pytest.approx(
                bare.metrics[f"{split}/probe/{metric}"], abs=1e-6)
            assert with_adapter.metrics[f"{split}/first_token/{metric}"] == pytest.approx(
                bare.metrics[f"{split}/first_token/{metric}"], abs=1e-6)
    # the adapter really changes the judge's probabilities (it is not the bare model again)
    bare_probs = [p["probabilities"] for p in bare.predictions]
    adapter_probs = [p["probabilities"] for p in with_adapter.predictions]
    assert bare_probs != adapter_probs
    assert "prompt_only" not in set(bare.table["method"])
    assert "prompt_only" in set(with_adapter.table["method"])


# --------------------------------------------------------------------------------------------
# The label-noise ceiling: a second collect's labels used as predictions of the first
# --------------------------------------------------------------------------------------------

REFERENCE_VALIDATION = ["cannot", "uncertain", "uncertain", "can", "cannot"]
COLLECT_PARAMS = {"model": "m", "dataset": "bundled", "test_samples": "5", "seed": "42", "num_trials": "5",
                  "temperature": "0.5", "max_new_tokens": "24", "label_scheme": "three"}


def _fake_reference_run(labels=REFERENCE_VALIDATION, question_ids=None, **params) -> str:
    """A collect run of the validation questions alone, labelled ``labels``."""
    ids = question_ids or [f"validation-{i}" for i in range(len(labels))]
    rows = [{"split": "validation", "question_id": qid, "question": f"Question validation {i}?", "ability": label,
             "aliases": ["yes"], "greedy_response": "x", "greedy_correct": False, "greedy_mean_logprob": -1.0}
            for i, (qid, label) in enumerate(zip(ids, labels))]
    with mlflow.start_run(tags={TAG_STEP: "collect"}) as run:
        mlflow.log_params({**COLLECT_PARAMS, "sample_seed": "7", "splits": "validation", **params})
        mlflow.log_text("".join(json.dumps(r) + "\n" for r in rows), "responses.jsonl")
    return run.info.run_id


def _collect_with_params() -> str:
    collect_id = _fake_collect_run()
    mlflow.MlflowClient().log_batch(
        collect_id, params=[mlflow.entities.Param(k, v) for k, v in {**COLLECT_PARAMS, "sample_seed": "-1"}.items()
                            if k != "label_scheme"]
    )
    return collect_id


def test_label_noise_ceiling_equals_hand_computed_agreement(tracking, tiny_model_dir):
    collect_id = _collect_with_params()
    reference_id = _fake_reference_run()
    run = run_evaluate_judgment(
        EvaluateConfig(model=tiny_model_dir, collect_run_id=collect_id, reference_collect_run_id=reference_id)
    )
    got = mlflow.get_run(run.run_id).data.metrics
    # first labels  [cannot cannot uncertain can can], second [cannot uncertain uncertain can cannot]:
    # 3 of 5 agree; recall can 1/2, uncertain 1/1, cannot 1/2 -> balanced accuracy 2/3;
    # QWK on ranks (can 0 .. cannot 2): observed weighted disagreement 1 + 4 = 5, expected
    # sum_ij a_i p_j (i-j)^2 / n with a = (2, 1, 2), p = (1, 2, 2): 35 / 5 = 7 -> 1 - 5/7 = 2/7.
    assert got["validation/label_noise_ceiling/exact_match"] == pytest.approx(3 / 5)
    assert got["validation/label_noise_ceiling/balanced_accuracy"] == pytest.approx(2 / 3)
    assert got["validation/label_noise_ceiling/qwk"] == pytest.approx(2 / 7)
    for metric in ("exact_match", "balanced_accuracy", "qwk"):
        key = f"validation/label_noise_ceiling/{metric}"
        assert got[f"{key}_low"] <= got[key] <= got[f"{key}_high"]
    assert not [k for k in got if k.startswith("train/label_noise_ceiling")]  # the reference holds validation only
    table = mlflow.load_table("comparison.json", run_ids=[run.run_id]).set_index(["split", "method"])
    row = table.loc[("validation", "label_noise_ceiling")]
    assert row["qwk"] == pytest.approx(2 / 7) and row["exact_match_low"] <= 3 / 5 <= row["exact_match_high"]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ({"question_ids": ["validation-0", "validation-1", "validation-2", "validation-3", "other"]},
         "the reference collect run holds different validation questions (e.g. 'validation-4')"),
        ({"labels": REFERENCE_VALIDATION[:4]}, "the reference collect run holds different validation questions"),
        ({"sample_seed": "-1"}, "sampled its answers with the same seed (42)"),
        ({"temperature": "1.0"}, "the reference collect run differs in temperature"),
    ],
)
def test_label_noise_ceiling_refuses_a_reference_that_does_not_match(tracking, tiny_model_dir, reference, message):
    collect_id = _collect_with_params()
    reference_id = _fake_reference_run(**reference)
    before = len(mlflow.search_runs(search_all_experiments=True, output_format="list"))
    with pytest.raises(ValueError) as error:
        run_evaluate_judgment(
            EvaluateConfig(model=tiny_model_dir, collect_run_id=collect_id, reference_collect_run_id=reference_id)
        )
    assert message in str(error.value)
    assert len(mlflow.search_runs(search_all_experiments=True, output_format="list")) == before  # no run opened


def test_a_split_collected_alone_gets_the_answers_it_gets_beside_the_other(tracking, tiny_model_dir, trivia_dir):
    from know_thyself.config import CollectConfig
    from know_thyself.steps.collect import run_collect
    from know_thyself.tracking import read_jsonl_artifact

    small = {"model": tiny_model_dir, "dataset": str(trivia_dir), "num_samples": 4, "test_samples": 4, "num_trials": 3,
             "max_new_tokens": 4, "temperature": 1.0, "seed": 5, "dtype": "float32"}
    both = read_jsonl_artifact(run_collect(CollectConfig(**small)).run_id, "responses.jsonl")
    alone_id = run_collect(CollectConfig(**small, sample_seed=5, splits="validation")).run_id
    alone = read_jsonl_artifact(alone_id, "responses.jsonl")
    other = read_jsonl_artifact(run_collect(CollectConfig(**small, sample_seed=6, splits="validation")).run_id, "responses.jsonl")
    validation = [r for r in both if r["split"] == "validation"]
    assert [r["question_id"] for r in alone] == [r["question_id"] for r in validation]
    assert [r["responses"] for r in alone] == [r["responses"] for r in validation]
    assert [r["responses"] for r in other] != [r["responses"] for r in validation]
    assert "validation/qa_accuracy" in mlflow.get_run(alone_id).data.metrics
    # a validation-only collect cannot feed a step that trains on train questions
    from know_thyself.config import JudgmentDataConfig
    from know_thyself.steps.build_judgment_data import run_build_judgment_data

    with pytest.raises(ValueError, match="collected only 'validation', without train"):
        run_build_judgment_data(JudgmentDataConfig(collect_run_id=alone_id))


def test_prior_is_scored_as_a_confidence_method_only(tracking, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(evaluate, "judge_split", fixed_judge_split(PREDICTED, _split_of))
    run = run_evaluate_judgment(EvaluateConfig(model=tiny_model_dir, collect_run_id=_fake_collect_run()))
    got = mlflow.get_run(run.run_id).data.metrics
    # Its labels would be the majority's: only the confidence metrics are its own.
    assert "validation/prior/exact_match" not in got and "validation/prior/coverage" not in got
    assert "validation/majority/exact_match" in got
    assert "validation/prior/brier" in got
    assert "validation/prior/exact_match" not in mlflow.get_run(run.run_id).data.tags["undefined_metrics"]


def test_first_token_probability_equals_a_plain_forward(tiny):
    """The first-token score: the largest next-token probability at the end of the answer prompt, as a plain
    forward over the whole prompt (no shared prefix, no batching) gives it."""
    import torch

    from know_thyself.data.prompts import answer_messages, render
    from know_thyself.inference.judgments import first_token_probability

    model, tokenizer = tiny
    questions = ["What is the capital of Peru?", "Who wrote Hamlet, the play about a Danish prince?", "Why?"]
    got = first_token_probability(model, tokenizer, questions, batch_size=2)
    for question, value in zip(questions, got):
        ids = tokenizer(render(tokenizer, answer_messages(question)), add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            logits = model(**ids).logits[0, -1].float()
        assert value == pytest.approx(float(torch.softmax(logits, -1).max()), rel=1e-4)
    assert first_token_probability(model, tokenizer, [], batch_size=2).shape == (0,)


def test_first_token_is_scored_with_intervals_and_a_paired_difference(tracking, tiny_model_dir, monkeypatch):
    """first_token: its AUROC is that of the probability itself; its labels come from the train split."""
    monkeypatch.setattr(evaluate, "judge_split", fixed_judge_split(PREDICTED, _split_of))
    run = run_evaluate_judgment(EvaluateConfig(model=tiny_model_dir, collect_run_id=_fake_collect_run()))
    got = mlflow.get_run(run.run_id).data.metrics
    predictions = [p for p in read_jsonl_artifact(run.run_id, "predictions.jsonl") if p["split"] == "validation"]
    scores = [p["first_token"] for p in predictions]
    correct = [p["greedy_correct"] for p in predictions]
    assert got["validation/first_token/auroc"] == pytest.approx(metrics.auroc(scores, correct))
    assert got["validation/first_token/auroc_low"] <= got["validation/first_token/auroc"] <= got["validation/first_token/auroc_high"]
    assert got["validation/judge_minus_first_token/balanced_accuracy"] == pytest.approx(
        got["validation/judge/balanced_accuracy"] - got["validation/first_token/balanced_accuracy"])
    table = mlflow.load_table("comparison.json", run_ids=[run.run_id])
    assert "first_token" in set(table["method"]) and "judge_minus_first_token" in set(table["method"])
