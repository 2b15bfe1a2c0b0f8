"""The questions a run used, as MLflow dataset inputs, and the long steps' system metrics."""

import time

import mlflow
import pytest

from know_thyself.data.questions import BUNDLED_DIR
from know_thyself.tracking import step_run
from know_thyself.tracking.datasets import log_questions, question_dataset

ROWS = [{"split": "train", "question_id": f"q{i}", "question": f"Question {i}?"} for i in range(3)] + [
    {"split": "validation", "question_id": "v0", "question": "Question v?"}]


def test_the_same_questions_have_the_same_digest_whatever_their_order():
    first = question_dataset(ROWS[:3], "bundled", "train")
    again = question_dataset(list(reversed(ROWS[:3])), "bundled", "train")
    other = question_dataset(ROWS[:2], "bundled", "train")
    assert first.digest == again.digest != other.digest
    assert first.name == "bundled" and str(BUNDLED_DIR / "train.jsonl") in first.source.to_json()
    assert "mandarjoshi/trivia_qa" in question_dataset(ROWS[:3], "trivia_qa", "train").source.to_json()
    assert question_dataset(ROWS[:3], "/data/my questions.jsonl", "validation").name == "my questions.jsonl"


def test_each_split_is_an_input_with_its_context(tracking):
    with mlflow.start_run() as run:
        log_questions(ROWS, "bundled")
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    contexts = {i.tags[0].value: i.dataset.digest for i in inputs}
    assert set(contexts) == {"train", "validation"}
    assert contexts["train"] == question_dataset(ROWS[:3], "bundled", "train").digest


@pytest.mark.parametrize("switch", ["1", "0"])
def test_long_steps_record_system_metrics_unless_switched_off(tracking, monkeypatch, switch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.5")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    monkeypatch.setenv("KNOW_THYSELF_SYSTEM_METRICS", switch)
    with step_run("collect", {"seed": switch}, system_metrics=True) as run:
        time.sleep(2.5)
    recorded = [k for k in mlflow.get_run(run.run_id).data.metrics if k.startswith("system/")]
    assert ("system/cpu_utilization_percentage" in recorded) == (switch == "1")
    assert bool(recorded) == (switch == "1")
