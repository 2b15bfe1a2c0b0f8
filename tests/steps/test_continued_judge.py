"""Judgment v2 can continue judgment v1's adapter: the training starts from v1's weights, and an adapter
that does not fit the options is refused before any run opens."""

import mlflow
import pytest
import torch
from safetensors.torch import load_file

from know_thyself.config import JudgmentDataConfig, TrainConfig
from know_thyself.steps.build_judgment_data import run_build_judgment_data
from know_thyself.steps.train_judgment import run_train_judgment
from know_thyself.training.lora import check_adapter_matches

LABELS = ("can", "uncertain", "cannot")


def _adapter(run_id):
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="adapter/adapter_model.safetensors")
    return load_file(path)


@pytest.fixture
def judgment_data(tracking, trivia_dir):
    from helpers import fake_collect_run, labelled_rows

    rows = labelled_rows(4, 1)
    collect = fake_collect_run(rows, {"num_trials": "2"})
    return run_build_judgment_data(JudgmentDataConfig(collect_run_id=collect)).run_id


def test_a_continued_adapter_starts_from_the_earlier_one(judgment_data, tiny_model_dir):
    first = run_train_judgment(TrainConfig(model=tiny_model_dir, data_run_id=judgment_data, epochs=1, batch_size=4,
                                           lora_r=2, dev_fraction=0)).run_id
    # lr tiny: the continued adapter stays next to the first; a fresh one (B = 0 at the start) stays next to zero.
    options = {"model": tiny_model_dir, "data_run_id": judgment_data, "epochs": 1, "batch_size": 4, "lora_r": 2,
               "dev_fraction": 0, "learning_rate": 1e-9}
    continued = run_train_judgment(TrainConfig(**options, init_adapter_run_id=first)).run_id
    fresh = run_train_judgment(TrainConfig(**options, seed=7)).run_id
    before, after, new = _adapter(first), _adapter(continued), _adapter(fresh)
    assert before.keys() == after.keys()
    b_weights = [k for k in before if "lora_B" in k]
    assert any(before[k].abs().max() > 1e-4 for k in b_weights)  # the first training moved B away from zero
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    assert all(new[k].abs().max() < 1e-6 for k in b_weights)
    run = mlflow.get_run(continued)
    assert run.data.params["init_adapter_run_id"] == first
    assert run.data.tags["mlflow.note.content"].startswith(f"Continued the judgment LoRA adapter of train_judgment run {first}")


def test_an_adapter_that_does_not_fit_the_options_is_refused_before_the_run(judgment_data, tiny_model_dir):
    first = run_train_judgment(TrainConfig(model=tiny_model_dir, data_run_id=judgment_data, epochs=1, batch_size=4,
                                           lora_r=2, dev_fraction=0, max_steps=1)).run_id
    runs = len(mlflow.search_runs(search_all_experiments=True))
    with pytest.raises(ValueError, match=r"cannot be continued with these options: its r 2 \(this training: 4\)"):
        run_train_judgment(TrainConfig(model=tiny_model_dir, data_run_id=judgment_data, lora_r=4,
                                       init_adapter_run_id=first))
    with pytest.raises(ValueError, match="train_judgment run"):
        run_train_judgment(TrainConfig(model=tiny_model_dir, data_run_id=judgment_data, init_adapter_run_id=judgment_data))
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs


def test_the_adapter_check_names_every_difference():
    cfg = TrainConfig(data_run_id="a" * 32, lora_r=16, lora_alpha=32, lora_targets="attention")
    check_adapter_matches({"r": 16, "lora_alpha": 32, "target_modules": ["v_proj", "q_proj", "o_proj", "k_proj"]}, cfg, "x")
    with pytest.raises(ValueError, match=r"its lora_alpha 16 \(this training: 32\), target_modules"):
        check_adapter_matches({"r": 16, "lora_alpha": 16, "target_modules": ["q_proj"]}, cfg, "x")
    # The adapted blocks: a list must be as long as lora_layers; every block fits 0, or a lora_layers the model
    # cannot fill (a 2-block model trained with the judges' default 8), and is checked once the model is known.
    attention = {"r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}
    top8 = TrainConfig(data_run_id="a" * 32, lora_targets="attention", lora_layers=8)
    check_adapter_matches({**attention, "layers_to_transform": list(range(22, 30))}, top8, "x")
    check_adapter_matches({**attention, "layers_to_transform": None}, top8, "x", num_blocks=2)
    check_adapter_matches({**attention, "layers_to_transform": None}, top8, "x")
    with pytest.raises(ValueError, match=r"lora_layers 0, every block \(this training: 8 of 30\)"):
        check_adapter_matches({**attention, "layers_to_transform": None}, top8, "x", num_blocks=30)
    with pytest.raises(ValueError, match=r"lora_layers 4 \(this training: 8\)"):
        check_adapter_matches({**attention, "layers_to_transform": [26, 27, 28, 29]}, top8, "x")
