"""What the registered judge takes as questions, and the one-line refusal of anything else.

The judge's ``predict`` reads questions from every form an MLflow client hands it: a string, a
list, a numpy array or a pandas Series of strings, or a DataFrame with a ``question`` column (the
scoring server's ``dataframe_split`` and ``dataframe_records``); a list or array arrives from the
server's ``inputs`` as a DataFrame of one unnamed column. Each question must be a string that
shows something and is at most :data:`~know_thyself.data.records.MAX_QUESTION_CHARS` characters
long, the limit collect samples answers under. Anything else (no question, ``None`` or NaN, a
number, an empty or over-long text) is refused with :class:`JudgeInputError`, naming the row and
the rule, before the model sees it: never judged as the text ``"None"`` or ``"nan"``.
"""

from __future__ import annotations

import math
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST

from know_thyself.data.records import MAX_QUESTION_CHARS, visible_text

SEND = ('send {"inputs": ["<question>", ...]} or {"dataframe_records": [{"question": "<question>"}, ...]}, '
        'or pass predict a list of strings or a DataFrame with a question column')
RULE = f"each question must be a non-empty string of at most {MAX_QUESTION_CHARS} characters"


class JudgeInputError(MlflowException, ValueError):
    """Input the judge cannot judge: an HTTP 400 from the scoring server, whose message is one line.

    The scoring server puts the whole request in front of the message of an error raised by
    ``predict`` (``Failed to predict data '<the request>' ...``, several lines for a DataFrame);
    the message of this error stays the one line that says what to send.
    """

    def __init__(self, line: str) -> None:
        self._line = line
        super().__init__(line, error_code=BAD_REQUEST)

    @property
    def message(self) -> str:
        return self._line

    @message.setter
    def message(self, value: str) -> None:
        """Set by MLflow (on construction, and by the scoring server to prefix the request): the line stays."""


def read_questions(model_input: Any) -> list[str]:
    """The questions in ``model_input``, each checked; see the module docstring.

    Raises:
        JudgeInputError: naming the row and the rule, or the forms accepted.
    """
    values = _values(model_input)
    if not values:
        raise JudgeInputError(f"no questions were given; {SEND}")
    for row, value in enumerate(values):
        problem = _problem(value)
        if problem:
            raise JudgeInputError(f"row {row}: {problem}; {RULE}")
    return values


def _values(model_input: Any) -> list[Any]:
    import numpy as np
    import pandas as pd

    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, pd.DataFrame):
        columns = list(model_input.columns)
        if "question" in columns:
            return model_input["question"].tolist()
        if len(columns) == 1 and isinstance(columns[0], (int, np.integer)):  # a list or an array, as a frame
            return model_input.iloc[:, 0].tolist()
        shown = ", ".join(repr(c) for c in columns[:5]) or "none"
        raise JudgeInputError(f"there is no 'question' column (columns: {shown}); {SEND}")
    if isinstance(model_input, pd.Series):
        return model_input.tolist()
    if isinstance(model_input, np.ndarray):
        if model_input.ndim == 2 and model_input.shape[1] == 1:
            model_input = model_input[:, 0]
        if model_input.ndim != 1:
            raise JudgeInputError(f"an array of shape {model_input.shape} is not a list of questions; {SEND}")
        return model_input.tolist()
    if isinstance(model_input, (list, tuple)):
        return list(model_input)
    raise JudgeInputError(f"cannot read questions from a {type(model_input).__name__}; {SEND}")


def _problem(value: Any) -> str:
    """What is wrong with one question ('' when nothing is)."""
    import pandas as pd

    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return f"the question is missing ({shown})"
    if not isinstance(value, str):
        kind = type(value).__name__
        return f"the question is {'an' if kind[0] in 'aeiou' else 'a'} {kind} ({shown}), not a string"
    if not visible_text(value):
        return "the question is empty" if not value.strip() else "the question holds only invisible characters"
    if len(value) > MAX_QUESTION_CHARS:
        return f"the question is {len(value):,} characters long"
    return ""
