"""Asking a model for its judgment (the predicted label and the label probabilities), and how sure it is of its answer before answering.

One forward pass per batch over the judgment prompt, after its shared system text has been
prefilled once (:func:`judgment_forward`). The next-token distribution at the label position
gives both answers at once:

* the greedy prediction is the arg-max token over the whole vocabulary; when it is the first
  token of a label word, that label is the prediction (the label words' first tokens must be
  distinct, which :func:`label_token_ids` checks). When greedy decoding would say something
  else, the prediction falls back to the most probable label and the row is counted
  ``off_label``;
* the label probabilities are the probabilities of the labels' first tokens, renormalised to
  sum to one (``label_mass`` keeps the share of probability they held before).

The logits are float32 whatever the model's dtype: for a bf16 model the head's matrix product is
redone in float32 from the final hidden state (:func:`know_thyself.inference.prefix_cache.fp32_logits`),
and the softmax runs in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from know_thyself.data.labels import DEFAULT_SCHEME, labels_for
from know_thyself.data.prompts import answer_messages, judgment_messages, render
from know_thyself.inference.prefix_cache import last_position_ids, tokenize


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


def judgment_ids(tokenizer: Any, questions: Sequence[str], scheme: str = DEFAULT_SCHEME) -> list[list[int]]:
    """Token ids of each question's judgment prompt (chat template applied), for :func:`judgment_forward`."""
    return tokenize(tokenizer, [render(tokenizer, judgment_messages(q, scheme)) for q in questions])


def judgment_forward(
    model: Any, tokenizer: Any, questions: Sequence[str], scheme: str = DEFAULT_SCHEME, batch_size: int = 32,
    hidden: bool = False, ids: Sequence[Sequence[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One forward over the judgment prompts: next-token logits and, if asked, the last hidden state.

    The prompts' shared system text is prefilled once for the call (:mod:`know_thyself.inference.prefix_cache`).
    One call can serve both :func:`judge` (through :func:`judgments_from_logits`) and the probe
    features of :func:`know_thyself.evaluation.probe.prompt_features`.

    Args:
        ids: The prompts already tokenised by :func:`judgment_ids` (``questions`` is then not
            read again), so that a base model and its adapter share one tokenisation.

    Returns:
        ``(logits, hidden)``: float32 CPU tensors (n, vocab) and (n, hidden_size) or None.
    """
    if ids is None:
        ids = judgment_ids(tokenizer, questions, scheme)
    return last_position_ids(model, ids, tokenizer.pad_token_id, batch_size, hidden=hidden)


def judgments_from_logits(logits: torch.Tensor, tokenizer: Any, scheme: str = DEFAULT_SCHEME) -> Judgments:
    """Predicted labels and label probabilities from the next-token logits at the label position."""
    labels = labels_for(scheme)
    token_ids = torch.tensor(label_token_ids(tokenizer, labels))
    if logits.shape[0] == 0:
        return Judgments(labels, [], np.zeros((0, len(labels))), [], np.zeros(0))
    logits = logits.float()
    label_probs = torch.softmax(logits, dim=-1)[:, token_ids]
    mass = label_probs.sum(dim=-1)
    predicted: list[str] = []
    off_label: list[bool] = []
    for row, top in enumerate(logits.argmax(dim=-1).tolist()):
        matches = (token_ids == top).nonzero()
        if matches.numel():
            predicted.append(labels[int(matches[0, 0])])
            off_label.append(False)
        else:
            predicted.append(labels[int(label_probs[row].argmax())])
            off_label.append(True)
    return Judgments(
        labels=labels,
        predicted=predicted,
        probabilities=(label_probs / mass.clamp_min(1e-30)[:, None]).numpy(),
        off_label=off_label,
        label_mass=mass.numpy(),
    )


def judge(model: Any, tokenizer: Any, questions: Sequence[str], scheme: str = DEFAULT_SCHEME, batch_size: int = 32) -> Judgments:
    """Judge each question before answering it.

    Args:
        model: A causal LM (optionally with a judgment adapter) in eval mode.
        tokenizer: Its tokenizer (left padding).
        questions: Question texts.
        scheme: Label scheme, ``three`` or ``binary``.
        batch_size: Questions per forward pass.
    """
    logits, _ = judgment_forward(model, tokenizer, questions, scheme, batch_size)
    return judgments_from_logits(logits, tokenizer, scheme)


def first_token_probability(model: Any, tokenizer: Any, questions: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """The probability of the greedy first answer token at the end of each question's answer prompt.

    One forward over the answer prompts (the prompt the model answers with; their shared system
    text and worked examples prefilled once), nothing generated: how sure the model is of how its
    answer begins, before it answers. The softmax is over the whole vocabulary in float32.

    Returns:
        Shape (n,), each in (0, 1].
    """
    if not questions:
        return np.zeros(0)
    prompts = [render(tokenizer, answer_messages(q)) for q in questions]
    logits, _ = last_position_ids(model, tokenize(tokenizer, prompts), tokenizer.pad_token_id, batch_size)
    return torch.softmax(logits.float(), dim=-1).amax(dim=-1).numpy().astype(float)
