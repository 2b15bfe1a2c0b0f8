"""The step layout: every MLproject entry point against its config, help beside each field,
configs derived from a chain's config, and what each step checks before it opens a run."""

from __future__ import annotations

import re
import shutil
from dataclasses import MISSING, fields

import mlflow
import pytest
import yaml
from click.testing import CliRunner
from helpers import ROOT, command

from know_thyself import config
from know_thyself.config import (
    ENTRY_POINT_CONFIGS,
    CollectConfig,
    KnowledgeTrainConfig,
    MultiphaseConfig,
    Phase1Config,
    TrainConfig,
    TrainingOptions,
)

PROJECT = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]
_TYPES = {"int": int, "float": float, "string": str, "str": str}
RUN_A = "0123456789abcdef0123456789abcdef"


def test_every_entry_point_has_a_config_and_a_step_module():
    assert set(PROJECT) == set(ENTRY_POINT_CONFIGS)
    for name in PROJECT:
        target = "multiphase" if name == "main" else name
        assert (ROOT / "know_thyself" / "steps" / f"{target}.py").is_file(), name
        script = (ROOT / "entrypoints" / f"{target}.py").read_text()
        assert f"step_command(__doc__, {ENTRY_POINT_CONFIGS[name].__name__}," in script, name
        assert f"from know_thyself.steps.{target} import run_{target}" in script, name


@pytest.mark.parametrize("name", sorted(PROJECT))
def test_entry_point_parameters_match_the_config(name):
    cls = ENTRY_POINT_CONFIGS[name]
    spec = PROJECT[name]
    parameters = spec.get("parameters") or {}
    assert list(parameters) == [f.name for f in fields(cls)], f"{name}: parameters differ from {cls.__name__}"
    declared = {f.name: f for f in fields(cls)}
    for param, value in parameters.items():
        value = value if isinstance(value, dict) else {"type": value}
        default = declared[param].default
        assert default is not MISSING
        assert type(default) is _TYPES[value["type"]], f"{name}.{param}: type {value['type']} vs {type(default).__name__}"
        if "default" in value:
            assert _TYPES[value["type"]](value["default"]) == default, f"{name}.{param}: default"
        else:  # required in MLproject: a run id, which the config has no usable default for
            assert default == "" and param.endswith("run_id"), f"{name}.{param}"
    # Each parameter reaches the command once, as `--name {name}`, never inside quotes: MLflow
    # shell-quotes every value itself, and quotes around a placeholder would undo that.
    command_text = " ".join(spec["command"].split())
    target = "multiphase" if name == "main" else name
    assert command_text.startswith(f"python entrypoints/{target}.py ")
    for param in parameters:
        assert command_text.count("{" + param + "}") == 1, f"{name}: {param}"
        assert f"--{param} {{{param}}}" in command_text, f"{name}: {param} is not passed as --{param} {{{param}}}"
    assert not re.search(r"[\"']\{|\}[\"']", command_text), f"{name}: a quoted placeholder"
    assert set(re.findall(r"\{(\w+)\}", command_text)) == set(parameters)


@pytest.mark.parametrize("cls", sorted(set(ENTRY_POINT_CONFIGS.values()), key=lambda c: c.__name__))
def test_every_option_has_help(cls):
    for field in fields(cls):
        assert cls.help(field.name), f"{cls.__name__}.{field.name} has no help"


def test_help_names_the_right_upstream_step():
    assert "build_judgment_data run" in TrainConfig.help("data_run_id")
    assert "build_knowledge_data run" in KnowledgeTrainConfig.help("data_run_id")
    result = CliRunner().invoke(command("train_knowledge"), ["--help"])
    assert result.exit_code == 0
    assert "build_knowledge_data run" in " ".join(result.output.split())
    assert "build_judgment_data run" not in " ".join(result.output.split())


def test_a_default_override_keeps_the_help():
    assert "Validation questions" in Phase1Config.help("test_samples")  # its own, chain-specific help
    assert Phase1Config.help("temperature") == CollectConfig.help("temperature")
    assert KnowledgeTrainConfig.help("epochs") == TrainingOptions.help("epochs")  # a bare default override


def test_step_configs_are_derived_from_the_chain_config():
    chain = MultiphaseConfig(num_trials=3, lora_r=4, knowledge_epochs=3.0, inference_batch_size=4)
    collect = chain.derive(CollectConfig, model="models:/knowledge_base/2")
    assert (collect.model, collect.num_trials, collect.test_samples) == ("models:/knowledge_base/2", 3, 205)
    assert chain.phase1() == Phase1Config(**{f.name: getattr(chain, f.name) for f in fields(Phase1Config)})
    knowledge = chain.knowledge(RUN_A)
    assert isinstance(knowledge, KnowledgeTrainConfig)
    assert (knowledge.epochs, knowledge.lora_r, knowledge.data_run_id) == (3.0, 4, RUN_A)
    # A derived config is validated as the step validates it.
    with pytest.raises(ValueError, match="data_run_id must be an MLflow run id"):
        chain.train("not-a-run")
    # Judgment v2 takes its own readout and balance; judgment v1 keeps the chain's.
    chain = MultiphaseConfig(balance_v2="taught", readout_v2="stacked")
    assert (chain.phase3().balance, chain.phase3().readout) == ("taught", "stacked")
    assert (chain.phase1().balance, chain.phase1().readout) == ("weights", "label")
    with pytest.raises(ValueError, match="balance_v2 must be one of weights, taught, oversample, none"):
        MultiphaseConfig(balance_v2="even")
    with pytest.raises(ValueError, match="loss sft trains on the completion's tokens"):
        MultiphaseConfig(loss="sft", balance="oversample", balance_v2="taught")


def test_a_chain_config_validates_without_inventing_run_ids(monkeypatch):
    seen = []
    real = config.check_run_id
    monkeypatch.setattr(config, "check_run_id", lambda *a, **k: seen.append(a) or real(*a, **k))
    MultiphaseConfig()
    assert seen == []  # no run id is checked: the chain holds none


# --------------------------------------------------------------------------------------------
# Checked before a step opens its run
# --------------------------------------------------------------------------------------------


def _no_runs() -> bool:
    return mlflow.search_runs(search_all_experiments=True, output_format="list") == []


def test_missing_registered_model_is_refused_before_the_run(tracking, trivia_dir):
    args = ["--model", "models:/nothing_here/3", "--dataset", str(trivia_dir), "--num_samples", "2", "--test_samples", "2"]
    result = CliRunner().invoke(command("collect"), args)
    assert result.exit_code != 0
    assert "registered model 'models:/nothing_here/3' does not exist" in result.output
    assert "Traceback" not in result.output
    assert _no_runs()


def test_unparsable_config_json_is_refused_before_the_run(tracking, tiny_model_dir, trivia_dir, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "config.json").write_text("{ not json")
    result = CliRunner().invoke(command("collect"), ["--model", str(broken), "--dataset", str(trivia_dir)])
    assert result.exit_code != 0
    assert "has a config.json that cannot be read as JSON" in result.output
    assert _no_runs()


def test_vllm_backend_without_vllm_is_refused_before_the_run(tracking, trivia_dir):
    from know_thyself.inference.sampling.vllm import available

    if available():
        pytest.skip("vllm is installed here")
    result = CliRunner().invoke(command("collect"), ["--backend", "vllm", "--dataset", str(trivia_dir)])
    assert result.exit_code != 0
    assert "backend 'vllm' needs the vllm package" in result.output
    assert _no_runs()


def test_the_error_goes_into_the_run_mlflow_run_opened(tracking, trivia_dir, monkeypatch):
    from know_thyself.tracking import current_experiment_id

    # What `mlflow run` does before starting the command: a run left RUNNING for it.
    opened = mlflow.MlflowClient().create_run(current_experiment_id())
    monkeypatch.setenv("MLFLOW_RUN_ID", opened.info.run_id)
    args = ["--model", "models:/nothing_here/3", "--dataset", str(trivia_dir), "--num_samples", "2", "--test_samples", "2"]
    result = CliRunner().invoke(command("collect"), args)
    assert result.exit_code != 0
    note = mlflow.get_run(opened.info.run_id).data.tags["mlflow.note.content"]
    assert "registered model 'models:/nothing_here/3' does not exist" in note


# --------------------------------------------------------------------------------------------
# Through `mlflow run`: a parameter value is one literal argument
# --------------------------------------------------------------------------------------------


def test_mlproject_is_generated_from_the_configs():
    from know_thyself.cli.mlproject import render

    assert (ROOT / "MLproject").read_text() == render(), "MLproject is stale: python -m know_thyself.cli.mlproject"


def test_mlflow_run_with_no_parameters_runs_what_make_run_runs(monkeypatch):
    """`mlflow run . -e multiphase` fills each parameter from MLproject's default; `make run` passes none."""
    import importlib.util
    import shlex

    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^PRESET \?=\s*$", makefile, re.MULTILINE), "make run must default to no preset"
    assert "-m know_thyself.cli.presets --run $(PRESET)" in makefile
    spec = PROJECT["multiphase"]
    # mlflow run hands the command each default as a string, shell-quoted.
    values = {name: shlex.quote(str(value["default"])) for name, value in spec["parameters"].items()}
    argv = shlex.split(spec["command"].format(**values))
    assert argv[:2] == ["python", "entrypoints/multiphase.py"]
    seen = []
    monkeypatch.setattr("know_thyself.tracking.configure_tracking", lambda: None)
    monkeypatch.setattr("know_thyself.steps.multiphase.run_multiphase", lambda cfg: seen.append(cfg) or {})
    loaded = importlib.util.spec_from_file_location("entrypoint_multiphase_defaults", ROOT / argv[1])
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    result = CliRunner().invoke(module.main, argv[2:])
    assert result.exit_code == 0, result.output
    assert seen[0].params() == MultiphaseConfig().params()
