"""Asking a model for its judgment: the predicted label and the three label probabilities.

One forward pass per batch over the judgment prompt. The next-token distribution at the
label position gives both answers at once:

* the greedy prediction is the arg-max token over the whole vocabulary; when it is the first
  token of a label word, that label is the prediction (the label words' first tokens must be
  distinct, which :func:`label_token_ids` checks). When greedy decoding would say something
  else, the prediction falls back to the most probable label and the row is counted
  ``off_label``;
* the label probabilities are the probabilities of the labels' first tokens, renormalised to
  sum to one (``label_mass`` keeps the share of probability they held before).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from know_thyself.batching import encode_left_padded
from know_thyself.labels import labels_for
from know_thyself.prompts import judgment_messages, render


@dataclass
class Judgments:
    """Per-question judgment results, aligned with the input questions."""

    labels: tuple[str, ...]
    predicted: list[str]
    probabilities: np.ndarray  # (n, len(labels)), rows sum to one
    off_label: list[bool]
    label_mass: np.ndarray  # (n,), probability the label tokens held before renormalising


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> list[int]:
    """The first token id of each label word as the assistant's reply begins; must be distinct."""
    ids = [tokenizer.encode(label, add_special_tokens=False)[0] for label in labels]
    if len(set(ids)) != len(ids):
        raise ValueError(
            f"the tokenizer gives label words {list(labels)} the same first token; "
            "their probabilities cannot be told apart with this model"
        )
    return ids


@torch.inference_mode()
def judge(model: Any, tokenizer: Any, questions: Sequence[str], scheme: str = "three", batch_size: int = 32) -> Judgments:
    """Judge each question before answering it.

    Args:
        model: A causal LM (optionally with a judgment adapter) in eval mode.
        tokenizer: Its tokenizer (left padding).
        questions: Question texts.
        scheme: Label scheme, ``three`` or ``binary``.
        batch_size: Questions per forward pass.
    """
    labels = labels_for(scheme)
    token_ids = torch.tensor(label_token_ids(tokenizer, labels))
    predicted: list[str] = []
    off_label: list[bool] = []
    probabilities, masses = [], []
    for start in range(0, len(questions), batch_size):
        prompts = [render(tokenizer, judgment_messages(q, scheme)) for q in questions[start : start + batch_size]]
        logits = model(**encode_left_padded(tokenizer, prompts, model.device)).logits[:, -1, :].float().cpu()
        probs = torch.softmax(logits, dim=-1)
        label_probs = probs[:, token_ids]
        mass = label_probs.sum(dim=-1)
        greedy = logits.argmax(dim=-1)
        for row, top in enumerate(greedy.tolist()):
            matches = (token_ids == top).nonzero()
            if matches.numel():
                predicted.append(labels[int(matches[0, 0])])
                off_label.append(False)
            else:
                predicted.append(labels[int(label_probs[row].argmax())])
                off_label.append(True)
        probabilities.append((label_probs / mass.clamp_min(1e-30)[:, None]).numpy())
        masses.append(mass.numpy())
    return Judgments(
        labels=labels,
        predicted=predicted,
        probabilities=np.concatenate(probabilities) if probabilities else np.zeros((0, len(labels))),
        off_label=off_label,
        label_mass=np.concatenate(masses) if masses else np.zeros(0),
    )
