"""Left-padded batches for a causal LM: token ids, attention mask and the position ids that match.

With left padding, a row's first real token sits after its pads; its position ids must still
start at 0, so they are counted along the attention mask rather than along the row. Every
forward pass over a batch of prompts of different lengths goes through here (the samplers in
:mod:`know_thyself.sampling` keep their own copy of the same rule inside the decode loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch: 0 at each row's first real token (pads get 0 too)."""
    return (attention_mask.cumsum(-1) - 1).clamp_(min=0)


def encode_left_padded(tokenizer: Any, texts: Sequence[str], device: Any) -> dict[str, torch.Tensor]:
    """Tokenise already rendered prompts into one left-padded batch on ``device``.

    Returns the keyword arguments of the model's forward pass: ``input_ids``, ``attention_mask``
    and ``position_ids``. The tokenizer must pad on the left (as :func:`~know_thyself.models.load_tokenizer` sets).
    """
    enc = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
            "position_ids": position_ids(enc["attention_mask"])}


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device: Any = "cpu") -> dict[str, torch.Tensor]:
    """One left-padded batch from rows of token ids: ``input_ids``, ``attention_mask``, ``position_ids``."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        if row:
            ids[r, width - len(row):] = torch.tensor(list(row))
            mask[r, width - len(row):] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "position_ids": position_ids(mask).to(device)}
