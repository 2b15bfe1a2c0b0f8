"""The judge's stacked readout: its label probabilities and the first answer token's probability, through one linear layer.

A judge that reads only the judgment prompt cannot see what a fine-tuning taught the model: that
shows in how sure the model is of its answer, not in any prompt's hidden state
(docs/experiments.md, "The judge's recipe"). The stacked readout gives the judge that signal
before answering: for each question the features are

* the logarithms of the judge's three (or two) label probabilities at the label position, and
* the logarithm of the base model's probability of its greedy first answer token at the end of
  the answer prompt (:func:`know_thyself.inference.judgments.first_token_probability`, one forward,
  nothing generated),

and a multinomial logistic regression fitted on the judge's dev split
(:func:`know_thyself.training.readout.fit_readout`) turns them into the label probabilities. The
fitted layer is plain numbers (``readout.json``), applied here with numpy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

READOUT_FILE = "readout.json"
FEATURES = ("log_p_label", "log_p_first_token")
_FLOOR = 1e-12


def readout_features(label_probabilities: np.ndarray, first_token: np.ndarray) -> np.ndarray:
    """(n, n_labels + 1): the log label probabilities, then the log first-token probability (both floored at 1e-12)."""
    probs = np.asarray(label_probabilities, dtype=float)
    first = np.asarray(first_token, dtype=float).reshape(-1, 1)
    if probs.shape[0] != first.shape[0]:
        raise ValueError(f"{probs.shape[0]} judgments but {first.shape[0]} first-token probabilities")
    return np.log(np.clip(np.hstack([probs, first]), _FLOOR, 1.0))


@dataclass(frozen=True)
class Readout:
    """A fitted linear readout: label probabilities = softmax(features @ coef.T + intercept).

    Attributes:
        labels: The label scheme, in the judge's order.
        coef: (n_labels, n_labels + 1) weights on :func:`readout_features`.
        intercept: (n_labels,) biases.
    """

    labels: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.labels)
        coef, intercept = np.asarray(self.coef, dtype=float), np.asarray(self.intercept, dtype=float)
        if coef.shape != (n, n + 1) or intercept.shape != (n,):
            raise ValueError(
                f"a readout for {n} labels needs coef of shape ({n}, {n + 1}) and intercept of shape ({n},), "
                f"got {coef.shape} and {intercept.shape}"
            )
        if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
            raise ValueError("the readout's weights are not all finite numbers; refit it")
        object.__setattr__(self, "coef", coef)
        object.__setattr__(self, "intercept", intercept)

    def probabilities(self, label_probabilities: np.ndarray, first_token: np.ndarray) -> np.ndarray:
        """(n, n_labels) label probabilities, rows summing to one."""
        scores = readout_features(label_probabilities, first_token) @ self.coef.T + self.intercept
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)

    def apply(self, judged: Any, first_token: np.ndarray) -> Any:
        """The judgments with this readout's probabilities and their most probable label as the prediction.

        ``off_label`` becomes all False (the prediction no longer comes from the greedy token);
        ``label_mass`` keeps what the label tokens held at the label position.
        """
        if tuple(judged.labels) != self.labels:
            raise ValueError(f"the readout was fitted for labels {list(self.labels)}, the judge gives {list(judged.labels)}")
        probs = self.probabilities(judged.probabilities, first_token)
        predicted = [self.labels[i] for i in probs.argmax(axis=1)] if len(probs) else []
        return replace(judged, predicted=predicted, probabilities=probs, off_label=[False] * len(predicted))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(FEATURES), "labels": list(self.labels),
                "coef": self.coef.tolist(), "intercept": self.intercept.tolist()}

    @classmethod
    def from_dict(cls, data: Any) -> Readout:
        """A readout from :meth:`to_dict`'s form; anything else is refused with one line."""
        if not isinstance(data, dict) or data.get("features") != list(FEATURES):
            raise ValueError(f"not a judge readout: expected an object with features {list(FEATURES)}")
        labels = data.get("labels")
        if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
            raise ValueError("the readout's labels must be a list of label names")
        try:
            coef = np.array(data.get("coef"), dtype=float)
            intercept = np.array(data.get("intercept"), dtype=float)
        except (TypeError, ValueError) as error:
            raise ValueError(f"the readout's weights are not numbers: {error}") from None
        return cls(tuple(labels), coef, intercept)

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: Path | str) -> Readout:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not JSON ({error}); log the judge again") from None
        return cls.from_dict(data)


def describe_readout(readout: Readout) -> str:
    """One line: the first-token weight per label (how much the answer side moves each label)."""
    weights = ", ".join(f"{label} {readout.coef[i, -1]:+.2f}" for i, label in enumerate(readout.labels))
    return f"first-token weight per label: {weights}"
