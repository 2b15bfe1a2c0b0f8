"""LoRA SFT through TRL: weights change, the loss lands in the step's run, loss only on the label."""

import copy
import json

import mlflow
import pytest
import torch

from know_thyself.config import TrainConfig
from know_thyself.prompts import judgment_completion, judgment_messages
from know_thyself.training import build_trainer, log_adapter, train_lora

EXAMPLES = [
    {"prompt": judgment_messages(f"Question number {i}?"), "completion": judgment_completion(label)}
    for i, label in enumerate(["can", "cannot", "uncertain", "can"] * 3)
]


def _cfg(model_dir, **kw):
    return TrainConfig(model=model_dir, data_run_id="0" * 32, batch_size=4, max_steps=3, learning_rate=1e-2, **kw)


def test_loss_covers_only_the_label(tiny_model_dir, tmp_path):
    trainer = build_trainer(EXAMPLES[:2], _cfg(tiny_model_dir), str(tmp_path))
    row = trainer.train_dataset[0]
    tokenizer = trainer.processing_class
    trained = [tok for tok, label in zip(row["input_ids"], row["labels"]) if label != -100]
    text = tokenizer.decode(trained)
    assert text.startswith("can")
    assert "Question number" not in text  # nothing of the prompt is trained on
    assert len(trained) <= 4  # the label word and the end-of-turn markup


def test_training_changes_lora_weights_and_logs_into_the_step_run(tracking, tiny_model_dir):
    cfg = _cfg(tiny_model_dir)
    with mlflow.start_run() as run:
        trainer = train_lora(EXAMPLES, cfg)
        log_adapter(trainer, "my-base")
    lora_b = [p for n, p in trainer.model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # lora_B starts at zero
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train/loss")
    assert len(history) >= 1 and all(torch.isfinite(torch.tensor(m.value)) for m in history)
    assert "train/final_loss" in mlflow.get_run(run.info.run_id).data.metrics
    # exactly one run: nothing stray was opened by the trainer
    assert len(mlflow.search_runs(output_format="list")) == 1
    adapter = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="adapter")
    config = json.loads(open(f"{adapter}/adapter_config.json").read())
    assert config["base_model_name_or_path"] == "my-base"
    assert config["r"] == 16 and config["lora_alpha"] == 32
    assert sorted(config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    text = open(f"{adapter}/adapter_config.json").read()
    assert str(tracking) not in text and "/root" not in text and "/tmp" not in text


def test_lora_targets_choose_the_adapted_layers(tiny):
    """'attention' adapts the attention projections only; 'attention_mlp' the MLP projections too."""
    from peft import get_peft_model

    from know_thyself.config import TrainConfig
    from know_thyself.training import lora_config

    model, _ = tiny
    adapted = {}
    for targets in ("attention", "attention_mlp"):
        cfg = TrainConfig(data_run_id="a" * 32, lora_targets=targets)
        peft_model = get_peft_model(copy.deepcopy(model), lora_config(cfg))
        adapted[targets] = {name.split(".lora_A")[0].split(".")[-1] for name, _ in peft_model.named_parameters() if "lora_A" in name}
    assert adapted["attention"] == {"q_proj", "k_proj", "v_proj", "o_proj"}
    assert adapted["attention_mlp"] == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    with pytest.raises(ValueError, match="lora_targets must be one of attention, attention_mlp, got 'mlp'"):
        TrainConfig(data_run_id="a" * 32, lora_targets="mlp")
