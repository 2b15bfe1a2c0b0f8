"""What the registered judge refuses to give or to take, through the Python API as users load it.

No NaN leaves the judge: a ``readout.json`` with weights too large to apply (or one that cannot be
read) is refused with one line naming the file when the judge loads, and a prediction that is not
finite is refused with one line instead of returned. Input that is not a list of questions (a 2-D
input, two ``question`` columns, a list of objects, a question of control characters) is refused
with one line rather than judged in part. And evaluate_registered's line for a registered version
says that balanced accuracy and QWK are undefined when every question has one label, instead of
a constant interval.
"""

import json
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers import untrained_judge_store

from know_thyself.inference.readout import MAX_WEIGHT, READOUT_FILE, Readout
from know_thyself.steps.evaluate_registered import version_headline
from know_thyself.tracking.judge_input import JudgeError, JudgeInputError, read_questions

LABELS = ("can", "uncertain", "cannot")
COLUMNS = ["p_can", "p_uncertain", "p_cannot"]
QUESTIONS = ["What is the capital of Peru?", "Who wrote Hamlet?"]


def _readout(coef, intercept=(0.0, 0.0, 0.0)) -> dict:
    return {"features": ["log_p_label", "log_p_first_token"], "labels": list(LABELS),
            "coef": coef, "intercept": list(intercept)}


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory, tiny_model_dir, empty_store) -> Path:
    """A judge with a stacked readout, logged as train_judgment logs it and downloaded: a model folder to edit."""
    from know_thyself.tracking.registry import JUDGE_ARTIFACT, log_judge

    folder = tmp_path_factory.mktemp("refusals")
    with untrained_judge_store(folder, tiny_model_dir, empty_store) as adapter:
        coef = np.zeros((3, 4))
        coef[0, 3], coef[2, 3] = 2.0, -2.0
        readout = Readout(LABELS, coef, np.array([0.5, 0.0, -0.5])).save(folder / READOUT_FILE)
        with mlflow.start_run() as run:
            log_judge(str(adapter), tiny_model_dir, "three", readout_file=readout)
        local = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/{JUDGE_ARTIFACT}", dst_path=str(folder / "judge"))
    return Path(local)


def _judge_with(judge_dir: Path, tmp_path: Path, content: bytes | str | None = None) -> Path:
    """A copy of the judge whose ``readout.json`` holds ``content`` (unchanged when None)."""
    copy = Path(shutil.copytree(judge_dir, tmp_path / "judge"))
    (path,) = copy.rglob(READOUT_FILE)
    if content is not None:
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return copy


def _one_line_naming_the_readout(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message and READOUT_FILE in message, message
    return message


# --- No NaN leaves the judge -------------------------------------------------------------------


def test_a_readout_with_huge_finite_weights_is_refused_when_the_judge_loads(judge_dir, tmp_path):
    """Weights of 1e308 loaded before and made every prediction ``can`` with NaN probabilities."""
    judge = _judge_with(judge_dir, tmp_path, json.dumps(_readout([[1e308] * 4] * 3)))
    with pytest.raises(ValueError) as info:
        mlflow.pyfunc.load_model(str(judge))
    message = _one_line_naming_the_readout(info.value)
    assert "a weight of size 1e+308, above the largest a readout may hold (1e+300" in message
    with pytest.raises(ValueError, match=r"a weight of size 1e\+301, above"):
        Readout(LABELS, np.zeros((3, 4)), np.array([1e301, 0.0, 0.0]))


def test_weights_at_the_bound_give_finite_probabilities_at_the_extremes_of_the_features(judge_dir, tmp_path):
    # Scores of +-MAX_WEIGHT * log(p_first) and the largest intercepts: the softmax is one-hot, never NaN.
    assert MAX_WEIGHT == 1e300
    coef = np.zeros((3, 4))
    coef[0, 3], coef[2, 3] = MAX_WEIGHT, -MAX_WEIGHT
    readout = Readout(LABELS, coef, np.array([MAX_WEIGHT, 0.0, -MAX_WEIGHT]))
    extremes = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1e-30, 1e-30, 1e-30]])
    probs = readout.probabilities(extremes, np.array([0.5, 1.0, 0.0]))
    # p_first 0.5: can (1 - 0.69) 1e300, cannot (0.69 - 1) 1e300 -> can; p_first 1: can 1e300 -> can;
    # p_first 0 (floored at 1e-12): can (1 - 27.6) 1e300, cannot (27.6 - 1) 1e300 -> cannot.
    assert np.array_equal(probs, [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    # The largest scores there can be (every feature at the floor, every weight at the bound): 1.1e302 each.
    heaviest = Readout(LABELS, np.full((3, 4), -MAX_WEIGHT), np.full(3, MAX_WEIGHT))
    assert np.allclose(heaviest.probabilities(extremes, np.array([0.0, 0.0, 0.0])), 1 / 3)

    # The judge with such weights loads and answers in finite numbers.
    judge = _judge_with(judge_dir, tmp_path, json.dumps(Readout(LABELS, coef, np.zeros(3)).to_dict()))
    frame = mlflow.pyfunc.load_model(str(judge)).predict(QUESTIONS)
    values = frame[COLUMNS].to_numpy()
    assert np.isfinite(values).all() and np.allclose(values.sum(axis=1), 1.0)
    assert frame["ability"].tolist() == [LABELS[i] for i in values.argmax(axis=1)]


DEEP = "[" * 100_000 + "]" * 100_000
BIG_INT = "1" + "0" * 400  # a valid JSON integer, too big for a float


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (DEEP, "its JSON is nested too deeply to read"),
        (json.dumps(_readout([[0.0] * 4] * 3)).encode("utf-16"), "is not UTF-8 text (byte 0)"),
        (json.dumps(_readout([[0.0] * 4] * 3)).replace("[0.0, 0.0, 0.0, 0.0]", f"[{BIG_INT}, 0, 0, 0]", 1),
         "the readout's weights are not numbers: int too large to convert to float"),
        (json.dumps(_readout([[0.0] * 4] * 3)).replace("[0.0, 0.0, 0.0, 0.0]", f"[{'9' * 5000}, 0, 0, 0]", 1),
         "holds a number of more digits than Python reads"),
        ("coef: [[1, 2]]", "is not JSON (Expecting value: line 1 column 1"),
        (json.dumps(_readout([[float("nan")] * 4] * 3)), "the readout's weights are not all finite numbers"),
    ],
    ids=["nested too deep", "not UTF-8", "an integer too big for a float", "an integer of 5000 digits", "not JSON", "NaN"],
)
def test_a_damaged_readout_json_is_refused_with_one_line_naming_it(judge_dir, tmp_path, content, expected):
    judge = _judge_with(judge_dir, tmp_path, content)
    with pytest.raises(ValueError) as info:
        mlflow.pyfunc.load_model(str(judge))
    assert expected in _one_line_naming_the_readout(info.value)


@pytest.fixture(scope="module")
def loaded(judge_dir):
    """The judge with its own (sane) readout, loaded once for the tests that only predict."""
    return mlflow.pyfunc.load_model(str(judge_dir))


@pytest.mark.parametrize(
    ("patched", "source"),
    [("judge", "the judge's model gave probabilities that are not finite numbers (row 1)"),
     ("first_token_probability", "the judge's base model (first answer token) gave probabilities that are not finite")],
)
def test_a_prediction_that_is_not_finite_is_refused_not_returned(loaded, monkeypatch, patched, source):
    from dataclasses import replace

    from know_thyself.inference import judgments

    real = getattr(judgments, patched)

    def nan_in_row_one(*args, **kwargs):
        out = real(*args, **kwargs)
        if patched == "judge":
            probabilities = out.probabilities.copy()
            probabilities[1] = np.nan
            return replace(out, probabilities=probabilities)
        return np.where(np.arange(len(out)) == 1, np.nan, out)

    monkeypatch.setattr(judgments, patched, nan_in_row_one)
    with pytest.raises(JudgeError) as info:
        loaded.predict(QUESTIONS)
    assert source in info.value.message and "\n" not in info.value.message
    assert isinstance(info.value, ValueError) and info.value.get_http_status_code() == 500
    monkeypatch.undo()
    assert np.isfinite(loaded.predict(QUESTIONS)[COLUMNS].to_numpy()).all()  # unpatched, the same judge answers


def test_readout_weights_changed_after_loading_are_refused_naming_readout_json(loaded):
    readout = loaded.unwrap_python_model().readout
    original = readout.coef
    object.__setattr__(readout, "coef", np.full((3, 4), np.inf))  # past the checks of a frozen dataclass
    try:
        with pytest.raises(JudgeError) as info:
            loaded.predict(QUESTIONS)
    finally:
        object.__setattr__(readout, "coef", original)
    message = _one_line_naming_the_readout(info.value.message)
    assert message == ("the judge's readout (readout.json) gave no probabilities: the readout's weights give scores "
                       "that are not finite numbers; refit it")


# --- What the judge takes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("questions", "message"),
    [
        ([["a?", "b?"]], "a 2-D input of 1 row and 2 columns is not a list of questions"),
        ([["a?", "b?"], ["c?"]], "a 2-D input with rows of different lengths is not a list of questions"),
        (pd.DataFrame([["a?", "b?"]]), "a 2-D input of 1 row and 2 columns is not a list of questions"),
        (pd.DataFrame([["a?", "b?"]], columns=["question", "question"]),
         "the input has 2 columns named 'question' (the questions belong in one)"),
        ([{"question": "a?"}], "the questions were sent as a list of objects (a list of dict), not of strings"),
        # What the scoring server makes of {"inputs": [{"question": "a?"}]}: each value a 0-d array.
        (pd.DataFrame({"question": [np.array("a?"), np.array("b?")]}),
         "the questions were sent as a list of objects (a list of dict), not of strings"),
        (["Who?", np.int64(3)], "row 1: the question is an int (np.int64(3)), not a string"),
    ],
    ids=["2-D list", "ragged rows", "2-D frame", "two question columns", "list of dict", "served list of objects",
         "numpy int"],
)
def test_input_that_is_not_a_list_of_questions_is_refused_by_the_judge(loaded, questions, message):
    with pytest.raises(JudgeInputError) as info:
        read_questions(questions)
    assert info.value.message.startswith(message) and "\n" not in info.value.message
    with pytest.raises(JudgeInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        loaded.unwrap_python_model().predict(None, questions)  # the judge as it is handed its input


def test_mlflow_keeps_the_first_column_of_a_2d_input_before_the_judge_sees_it(loaded):
    """Documented in docs/bad-input.md: PyFuncModel.predict enforces the judge's one-column signature first."""
    assert loaded.predict([["a?", "b?"]])["question"].tolist() == ["a?"]


@pytest.mark.parametrize("question", ["\x00", "\x00\x00\x00", "\x01\x1b\x7f", " \x00\t\x9f "])
def test_a_question_of_control_characters_is_refused_like_invisible_ones(loaded, question):
    with pytest.raises(JudgeInputError) as info:
        loaded.predict(["Who wrote Hamlet?", question])
    assert info.value.message.startswith("row 1: the question holds only invisible characters; each question must")
    assert read_questions(["Who wrote\x00 Hamlet?"]) == ["Who wrote\x00 Hamlet?"]  # a visible question is judged as sent


# --- evaluate_registered on questions that all have one label ---------------------------------


def _evaluation(actual: dict[str, float], **metrics: float) -> dict[str, float]:
    values = {f"validation/actual/{label}": share for label, share in actual.items()}
    return {**values, **{f"validation/judge/{key}": value for key, value in metrics.items()}}


def test_the_version_line_calls_label_metrics_undefined_when_every_question_has_one_label():
    # What the tiny judge gave on eight 'cannot' questions: balanced accuracy 1.00 [1.00, 1.00].
    one_label = _evaluation({"can": 0.0, "uncertain": 0.0, "cannot": 1.0}, balanced_accuracy=1.0,
                            balanced_accuracy_low=1.0, balanced_accuracy_high=1.0, qwk_low=0.0, qwk_high=0.0,
                            auroc=0.75, auroc_low=0.5, auroc_high=1.0)
    numbers, line = version_headline(one_label, "validation")
    assert numbers == {"auroc": 0.75, "auroc_low": 0.5, "auroc_high": 1.0}
    assert line == ("balanced accuracy undefined, QWK undefined, AUROC 0.75 [0.50, 1.00] "
                    "(every question has one label, 'cannot')")
    mixed = _evaluation({"can": 0.5, "uncertain": 0.0, "cannot": 0.5}, balanced_accuracy=0.75,
                        balanced_accuracy_low=0.5, balanced_accuracy_high=1.0)
    numbers, line = version_headline(mixed, "validation")
    assert numbers == {"balanced_accuracy": 0.75, "balanced_accuracy_low": 0.5, "balanced_accuracy_high": 1.0}
    assert line == "balanced accuracy 0.75 [0.50, 1.00], QWK undefined, AUROC undefined"
