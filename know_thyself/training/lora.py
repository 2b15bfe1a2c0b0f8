"""LoRA supervised fine-tuning with TRL's SFTTrainer, shared by the judgment and knowledge steps.

Examples are conversational prompt/completion pairs; TRL renders them with the tokenizer's chat
template and computes the loss on the completion tokens only. Training metrics go to the active
step's MLflow run through the callbacks the step passes in (:mod:`know_thyself.tracking.training_log`).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from know_thyself import internals
from know_thyself.config import TrainingOptions
from know_thyself.inference.models import load_model, precision_of
from know_thyself.inference.prefix_cache import common_prefix_length
from know_thyself.training import speedups
from know_thyself.training.divergence import DivergenceGuard, largest_grad_norm, largest_update_ratio
from know_thyself.training.label_loss import label_positions, restricted_label_loss

ATTENTION_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP_PROJECTIONS = ["gate_proj", "up_proj", "down_proj"]
# The module names each ``lora_targets`` value adapts (Llama/Qwen-style blocks).
TARGET_MODULES = {"attention": ATTENTION_PROJECTIONS, "attention_mlp": ATTENTION_PROJECTIONS + MLP_PROJECTIONS}
ADAPTER_DIR = "adapter"


# The per-example columns the judge's label loss reads beside TRL's own (see training/label_loss.py).
LABEL_LOSS_COLUMNS = ("target", "weight")


def _sft_trainer_class() -> type:
    from trl import SFTTrainer

    class LabelPositionsSFTTrainer(internals.trainer_keeping_columns(SFTTrainer)):
        """TRL's SFTTrainer, its LM head run on the trained positions only (:func:`~know_thyself.training.speedups.label_positions_only`).

        With ``label_ids`` set, the loss is the judge's cross-entropy over the label words at the
        label position (:mod:`know_thyself.training.label_loss`) instead of TRL's token loss; the
        dataset's columns that loss reads (``extra_columns``, :data:`LABEL_LOSS_COLUMNS`) are kept.
        """

        label_ids: Any = None
        mass_weight: float | None = None  # the judge's label_mass_weight, set with label_ids

        def compute_loss(self, model: Any, inputs: dict, return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
            if self.label_ids is None:
                with speedups.label_positions_only():
                    return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = judgment_batch_loss(model, inputs, self.label_ids, self.mass_weight)
            return (loss, None) if return_outputs else loss

    return LabelPositionsSFTTrainer


def judgment_batch_loss(model: Any, inputs: dict, label_ids: Any, mass_weight: float) -> Any:
    """The judge's loss on one collated batch (:func:`~know_thyself.training.label_loss.restricted_label_loss`).

    ``mass_weight`` is the judge's ``label_mass_weight``.

    The model's logits are computed at the label positions only (``logits_to_keep``), through the
    model's own forward, so that a data-parallel wrapper sees the forward it synchronises.
    """
    import torch

    positions = label_positions(inputs["labels"])
    kept = torch.unique(positions)
    out = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), logits_to_keep=kept,
                use_cache=False)
    rows = torch.arange(len(positions), device=positions.device)
    logits = out.logits[rows, torch.searchsorted(kept, positions)]
    first = inputs["input_ids"][rows, positions + 1]
    if not bool(torch.isin(first, label_ids).all()):
        raise ValueError("a judgment example's completion does not begin with a label word's first token; "
                         "rebuild the judgment data with this model's tokenizer")
    return restricted_label_loss(logits, label_ids, inputs["target"].to(logits.device), inputs["weight"].to(logits.device),
                                 mass_weight=mass_weight)


class _WithLossColumns:
    """A data collator that passes the label loss's per-example columns through beside TRL's own."""

    def __init__(self, collator: Any) -> None:
        self.collator = collator

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        batch = self.collator([{k: v for k, v in e.items() if k not in LABEL_LOSS_COLUMNS} for e in examples])
        batch["target"] = torch.tensor([e["target"] for e in examples], dtype=torch.float32)
        batch["weight"] = torch.tensor([e["weight"] for e in examples], dtype=torch.float32)
        return batch


def adapted_blocks(cfg: TrainingOptions, num_blocks: int) -> list[int] | None:
    """The transformer blocks ``cfg.lora_layers`` adapts: the top ones (None: every block, also when the model
    has no more blocks than that)."""
    if not cfg.lora_layers or cfg.lora_layers >= num_blocks:
        return None
    return list(range(num_blocks - cfg.lora_layers, num_blocks))


def lora_config(cfg: TrainingOptions, num_blocks: int = 0) -> Any:
    """The PEFT LoRA configuration of a training config (the projections ``cfg.lora_targets`` names, in the
    top ``cfg.lora_layers`` of the model's ``num_blocks`` transformer blocks)."""
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=TARGET_MODULES[cfg.lora_targets],
        layers_to_transform=adapted_blocks(cfg, num_blocks),
        task_type="CAUSAL_LM",
    )


def check_adapter_matches(adapter_config: dict, cfg: TrainingOptions, who: str, num_blocks: int | None = None) -> None:
    """Refuse to continue an adapter whose rank, alpha, projections or adapted blocks are not the training's options.

    ``adapter_config`` is the adapter's ``adapter_config.json``; ``who`` names it in the message. An
    adapter on every block fits ``lora_layers`` 0, or one at least the model's ``num_blocks`` (not
    checked while the model is not loaded: ``num_blocks`` None).
    """
    wanted = {"r": cfg.lora_r, "lora_alpha": cfg.lora_alpha, "target_modules": sorted(TARGET_MODULES[cfg.lora_targets])}
    found = {"r": adapter_config.get("r"), "lora_alpha": adapter_config.get("lora_alpha"),
             "target_modules": sorted(adapter_config.get("target_modules") or [])}
    differs = [f"{key} {found[key]} (this training: {wanted[key]})" for key in wanted if found[key] != wanted[key]]
    blocks = adapter_config.get("layers_to_transform")
    blocks = [blocks] if isinstance(blocks, int) else blocks
    if isinstance(blocks, list):
        if len(blocks) != cfg.lora_layers:
            differs.append(f"lora_layers {len(blocks)} (this training: {cfg.lora_layers})")
    elif cfg.lora_layers and num_blocks is not None and cfg.lora_layers < num_blocks:
        differs.append(f"lora_layers 0, every block (this training: {cfg.lora_layers} of {num_blocks})")
    if differs:
        raise ValueError(f"{who} cannot be continued with these options: its " + ", ".join(differs)
                         + "; train with the adapter's lora_r, lora_alpha, lora_targets and lora_layers, or start a fresh adapter")


def continue_adapter(model: Any, adapter_dir: str | Path) -> Any:
    """Wrap ``model`` with the adapter saved in ``adapter_dir``, its weights trainable (training continues it)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)


def training_precision(cfg: TrainingOptions, device: str) -> str:
    """The precision ``cfg.dtype`` trains in on ``device``: ``bfloat16``, ``float16`` (GPU only) or ``float32``.

    Raises:
        ValueError: for ``float16`` on a CPU, which has no fp16 autocast for training.
    """
    precision = precision_of(cfg.dtype, device)
    if precision == "float16" and device != "cuda":
        raise ValueError(f"dtype float16 trains on a GPU only (this model is on {device}); use bfloat16, float32 or auto")
    return precision


def build_trainer(
    examples: list[dict], cfg: TrainingOptions, output_dir: str, model_and_tokenizer: tuple | None = None,
    group_by_length: bool | None = None, callbacks: tuple = (), label_ids: list[int] | None = None,
) -> Any:
    """An SFTTrainer for LoRA on ``examples`` (``prompt``/``completion`` message lists).

    Args:
        examples: Conversational prompt/completion examples.
        cfg: Training options.
        output_dir: Scratch folder for the trainer (nothing is checkpointed there).
        model_and_tokenizer: An already loaded ``(model, tokenizer)``; loaded from ``cfg.model`` if omitted.
            A model wrapped with a trainable adapter (:func:`continue_adapter`) trains that adapter.
        group_by_length: Batch examples of similar length together (default
            :data:`~know_thyself.training.speedups.GROUP_BY_LENGTH`); pass False for data with repeated examples.
        callbacks: Trainer callbacks (the step's metrics logger).
        label_ids: The label words' first token ids, in label order: train the judge's label loss
            (each example then carries ``target``, its label distribution, and ``weight``; ``cfg``
            is then the judge's options, whose ``label_mass_weight`` the loss reads) instead of
            TRL's loss on every completion token.
    """
    from datasets import Dataset
    from trl import SFTConfig

    grouped = speedups.GROUP_BY_LENGTH if group_by_length is None else group_by_length
    if not examples:
        raise ValueError("there are no training examples; check the upstream data step")
    if label_ids is not None and not hasattr(cfg, "label_mass_weight"):
        raise ValueError("the judge's label loss reads the judge's options (label_mass_weight); pass a JudgeOptions")
    model, tokenizer = model_and_tokenizer or load_model(cfg.model, dtype="float32")
    on_gpu = model.device.type == "cuda"
    precision = training_precision(cfg, model.device.type)
    model.train()
    columns = ("prompt", "completion", *(LABEL_LOSS_COLUMNS if label_ids is not None else ()))
    dataset = Dataset.from_list([{column: e[column] for column in columns} for e in examples])
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
        max_length=cfg.max_length,
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if grouped else "random",
        # fp32 weights under bf16 (or fp16) autocast when ``dtype`` asks for it; ``auto`` picks bf16
        # where the hardware is fast at it (1.7x on an AVX-512 BF16 CPU in our measurement).
        bf16=precision == "bfloat16",
        fp16=precision == "float16",
        use_cpu=not on_gpu,
        gradient_checkpointing=False,
    )
    trainer_class = _sft_trainer_class()
    if label_ids is not None:
        import torch

        trainer_class = type("JudgmentLossTrainer", (trainer_class,), {
            "label_ids": torch.tensor(label_ids), "mass_weight": cfg.label_mass_weight,
            "extra_columns": LABEL_LOSS_COLUMNS,
        })
    from peft import PeftModel

    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        # A model that already carries an adapter (continue_adapter) trains it; else a fresh one is added.
        peft_config=None if isinstance(model, PeftModel) else lora_config(cfg, model.config.num_hidden_layers),
        callbacks=[*callbacks, DivergenceGuard()],
    )
    if label_ids is not None:
        trainer.data_collator = _WithLossColumns(trainer.data_collator)
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
        metrics: ``train/final_loss``, ``train/seconds``, ``train/examples``, how far the training
            stayed from the divergence limits (``train/largest_grad_norm``, ``train/adapter_update_ratio``)
            and, when it ran whole epochs, ``train/tokens_per_s``.
        undefined: Summary metrics that could not be measured (``train/tokens_per_s`` after
            ``max_steps``), to be named rather than logged as NaN.
    """

    trainer: Any
    metrics: dict[str, float] = field(default_factory=dict)
    undefined: list[str] = field(default_factory=list)


def train_lora(
    examples: list[dict], cfg: TrainingOptions, model_and_tokenizer: tuple | None = None,
    group_by_length: bool | None = None, callbacks: tuple = (), label_ids: list[int] | None = None,
) -> Trained:
    """Train a LoRA adapter on ``examples``; return the trainer and the summary numbers.

    ``model_and_tokenizer``, ``group_by_length``, ``callbacks`` and ``label_ids`` are passed to :func:`build_trainer`.
    The caller saves what it needs (the adapter) while the trainer is alive.
    """
    with tempfile.TemporaryDirectory(prefix="know-thyself-train-") as scratch:  # nothing is saved there
        trainer = build_trainer(examples, cfg, scratch, model_and_tokenizer, group_by_length, callbacks, label_ids)
        started = time.perf_counter()
        result = trainer.train()
        elapsed = time.perf_counter() - started
    trained = Trained(trainer, {
        "train/final_loss": float(result.training_loss),
        "train/seconds": elapsed,
        "train/examples": float(len(examples)),
    })
    # How far the training is from the divergence limits (know_thyself.training.divergence).
    health = {"train/largest_grad_norm": largest_grad_norm(trainer.state.log_history),
              "train/adapter_update_ratio": largest_update_ratio(trainer.model)[0]}
    trained.metrics.update({k: v for k, v in health.items() if v is not None and math.isfinite(v)})
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
