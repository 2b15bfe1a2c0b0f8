"""Training the judge: from judgment examples to a LoRA adapter, the one path train_judgment and the sweep share."""

from __future__ import annotations

from know_thyself.config import TrainingOptions
from know_thyself.training.judgment_examples import balance_examples, label_counts
from know_thyself.training.lora import Trained, train_lora


def fit_judge(
    examples: list[dict], training: TrainingOptions, balance: str, model_and_tokenizer: tuple | None = None,
    callbacks: tuple = (),
) -> Trained:
    """Balance judgment examples and LoRA-train the judge on them.

    The balanced label counts join the summary metrics (``train/balanced_count/<label>``).

    Args:
        examples: Judgment SFT examples (:func:`know_thyself.training.judgment_examples.build_examples`).
        training: The LoRA training options (a :class:`~know_thyself.config.TrainConfig` names the model to load).
        balance: ``none`` or ``oversample`` (:func:`know_thyself.training.judgment_examples.balance_examples`).
        model_and_tokenizer: An already loaded ``(model, tokenizer)`` in float32 to train.
        callbacks: Trainer callbacks (the step's metrics logger).
    """
    balanced = balance_examples(examples, balance, training.seed)
    # Random batches: oversampled copies share a length, and length grouping would batch them together.
    trained = train_lora(balanced, training, model_and_tokenizer, group_by_length=False, callbacks=callbacks)
    trained.metrics.update({f"train/balanced_count/{label}": float(n) for label, n in label_counts(balanced).items()})
    return trained
