"""LoRA SFT through TRL: weights change, the loss lands in the step's run, loss only on the label."""

import copy
import json

import mlflow
import pytest
import torch

from know_thyself.config import TrainConfig
from know_thyself.data.prompts import judgment_completion, judgment_messages
from know_thyself.inference.prefix_cache import common_prefix_length
from know_thyself.tracking.training_log import MlflowMetricsCallback, log_adapter, log_training
from know_thyself.training.lora import build_trainer, train_lora

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
        trained = train_lora(EXAMPLES, cfg, callbacks=(MlflowMetricsCallback(),))
        log_training(trained)
        log_adapter(trained.trainer, "my-base")
    trainer = trained.trainer
    lora_b = [p for n, p in trainer.model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # lora_B starts at zero
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "train/loss")
    assert len(history) >= 1 and all(torch.isfinite(torch.tensor(m.value)) for m in history)
    assert "train/final_loss" in mlflow.get_run(run.info.run_id).data.metrics
    # exactly one run: nothing stray was opened by the trainer
    assert len(mlflow.search_runs(output_format="list")) == 1
    adapter = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="adapter")
    with open(f"{adapter}/adapter_config.json") as handle:
        text = handle.read()
    config = json.loads(text)
    assert config["base_model_name_or_path"] == "my-base"
    assert config["r"] == 16 and config["lora_alpha"] == 32
    assert sorted(config["target_modules"]) == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert str(tracking) not in text and "/root" not in text and "/tmp" not in text


def test_lora_targets_choose_the_adapted_layers(tiny):
    """'attention' adapts the attention projections only; 'attention_mlp' the MLP projections too."""
    from peft import get_peft_model

    from know_thyself.config import TrainConfig
    from know_thyself.training.lora import lora_config

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


def _batch(trainer):
    return next(iter(trainer.get_train_dataloader()))


def test_label_positions_only_keeps_the_loss_and_gradients(tiny_model_dir, tmp_path, monkeypatch):
    """The LM head over the labelled positions only: the same loss and LoRA gradients as over every position."""
    from trl.trainer import utils as trl_utils

    from know_thyself.training import speedups as training

    cfg = _cfg(tiny_model_dir, lora_dropout=0.0)
    trainer = build_trainer(EXAMPLES, cfg, str(tmp_path))
    batch = _batch(trainer)
    projected = []
    real_apply = trl_utils._ChunkedLogProbFunction.apply

    def counting_apply(hidden, *args):
        projected.append(hidden.shape[0])
        return real_apply(hidden, *args)

    monkeypatch.setattr(trl_utils._ChunkedLogProbFunction, "apply", counting_apply)
    results = {}
    for only_labels in (False, True):
        monkeypatch.setattr(training, "SCORE_LABEL_POSITIONS_ONLY", only_labels)
        trainer.model.zero_grad()
        loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        results[only_labels] = (loss.detach(), grads)
    trained_positions = int((batch["labels"][:, 1:] != -100).sum())
    rows, width = batch["input_ids"].shape
    assert projected == [rows * (width - 1), trained_positions]  # every position, then only the trained ones
    assert trained_positions < rows * (width - 1) / 4
    (loss_all, grads_all), (loss_labels, grads_labels) = results[False], results[True]
    assert torch.allclose(loss_all, loss_labels, atol=1e-6)
    assert grads_all.keys() == grads_labels.keys() and grads_all
    for name in grads_all:
        assert torch.allclose(grads_all[name], grads_labels[name], atol=1e-6, rtol=1e-4), name


def test_length_grouping_keeps_every_example_and_its_loss_mask(tiny_model_dir, tmp_path, monkeypatch):
    """Length-grouped batches: each example once per epoch, with the same completion-only labels, less padding."""
    from know_thyself.training import speedups as training

    # enough examples for megabatches of several batches (the sampler sorts within a megabatch)
    questions = [f"Question number {i}?" + " And some more words" * (i % 7) for i in range(64)]
    examples = [{"prompt": judgment_messages(q), "completion": judgment_completion(("can", "cannot", "uncertain")[i % 3])}
                for i, q in enumerate(questions)]
    cfg = _cfg(tiny_model_dir)
    padding, seen = {}, {}
    for grouped in (False, True):
        monkeypatch.setattr(training, "GROUP_BY_LENGTH", grouped)
        trainer = build_trainer(examples, cfg, str(tmp_path))
        expected = sorted(
            (tuple(row["input_ids"]), tuple(label for label in row["labels"]))
            for row in trainer.train_dataset
        )
        rows, pads = [], 0
        for batch in trainer.get_train_dataloader():
            mask = batch["attention_mask"].bool()
            pads += int((~mask).sum())
            for ids, labels, keep in zip(batch["input_ids"], batch["labels"], mask):
                rows.append((tuple(ids[keep].tolist()), tuple(labels[keep].tolist())))
        assert sorted(rows) == expected  # same examples, same trained tokens
        padding[grouped], seen[grouped] = pads, sorted(rows)
    assert seen[True] == seen[False]
    assert padding[True] < padding[False]


def test_shared_prompt_prefix_keeps_the_loss_and_gradients(tiny_model_dir, tmp_path, monkeypatch):
    """The examples' shared prefix run once per batch: the same loss and LoRA gradients as row by row."""
    from know_thyself.training import speedups as training

    cfg = _cfg(tiny_model_dir, lora_dropout=0.0)
    results, widths = {}, {}
    for shared in (False, True):
        monkeypatch.setattr(training, "SHARE_PROMPT_PREFIX", shared)
        trainer = build_trainer(EXAMPLES, cfg, str(tmp_path))
        batch = _batch(trainer)
        backbone = trainer.model.get_base_model().base_model
        seen = []
        for layer in backbone.layers[:1]:
            layer.register_forward_pre_hook(
                lambda module, args, kwargs, seen=seen: seen.append(tuple(args[0].shape[:2])), with_kwargs=True
            )
        loss = trainer.compute_loss(trainer.model, dict(batch))
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        results[shared], widths[shared] = (loss.detach(), grads), seen
    rows, width = batch["input_ids"].shape
    prefix = common_prefix_length(trainer.train_dataset["input_ids"])
    assert prefix >= training.MIN_SHARED_PREFIX
    assert widths[False] == [(rows, width)]  # every row's every token
    assert widths[True] == [(1, prefix), (rows, width - prefix)]  # the prefix once, then the rest of each row
    (loss_plain, grads_plain), (loss_shared, grads_shared) = results[False], results[True]
    assert torch.allclose(loss_plain, loss_shared, atol=1e-5)
    assert grads_plain.keys() == grads_shared.keys() and grads_plain
    for name in grads_plain:
        assert torch.allclose(grads_plain[name], grads_shared[name], atol=1e-5, rtol=1e-3), name


def test_shared_prompt_prefix_steps_aside_for_other_batches(tiny_model_dir, tmp_path):
    """A batch whose rows do not all start with the prefix takes the backbone's own forward."""
    trainer = build_trainer(EXAMPLES, _cfg(tiny_model_dir, lora_dropout=0.0), str(tmp_path))
    batch = dict(_batch(trainer))
    batch["input_ids"] = batch["input_ids"].clone()
    batch["input_ids"][0, 0] = (batch["input_ids"][0, 0] + 1) % 100
    backbone = trainer.model.get_base_model().base_model
    seen = []
    backbone.layers[0].register_forward_pre_hook(lambda module, args, kwargs: seen.append(tuple(args[0].shape[:2])),
                                                 with_kwargs=True)
    loss = trainer.compute_loss(trainer.model, batch)
    assert torch.isfinite(loss)
    assert seen == [tuple(batch["input_ids"].shape)]


@pytest.mark.parametrize(("dtype", "bf16"), [("float32", False), ("bfloat16", True)])
def test_the_trainer_runs_in_the_precision_dtype_names(tiny, tiny_model_dir, tmp_path, dtype, bf16):
    trainer = build_trainer(EXAMPLES[:2], _cfg(tiny_model_dir, dtype=dtype), str(tmp_path), model_and_tokenizer=tiny)
    assert trainer.args.bf16 is bf16 and trainer.args.fp16 is False
    trained = train_lora(EXAMPLES[:4], _cfg(tiny_model_dir, dtype=dtype), model_and_tokenizer=tiny)
    # How far the training stayed from the divergence limits, logged with the summary numbers.
    assert 0 < trained.metrics["train/largest_grad_norm"] < 1000
    assert 0 < trained.metrics["train/adapter_update_ratio"] < 10


def test_float16_training_on_a_cpu_is_refused_before_training(tiny, tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match=r"dtype float16 trains on a GPU only .* use bfloat16, float32 or auto"):
        build_trainer(EXAMPLES[:2], _cfg(tiny_model_dir, dtype="float16"), str(tmp_path), model_and_tokenizer=tiny)


def test_lora_layers_adapts_the_top_blocks_only(tiny, tiny_model_dir, tmp_path):
    """lora_layers N: adapters in the top N blocks only, and the training's gradients stop at the lowest of them."""
    model, _tokenizer = tiny
    blocks = model.config.num_hidden_layers
    trainer = build_trainer(EXAMPLES[:4], _cfg(tiny_model_dir, lora_layers=1), str(tmp_path), model_and_tokenizer=tiny)
    adapted = {int(name.split(".layers.")[1].split(".")[0]) for name, _ in trainer.model.named_parameters() if "lora_A" in name}
    assert adapted == {blocks - 1}
    seen = []
    hooks = [layer.register_forward_hook(lambda m, a, out, i=i: seen.append((i, out[0] if isinstance(out, tuple) else out)))
             for i, layer in enumerate(trainer.model.get_base_model().model.layers)]
    batch = _batch(trainer)
    trainer.compute_loss(trainer.model, dict(batch))
    for hook in hooks:
        hook.remove()
    needs_grad = {i for i, hidden in seen if hidden.requires_grad}
    assert needs_grad == {blocks - 1}  # nothing below the adapted block is in the backward graph
    # As many blocks as the model has, or more: every block, as with 0.
    from know_thyself.training.lora import adapted_blocks

    assert adapted_blocks(_cfg(tiny_model_dir, lora_layers=blocks + 1), blocks) is None
    assert adapted_blocks(_cfg(tiny_model_dir, lora_layers=0), blocks) is None
    assert adapted_blocks(_cfg(tiny_model_dir, lora_layers=8), 30) == list(range(22, 30))
