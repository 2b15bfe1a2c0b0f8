"""The train_judgment step: LoRA SFT of the judge on a build_judgment_data run.

Logs the adapter (``adapter/``), the training loss, the stacked readout when asked
(``readout.json``, fitted on the dev split), and the judge as a pyfunc model (``judge/``) ready to
register.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow

from know_thyself.config import TrainConfig
from know_thyself.data.labels import labels_for, scheme_of
from know_thyself.evaluation.judgment import adapter_off
from know_thyself.evaluation.methods import epoch_scorer, example_rates, judge_scores
from know_thyself.inference.judgments import first_token_probability, judge
from know_thyself.inference.models import check_model_exists, load_model
from know_thyself.inference.readout import READOUT_FILE, Readout, describe_readout
from know_thyself.tracking import (
    StepRun,
    code,
    describe_run,
    downloaded,
    read_json_artifact,
    read_jsonl_artifact,
    require_step_run,
    step_run,
)
from know_thyself.tracking.datasets import log_collect_questions
from know_thyself.tracking.registry import TAG_PRECISION, log_judge
from know_thyself.tracking.training_log import MlflowMetricsCallback, log_adapter, log_epochs, log_training
from know_thyself.training.best_epoch import BestEpoch
from know_thyself.training.dev_split import dev_split
from know_thyself.training.divergence import check_training
from know_thyself.training.judge import example_weights, fit_judge
from know_thyself.training.judgment_examples import ARTIFACT_DIR
from know_thyself.training.lora import ADAPTER_DIR, check_adapter_matches, continue_adapter, training_precision
from know_thyself.training.readout import MissingLabelError, fit_readout

logger = logging.getLogger(__name__)
# The run tag that says how the judge's label is read (``label``, or ``stacked``) and, for a fallback, why.
TAG_READOUT = "know_thyself.readout"


def run_train_judgment(cfg: TrainConfig, reuse: bool = True) -> StepRun:
    """The train_judgment step: LoRA SFT on a build_judgment_data run's train split."""
    upstream = require_step_run(cfg.data_run_id, "build_judgment_data", "data_run_id")
    scheme = scheme_of(upstream.data.params)
    check_model_exists(cfg.model)
    if cfg.init_adapter_run_id:  # checked before the run opens: the adapter exists and these options fit it
        require_step_run(cfg.init_adapter_run_id, "train_judgment", "init_adapter_run_id")
        check_adapter_matches(read_json_artifact(cfg.init_adapter_run_id, f"{ADAPTER_DIR}/adapter_config.json"), cfg,
                              f"the adapter of train_judgment run {cfg.init_adapter_run_id}")
    with step_run(cfg.step, cfg.params(), reuse=reuse, system_metrics=True, requires=(f"{ADAPTER_DIR}/",)) as run:
        if not run.reused:
            examples = read_jsonl_artifact(upstream.info.run_id, f"{ARTIFACT_DIR}/train.jsonl")
            log_collect_questions(mlflow.get_run(upstream.data.params["collect_run_id"]), splits=("train",))
            model, tokenizer = load_model(cfg.model, dtype="float32")
            if cfg.init_adapter_run_id:
                with downloaded(cfg.init_adapter_run_id, ADAPTER_DIR) as adapter_dir:
                    check_adapter_matches(json.loads((adapter_dir / "adapter_config.json").read_text()), cfg,
                                          f"the adapter of train_judgment run {cfg.init_adapter_run_id}",
                                          model.config.num_hidden_layers)
                    model = continue_adapter(model, adapter_dir)
            precision = training_precision(cfg, model.device.type)
            mlflow.set_tag(TAG_PRECISION, precision)  # the judge answers in it wherever it is loaded
            fit, dev = dev_split(examples, cfg.dev_fraction, cfg.seed, key="label") if cfg.dev_fraction else (examples, [])
            callbacks = [MlflowMetricsCallback()]
            if dev:  # keep the epoch that judges the held-out questions best
                # A continued adapter is itself a candidate (epoch 0): kept unchanged when no epoch beats it on dev.
                keeper = BestEpoch(epoch_scorer(tokenizer, dev, fit, scheme), cfg.select_by, cfg.min_label_share,
                                   from_start=bool(cfg.init_adapter_run_id))
                callbacks.append(keeper)
            trained = fit_judge(fit, cfg, scheme, (model, tokenizer), tuple(callbacks))
            check_training(trained.trainer, cfg, trained.metrics["train/final_loss"])  # diverged: the run fails, nothing saved
            log_training(trained)
            if dev:
                mlflow.log_metrics({"train/fit_questions": len(fit), "train/dev_questions": len(dev)})
                log_epochs(keeper)
            readout = None
            if cfg.readout == "stacked" and trained.trainer.is_world_process_zero():
                readout = _fit_readout(trained.trainer.model, tokenizer, fit, dev, scheme, cfg)
            with tempfile.TemporaryDirectory(prefix="know-thyself-adapter-") as scratch:
                adapter_dir = log_adapter(trained.trainer, cfg.model, folder=Path(scratch))
                readout_file = None
                if readout is not None:
                    readout_file = readout.save(Path(scratch) / READOUT_FILE)
                    mlflow.log_artifact(str(readout_file))
                if adapter_dir is not None:
                    # The judge as a loadable pyfunc: base model named, adapter (and readout) inside, no local paths.
                    log_judge(str(adapter_dir), cfg.model, scheme, readout_file, precision)
                    describe_run(
                        ("Continued the judgment LoRA adapter of train_judgment run "
                         f"{cfg.init_adapter_run_id} (r {cfg.lora_r}" if cfg.init_adapter_run_id else
                         f"Trained the judgment LoRA adapter (r {cfg.lora_r}")
                        + f", {cfg.loss} loss, {cfg.label_targets} targets, "
                        f"{cfg.balance} balance) on {code(cfg.model)} with {len(fit)} examples for "
                        f"{trained.trainer.state.global_step} steps"
                        + (f", keeping {_kept(keeper)} by dev {cfg.select_by} on {len(dev)} held-out questions"
                           if dev else "")
                        + (f"; its label is read through a readout fitted on the dev split ({describe_readout(readout)})"
                           if readout is not None else "")
                        + "; logged the judge as a pyfunc model under judge/."
                    )
    return run


def _kept(keeper: BestEpoch) -> str:
    epochs = sum(1 for h in keeper.history if h["epoch"] > 0)
    if keeper.best_epoch == 0:
        return f"the continued adapter as it was (no one of {epochs} epochs did better)"
    return f"epoch {keeper.best_epoch} of {epochs}"


def _fit_readout(model: Any, tokenizer: Any, fit: list[dict], dev: list[dict], scheme: str, cfg: TrainConfig) -> Readout | None:
    """The stacked readout fitted on the dev questions, from the trained judge and the bare model's first tokens.

    Logs the readout's dev numbers beside the label readout's (``readout/dev/...`` and
    ``readout/dev_label/...``; fitted and scored on the same questions, so optimistic). A dev split
    without every label (a small run) cannot teach a readout all labels: the judge then reads its
    label words, and the run's ``know_thyself.readout`` tag and a warning say so.
    """
    model.eval()
    questions = [e["question"] for e in dev]
    judged = judge(model, tokenizer, questions, scheme, cfg.batch_size)
    with adapter_off(model) as base:
        first = first_token_probability(base, tokenizer, questions, cfg.batch_size)
    try:
        # Weighted as the judge's loss weighs its examples (balance taught: also taught against untaught).
        weights = (example_weights(dev, cfg.balance, labels_for(scheme), cfg.taught_min_group)
                   if cfg.balance == "taught" else None)
        readout = fit_readout(judged.probabilities, first, [e["label"] for e in dev], labels_for(scheme),
                              balanced=cfg.balance != "none", c=cfg.readout_c, seed=cfg.seed, sample_weight=weights)
    except MissingLabelError as error:
        logger.warning("%s; the judge reads its label words instead (more questions or a larger dev_fraction "
                       "give the stacked readout every label)", error)
        mlflow.set_tag(TAG_READOUT, f"label ({error})")
        return None
    mlflow.set_tag(TAG_READOUT, "stacked")
    rates = example_rates(fit, labels_for(scheme))
    for name, scored in (("readout/dev_label", judged), ("readout/dev", readout.apply(judged, first))):
        mlflow.log_metrics({f"{name}/{key}": value for key, value in judge_scores(scored, dev, rates).items()})
    return readout
