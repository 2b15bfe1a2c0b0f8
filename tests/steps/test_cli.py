"""Every entry point through click's CliRunner: --help, a chained run on the tiny model, bad input."""


import mlflow
import pytest
from click.testing import CliRunner
from helpers import command, ids_of, invoke

NAMES = ["collect", "build_judgment_data", "evaluate_judgment", "train_judgment", "phase1", "sweep"]






@pytest.mark.parametrize("name", NAMES)
def test_help_says_what_it_reads_and_writes(name):
    result = invoke(name, "--help")
    assert result.exit_code == 0
    assert "Usage: mlflow run . -e" in result.output
    assert "--seed" in result.output or "--collect_run_id" in result.output or "--data_run_id" in result.output


def test_steps_chain_by_run_id(tracking, tiny_model_dir, trivia_dir):
    small = ["--model", tiny_model_dir, "--dataset", trivia_dir]
    collected = invoke("collect", *small, "--num_samples", 6, "--test_samples", 4, "--num_trials", 2, "--max_new_tokens", 4)
    assert collected.exit_code == 0, collected.output
    collect_id = ids_of(collected)["collect"]
    built = invoke("build_judgment_data", "--collect_run_id", collect_id)
    data_id = ids_of(built)["build_judgment_data"]
    trained = invoke("train_judgment", "--model", tiny_model_dir, "--data_run_id", data_id, "--max_steps", 2, "--batch_size", 2)
    assert trained.exit_code == 0, trained.output
    train_id = ids_of(trained)["train_judgment"]
    evaluated = invoke("evaluate_judgment", "--model", tiny_model_dir, "--collect_run_id", collect_id, "--adapter_run_id", train_id)
    assert evaluated.exit_code == 0, evaluated.output
    metrics = mlflow.get_run(ids_of(evaluated)["evaluate_judgment"]).data.metrics
    assert 0 <= metrics["validation/judge/exact_match"] <= 1
    built_metrics = mlflow.get_run(data_id).data.metrics
    assert sum(v for k, v in built_metrics.items() if k.startswith("train/label_count/")) == 6
    # the same collect command again reuses the finished run
    again = invoke("collect", *small, "--num_samples", 6, "--test_samples", 4, "--num_trials", 2, "--max_new_tokens", 4)
    assert ids_of(again)["collect"] == collect_id


def test_bad_upstream_run_id_fails_cleanly(tracking):
    result = CliRunner().invoke(command("build_judgment_data"), ["--collect_run_id", "f" * 32])
    assert result.exit_code != 0
    assert "not a run in this tracking store" in result.output
    result = CliRunner().invoke(command("train_judgment"), ["--data_run_id", "nope"])
    assert result.exit_code != 0 and "data_run_id must be an MLflow run id" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "gpt-five"], "unknown model 'gpt-five'"),
        (["--num_trials", "0"], "num_trials must be >= 1, got 0"),
        (["--dataset", "/no/such/folder"], "no directory exists"),
        (["--num_samples", "100000"], "lower num_samples/test_samples"),
        (["--temperature", "0"], "temperature must be in (0, 5]"),
    ],
)
def test_bad_input_is_one_clear_line_and_no_run(tracking, args, message):
    result = CliRunner().invoke(command("collect"), args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
