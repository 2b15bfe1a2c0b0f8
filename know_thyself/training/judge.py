"""Training the judge: from judgment examples to a LoRA adapter, the one path train_judgment and the sweep share."""

from __future__ import annotations

from know_thyself.config.judgment import JudgeOptions
from know_thyself.data.labels import labels_for
from know_thyself.inference.judgments import label_token_ids
from know_thyself.inference.models import load_model
from know_thyself.training.judgment_examples import balance_examples, label_counts
from know_thyself.training.label_loss import TAUGHT_MIN_GROUP, class_weights, soft_targets, taught_class_weights
from know_thyself.training.lora import Trained, train_lora


def with_targets(examples: list[dict], options: JudgeOptions, scheme: str) -> list[dict]:
    """The examples with what the label loss reads: ``target`` (the label's distribution) and ``weight``.

    ``label_targets`` hard: the one-hot measured label; soft: the label distribution its trials imply
    (:func:`~know_thyself.training.label_loss.soft_targets`). ``weight``: :func:`example_weights`.
    """
    labels = labels_for(scheme)
    weights = example_weights(examples, options.balance, labels, options.taught_min_group)
    out = []
    for example, weight in zip(examples, weights):
        if options.label_targets == "soft":
            target = soft_targets(example["correct_trials"], example["trials"], scheme, labels)
        else:
            target = [1.0 if label == example["label"] else 0.0 for label in labels]
        out.append({**example, "target": target, "weight": weight})
    return out


def example_weights(examples: list[dict], balance: str, labels: tuple[str, ...],
                    taught_min_group: int = TAUGHT_MIN_GROUP) -> list[float]:
    """Each example's weight in the judge's loss (and its readout's fit) as ``balance`` says.

    ``weights``: its label's class weight (:func:`~know_thyself.training.label_loss.class_weights`);
    ``taught``: the class weight split evenly between the label's taught and untaught examples
    where each has at least ``taught_min_group`` (the judge's option of that name;
    :func:`~know_thyself.training.label_loss.taught_class_weights`); otherwise 1.
    """
    if balance == "taught":
        return taught_class_weights(examples, labels, min_group=taught_min_group)
    if balance == "weights":
        by_label = class_weights([e["label"] for e in examples], labels)
        return [by_label[e["label"]] for e in examples]
    return [1.0] * len(examples)


def fit_judge(
    examples: list[dict], options: JudgeOptions, scheme: str, model_and_tokenizer: tuple | None = None,
    callbacks: tuple = (), model: str = "",
) -> Trained:
    """LoRA-train the judge on judgment examples as ``options`` say.

    ``loss`` label trains the cross-entropy over the label words at the label position, with class
    weights or copies for balance and hard or soft targets; ``loss`` sft trains TRL's loss on the
    completion tokens. The label counts the training saw join the summary metrics
    (``train/balanced_count/<label>``).

    Args:
        examples: Judgment examples (:func:`know_thyself.training.judgment_examples.build_examples`).
        options: The judge's training options.
        scheme: The label scheme of the examples.
        model_and_tokenizer: An already loaded ``(model, tokenizer)`` in float32 to train.
        callbacks: Trainer callbacks (the step's metrics logger, the best-epoch keeper).
        model: The model argument to load when ``model_and_tokenizer`` is not given.
    """
    balanced = balance_examples(examples, "oversample" if options.balance == "oversample" else "none", options.seed)
    model_and_tokenizer = model_and_tokenizer or load_model(model, dtype="float32")
    label_ids = None
    if options.loss == "label":
        balanced = with_targets(balanced, options, scheme)
        label_ids = label_token_ids(model_and_tokenizer[1], labels_for(scheme))
    # Random batches: oversampled copies share a length, and length grouping would batch them together.
    trained = train_lora(balanced, options, model_and_tokenizer, group_by_length=False, callbacks=callbacks,
                         label_ids=label_ids)
    trained.metrics.update({f"train/balanced_count/{label}": float(n) for label, n in label_counts(balanced).items()})
    return trained
