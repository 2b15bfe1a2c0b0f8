"""A registered judge behind the real `mlflow models serve` on loopback: every request form MLflow's
scoring protocol documents, and bad requests answered with HTTP 400 and one line, no traceback."""

import json
import urllib.error
import urllib.request

import mlflow
import pytest
from helpers import serving_judge

QUESTIONS = ["What is the capital of France?", "Who painted The Night Watch?"]


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def served_judge(tmp_path_factory, tiny_model_dir):
    """judgment_v1/1 (the tiny model and an untrained adapter, answering in bf16) served by `mlflow models serve`
    on a free port: the scoring URL, the store's URI and the model's."""
    with serving_judge(tmp_path_factory.mktemp("serve"), tiny_model_dir, precision="bfloat16") as (port, store, model):
        yield f"http://127.0.0.1:{port}/invocations", store, model


@pytest.fixture(scope="module")
def served(served_judge):
    """The scoring URL of the served judge."""
    return served_judge[0]


def test_the_served_judge_answers_as_the_loaded_judge_in_its_recorded_precision(served_judge):
    url, store, model_uri = served_judge
    status, answer = _post(url, {"inputs": QUESTIONS})
    assert status == 200, answer
    mlflow.set_tracking_uri(store)
    try:
        loaded = mlflow.pyfunc.load_model(model_uri)
        expected = loaded.predict(QUESTIONS)
    finally:
        mlflow.set_tracking_uri(None)
    assert str(next(loaded.unwrap_python_model().model.parameters()).dtype) == "torch.bfloat16"
    for row, (_, want) in zip(answer["predictions"], expected.iterrows()):
        assert row["ability"] == want["ability"]
        for label in ("can", "uncertain", "cannot"):
            assert abs(row[f"p_{label}"] - want[f"p_{label}"]) <= 1e-5


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": QUESTIONS},
        {"instances": QUESTIONS},
        {"dataframe_split": {"columns": ["question"], "data": [[q] for q in QUESTIONS]}},
        {"dataframe_records": [{"question": q} for q in QUESTIONS]},
        {"dataframe_records": [{"question": q, "source": "user"} for q in QUESTIONS]},
    ],
    ids=["inputs", "instances", "dataframe_split", "dataframe_records", "records with another column"],
)
def test_each_request_form_is_judged(served, body):
    status, answer = _post(served, body)
    assert status == 200, answer
    rows = answer["predictions"]
    assert [row["question"] for row in rows] == QUESTIONS
    for row in rows:
        assert row["ability"] in ("can", "uncertain", "cannot")
        assert abs(row["p_can"] + row["p_uncertain"] + row["p_cannot"] - 1) < 1e-4


SEND = 'send {"inputs": ["<question>", ...]} or {"dataframe_records": [{"question": "<question>"}, ...]}'
RULE = "each question must be a non-empty string of at most 1000 characters"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": [None, QUESTIONS[0]]}, f"row 0: the question is missing (nan); {RULE}"),
        ({"inputs": [QUESTIONS[0], 123]}, f"row 1: the question is an int (123), not a string; {RULE}"),
        ({"dataframe_records": [{"question": 3.5}]}, f"row 0: the question is a float (3.5), not a string; {RULE}"),
        ({"inputs": [""]}, f"row 0: the question is empty; {RULE}"),
        ({"inputs": ["Why? " * 300]}, f"row 0: the question is 1,500 characters long; {RULE}"),
        ({"dataframe_records": [{"text": QUESTIONS[0]}]}, f"there is no 'question' column (columns: 'text'); {SEND}"),
        ({"dataframe_split": {"columns": ["question"], "data": []}}, f"no questions were given; {SEND}"),
    ],
    ids=["null", "a number", "a number in records", "empty", "over-long", "no question column", "no questions"],
)
def test_a_bad_request_is_a_400_with_one_line_saying_what_to_send(served, body, message):
    status, answer = _post(served, body)
    assert status == 400
    assert answer["error_code"] == "BAD_REQUEST" and answer["message"].startswith(message), answer
    assert "\n" not in answer["message"] and "stack_trace" not in answer and "Traceback" not in json.dumps(answer)


def test_an_empty_list_is_refused_by_mlflow_before_the_judge(served):
    """MLflow counts the inputs against the signature before the judge sees them: a 400 without a traceback."""
    status, answer = _post(served, {"inputs": []})
    assert status == 400 and "missing inputs" in answer["message"]
    assert "stack_trace" not in answer and "Traceback" not in json.dumps(answer)


def test_the_readme_s_curl_request_is_judged(served):
    """The request body the README's `curl` line sends, sent as written."""
    from helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Using a registered judge"):]
    curl = section[section.index("curl -s"):]
    body = json.loads(curl[curl.index("-d '") + 4: curl.index("'", curl.index("-d '") + 4)])
    status, answer = _post(served, body)
    assert status == 200, answer
    assert [row["question"] for row in answer["predictions"]] == body["inputs"]
