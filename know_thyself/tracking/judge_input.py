"""What the registered judge takes as questions, and the one-line refusal of anything else.

The judge's ``predict`` reads questions from every form an MLflow client hands it: a string, a
list, a numpy array or a pandas Series of strings, or a DataFrame with a ``question`` column (the
scoring server's ``dataframe_split`` and ``dataframe_records``); a list or array arrives from the
server's ``inputs`` as a DataFrame of one unnamed column. Each question must be a string that
shows something and is at most :data:`~know_thyself.data.records.MAX_QUESTION_CHARS` characters
long, the limit collect samples answers under. Anything else (no question, ``None`` or NaN, a
number, an empty or over-long text, a text of only invisible or control characters such as NUL:
:func:`~know_thyself.data.records.visible_text`, the rule question files follow too) is refused
with :class:`JudgeInputError`, naming the row and the rule, before the model sees it: never judged
as the text ``"None"`` or ``"nan"``. So is an input of several columns (a 2-D list or array, a
DataFrame with two ``question`` columns), rather than judging its first column only, and a list of
objects (``[{"question": ...}]`` as ``inputs``), named as such rather than by the numpy type the
scoring server turns each object into.

What MLflow does before ``predict`` is not the judge's to refuse: ``PyFuncModel.predict`` enforces
the judge's signature (one unnamed column) first, which keeps only the first column of a 2-D input
and turns a list of dicts into a DataFrame; docs/bad-input.md lists those cases.
"""

from __future__ import annotations

import math
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST, INTERNAL_ERROR

from know_thyself.data.records import MAX_QUESTION_CHARS, visible_text

SEND = ('send {"inputs": ["<question>", ...]} or {"dataframe_records": [{"question": "<question>"}, ...]}, '
        'or pass predict a list of strings or a DataFrame with a question column')
RULE = f"each question must be a non-empty string of at most {MAX_QUESTION_CHARS} characters"


class JudgeError(MlflowException, ValueError):
    """A refusal by the judge whose message is one line, an error of ``error_code`` from the scoring server.

    The scoring server puts the whole request in front of the message of an error raised by
    ``predict`` (``Failed to predict data '<the request>' ...``, several lines for a DataFrame, and
    the whole body however large); the message of this error stays its one line.
    """

    def __init__(self, line: str, error_code: int = INTERNAL_ERROR) -> None:
        self._line = line
        super().__init__(line, error_code=error_code)

    @property
    def message(self) -> str:
        return self._line

    @message.setter
    def message(self, value: str) -> None:
        """Set by MLflow (on construction, and by the scoring server to prefix the request): the line stays."""


class JudgeInputError(JudgeError):
    """Input the judge cannot judge: an HTTP 400 from the scoring server, whose message is one line saying what to send."""

    def __init__(self, line: str) -> None:
        super().__init__(line, error_code=BAD_REQUEST)


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
        if columns.count("question") > 1:
            raise JudgeInputError(f"the input has {columns.count('question')} columns named 'question' "
                                  f"(the questions belong in one); {SEND}")
        if "question" in columns:
            return _objects_refused(model_input["question"].tolist())
        if columns and all(isinstance(c, (int, np.integer)) for c in columns):  # a list or an array, as a frame
            if len(columns) > 1:
                raise JudgeInputError(f"{_shape(model_input.shape)} is not a list of questions; {SEND}")
            return _objects_refused(model_input.iloc[:, 0].tolist())
        shown = ", ".join(repr(c) for c in columns[:5]) or "none"
        raise JudgeInputError(f"there is no 'question' column (columns: {shown}); {SEND}")
    if isinstance(model_input, pd.Series):
        return _objects_refused(model_input.tolist())
    if isinstance(model_input, np.ndarray):
        if model_input.ndim == 2 and model_input.shape[1] == 1:
            model_input = model_input[:, 0]
        if model_input.ndim != 1:
            raise JudgeInputError(f"an array of shape {model_input.shape} is not a list of questions; {SEND}")
        return _objects_refused(model_input.tolist())
    if isinstance(model_input, (list, tuple)):
        values = list(model_input)
        if values and all(isinstance(v, (list, tuple)) for v in values):  # rows of values: a 2-D input
            widths = {len(v) for v in values}
            if widths != {1}:
                shape = (len(values), widths.pop()) if len(widths) == 1 else None
                raise JudgeInputError(f"{_shape(shape)} is not a list of questions; {SEND}")
            values = [v[0] for v in values]
        return _objects_refused(values)
    raise JudgeInputError(f"cannot read questions from a {type(model_input).__name__}; {SEND}")


def _shape(shape: tuple[int, int] | None) -> str:
    """How a refusal names a 2-D input: ``a 2-D input of 1 row and 2 columns``."""
    if shape is None:
        return "a 2-D input with rows of different lengths"
    rows, columns = shape
    return f"a 2-D input of {rows} row{'s' * (rows != 1)} and {columns} column{'s' * (columns != 1)}"


def _objects_refused(values: list[Any]) -> list[Any]:
    """``values``, unless they are objects (dicts): refused as a list of objects, named as sent.

    The scoring server turns each value of an object sent in ``inputs`` (``[{"question": "..."}]``)
    into a 0-d numpy array, and MLflow's signature check then hands the judge a column of those: such
    a column is a list of objects too.
    """
    import numpy as np

    for value in values:
        if isinstance(value, dict) or (isinstance(value, np.ndarray) and value.ndim == 0):
            raise JudgeInputError(f"the questions were sent as a list of objects (a list of dict), not of strings; {SEND}")
    return values


def _problem(value: Any) -> str:
    """What is wrong with one question ('' when nothing is)."""
    import numpy as np
    import pandas as pd

    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return f"the question is missing ({shown})"
    if not isinstance(value, str):
        kind = type(value.item() if isinstance(value, np.generic) else value).__name__  # int, not int64
        return f"the question is {'an' if kind[0] in 'aeiou' else 'a'} {kind} ({shown}), not a string"
    if not visible_text(value):
        return "the question is empty" if not value.strip() else "the question holds only invisible characters"
    if len(value) > MAX_QUESTION_CHARS:
        return f"the question is {len(value):,} characters long"
    return ""
