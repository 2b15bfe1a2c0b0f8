"""The train_judgment step: LoRA SFT of the judge on a build_judgment_data run.

Logs the adapter (``adapter/``), the training loss, and the judge as a pyfunc model (``judge/``)
ready to register.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow

from know_thyself.config import TrainConfig, TrainingOptions
from know_thyself.judgment_data import ARTIFACT_DIR, balance_examples, label_counts
from know_thyself.models import check_model_exists
from know_thyself.registry import log_judge
from know_thyself.tracking import StepRun, describe_run, read_jsonl_artifact, require_step_run, step_run
from know_thyself.training import log_adapter, train_lora


def run_train_judgment(cfg: TrainConfig, reuse: bool = True) -> StepRun:
    """The train_judgment step: LoRA SFT on a build_judgment_data run's train split."""
    upstream = require_step_run(cfg.data_run_id, "build_judgment_data", "data_run_id")
    scheme = upstream.data.params.get("label_scheme", "three")
    check_model_exists(cfg.model)
    with step_run(cfg.step, cfg.params(), reuse=reuse) as run:
        if not run.reused:
            examples = read_jsonl_artifact(upstream.info.run_id, f"{ARTIFACT_DIR}/train.jsonl")
            trainer = fit_judge(examples, cfg, cfg.balance)
            with tempfile.TemporaryDirectory(prefix="know-thyself-adapter-") as scratch:
                adapter_dir = log_adapter(trainer, cfg.model, folder=Path(scratch))
                if adapter_dir is not None:
                    # The judge as a loadable pyfunc: base model named, adapter inside, no local paths.
                    log_judge(str(adapter_dir), cfg.model, scheme)
                    describe_run(
                        f"Trained the judgment LoRA adapter (r {cfg.lora_r}) on {cfg.model} with {len(examples)} examples "
                        f"({cfg.balance} balancing) for {trainer.state.global_step} steps; logged the judge as a "
                        "pyfunc model under judge/."
                    )
    return run


def fit_judge(examples: list[dict], training: TrainingOptions, balance: str, model_and_tokenizer: tuple | None = None) -> Any:
    """Balance judgment examples and LoRA-train the judge on them, logging into the active run.

    The one code path from judgment examples to a trained judge, shared by train_judgment and
    every grid point of the sweep: the balanced label counts (``train/balanced_count/<label>``)
    and the training metrics go to the active run. Returns the trainer.

    Args:
        examples: Judgment SFT examples (:func:`know_thyself.judgment_data.build_examples`).
        training: The LoRA training options (a :class:`TrainConfig` names the model to load).
        balance: ``none`` or ``oversample`` (:func:`know_thyself.judgment_data.balance_examples`).
        model_and_tokenizer: An already loaded ``(model, tokenizer)`` in float32 to train.
    """
    examples = balance_examples(examples, balance, training.seed)
    mlflow.log_metrics({f"train/balanced_count/{label}": n for label, n in label_counts(examples).items()})
    # Random batches: oversampled copies share a length, and length grouping would batch them together.
    return train_lora(examples, training, model_and_tokenizer, group_by_length=False)
