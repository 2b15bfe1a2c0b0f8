"""The train_judgment step: LoRA SFT of the judge on a build_judgment_data run."""

from __future__ import annotations

from typing import Any

from know_thyself.config import TrainConfig
import mlflow

from know_thyself.judgment_data import balance_examples, label_counts, read_examples
from know_thyself.registry import log_judge
from know_thyself.tracking import require_step_run, step_run
from know_thyself.training import log_adapter, train_lora


def run_train_judgment(cfg: TrainConfig, reuse: bool = True) -> Any:
    """The train_judgment step: LoRA SFT on a build_judgment_data run's train split.

    Logs the adapter (``adapter/``) and the judge as a pyfunc model (``judge/``) ready to register.
    """
    upstream = require_step_run(cfg.data_run_id, "build_judgment_data", "data_run_id")
    scheme = upstream.data.params.get("label_scheme", "three")
    with step_run(cfg.step, cfg.params(), reuse=reuse) as run:
        if not run.reused:
            examples = balance_examples(read_examples(cfg.data_run_id, "train"), cfg.balance, cfg.seed)
            mlflow.log_metrics({f"train/balanced_count/{label}": n for label, n in label_counts(examples).items()})
            trainer = train_lora(examples, cfg)
            adapter_dir = log_adapter(trainer, cfg.model)
            if adapter_dir is not None:
                # The judge as a loadable pyfunc: base model named, adapter inside, no local paths.
                log_judge(str(adapter_dir), cfg.model, scheme)
    return run
