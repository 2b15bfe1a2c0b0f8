"""Hostile requests to a judge behind the real `mlflow models serve` (loopback, one server start).

What reaches the judge's ``predict`` is the project's to refuse: a 10 MB question, a list of
objects sent as ``inputs``, a question of control characters each get an HTTP 400 with one line
that does not echo the request. What MLflow's scoring server answers before ``predict`` runs (no
content type, JSON nested beyond reason, a CSV body, a body that is not JSON, a 2-D ``inputs``,
records whose first key is not ``question``) is
MLflow's; docs/bad-input.md lists those answers, and the last test checks that they are still the
ones documented, so that an MLflow upgrade that changes one is noticed.
"""

import http.client
import json

import pytest
from helpers import serving_judge

RULE = "each question must be a non-empty string of at most 1000 characters"
SEND = 'send {"inputs": ["<question>", ...]} or {"dataframe_records": [{"question": "<question>"}, ...]}'
TEN_MB = 10 * 2**20


@pytest.fixture(scope="module")
def port(tmp_path_factory, tiny_model_dir):
    """judgment_v1/1 (the tiny model and an untrained adapter) served on a free loopback port; yields the port."""
    with serving_judge(tmp_path_factory.mktemp("serve_refusals"), tiny_model_dir) as (free, _, _):
        yield free


def _post(port: int, body: bytes, content_type: str | None = "application/json") -> tuple[int, str, bytes]:
    """POST ``body`` to /invocations, with ``content_type`` or with no Content-Type header at all."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Length", str(len(body)))
        if content_type is not None:
            connection.putheader("Content-Type", content_type)
        connection.endheaders()
        connection.send(body)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": ["Why? " * (TEN_MB // 5)]}, f"row 0: the question is {TEN_MB:,} characters long; {RULE}"),
        ({"inputs": [{"question": "Who wrote Hamlet?"}]},
         f"the questions were sent as a list of objects (a list of dict), not of strings; {SEND}"),
        ({"inputs": ["Who wrote Hamlet?", "\u0000\u0000"]}, f"row 1: the question holds only invisible characters; {RULE}"),
        ({"dataframe_records": [{"question": "\u001b\u007f"}]}, f"row 0: the question holds only invisible characters; {RULE}"),
    ],
    ids=["a 10 MB question", "a list of objects", "NUL characters", "control characters in records"],
)
def test_what_reaches_the_judge_is_refused_with_one_line_that_does_not_echo_the_request(port, body, message):
    status, content_type, answer = _post(port, json.dumps(body).encode())
    assert status == 400 and content_type == "application/json"
    assert len(answer) < 1000  # never the request echoed back, however large
    parsed = json.loads(answer)
    assert parsed["error_code"] == "BAD_REQUEST" and parsed["message"].startswith(message), parsed
    assert "\n" not in parsed["message"] and "stack_trace" not in parsed


def test_what_mlflow_answers_before_the_judge_is_as_documented(port):
    """The cases docs/bad-input.md gives to MLflow's scoring server: answered before ``predict`` runs."""
    question = json.dumps({"inputs": ["Who wrote Hamlet?"]}).encode()
    # No content type: the server fails on the missing header, an HTTP 500 of one plain line.
    assert _post(port, question, None) == (500, "text/plain; charset=utf-8", b"Internal Server Error")
    # JSON nested beyond reason: Python's JSON parser gives up (RecursionError), the same 500.
    deep = b'{"inputs": ' + b"[" * 100_000 + b'"a?"' + b"]" * 100_000 + b"}"
    assert _post(port, deep) == (500, "text/plain; charset=utf-8", b"Internal Server Error")
    # Moderately nested JSON reaches the judge, which refuses a question that is a list.
    status, _, answer = _post(port, b'{"inputs": [[["Who wrote Hamlet?"]]]}')
    assert status == 400 and json.loads(answer)["message"].startswith("row 0: the question is a list")
    # A CSV body with a question header: the judge's one-column signature has no pandas type, so
    # MLflow cannot parse any CSV for it: a 400 whose body carries MLflow's traceback.
    status, _, answer = _post(port, b"question\nWho wrote Hamlet?\n", "text/csv")
    parsed = json.loads(answer)
    assert status == 400 and "Failed to get pandas types" in parsed["message"] and "stack_trace" in parsed
    # A 10 MB body that is not JSON: a 400 that echoes the whole body back.
    status, _, answer = _post(port, b"{" + b"a" * TEN_MB)
    assert status == 400 and len(answer) > TEN_MB
    assert json.loads(answer)["message"].startswith("Invalid input. Ensure that input is a valid JSON formatted string.")
    # A 2-D inputs: MLflow's signature check keeps the first column before the judge sees it.
    status, _, answer = _post(port, json.dumps({"inputs": [["Who wrote Hamlet?", "What is 2 + 2?"]]}).encode())
    assert status == 200 and [row["question"] for row in json.loads(answer)["predictions"]] == ["Who wrote Hamlet?"]
    # The same check keeps the first column of records, so question must come first.
    status, _, answer = _post(port, json.dumps({"dataframe_records": [{"source": "user", "question": "Who?"}]}).encode())
    assert status == 400 and json.loads(answer)["message"].startswith("there is no 'question' column (columns: 'source')")
