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

A readout is checked when it is made or loaded, so that no probability it gives can be NaN or
infinite: every weight must be finite and at most :data:`MAX_WEIGHT` in size (see
:class:`Readout` for why that bound suffices). A ``readout.json`` that cannot be read (not UTF-8,
not JSON, nested too deeply, a number too big for a float) or that holds anything else is refused
with one line (``ValueError``) naming the file; the judge then does not load.
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
#: The largest absolute weight (coefficient or intercept) a readout may hold; see :class:`Readout`.
MAX_WEIGHT = 1e300


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

    Why the weights are bounded by :data:`MAX_WEIGHT` (1e300): every feature is the logarithm of a
    probability floored at 1e-12, so it lies in [log 1e-12, 0], about [-27.7, 0]. Every partial sum
    of a label's score is then at most ``MAX_WEIGHT * (27.7 * (n_labels + 1) + 1)`` in size, below
    1.2e302 for three labels (and below float64's largest value, about 1.8e308, for any scheme of
    fewer than a million labels): no product or sum overflows, every score is finite. The softmax
    subtracts each row's largest score before exponentiating, so every exponent is at most 0 (a
    difference too large for a float64 is ``-inf``, whose exponential is 0, not NaN), every term
    lies in [0, 1] with the largest exactly 1, and the denominator in [1, n_labels]: every
    probability is a finite number in [0, 1] and each row sums to one. Without the bound a finite
    but huge weight (1e308) makes a score infinite and the softmax ``inf - inf``, NaN. The bound is
    that loose on purpose: :func:`know_thyself.training.readout.fit_readout` divides its weights by
    each feature's spread, so a judge whose label probability barely varies over the dev split
    (a confident judge: log-probabilities within 1e-9 of each other) gets large but legitimate
    weights, which a tighter bound such as 1e6 would refuse.

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
        largest = max(np.abs(coef).max(initial=0.0), np.abs(intercept).max(initial=0.0))
        if largest > MAX_WEIGHT:
            raise ValueError(f"the readout holds a weight of size {largest:.3g}, above the largest a readout may hold "
                             f"({MAX_WEIGHT:.0e}, beyond which a probability can overflow to NaN); refit it")
        object.__setattr__(self, "coef", coef)
        object.__setattr__(self, "intercept", intercept)

    def probabilities(self, label_probabilities: np.ndarray, first_token: np.ndarray) -> np.ndarray:
        """(n, n_labels) label probabilities, rows summing to one (finite: see the class docstring).

        Raises:
            ValueError: when a probability would not be a finite number: NaN among the inputs (a
                damaged model), or weights changed past the checks after the readout was made.
        """
        features = readout_features(label_probabilities, first_token)
        if not np.isfinite(features).all():
            raise ValueError("the readout's inputs (label and first-token probabilities) are not all finite numbers")
        scores = features @ self.coef.T + self.intercept
        if not np.isfinite(scores).all():
            raise ValueError("the readout's weights give scores that are not finite numbers; refit it")
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
        except (TypeError, ValueError, OverflowError) as error:  # OverflowError: an integer too big for a float
            raise ValueError(f"the readout's weights are not numbers: {error}") from None
        return cls(tuple(labels), coef, intercept)

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: Path | str) -> Readout:
        """The readout in ``path`` (a ``readout.json``), checked as :meth:`from_dict` checks it.

        Raises:
            ValueError: one line naming ``path``, when it cannot be read (not UTF-8, not JSON,
                nested too deeply, a number too big for a float) or is not a readout.
        """
        fix = "log the judge again (or refit its readout)"
        try:
            text = Path(path).read_bytes().decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{path} is not UTF-8 text (byte {error.start}); {fix}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not JSON ({error}); {fix}") from None
        except RecursionError:
            raise ValueError(f"{path} is not a judge readout: its JSON is nested too deeply to read; {fix}") from None
        except ValueError as error:  # an integer of more digits than Python converts (4,300 by default)
            raise ValueError(f"{path} cannot be read as JSON: it holds a number of more digits than Python reads "
                             f"({str(error).split(';')[0]}); {fix}") from None
        try:
            return cls.from_dict(data)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None


def describe_readout(readout: Readout) -> str:
    """One line: the first-token weight per label (how much the answer side moves each label)."""
    weights = ", ".join(f"{label} {readout.coef[i, -1]:+.2f}" for i, label in enumerate(readout.labels))
    return f"first-token weight per label: {weights}"
