"""Reference scores the trained judge is compared with, computed from the model itself.

* :func:`greedy_answers`: each question's greedy answer (the answer the judge predicts about),
  graded, with the mean log-probability of its tokens: an *after-answering* confidence that
  needs the answer first, reported for reference only.
* :func:`prompt_features` and :class:`LinearProbe`: the last-layer hidden state at the end of
  the judgment prompt, and a scikit-learn logistic regression on it fitted to the train split's
  ability labels: a cheap "knows before answering" reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from know_thyself.batching import encode_left_padded, left_pad
from know_thyself.grading import is_correct
from know_thyself.prompts import answer_messages, judgment_messages, render
from know_thyself.sampling import sample_answers


@dataclass
class GreedyAnswers:
    """Greedy answers, their correctness and mean token log-probability, aligned with the input."""

    answers: list[str]
    correct: list[bool]
    mean_logprob: np.ndarray


@torch.inference_mode()
def _mean_logprobs(model: Any, tokenizer: Any, prompts: Sequence[str], answers: Sequence[str], batch_size: int) -> np.ndarray:
    """Mean log-probability of each answer's tokens after its prompt (teacher forcing)."""
    values = []
    pad = tokenizer.pad_token_id
    for start in range(0, len(prompts), batch_size):
        chunk = range(start, min(start + batch_size, len(prompts)))
        prompt_ids = [tokenizer(prompts[i], add_special_tokens=False)["input_ids"] for i in chunk]
        answer_ids = [tokenizer(answers[i], add_special_tokens=False)["input_ids"] for i in chunk]
        rows = [p + a for p, a in zip(prompt_ids, answer_ids)]
        width = max(len(r) for r in rows)
        batch = left_pad(rows, pad, model.device)  # left padding, like the samplers
        logits = model(**batch).logits.float().cpu()
        ids = batch["input_ids"].cpu()
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        for r, answer in enumerate(answer_ids):
            if not answer:
                values.append(float("-inf"))
                continue
            values.append(float(logprobs[r, width - 1 - len(answer) :].mean()))
    return np.array(values)


def greedy_answers(
    model: Any, tokenizer: Any, questions: Sequence[str], aliases: Sequence[Sequence[str]],
    max_new_tokens: int = 24, batch_size: int = 32,
) -> GreedyAnswers:
    """Greedy answers to the answer prompt, graded, with their mean token log-probability."""
    prompts = [render(tokenizer, answer_messages(q)) for q in questions]
    answers = [a[0] for a in sample_answers(model, tokenizer, prompts, 1, max_new_tokens, temperature=0, batch_size=batch_size)]
    correct = [is_correct(a, al) for a, al in zip(answers, aliases)]
    return GreedyAnswers(answers, correct, _mean_logprobs(model, tokenizer, prompts, answers, batch_size))


@torch.inference_mode()
def prompt_features(model: Any, tokenizer: Any, questions: Sequence[str], scheme: str, batch_size: int = 32) -> np.ndarray:
    """Last-layer hidden state at the last token of each question's judgment prompt, shape (n, hidden)."""
    features = []
    for start in range(0, len(questions), batch_size):
        prompts = [render(tokenizer, judgment_messages(q, scheme)) for q in questions[start : start + batch_size]]
        out = model(**encode_left_padded(tokenizer, prompts, model.device), output_hidden_states=True)
        features.append(out.hidden_states[-1][:, -1, :].float().cpu().numpy())
    return np.concatenate(features) if features else np.zeros((0, 0))


class LinearProbe:
    """Logistic regression from prompt features to ability labels (standardised features, balanced classes)."""

    def __init__(self, labels: Sequence[str], seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.labels = tuple(labels)
        self.model = make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=2000, C=0.1, class_weight="balanced", random_state=seed)
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
