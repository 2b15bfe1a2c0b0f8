"""Options with a fixed set of values: declared once in the field's metadata, listed in ``--help`` and MLproject,
refused by the option parser with the list, and still checked by the config for Python API callers."""

from __future__ import annotations

import sys
from dataclasses import fields
from typing import get_type_hints

import click
import pytest
from click.testing import CliRunner
from helpers import command

import know_thyself.config  # noqa: F401 - every config module, loaded before their check_choice is wrapped
from know_thyself.config import (
    ENTRY_POINT_CONFIGS,
    CollectConfig,
    CollectOptions,
    EvaluateRegisteredConfig,
    MultiphaseConfig,
    StepConfig,
    SweepConfig,
    TrainingOptions,
)
from know_thyself.config.judgment import JudgeOptions

RUN = "0123456789abcdef0123456789abcdef"
CONFIGS = sorted({*ENTRY_POINT_CONFIGS.values(), TrainingOptions, JudgeOptions, CollectOptions}, key=lambda c: c.__name__)
# Choices narrower than the tuple the config's check_choice accepts, with the values left out: the sweep
# cannot try balance 'taught' (a collect run does not say which questions Phase 2 taught), and refuses it
# with its own reason.
NARROWED = {("SweepConfig", "balance"): {"taught"}}


def _script(name: str) -> str:
    return "multiphase" if name == "main" else name


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _valid(cls: type[StepConfig]) -> StepConfig:
    """An instance of ``cls`` on its defaults, its required upstream run ids filled in."""
    return cls(**{f.name: RUN for f in fields(cls) if f.metadata.get("required")})


# --------------------------------------------------------------------------------------------
# --help lists the values
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entrypoint", "shown"),
    [
        ("collect", ["--label_scheme [three|binary]", "--backend [auto|transformers|plain|vllm]",
                     "--dtype [auto|bfloat16|float16|float32]", "One or more of: train, validation."]),
        ("train_judgment", ["--loss [label|sft]", "--balance [weights|taught|oversample|none]",
                            "--readout [label|stacked]", "--select_by [auroc|balanced_accuracy|qwk]",
                            "--lora_targets [attention|attention_mlp]", "--label_targets [hard|soft]"]),
        ("multiphase", ["--phase [0|1|2|3]", "--readout_v2 [label|stacked]",
                        "--balance_v2 [weights|taught|oversample|none]", "--knowledge_targets [reference|own_words]",
                        "--knowledge_lora_targets [attention|attention_mlp]"]),
        ("build_knowledge_data", ["--targets [reference|own_words]"]),
        ("evaluate_registered", ["--split [train|validation]"]),
        ("sweep", ["--epoch_select_by [auroc|balanced_accuracy|qwk]",
                   "--select_by [balanced_accuracy|qwk|macro_f1|exact_match|auroc|prr|brier|ece|aurc]",
                   "One or more of: label, sft.", "One or more of: weights, oversample, none.",
                   "One or more of: hard, soft.", "One or more of: attention, attention_mlp."]),
    ],
)
def test_help_lists_the_values(entrypoint, shown):
    result = CliRunner().invoke(command(entrypoint), ["--help"])
    assert result.exit_code == 0, result.output
    text = _one_line(result.output)
    for value in shown:
        assert value in text, f"{entrypoint} --help lacks {value!r}"


@pytest.mark.parametrize("name", sorted(ENTRY_POINT_CONFIGS))
def test_every_declared_choice_is_the_parsers(name):
    """Each option with choices is a click.Choice of exactly them; a list of choices (the sweep's grid) stays text."""
    config = ENTRY_POINT_CONFIGS[name]
    params = {p.name: p for p in command(_script(name)).params}
    for field in fields(config):
        choices = config.choices(field.name)
        kind = params[field.name].type
        if choices and not config.takes_many(field.name):
            assert isinstance(kind, click.Choice), f"{name} --{field.name} is not a click.Choice"
            assert tuple(kind.choices) == choices
        else:
            assert not isinstance(kind, click.Choice), f"{name} --{field.name} should not be a click.Choice"


# --------------------------------------------------------------------------------------------
# A wrong value: exit 2, one line naming the list
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entrypoint", "args", "line"),
    [
        ("train_judgment", ["--data_run_id", RUN, "--loss", "mse"],
         "Error: Invalid value for '--loss': 'mse' is not one of 'label', 'sft'."),
        ("train_judgment", ["--data_run_id", RUN, "--balance", "undersample"],
         "Error: Invalid value for '--balance': 'undersample' is not one of 'weights', 'taught', 'oversample', 'none'."),
        ("phase1", ["--readout", "linear"], "Error: Invalid value for '--readout': 'linear' is not one of 'label', 'stacked'."),
        ("multiphase", ["--readout_v2", "x"], "Error: Invalid value for '--readout_v2': 'x' is not one of 'label', 'stacked'."),
        ("multiphase", ["--phase", "4"], "Error: Invalid value for '--phase': '4' is not one of '0', '1', '2', '3'."),
        ("collect", ["--dtype", "fp8"],
         "Error: Invalid value for '--dtype': 'fp8' is not one of 'auto', 'bfloat16', 'float16', 'float32'."),
        ("collect", ["--backend", "llama"],
         "Error: Invalid value for '--backend': 'llama' is not one of 'auto', 'transformers', 'plain', 'vllm'."),
        ("train_knowledge", ["--data_run_id", RUN, "--lora_targets", "mlp"],
         "Error: Invalid value for '--lora_targets': 'mlp' is not one of 'attention', 'attention_mlp'."),
        ("build_knowledge_data", ["--collect_run_id", RUN, "--targets", "paraphrase"],
         "Error: Invalid value for '--targets': 'paraphrase' is not one of 'reference', 'own_words'."),
        ("sweep", ["--collect_run_id", RUN, "--select_by", "loss"],
         ("Error: Invalid value for '--select_by': 'loss' is not one of 'balanced_accuracy', 'qwk', 'macro_f1', "
          "'exact_match', 'auroc', 'prr', 'brier', 'ece', 'aurc'.")),
    ],
)
def test_a_wrong_value_is_refused_by_the_parser_with_the_list(monkeypatch, entrypoint, args, line):
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    result = CliRunner().invoke(command(entrypoint), args)
    assert result.exit_code == 2, result.output
    errors = [text for text in result.output.splitlines() if text.startswith("Error")]
    assert errors == [line], result.output
    assert "Traceback" not in result.output


def test_a_grid_option_takes_a_list_and_the_config_checks_each_value():
    main = command("sweep")
    parsed = main.make_context("sweep", ["--collect_run_id", RUN, "--loss", "label,sft", "--balance", "weights,none"])
    assert parsed.params["loss"] == "label,sft" and parsed.params["balance"] == "weights,none"
    bad = main.make_context("sweep", ["--collect_run_id", RUN, "--loss", "label,mse"])  # the parser lets it through
    with pytest.raises(ValueError, match="loss must be one of label, sft, got 'mse'"):
        SweepConfig.from_options(bad.params)


def test_the_configs_still_check_the_values_for_python_callers():
    with pytest.raises(ValueError, match="phase must be 0 \\(all\\), 1, 2 or 3, got 4"):
        MultiphaseConfig(phase=4)
    with pytest.raises(ValueError, match="split must be 'train' or 'validation', got 'test'"):
        EvaluateRegisteredConfig(split="test")
    with pytest.raises(ValueError, match="backend must be one of auto, transformers, plain, vllm, got 'llama'"):
        CollectConfig(backend="llama")
    with pytest.raises(ValueError, match="splits must be 'train,validation', 'train' or 'validation'"):
        CollectConfig(splits="train,test")


# --------------------------------------------------------------------------------------------
# Declared once, none forgotten
# --------------------------------------------------------------------------------------------


@pytest.fixture
def checked_choices(monkeypatch):
    """Every ``check_choice(name, value, choices)`` a config's validate makes, recorded (and still checked) as
    ``(config class, name, choices)``: the class of the config whose validate is the innermost caller (a sweep's
    validate builds each grid point's JudgeOptions, whose own checks are JudgeOptions')."""
    calls: list[tuple[type, str, tuple]] = []
    real = sys.modules["know_thyself.config.choices"].check_choice

    def recording(name, value, choices):
        frame = sys._getframe(1)
        while not (frame.f_code.co_name == "validate" and isinstance(frame.f_locals.get("self"), StepConfig)):
            frame = frame.f_back
        calls.append((type(frame.f_locals["self"]), name, tuple(choices)))
        real(name, value, choices)

    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("know_thyself.config") and getattr(module, "check_choice", None) is real:
            monkeypatch.setattr(module, "check_choice", recording)
    return calls


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_field_checked_by_check_choice_declares_its_choices(checked_choices, cls):
    _valid(cls)
    names = {f.name for f in fields(cls)}
    for _, name, accepted in [call for call in checked_choices if call[0] is cls]:
        assert name in names, f"{cls.__name__} checks {name!r}, which is not a field"
        declared = cls.choices(name)
        assert declared, f"{cls.__name__}.{name} is checked by check_choice but declares no choices"
        left_out = set(accepted) - set(declared)
        assert set(declared) <= set(accepted), f"{cls.__name__}.{name} declares values its check refuses"
        assert left_out == NARROWED.get((cls.__name__, name), set()), (
            f"{cls.__name__}.{name} declares {declared}, its check accepts {accepted}")


def test_the_record_sees_the_checks(checked_choices):
    _valid(MultiphaseConfig)
    seen = {name for owner, name, _ in checked_choices if owner is MultiphaseConfig}
    assert {"dtype", "loss", "balance", "balance_v2", "readout_v2", "knowledge_targets", "lora_targets"} <= seen


@pytest.mark.parametrize(
    ("cls", "name", "choices"),
    [
        (MultiphaseConfig, "phase", (0, 1, 2, 3)),
        (EvaluateRegisteredConfig, "split", ("train", "validation")),
        (CollectConfig, "splits", ("train", "validation")),
        (SweepConfig, "select_by", ("balanced_accuracy", "qwk", "macro_f1", "exact_match", "auroc", "prr",
                                    "brier", "ece", "aurc")),
    ],
)
def test_fields_checked_in_their_own_words_declare_choices_too(cls, name, choices):
    assert cls.choices(name) == choices


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_default_is_one_of_its_choices(cls):
    hints = get_type_hints(cls)
    for field in fields(cls):
        choices = cls.choices(field.name)
        if not choices:
            continue
        assert hints[field.name] is type(choices[0]), f"{cls.__name__}.{field.name}: choices of another type"
        default = getattr(cls, field.name)
        values = [v.strip() for v in default.split(",")] if cls.takes_many(field.name) else [default]
        assert set(values) <= set(choices), f"{cls.__name__}.{field.name} defaults to {default!r}, not in {choices}"


def test_mlproject_names_the_values():
    from know_thyself.cli.mlproject import render

    text = render()
    assert "      loss: {type: string, default: label}  # one of: label, sft\n" in text
    assert "      phase: {type: int, default: 0}  # one of: 0, 1, 2, 3\n" in text
    assert "      balance: {type: string, default: weights}  # comma-separated, each one of: weights, oversample, none\n" in text
    assert '      splits: {type: string, default: "train,validation"}  # comma-separated, each one of: train, validation\n' in text
    assert "collect_run_id: string\n" in text  # no comment where any value goes
