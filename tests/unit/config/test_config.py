"""Step configs: conversion, validation messages, parameter export, and agreement with MLproject."""

from __future__ import annotations

from dataclasses import fields

import pytest

from know_thyself.config import (
    CollectConfig,
    EvaluateConfig,
    JudgmentDataConfig,
    Phase1Config,
    StepConfig,
    TrainConfig,
    check_run_id,
)

RUN_A = "0123456789abcdef0123456789abcdef"
RUN_B = "fedcba9876543210fedcba9876543210"


def field_names(cls: type[StepConfig]) -> list[str]:
    return [f.name for f in fields(cls)]


# --------------------------------------------------------------------------------------------
# Unknown keys and conversion
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "required"),
    [
        (CollectConfig, {}),
        (TrainConfig, {"data_run_id": RUN_A}),
        (EvaluateConfig, {"collect_run_id": RUN_A}),
        (JudgmentDataConfig, {"collect_run_id": RUN_A}),
        (Phase1Config, {}),
    ],
)
def test_unknown_key_is_rejected_with_accepted_keys(cls, required):
    with pytest.raises(ValueError) as info:
        cls.from_options({**required, "bogus_option": "1"})
    message = str(info.value)
    assert f"unknown option(s) for {cls.step}: bogus_option" in message
    assert "accepted: " + ", ".join(sorted(field_names(cls))) in message


def test_several_unknown_keys_are_all_named():
    with pytest.raises(ValueError, match="unknown option\\(s\\) for collect: aaa, zzz;"):
        CollectConfig.from_options({"zzz": 1, "aaa": 2})


def test_strings_are_converted():
    config = CollectConfig.from_options(
        {"num_trials": "5", "temperature": "0.7", "seed": "7", "num_samples": " 12 "}
    )
    assert config.num_trials == 5 and type(config.num_trials) is int
    assert config.temperature == 0.7 and type(config.temperature) is float
    assert config.seed == 7
    assert config.num_samples == 12

    train = TrainConfig.from_options({"data_run_id": RUN_A, "learning_rate": "1e-4", "epochs": "2"})
    assert train.learning_rate == 0.0001 and type(train.learning_rate) is float
    assert train.epochs == 2.0 and type(train.epochs) is float


def test_whole_float_is_accepted_for_int_field():
    config = CollectConfig.from_options({"num_trials": 3.0})
    assert config.num_trials == 3 and type(config.num_trials) is int


def test_defaults_without_options():
    config = CollectConfig.from_options({})
    assert config == CollectConfig()
    assert config.num_trials == 5
    assert config.model == "smollm2-135m-instruct"


@pytest.mark.parametrize("value", ["2.5", 2.5])
def test_fraction_for_int_field_is_rejected(value):
    with pytest.raises(ValueError, match="num_trials"):
        CollectConfig.from_options({"num_trials": value})


# --------------------------------------------------------------------------------------------
# Validation messages
# --------------------------------------------------------------------------------------------


def test_num_trials_zero():
    with pytest.raises(ValueError) as info:
        CollectConfig.from_options({"num_trials": "0"})
    assert "num_trials must be >= 1, got 0" in str(info.value)


def test_negative_learning_rate():
    with pytest.raises(ValueError, match="learning_rate must be in \\(0, 1\\), got -0.1"):
        TrainConfig.from_options({"data_run_id": RUN_A, "learning_rate": "-0.1"})


def test_non_numeric_learning_rate():
    with pytest.raises(ValueError) as info:
        TrainConfig.from_options({"data_run_id": RUN_A, "learning_rate": "fast"})
    message = str(info.value)
    assert "learning_rate" in message
    assert "'fast'" in message


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"label_scheme": "four"}, "label_scheme must be one of three, binary, got 'four'"),
        ({"backend": "llama"}, "backend must be one of auto, transformers, plain, vllm, got 'llama'"),
        ({"dtype": "int8"}, "dtype must be one of auto, bfloat16, float16, float32, got 'int8'"),
        ({"temperature": "0"}, "temperature must be in (0, 5], got 0.0"),
        ({"max_new_tokens": "513"}, "max_new_tokens must be in 1..512, got 513"),
        ({"inference_batch_size": "0"}, "inference_batch_size must be >= 1, got 0"),
        ({"num_trials": "1000000"}, "num_trials must be <= 100, got 1000000"),
        ({"test_samples": "-1"}, "test_samples must be >= 0, got -1"),
        ({"num_samples": "0", "test_samples": "0"}, "num_samples and test_samples are both 0"),
        ({"num_samples": "0"}, "splits includes train but num_samples is 0"),
        ({"model": "gpt-five"}, "unknown model 'gpt-five'"),
    ],
)
def test_collect_rejects_bad_values(options, expected):
    with pytest.raises(ValueError) as info:
        CollectConfig.from_options(options)
    assert expected in str(info.value)


@pytest.mark.parametrize("value", ["three", "binary"])
def test_label_schemes_accepted(value):
    assert CollectConfig.from_options({"label_scheme": value}).label_scheme == value


@pytest.mark.parametrize("value", ["auto", "transformers", "plain"])
def test_backends_accepted(value):
    assert CollectConfig.from_options({"backend": value}).backend == value


def test_evaluate_rejects_bad_dtype():
    with pytest.raises(ValueError, match="dtype must be one of auto, bfloat16, float16, float32, got 'fp8'"):
        EvaluateConfig.from_options({"collect_run_id": RUN_A, "dtype": "fp8"})


@pytest.mark.parametrize(
    ("cls", "field", "others"),
    [
        (JudgmentDataConfig, "collect_run_id", {}),
        (EvaluateConfig, "collect_run_id", {}),
        (EvaluateConfig, "adapter_run_id", {"collect_run_id": RUN_A}),
        (TrainConfig, "data_run_id", {}),
    ],
)
def test_run_id_fields_reject_non_ids(cls, field, others):
    for bad in ("abc", RUN_A.upper(), RUN_A + "0", RUN_A[:-1] + "g"):
        with pytest.raises(ValueError) as info:
            cls.from_options({**others, field: bad})
        assert f"{field} must be an MLflow run id (32 hex digits), got {bad!r}" in str(info.value)


@pytest.mark.parametrize(
    ("cls", "field", "others"),
    [
        (JudgmentDataConfig, "collect_run_id", {}),
        (EvaluateConfig, "collect_run_id", {}),
        (EvaluateConfig, "adapter_run_id", {"collect_run_id": RUN_A}),
        (TrainConfig, "data_run_id", {}),
    ],
)
def test_run_id_fields_accept_32_hex(cls, field, others):
    config = cls.from_options({**others, field: RUN_B})
    assert getattr(config, field) == RUN_B


def test_required_run_ids_may_not_be_empty():
    with pytest.raises(ValueError, match="collect_run_id"):
        JudgmentDataConfig.from_options({"collect_run_id": ""})
    with pytest.raises(ValueError, match="collect_run_id"):
        EvaluateConfig.from_options({})
    with pytest.raises(ValueError, match="data_run_id"):
        TrainConfig.from_options({})


def test_adapter_run_id_may_be_empty():
    config = EvaluateConfig.from_options({"collect_run_id": RUN_A, "adapter_run_id": ""})
    assert config.adapter_run_id == ""
    # None (an option left out on the command line) becomes the empty string too.
    assert EvaluateConfig.from_options({"collect_run_id": RUN_A, "adapter_run_id": None}).adapter_run_id == ""


def test_check_run_id_optional_flag():
    check_run_id("x", "", optional=True)
    with pytest.raises(ValueError, match="x must be an MLflow run id"):
        check_run_id("x", "", optional=False)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"epochs": "0"}, "epochs"),
        ({"batch_size": "0"}, "batch_size"),
        ({"lora_r": "0"}, "lora_r"),
        ({"lora_alpha": "0"}, "lora_alpha"),
        ({"lora_dropout": "1"}, "lora_dropout"),
        ({"max_steps": "0"}, "max_steps"),
        ({"learning_rate": "1"}, "learning_rate"),
    ],
)
def test_train_rejects_bad_values(options, field):
    with pytest.raises(ValueError, match=field):
        TrainConfig.from_options({"data_run_id": RUN_A, **options})


def test_train_max_steps_accepts_off_and_positive():
    assert TrainConfig.from_options({"data_run_id": RUN_A, "max_steps": "-1"}).max_steps == -1
    assert TrainConfig.from_options({"data_run_id": RUN_A, "max_steps": "10"}).max_steps == 10


# --------------------------------------------------------------------------------------------
# params()
# --------------------------------------------------------------------------------------------


def test_params_are_strings_of_every_field():
    config = CollectConfig.from_options({"num_trials": 5, "temperature": 0.25})
    params = config.params()
    assert set(params) == set(field_names(CollectConfig))
    assert all(isinstance(v, str) for v in params.values())
    assert params["num_trials"] == "5"
    assert params["temperature"] == "0.25"
    assert params["model"] == "smollm2-135m-instruct"
    assert "step" not in params


def test_params_of_train_config():
    params = TrainConfig.from_options({"data_run_id": RUN_A, "epochs": "2"}).params()
    assert params["epochs"] == "2.0"
    assert params["max_steps"] == "-1"
    assert params["data_run_id"] == RUN_A
    assert params["learning_rate"] == str(TrainConfig.learning_rate)


def test_the_judge_s_options_must_fit_its_loss():
    with pytest.raises(ValueError, match="loss sft trains on the completion's tokens"):
        TrainConfig(data_run_id=RUN_A, loss="sft", balance="weights")
    with pytest.raises(ValueError, match="loss sft trains on the completion's tokens"):
        TrainConfig(data_run_id=RUN_A, loss="sft", balance="oversample", label_targets="soft")
    assert TrainConfig(data_run_id=RUN_A, loss="sft", balance="oversample", label_targets="hard").loss == "sft"
    for name, value in (("loss", "mse"), ("balance", "undersample"), ("label_targets", "fuzzy"), ("select_by", "ece")):
        with pytest.raises(ValueError, match=f"{name} must be one of"):
            TrainConfig(data_run_id=RUN_A, **{name: value})
    with pytest.raises(ValueError, match=r"dev_fraction must be in \[0, 1\)"):
        TrainConfig(data_run_id=RUN_A, dev_fraction=1.0)


def test_equal_options_give_equal_params():
    a = CollectConfig.from_options({"num_trials": "5", "temperature": "0.5"})
    b = CollectConfig.from_options({"num_trials": 5, "temperature": 0.5})
    assert a.params() == b.params()


# --------------------------------------------------------------------------------------------
# Phase1Config
# --------------------------------------------------------------------------------------------


def test_phase1_fields_are_collect_plus_train():
    # The chain collects both splits (``splits`` is the collect step's own) and may add a
    # second collect of validation for the label-noise ceiling; probe_c is its evaluation's. The
    # adapter a training continues is the multiphase chain's to give (judgment v1's, to judgment v2).
    collect_options = set(field_names(CollectConfig)) - {"splits"}
    expected = ((collect_options | set(field_names(TrainConfig)) | {"reference_sample_seed", "probe_c"})
                - {"data_run_id", "init_adapter_run_id"})
    assert set(field_names(Phase1Config)) == expected


def test_answer_seed_and_the_reference_collect():
    assert CollectConfig(seed=7).answer_seed() == 7
    assert CollectConfig(seed=7, sample_seed=3).answer_seed() == 3
    chain = Phase1Config(seed=7, reference_sample_seed=8)
    reference = chain.reference_collect()
    assert (reference.seed, reference.sample_seed, reference.answer_seed(), reference.split_list()) == (7, 8, 8, ("validation",))
    assert chain.collect().split_list() == ("train", "validation") and chain.collect().answer_seed() == 7
    with pytest.raises(ValueError, match="reference_sample_seed 7 is the seed the answers are sampled with"):
        Phase1Config(seed=7, reference_sample_seed=7)
    with pytest.raises(ValueError, match="splits must be 'train,validation', 'train' or 'validation', got 'test'"):
        CollectConfig(splits="test")
    with pytest.raises(ValueError, match="sample_seed must be -1"):
        CollectConfig(sample_seed=-2)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"lora_r": 0}, "lora_r"),
        ({"num_trials": 0}, "num_trials"),
        ({"learning_rate": 2.0}, "learning_rate"),
        ({"label_scheme": "four"}, "label_scheme"),
        ({"dtype": "int8"}, "dtype"),
        # collect alone may leave a split out; the judge's chain needs both
        ({"num_samples": 0}, "num_samples must be >= 1, got 0; the judge trains on them"),
        ({"test_samples": 0}, "test_samples must be >= 1, got 0; the judge is evaluated on them"),
    ],
)
def test_phase1_validates_its_parts_at_construction(options, field):
    with pytest.raises(ValueError, match=field):
        Phase1Config(**options)
    with pytest.raises(ValueError, match=field):
        Phase1Config.from_options({k: str(v) for k, v in options.items()})


def test_phase1_parts_share_values():
    phase = Phase1Config.from_options(
        {
            "num_trials": "3",
            "temperature": "0.8",
            "label_scheme": "binary",
            "dtype": "float32",
            "inference_batch_size": "4",
            "seed": "7",
            "lora_r": "4",
            "learning_rate": "3e-4",
            "max_steps": "5",
        }
    )

    collect = phase.collect()
    assert isinstance(collect, CollectConfig)
    for name in set(field_names(CollectConfig)) - {"splits"}:
        assert getattr(collect, name) == getattr(phase, name), name
    assert (collect.num_trials, collect.label_scheme, collect.seed) == (3, "binary", 7)

    train = phase.train(RUN_A)
    assert isinstance(train, TrainConfig)
    assert train.data_run_id == RUN_A
    assert train.model == phase.model
    for name in set(field_names(TrainConfig)) - {"data_run_id", "init_adapter_run_id"}:
        assert getattr(train, name) == getattr(phase, name), name
    assert (train.lora_r, train.learning_rate, train.max_steps, train.seed) == (4, 0.0003, 5, 7)
    assert train.init_adapter_run_id == "" and phase.train(RUN_A, init_adapter_run_id=RUN_A).init_adapter_run_id == RUN_A

    other = phase.train(RUN_A, model="models:/knowledge_base/2")
    assert other.model == "models:/knowledge_base/2"

    evaluate = phase.evaluate("models:/knowledge_base/2", RUN_A, adapter_run_id=RUN_B)
    assert isinstance(evaluate, EvaluateConfig)
    assert evaluate.model == "models:/knowledge_base/2"
    assert evaluate.collect_run_id == RUN_A
    assert evaluate.adapter_run_id == RUN_B
    assert evaluate.inference_batch_size == 4
    assert evaluate.dtype == "float32"
    assert phase.evaluate(phase.model, RUN_A).adapter_run_id == ""


def test_phase1_parts_validate_their_own_arguments():
    phase = Phase1Config()
    with pytest.raises(ValueError, match="data_run_id"):
        phase.train("abc")
    with pytest.raises(ValueError, match="collect_run_id"):
        phase.evaluate(phase.model, "abc")
