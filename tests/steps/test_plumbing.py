"""Small pieces the steps share: presets, one-line errors, JSONL artifacts, temporary downloads,
left-padded batches, training metrics, baselines and the knowledge test's refusals."""

from __future__ import annotations

import math

import click
import mlflow
import pytest
from helpers import ROOT

from know_thyself.cli import presets, run_cli
from know_thyself.tracking import downloaded, log_jsonl, read_jsonl_artifact


def test_mistyped_preset_path_gives_the_friendly_message(capsys):
    with pytest.raises(ValueError, match="preset 'presets/no-such.yaml' does not exist; presets live in presets/"):
        presets.mlflow_run_args("presets/no-such.yaml")
    assert presets.main(["presets/no-such.yaml"]) == 1
    assert "Error: preset 'presets/no-such.yaml' does not exist" in capsys.readouterr().err


def test_preset_args_of_a_real_preset():
    args = presets.mlflow_run_args(ROOT / "presets" / "offline-own-words.yaml")
    assert args == ["-P", "knowledge_fraction=1.0"]


def test_no_preset_runs_the_defaults():
    assert presets.mlflow_run_args(None) == []
    assert presets.mlflow_run_command(None, []) == [
        "mlflow", "run", ".", "-e", "multiphase", "--env-manager", "local", "--experiment-name", "know-thyself",
    ]


@pytest.mark.parametrize("path", sorted((ROOT / "presets").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_preset_is_valid_and_states_only_what_it_changes(path):
    """mlflow run refuses a repeated -P; a preset sets each option once, and only to a value other than the default."""
    from know_thyself.config import MultiphaseConfig

    args = presets.mlflow_run_args(path)
    names = [a.split("=", 1)[0] for a in args[1::2]]
    assert names and len(names) == len(set(names))
    chosen = MultiphaseConfig.from_options(presets.read_preset(path)).params()
    defaults = MultiphaseConfig().params()
    assert all(chosen[name] != defaults[name] for name in names), "a preset restates a default"
    assert path.read_text().startswith(f"# make run PRESET=presets/{path.name}\n")


def test_a_preset_value_with_spaces_and_wildcards_stays_one_argument(tmp_path):
    preset = tmp_path / "odd.yaml"
    preset.write_text("dataset: my data; *.jsonl\n")
    command = presets.mlflow_run_command(preset, ["-P", "phase=1"])
    assert command[-4:] == ["-P", "dataset=my data; *.jsonl", "-P", "phase=1"]


def test_pyyaml_is_declared():
    text = (ROOT / "pyproject.toml").read_text()
    import yaml

    assert f'"pyyaml=={yaml.__version__}"' in text.lower()


def test_connection_errors_become_one_line(tracking):
    @run_cli
    def body():
        raise ConnectionError("the tracking server http://x is not reachable")

    with pytest.raises(click.ClickException, match="the tracking server http://x is not reachable"):
        body()


def test_jsonl_artifacts_round_trip_and_downloads_are_removed(tracking):
    records = [{"question": "Où est Zürich?", "n": 1}, {"question": "x", "n": 2}]
    with mlflow.start_run() as run:
        log_jsonl(records, "folder/records.jsonl")
    assert read_jsonl_artifact(run.info.run_id, "folder/records.jsonl") == records
    with downloaded(run.info.run_id, "folder") as folder:
        assert (folder / "records.jsonl").read_text(encoding="utf-8").splitlines()[0] == (
            '{"question": "Où est Zürich?", "n": 1}'
        )
    assert not folder.exists()


def test_training_names_undefined_metrics_instead_of_logging_nan(tracking, tiny_model_dir):
    from know_thyself.config import TrainConfig
    from know_thyself.data.prompts import judgment_completion, judgment_messages
    from know_thyself.tracking.training_log import log_training
    from know_thyself.training.lora import train_lora

    examples = [{"prompt": judgment_messages(f"Question {i}?"), "completion": judgment_completion("can")} for i in range(4)]
    cfg = TrainConfig(model=tiny_model_dir, data_run_id="0" * 32, batch_size=2, max_steps=1)
    with mlflow.start_run() as run:
        log_training(train_lora(examples, cfg))
    result = mlflow.get_run(run.info.run_id)
    assert all(math.isfinite(v) for v in result.data.metrics.values())
    assert "train/tokens_per_s" not in result.data.metrics
    assert result.data.tags["undefined_metrics"] == "train/tokens_per_s"


def test_collect_records_its_question_set(tracking, tiny_model_dir, trivia_dir):
    from know_thyself.config import CollectConfig
    from know_thyself.evaluation.ability import load_questions, question_set_digest
    from know_thyself.steps.collect import TAG_QUESTION_SET, run_collect

    cfg = CollectConfig(model=tiny_model_dir, dataset=str(trivia_dir), num_samples=3, test_samples=2, num_trials=1,
                        max_new_tokens=2)
    run = run_collect(cfg)
    expected = question_set_digest(load_questions(str(trivia_dir), 3, 2, 42))
    assert mlflow.get_run(run.run_id).data.tags[TAG_QUESTION_SET] == expected
    assert question_set_digest(load_questions(str(trivia_dir), 3, 2, 7)) != expected


def test_steps_that_read_a_collect_run_name_the_same_question_sets(tracking, tiny_model_dir, trivia_dir):
    from know_thyself.config import CollectConfig, JudgmentDataConfig
    from know_thyself.steps.build_judgment_data import run_build_judgment_data
    from know_thyself.steps.collect import run_collect

    cfg = CollectConfig(model=tiny_model_dir, dataset=str(trivia_dir), num_samples=3, test_samples=2, num_trials=1,
                        max_new_tokens=2)
    collected = run_collect(cfg).run_id
    built = run_build_judgment_data(JudgmentDataConfig(collect_run_id=collected)).run_id

    def inputs(run_id):
        return {i.tags[0].value: (i.dataset.name, i.dataset.digest) for i in mlflow.get_run(run_id).inputs.dataset_inputs}

    assert set(inputs(collected)) == {"train", "validation"}
    assert inputs(built) == inputs(collected)
    assert inputs(collected)["train"][0] == "trivia" and inputs(collected)["train"][1] != inputs(collected)["validation"][1]
