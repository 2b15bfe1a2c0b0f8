"""test_knowledge refuses comparisons that would mean nothing: one run twice, or runs sampled differently."""

import json

import mlflow
import pytest

from know_thyself import config
from know_thyself.steps.test_knowledge import run_test_knowledge
from know_thyself.tracking import TAG_STEP

PARAMS = {"dataset": "bundled", "num_samples": "10", "test_samples": "5", "seed": "42", "num_trials": "5",
          "temperature": "0.5", "max_new_tokens": "24", "label_scheme": "three", "model": "m"}


def _collect_run(tags=None, **changes) -> str:
    """A finished collect-like run: parameters, the accuracies test_knowledge compares, and its questions."""
    with mlflow.start_run(tags={TAG_STEP: "collect", **(tags or {})}) as run:
        mlflow.log_params({**PARAMS, **changes})
        mlflow.log_metrics({f"{s}/{m}": 0.5 for s in ("train", "validation") for m in ("qa_accuracy", "greedy_qa_accuracy")})
        mlflow.log_text("".join(json.dumps({"split": s, "question_id": f"{s}-0", "question": "Why?"}) + "\n"
                                for s in ("train", "validation")), "responses.jsonl")
    return run.info.run_id


def _runs_of(step: str) -> list:
    return mlflow.search_runs(filter_string=f"tags.`{TAG_STEP}` = '{step}'", output_format="list")


def test_same_run_before_and_after_is_refused(tracking):
    run_id = _collect_run()
    with pytest.raises(ValueError, match="same run"):
        run_test_knowledge(config.TestKnowledgeConfig(collect_before_run_id=run_id, collect_after_run_id=run_id))
    assert _runs_of("test_knowledge") == []


@pytest.mark.parametrize("key,value", [("temperature", "0.7"), ("num_trials", "3"), ("max_new_tokens", "8"),
                                       ("seed", "1"), ("label_scheme", "binary")])
def test_runs_sampled_differently_are_refused(tracking, key, value):
    before, after = _collect_run(), _collect_run(**{key: value})
    with pytest.raises(ValueError, match=f"differ in {key}"):
        run_test_knowledge(config.TestKnowledgeConfig(collect_before_run_id=before, collect_after_run_id=after))
    assert _runs_of("test_knowledge") == []


def test_runs_with_different_answer_seeds_are_refused(tracking):
    before, after = _collect_run(), _collect_run(sample_seed="7")
    with pytest.raises(ValueError, match=r"different seeds \('42' vs '7'"):
        run_test_knowledge(config.TestKnowledgeConfig(collect_before_run_id=before, collect_after_run_id=after))
    # sample_seed -1 means "the seed itself": the same answers as a run without sample_seed
    same = _collect_run(sample_seed="-1", model="merged")
    assert run_test_knowledge(config.TestKnowledgeConfig(collect_before_run_id=before, collect_after_run_id=same))
    assert _runs_of("test_knowledge") != []


def test_comparable_runs_give_the_gain(tracking):
    before, after = _collect_run(), _collect_run(model="merged")
    run = run_test_knowledge(config.TestKnowledgeConfig(collect_before_run_id=before, collect_after_run_id=after))
    metrics = mlflow.get_run(run.run_id).data.metrics
    assert metrics["validation/qa_accuracy_gain_greedy"] == 0.0
    assert metrics["before/train/qa_accuracy_trials"] == 0.5


def _collect_with_rows(rows: list[dict], **changes) -> str:
    run_id = _collect_run(**changes)
    with mlflow.start_run(run_id=run_id):  # its own rows in place of the placeholder questions
        mlflow.log_text("".join(json.dumps(r) + "\n" for r in rows), "responses.jsonl")
    return run_id


def _row(qid: str, accuracy: float, greedy: bool, split: str = "train") -> dict:
    return {"question_id": qid, "question": f"Question {qid}?", "split": split, "accuracy": accuracy,
            "greedy_correct": greedy}


def test_taught_and_untaught_questions_are_reported_apart(tracking):
    before = [_row("a", 0.2, False), _row("b", 0.0, False), _row("c", 0.6, True), _row("d", 0.4, False),
              _row("v", 1.0, True, "validation")]
    after = [_row("a", 1.0, True), _row("b", 0.8, True), _row("c", 0.4, False), _row("d", 0.4, True),
             _row("v", 0.0, False, "validation")]
    with mlflow.start_run(tags={TAG_STEP: "build_knowledge_data"}) as data:
        mlflow.log_text('{"question_id": "a"}\n{"question_id": "b"}\n', "knowledge_data/train.jsonl")
    cfg = config.TestKnowledgeConfig(collect_before_run_id=_collect_with_rows(before),
                                     collect_after_run_id=_collect_with_rows(after, model="merged"),
                                     knowledge_data_run_id=data.info.run_id)
    metrics = mlflow.get_run(run_test_knowledge(cfg).run_id).data.metrics
    # taught a, b: greedy 0/2 -> 2/2, trials (0.2 + 0.0) / 2 -> (1.0 + 0.8) / 2
    assert metrics["before/taught/qa_accuracy_greedy"] == 0.0 and metrics["after/taught/qa_accuracy_greedy"] == 1.0
    assert metrics["taught/qa_accuracy_gain_trials"] == pytest.approx(0.9 - 0.1)
    # untaught c, d: greedy 1/2 -> 1/2, trials 0.5 -> 0.4; validation is not among them
    assert metrics["untaught/qa_accuracy_gain_greedy"] == 0.0
    assert metrics["after/untaught/qa_accuracy_trials"] == pytest.approx(0.4)
    assert (metrics["taught/questions"], metrics["untaught/questions"]) == (2.0, 2.0)


def test_a_knowledge_data_run_of_another_step_is_refused(tracking):
    before, after = _collect_run(), _collect_run(model="merged")
    cfg = config.TestKnowledgeConfig(collect_before_run_id=before, collect_after_run_id=after, knowledge_data_run_id=before)
    with pytest.raises(Exception, match="knowledge_data_run_id .* is a collect run, not a build_knowledge_data run"):
        run_test_knowledge(cfg)
    assert _runs_of("test_knowledge") == []


def test_knowledge_test_refuses_different_question_sets(tracking):
    from know_thyself.steps.collect import TAG_QUESTION_SET

    before = _collect_run({TAG_QUESTION_SET: "a" * 64})
    after = _collect_run({TAG_QUESTION_SET: "b" * 64}, model="merged")
    with pytest.raises(ValueError, match="sampled different questions"):
        run_test_knowledge(config.TestKnowledgeConfig(collect_before_run_id=before, collect_after_run_id=after))
    same = _collect_run({TAG_QUESTION_SET: "a" * 64}, model="merged")
    run = run_test_knowledge(config.TestKnowledgeConfig(collect_before_run_id=before, collect_after_run_id=same))
    assert mlflow.get_run(run.run_id).data.metrics["train/qa_accuracy_gain_trials"] == 0.0
