"""The judge's loss: a cross-entropy over the label words only, read at the label position.

The judge answers the judgment prompt with one label word. Trained as plain SFT, its loss covers
every completion token (the word's sub-tokens and the end-of-turn markup) and spreads over the
whole vocabulary. Here, as in Kapoor et al. (2024, "Large language models must be taught to know
what they don't know"), the judgment is read and trained as a softmax restricted to the label
words' first tokens at the position that predicts the completion's first token:

    p(k | question) = softmax(z[label_ids])_k,    loss = sum_i w_i * CE(target_i, p_i) / n
                      + mass_weight * mean_i(-log sum_k softmax(z_i)[label_ids_k])

* ``target_i`` is the one-hot measured label, or with soft targets the distribution of the label
  that a fresh set of trials would give (:func:`soft_targets`): a question answered right 4 times
  in 5 is not as sure an ``uncertain`` as one answered right 3 times;
* ``w_i`` is the class weight of its label (:func:`class_weights`, balanced and with mean 1
  over the examples), in place of copying the rarer labels' examples; after Phase 2 it can also
  even out taught and untaught questions within each label (:func:`taught_class_weights`);
* the second term keeps the label words the model's greedy reply (their share of the whole
  vocabulary's probability near one), so that greedy decoding still says the label.

The numbers that shape the loss are the judge's options (logged on its training run):
``label_mass_weight`` is ``mass_weight`` and ``taught_min_group`` the floor of
:func:`taught_class_weights` (:class:`~know_thyself.config.judgment.JudgeOptions`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

from know_thyself.config.judgment import JudgeOptions
from know_thyself.data.labels import ability_from_trials

# How strongly the label words are kept the greedy reply (see the module doc): the default of the
# judge's ``label_mass_weight`` option, whose value the training passes in.
MASS_WEIGHT = JudgeOptions.label_mass_weight
# The fewest taught and untaught examples a label needs before its weight is split between them
# (:func:`taught_class_weights`): the default of the judge's ``taught_min_group`` option.
TAUGHT_MIN_GROUP = JudgeOptions.taught_min_group


def class_weights(labels: Sequence[str], scheme_labels: Sequence[str]) -> dict[str, float]:
    """Balanced class weights, ``n / (K * n_k)`` for each label present, so that the weights' mean over the examples is 1.

    A label no example carries gets no weight (it cannot appear in a target).
    """
    counts = Counter(labels)
    present = [label for label in scheme_labels if counts.get(label)]
    if not present:
        raise ValueError("there are no labelled examples to weigh; check the upstream data step")
    return {label: len(labels) / (len(present) * counts[label]) for label in present}


def taught_class_weights(examples: Sequence[dict], scheme_labels: Sequence[str],
                         min_group: int = TAUGHT_MIN_GROUP) -> list[float]:
    """Per-example weights that balance the labels and, within each label, taught and untaught questions.

    After Phase 2 most `can` questions were taught, so a judge that learns "this question was
    taught" fits its labels without reading what decides them for the other questions (validation
    has no taught question). Here every label gets the same total weight, as in
    :func:`class_weights`, and a label's weight is split evenly between its taught and untaught
    examples: ``n / (K * 2 * n_kg)`` for an example of label ``k`` in group ``g``, with ``K`` labels
    present. A label is split only where both of its groups have at least ``min_group`` examples;
    otherwise its examples share its weight equally, as plain class weights do. (Split regardless,
    a label with two taught examples would give each a quarter of the label's weight, over twenty
    times an average example's; measured, that made judgment v2 worse.) Where every label is split,
    whether a question was taught says nothing about its label. The weights' mean over the examples
    is 1. An example without a ``taught`` field counts as untaught, so on examples with none of it
    these are the plain class weights.
    """
    if min_group < 1:
        raise ValueError(f"min_group must be at least 1, got {min_group}")
    marked = [(example["label"], bool(example.get("taught", False))) for example in examples]
    labels = [label for label, _ in marked]
    by_label, counts, cells = class_weights(labels, scheme_labels), Counter(labels), Counter(marked)
    split = {label for label in counts if min(cells[(label, True)], cells[(label, False)]) >= min_group}
    return [by_label[label] * counts[label] / (2 * cells[(label, taught)]) if label in split else by_label[label]
            for label, taught in marked]


def soft_targets(correct: int, trials: int, scheme: str, scheme_labels: Sequence[str]) -> list[float]:
    """The distribution of the label that ``trials`` fresh answers would give, after ``correct`` of ``trials`` were right.

    The question's chance of a right answer gets the Jeffreys posterior Beta(correct + 1/2,
    trials - correct + 1/2); the number right in ``trials`` new answers then follows the
    beta-binomial distribution, and each count maps to a label by the same rule as the measured
    label (:func:`know_thyself.data.labels.ability_from_trials`).

    Returns:
        One probability per label of ``scheme_labels``, summing to one.
    """
    if not 0 <= correct <= trials or trials < 1:
        raise ValueError(f"correct must be in 0..trials with trials >= 1, got {correct} of {trials}")
    a, b = correct + 0.5, trials - correct + 0.5
    out = dict.fromkeys(scheme_labels, 0.0)
    for k in range(trials + 1):
        log_p = (math.lgamma(trials + 1) - math.lgamma(k + 1) - math.lgamma(trials - k + 1)
                 + math.lgamma(k + a) + math.lgamma(trials - k + b) - math.lgamma(trials + a + b)
                 + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))
        out[ability_from_trials([True] * k + [False] * (trials - k), scheme)] += math.exp(log_p)
    total = sum(out.values())
    return [out[label] / total for label in scheme_labels]


def label_positions(labels: torch.Tensor) -> torch.Tensor:
    """Per row, the position whose next-token logits predict the completion's first token.

    ``labels`` holds -100 outside the completion (TRL's completion-only labels); the completion's
    first token sits at the first position that is not -100, and is predicted one position before.
    """
    trained = labels != -100
    if not bool(trained.any(dim=1).all()):
        raise ValueError("a judgment example has no completion token to train on; check the judgment data")
    return trained.int().argmax(dim=1) - 1


def restricted_label_loss(
    logits: torch.Tensor, label_ids: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
    mass_weight: float = MASS_WEIGHT,
) -> torch.Tensor:
    """The loss of the module doc, from the whole vocabulary's logits at each row's label position.

    Args:
        logits: (n, vocabulary) next-token logits at the label position.
        label_ids: (K,) the label words' first token ids, in label order.
        targets: (n, K) target distribution per row (one-hot or soft).
        weights: (n,) per-row weight (the class weight of the row's label).
        mass_weight: Weight of the term that keeps the label words the greedy reply.
    """
    logits = logits.float()
    restricted = torch.log_softmax(logits[:, label_ids], dim=-1)
    cross_entropy = -(targets * restricted).sum(dim=-1)
    label_mass = torch.logsumexp(torch.log_softmax(logits, dim=-1)[:, label_ids], dim=-1)
    return (weights * cross_entropy).sum() / len(weights) - mass_weight * label_mass.mean()
