"""The registered judge as MLflow clients see it: its signature and input example, every input form it
takes, and the one-line refusal (row and rule) of anything that is not a question."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers import untrained_judge_store

from know_thyself.data.records import MAX_QUESTION_CHARS
from know_thyself.tracking.judge_input import JudgeInputError, read_questions
from know_thyself.tracking.registry import JUDGE_ARTIFACT, JUDGE_EXAMPLE, log_judge, register

RULE = f"each question must be a non-empty string of at most {MAX_QUESTION_CHARS} characters"
COLUMNS = ["question", "ability", "p_can", "p_uncertain", "p_cannot"]


@pytest.fixture(scope="module")
def judge(tmp_path_factory, tiny_model_dir, empty_store):
    """A judge logged and registered as train_judgment logs it (its adapter made without training), once per module."""
    folder = tmp_path_factory.mktemp("judge")
    with untrained_judge_store(folder, tiny_model_dir, empty_store) as adapter:
        with mlflow.start_run() as run:
            log_judge(str(adapter), tiny_model_dir, "three")
        version = register(run.info.run_id, JUDGE_ARTIFACT, "judgment_v1", {})
        yield f"models:/judgment_v1/{version}"


@pytest.fixture(scope="module")
def loaded(judge):
    """The registered judge loaded as MLflow clients load it."""
    return mlflow.pyfunc.load_model(judge)


def test_the_judge_has_a_signature_and_an_input_example(judge, loaded):
    info = mlflow.models.get_model_info(judge)
    assert info.signature.outputs.input_names() == COLUMNS
    assert [spec.type.name for spec in info.signature.outputs.inputs] == ["string", "string", "double", "double", "double"]
    assert len(info.signature.inputs.inputs) == 1  # one column of questions, checked by the judge itself
    example = loaded.input_example
    assert list(example.columns) == ["question"] and example["question"].tolist() == [JUDGE_EXAMPLE]
    local = mlflow.artifacts.download_artifacts(judge)
    with open(f"{local}/serving_input_example.json") as handle:
        assert json.load(handle) == {"dataframe_split": {"columns": ["question"], "data": [[JUDGE_EXAMPLE]]}}


@pytest.mark.parametrize(
    "questions",
    [
        ["What is the capital of Peru?", "Who wrote Hamlet?"],
        np.array(["What is the capital of Peru?", "Who wrote Hamlet?"]),
        pd.Series(["What is the capital of Peru?", "Who wrote Hamlet?"]),
        pd.DataFrame({"question": ["What is the capital of Peru?", "Who wrote Hamlet?"], "source": ["a", "b"]}),
    ],
    ids=["list", "array", "series", "frame"],
)
def test_every_form_of_questions_is_judged(loaded, questions):
    judged = loaded.predict(questions)
    assert list(judged.columns) == COLUMNS
    assert judged["question"].tolist() == ["What is the capital of Peru?", "Who wrote Hamlet?"]
    assert set(judged["ability"]) <= {"can", "uncertain", "cannot"}
    assert np.allclose(judged[COLUMNS[2:]].sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("questions", "message"),
    [
        ([None, "Who wrote Hamlet?"], "row 0: the question is missing ("),
        (["Who wrote Hamlet?", 123, 3.5], f"row 1: the question is an int (123), not a string; {RULE}"),
        (pd.DataFrame({"question": ["Who wrote Hamlet?", float("nan")]}), f"row 1: the question is missing (nan); {RULE}"),
        (pd.DataFrame({"question": [None, None]}), "row 0: the question is missing ("),
        ([""], f"row 0: the question is empty; {RULE}"),
        (["\u200b\u200b"], f"row 0: the question holds only invisible characters; {RULE}"),
        (["Why? " * 20000], f"row 0: the question is 100,000 characters long; {RULE}"),
        (pd.DataFrame({"question": []}), "no questions were given; send {\"inputs\": [\"<question>\", ...]}"),
        (pd.DataFrame({"text": ["Who wrote Hamlet?"]}), "there is no 'question' column (columns: 'text'); send"),
    ],
    ids=["None", "a number", "NaN in a frame", "a frame of None", "empty", "invisible", "100,000 characters",
         "no questions", "no question column"],
)
def test_what_is_not_a_question_is_refused_with_the_row_and_the_rule(loaded, questions, message):
    with pytest.raises(JudgeInputError) as info:
        loaded.predict(questions)
    assert str(info.value) == info.value.message and message in info.value.message
    assert "\n" not in info.value.message
    assert isinstance(info.value, ValueError)


def test_the_refusal_keeps_its_one_line_when_the_scoring_server_prefixes_the_request():
    with pytest.raises(JudgeInputError) as info:
        read_questions([None])
    error = info.value
    error.message = f"Failed to predict data '{[None]}'. \nError: {error.message}"  # what the server does
    body = json.loads(error.serialize_as_json())
    assert body["error_code"] == "BAD_REQUEST" and body["message"] == f"row 0: the question is missing (None); {RULE}"
    assert "stack_trace" not in body
    assert error.get_http_status_code() == 400


def test_the_forms_read_questions_takes():
    assert read_questions("Who wrote Hamlet?") == ["Who wrote Hamlet?"]
    with pytest.raises(JudgeInputError, match="no questions were given"):
        read_questions([])
    assert read_questions(np.array([["a?"], ["b?"]])) == ["a?", "b?"]
    with pytest.raises(JudgeInputError, match=r"an array of shape \(1, 2\) is not a list of questions"):
        read_questions(np.array([["a?", "b?"]]))
    with pytest.raises(JudgeInputError, match="cannot read questions from a dict"):
        read_questions({"q": 1})
