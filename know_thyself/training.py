"""LoRA supervised fine-tuning with TRL's SFTTrainer, shared by the judgment and knowledge steps.

Examples are conversational prompt/completion pairs; TRL renders them with the tokenizer's chat
template and computes the loss on the completion tokens only. Training metrics go to the active
MLflow run (the step's own run) through a small callback, from the main process only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from transformers import TrainerCallback

from know_thyself.config import TrainConfig
from know_thyself.models import bf16_supported, load_model
from know_thyself.prefix_cache import common_prefix_length, expanded_cache

logger = logging.getLogger(__name__)

ATTENTION_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP_PROJECTIONS = ["gate_proj", "up_proj", "down_proj"]
# The module names each ``lora_targets`` value adapts (Llama/Qwen-style blocks).
TARGET_MODULES = {"attention": ATTENTION_PROJECTIONS, "attention_mlp": ATTENTION_PROJECTIONS + MLP_PROJECTIONS}
ADAPTER_DIR = "adapter"

# Training-speed choices, each measured against the alternative in benchmarks/bench_train.py
# (numbers in benchmarks/RESULTS.md); the benchmark switches them off to measure the baseline.
# Score only the positions that carry a label (the completion) with the LM head; see
# :func:`label_positions_only`.
SCORE_LABEL_POSITIONS_ONLY = True
# Batch examples of similar length together (transformers' length-grouped sampler), so that
# batches carry less padding. Not for oversampled judgment data: the copies of one example have
# one length, so the sampler puts them in the same batch. The one default run trained that way
# predicted `uncertain` for 86% of the validation questions and `can` for none, where the run
# before it, with random batches, predicted all three labels.
GROUP_BY_LENGTH = True
# Run the token prefix that every training example shares (the system text and worked examples
# of the prompt) once per batch instead of once per example; see :func:`share_prompt_prefix`.
SHARE_PROMPT_PREFIX = True
# A shorter shared prefix saves too little to be worth the second backbone call.
MIN_SHARED_PREFIX = 8


@contextlib.contextmanager
def label_positions_only() -> Iterator[None]:
    """Inside the block, TRL's fused LM head projects only the positions whose next token is trained on.

    The loss is over the completion tokens only, so the other positions' log-probabilities are
    multiplied by zero. TRL (1.16) drops those positions before the vocabulary projection only
    where it runs its Triton kernel (CUDA, XPU); elsewhere it projects every position of the batch
    onto the whole vocabulary (49,152 words for SmolLM2), forward and backward, the backward's
    products in fp32. For judgment examples (~56 tokens, 3-4 of them trained on) that was about
    half of the CPU's training time. The per-token loss, its mask and its normalisation are the
    same either way; only the unused positions are no longer computed.
    """
    from trl.trainer import utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if not SCORE_LABEL_POSITIONS_ONLY or original is None:
        yield
        return
    trl_utils._use_triton = lambda device: True  # the name only decides whether to keep the labelled positions
    try:
        yield
    finally:
        trl_utils._use_triton = original


def share_prompt_prefix(model: Any, prefix_ids: list[int]) -> None:
    """Make the backbone of ``model`` run a batch's shared token prefix once, for every row together.

    Every knowledge example starts with the same ~107 tokens (the answer prompt's system text and
    worked examples) before its ~18 of question and answer; judgment examples share the judgment
    prompt's system text. Causal attention means those positions' keys, values and hidden states
    depend on the prefix alone, so they are the same in every row. The patched backbone runs the
    prefix once (batch 1, with gradients), expands its KV cache to the batch, and runs the rows'
    remaining tokens after it. The output has the same shape and, without dropout, the same values
    as the plain forward; the gradients of the prefix's computation are summed over the rows by the
    expansion, as the plain forward sums them. LoRA dropout draws one mask for the shared positions
    instead of one per row.

    Batches that do not begin with the prefix in every row, or that ask for something else (a
    cache, embeddings, hidden states of every layer), take the backbone's own forward.

    Args:
        model: The PEFT-wrapped causal LM the trainer trains (``get_base_model().base_model`` is
            the backbone TRL's fused LM head calls).
        prefix_ids: The shared token ids (the right-padded batches put them at positions 0..P-1).
    """
    import torch
    from transformers.modeling_outputs import BaseModelOutputWithPast

    backbone = model.get_base_model().base_model
    original = backbone.forward
    prefix = torch.tensor(prefix_ids, dtype=torch.long)
    width = len(prefix_ids)

    def forward(input_ids: Any = None, attention_mask: Any = None, position_ids: Any = None, **kwargs: Any) -> Any:
        shared = (
            input_ids is not None
            and input_ids.shape[1] > width
            and kwargs.get("past_key_values") is None
            and kwargs.get("inputs_embeds") is None
            and not kwargs.get("output_hidden_states")
            and not kwargs.get("output_attentions")
            and position_ids is None
            and torch.equal(input_ids[:, :width], prefix.to(input_ids.device).expand(input_ids.shape[0], -1))
            and (attention_mask is None or bool(attention_mask[:, :width].all()))
        )
        if not shared:
            return original(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)
        rows = input_ids.shape[0]
        kwargs.pop("use_cache", None)
        head = original(input_ids=input_ids[:1, :width], use_cache=True, **kwargs)
        shared_kv = [(layer.keys, layer.values) for layer in head.past_key_values.layers]
        cache = expanded_cache(backbone.config, shared_kv, rows)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        tail = original(
            input_ids=input_ids[:, width:], attention_mask=attention_mask, past_key_values=cache, use_cache=False, **kwargs
        )
        hidden = torch.cat([head.last_hidden_state.expand(rows, -1, -1), tail.last_hidden_state], dim=1)
        return BaseModelOutputWithPast(last_hidden_state=hidden)

    backbone.forward = forward


def _sft_trainer_class() -> type:
    from trl import SFTTrainer

    class LabelPositionsSFTTrainer(SFTTrainer):
        """TRL's SFTTrainer, its LM head run on the trained positions only (:func:`label_positions_only`)."""

        def compute_loss(self, *args: Any, **kwargs: Any) -> Any:
            with label_positions_only():
                return super().compute_loss(*args, **kwargs)

    return LabelPositionsSFTTrainer


class MlflowMetricsCallback(TrainerCallback):
    """Log the trainer's loss, learning rate and throughput into the active MLflow run.

    The run is the step's own run, opened before training; only the main process logs, so a
    multi-process (``accelerate launch``) job writes each metric once.
    """

    def __init__(self, prefix: str = "train") -> None:
        self.prefix = prefix

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or mlflow.active_run() is None:
            return
        numeric = {
            f"{self.prefix}/{key}": float(value)
            for key, value in logs.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        if numeric:
            mlflow.log_metrics(numeric, step=state.global_step)


def lora_config(cfg: TrainConfig) -> Any:
    """The PEFT LoRA configuration of a training config (the layers ``cfg.lora_targets`` names)."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=TARGET_MODULES[cfg.lora_targets],
        task_type="CAUSAL_LM",
    )


def build_trainer(
    examples: list[dict], cfg: TrainConfig, output_dir: str, model_and_tokenizer: tuple | None = None,
    group_by_length: bool | None = None,
) -> Any:
    """An SFTTrainer for LoRA on ``examples`` (``prompt``/``completion`` message lists).

    Args:
        examples: Conversational prompt/completion examples.
        cfg: Training options.
        output_dir: Scratch folder for the trainer (nothing is checkpointed there).
        model_and_tokenizer: An already loaded ``(model, tokenizer)``; loaded from ``cfg.model`` if omitted.
        group_by_length: Batch examples of similar length together (default :data:`GROUP_BY_LENGTH`);
            pass False for data with repeated examples.
    """
    from datasets import Dataset
    from trl import SFTConfig

    grouped = GROUP_BY_LENGTH if group_by_length is None else group_by_length
    if not examples:
        raise ValueError("there are no training examples; check the upstream data step")
    model, tokenizer = model_and_tokenizer or load_model(cfg.model, dtype="float32")
    on_gpu = model.device.type == "cuda"
    model.train()
    dataset = Dataset.from_list([{"prompt": e["prompt"], "completion": e["completion"]} for e in examples])
    steps_per_epoch = max(1, -(-len(examples) // cfg.batch_size))
    args = SFTConfig(
        output_dir=output_dir,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        logging_steps=max(1, int(steps_per_epoch * cfg.epochs) // 25),
        save_strategy="no",
        report_to="none",
        seed=cfg.seed,
        completion_only_loss=True,
        max_length=512,
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if grouped else "random",
        # fp32 weights with bf16 autocast where the hardware is fast at bf16 (1.7x on an
        # AVX-512 BF16 CPU in our measurement); plain fp32 elsewhere.
        bf16=bf16_supported(model.device.type),
        use_cpu=not on_gpu,
        gradient_checkpointing=False,
    )
    trainer = _sft_trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(cfg),
        callbacks=[MlflowMetricsCallback()],
    )
    if SHARE_PROMPT_PREFIX:
        token_lists = trainer.train_dataset["input_ids"]
        shared = common_prefix_length(token_lists)
        if shared >= MIN_SHARED_PREFIX:
            share_prompt_prefix(trainer.model, list(token_lists[0][:shared]))
    return trainer


def train_lora(
    examples: list[dict], cfg: TrainConfig, model_and_tokenizer: tuple | None = None, group_by_length: bool | None = None
) -> Any:
    """Train a LoRA adapter on ``examples``; log the summary metrics; return the trainer.

    ``group_by_length`` is passed to :func:`build_trainer`.

    The caller saves what it needs (:func:`log_adapter`) while the trainer is alive.
    """
    with tempfile.TemporaryDirectory(prefix="know-thyself-train-") as scratch:  # nothing is saved there
        trainer = build_trainer(examples, cfg, scratch, model_and_tokenizer, group_by_length)
        started = time.perf_counter()
        result = trainer.train()
        elapsed = time.perf_counter() - started
    if trainer.is_world_process_zero() and mlflow.active_run() is not None:
        summary = {
            "train/final_loss": float(result.training_loss),
            "train/seconds": elapsed,
            "train/examples": float(len(examples)),
        }
        undefined = []
        if cfg.max_steps == -1:
            tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * cfg.epochs
            summary["train/tokens_per_s"] = tokens / elapsed
        else:  # training stopped after max_steps: how many tokens it saw is not counted
            undefined.append("train/tokens_per_s")
        mlflow.log_metrics(summary)
        mlflow.set_tag("undefined_metrics", ", ".join(undefined) if undefined else "none")
    return trainer


def save_adapter(trainer: Any, base_model: str, target: Path) -> Path:
    """Save the trained adapter, portable: its config names the model argument, not a local path."""
    model = trainer.model
    for peft_config in model.peft_config.values():
        peft_config.base_model_name_or_path = base_model
    model.save_pretrained(target, save_embedding_layers=False)
    config_file = target / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = base_model
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True))
    return target


def log_adapter(trainer: Any, base_model: str, artifact_path: str = ADAPTER_DIR, folder: Path | None = None) -> Path | None:
    """Save the adapter and log it as an artifact of the active run (main process only).

    Args:
        trainer: The trainer after training.
        base_model: The model argument the adapter's config names as its base.
        artifact_path: Where in the run the adapter goes.
        folder: A folder of the caller's to save into, kept after logging; the saved adapter's
            path is returned. Without it the adapter is saved into a temporary folder that is
            removed again, and ``None`` is returned (also on processes other than the main one).
    """
    if not trainer.is_world_process_zero():
        return None
    if folder is not None:
        target = save_adapter(trainer, base_model, Path(folder) / artifact_path)
        mlflow.log_artifacts(str(target), artifact_path)
        return target
    with tempfile.TemporaryDirectory(prefix="know-thyself-adapter-") as scratch:
        mlflow.log_artifacts(str(save_adapter(trainer, base_model, Path(scratch) / artifact_path)), artifact_path)
    return None


def load_adapter(model: Any, adapter_dir: str | Path) -> Any:
    """Wrap ``model`` with the adapter saved in ``adapter_dir`` (as :func:`save_adapter` wrote it), for inference."""
    from peft import PeftModel

    adapter = PeftModel.from_pretrained(model, str(adapter_dir))
    adapter.eval()
    return adapter
