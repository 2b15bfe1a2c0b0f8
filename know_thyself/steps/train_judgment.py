"""The train_judgment step: LoRA SFT of the judge on a build_judgment_data run.

Logs the adapter (``adapter/``), the training loss, and the judge as a pyfunc model (``judge/``)
ready to register.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow

from know_thyself.config import TrainConfig
from know_thyself.data.labels import scheme_of
from know_thyself.evaluation.methods import epoch_scorer
from know_thyself.inference.models import check_model_exists, load_model
from know_thyself.tracking import StepRun, code, describe_run, read_jsonl_artifact, require_step_run, step_run
from know_thyself.tracking.datasets import log_collect_questions
from know_thyself.tracking.registry import log_judge
from know_thyself.tracking.training_log import MlflowMetricsCallback, log_adapter, log_epochs, log_training
from know_thyself.training.best_epoch import BestEpoch
from know_thyself.training.dev_split import dev_split
from know_thyself.training.divergence import check_finite
from know_thyself.training.judge import fit_judge
from know_thyself.training.judgment_examples import ARTIFACT_DIR


def run_train_judgment(cfg: TrainConfig, reuse: bool = True) -> StepRun:
    """The train_judgment step: LoRA SFT on a build_judgment_data run's train split."""
    upstream = require_step_run(cfg.data_run_id, "build_judgment_data", "data_run_id")
    scheme = scheme_of(upstream.data.params)
    check_model_exists(cfg.model)
    with step_run(cfg.step, cfg.params(), reuse=reuse, system_metrics=True) as run:
        if not run.reused:
            examples = read_jsonl_artifact(upstream.info.run_id, f"{ARTIFACT_DIR}/train.jsonl")
            log_collect_questions(mlflow.get_run(upstream.data.params["collect_run_id"]), splits=("train",))
            model, tokenizer = load_model(cfg.model, dtype="float32")
            fit, dev = dev_split(examples, cfg.dev_fraction, cfg.seed, key="label") if cfg.dev_fraction else (examples, [])
            callbacks = [MlflowMetricsCallback()]
            if dev:  # keep the epoch that judges the held-out questions best
                keeper = BestEpoch(epoch_scorer(tokenizer, dev, fit, scheme), cfg.select_by)
                callbacks.append(keeper)
            trained = fit_judge(fit, cfg, scheme, (model, tokenizer), tuple(callbacks))
            check_finite(trained.trainer, cfg, trained.metrics["train/final_loss"])  # NaN: the run fails, nothing saved
            log_training(trained)
            if dev:
                mlflow.log_metrics({"train/fit_questions": len(fit), "train/dev_questions": len(dev)})
                log_epochs(keeper)
            with tempfile.TemporaryDirectory(prefix="know-thyself-adapter-") as scratch:
                adapter_dir = log_adapter(trained.trainer, cfg.model, folder=Path(scratch))
                if adapter_dir is not None:
                    # The judge as a loadable pyfunc: base model named, adapter inside, no local paths.
                    log_judge(str(adapter_dir), cfg.model, scheme)
                    describe_run(
                        f"Trained the judgment LoRA adapter (r {cfg.lora_r}, {cfg.loss} loss, {cfg.label_targets} targets, "
                        f"{cfg.balance} balance) on {code(cfg.model)} with {len(fit)} examples for "
                        f"{trained.trainer.state.global_step} steps"
                        + (f", keeping epoch {keeper.best_epoch} of {len(keeper.history)} by dev {cfg.select_by} on "
                           f"{len(dev)} held-out questions" if dev else "")
                        + "; logged the judge as a pyfunc model under judge/."
                    )
    return run
