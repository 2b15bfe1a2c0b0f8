"""LoRA supervised fine-tuning with TRL's SFTTrainer, shared by the judgment and knowledge steps.

Examples are conversational prompt/completion pairs; TRL renders them with the tokenizer's chat
template and computes the loss on the completion tokens only. Training metrics go to the active
step's MLflow run through the callbacks the step passes in (:mod:`know_thyself.tracking.training_log`).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from know_thyself.config import TrainingOptions
from know_thyself.inference.models import bf16_supported, load_model
from know_thyself.inference.prefix_cache import common_prefix_length
from know_thyself.training import speedups

ATTENTION_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP_PROJECTIONS = ["gate_proj", "up_proj", "down_proj"]
# The module names each ``lora_targets`` value adapts (Llama/Qwen-style blocks).
TARGET_MODULES = {"attention": ATTENTION_PROJECTIONS, "attention_mlp": ATTENTION_PROJECTIONS + MLP_PROJECTIONS}
ADAPTER_DIR = "adapter"


def _sft_trainer_class() -> type:
    from trl import SFTTrainer

    class LabelPositionsSFTTrainer(SFTTrainer):
        """TRL's SFTTrainer, its LM head run on the trained positions only (:func:`~know_thyself.training.speedups.label_positions_only`)."""

        def compute_loss(self, *args: Any, **kwargs: Any) -> Any:
            with speedups.label_positions_only():
                return super().compute_loss(*args, **kwargs)

    return LabelPositionsSFTTrainer


def lora_config(cfg: TrainingOptions) -> Any:
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
    examples: list[dict], cfg: TrainingOptions, output_dir: str, model_and_tokenizer: tuple | None = None,
    group_by_length: bool | None = None, callbacks: tuple = (),
) -> Any:
    """An SFTTrainer for LoRA on ``examples`` (``prompt``/``completion`` message lists).

    Args:
        examples: Conversational prompt/completion examples.
        cfg: Training options.
        output_dir: Scratch folder for the trainer (nothing is checkpointed there).
        model_and_tokenizer: An already loaded ``(model, tokenizer)``; loaded from ``cfg.model`` if omitted.
        group_by_length: Batch examples of similar length together (default
            :data:`~know_thyself.training.speedups.GROUP_BY_LENGTH`); pass False for data with repeated examples.
        callbacks: Trainer callbacks (the step's metrics logger).
    """
    from datasets import Dataset
    from trl import SFTConfig

    grouped = speedups.GROUP_BY_LENGTH if group_by_length is None else group_by_length
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
        callbacks=list(callbacks),
    )
    if speedups.SHARE_PROMPT_PREFIX:
        token_lists = trainer.train_dataset["input_ids"]
        shared = common_prefix_length(token_lists)
        if shared >= speedups.MIN_SHARED_PREFIX:
            speedups.share_prompt_prefix(trainer.model, list(token_lists[0][:shared]))
    return trainer


@dataclass
class Trained:
    """A finished training: the trainer (alive, for saving the adapter) and its summary numbers.

    Attributes:
        trainer: The trainer after training; its model is the PEFT model.
        metrics: ``train/final_loss``, ``train/seconds``, ``train/examples`` and, when it ran
            whole epochs, ``train/tokens_per_s``.
        undefined: Summary metrics that could not be measured (``train/tokens_per_s`` after
            ``max_steps``), to be named rather than logged as NaN.
    """

    trainer: Any
    metrics: dict[str, float] = field(default_factory=dict)
    undefined: list[str] = field(default_factory=list)


def train_lora(
    examples: list[dict], cfg: TrainingOptions, model_and_tokenizer: tuple | None = None,
    group_by_length: bool | None = None, callbacks: tuple = (),
) -> Trained:
    """Train a LoRA adapter on ``examples``; return the trainer and the summary numbers.

    ``model_and_tokenizer``, ``group_by_length`` and ``callbacks`` are passed to :func:`build_trainer`.
    The caller saves what it needs (the adapter) while the trainer is alive.
    """
    with tempfile.TemporaryDirectory(prefix="know-thyself-train-") as scratch:  # nothing is saved there
        trainer = build_trainer(examples, cfg, scratch, model_and_tokenizer, group_by_length, callbacks)
        started = time.perf_counter()
        result = trainer.train()
        elapsed = time.perf_counter() - started
    trained = Trained(trainer, {
        "train/final_loss": float(result.training_loss),
        "train/seconds": elapsed,
        "train/examples": float(len(examples)),
    })
    if cfg.max_steps == -1:
        tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * cfg.epochs
        trained.metrics["train/tokens_per_s"] = tokens / elapsed
    else:  # training stopped after max_steps: how many tokens it saw is not counted
        trained.undefined.append("train/tokens_per_s")
    return trained


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


def load_adapter(model: Any, adapter_dir: str | Path) -> Any:
    """Wrap ``model`` with the adapter saved in ``adapter_dir`` (as :func:`save_adapter` wrote it), for inference."""
    from peft import PeftModel

    adapter = PeftModel.from_pretrained(model, str(adapter_dir))
    adapter.eval()
    return adapter
