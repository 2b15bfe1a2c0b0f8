"""test_knowledge refuses comparisons that would mean nothing: one run twice, or runs sampled differently."""

import mlflow
import pytest

from know_thyself import config
from know_thyself.steps.test_knowledge import run_test_knowledge
from know_thyself.tracking import TAG_STEP

PARAMS = {"dataset": "bundled", "num_samples": "10", "test_samples": "5", "seed": "42", "num_trials": "5",
          "temperature": "0.5", "max_new_tokens": "24", "label_scheme": "three", "model": "m"}


def _collect_run(**changes) -> str:
    with mlflow.start_run(tags={TAG_STEP: "collect"}) as run:
        mlflow.log_params({**PARAMS, **changes})
        mlflow.log_metrics({f"{s}/{m}": 0.5 for s in ("train", "validation") for m in ("qa_accuracy", "greedy_qa_accuracy")})
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
