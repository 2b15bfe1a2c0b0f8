"""Reference scores the trained judge is compared with, computed from the model itself.

(The greedy answers and their mean token log-probability, an *after-answering* confidence, come
from the collect step's sampler: :class:`know_thyself.inference.sampling.Answers`.)

* :func:`prompt_features` and :class:`LinearProbe`: the last-layer hidden state at the end of
  the judgment prompt, and a scikit-learn logistic regression on it fitted to the train split's
  ability labels: a cheap "knows before answering" reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from know_thyself.inference.judgments import judgment_forward


def prompt_features(model: Any, tokenizer: Any, questions: Sequence[str], scheme: str, batch_size: int = 32) -> np.ndarray:
    """Last-layer hidden state at the last token of each question's judgment prompt, shape (n, hidden).

    The forward is :func:`know_thyself.inference.judgments.judgment_forward`'s (shared system text prefilled once).
    """
    _, hidden = judgment_forward(model, tokenizer, questions, scheme, batch_size, hidden=True)
    return hidden.numpy() if len(questions) else np.zeros((0, 0))


class LinearProbe:
    """Logistic regression from prompt features to ability labels (standardised features, balanced classes).

    Args:
        labels: The label scheme, in the order of :meth:`predict_proba`'s columns.
        c: Inverse regularisation strength (scikit-learn's ``C``): the evaluation's ``probe_c`` option.
        seed: The regression's random state.
    """

    def __init__(self, labels: Sequence[str], c: float, seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.labels = tuple(labels)
        self.model = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=2000, C=c, class_weight="balanced", random_state=seed)
        )
        self.constant: str | None = None

    def fit(self, features: np.ndarray, targets: Sequence[str]) -> LinearProbe:
        """Fit on train features; with a single class present the probe predicts that class."""
        if len(set(targets)) < 2:
            self.constant = targets[0] if len(targets) else self.labels[-1]
            return self
        self.model.fit(features, list(targets))
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probabilities with columns in ``labels`` order (zero for a class unseen in training)."""
        out = np.zeros((features.shape[0], len(self.labels)))
        if self.constant is not None:
            out[:, self.labels.index(self.constant)] = 1.0
            return out
        probs = self.model.predict_proba(features)
        for column, label in enumerate(self.model.classes_):
            out[:, self.labels.index(label)] = probs[:, column]
        return out
