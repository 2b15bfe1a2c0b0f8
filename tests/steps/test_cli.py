"""Every entry point through click's CliRunner: --help and bad input (the chained run is in tests/e2e/test_chains.py)."""


import mlflow
import pytest
from click.testing import CliRunner
from helpers import command, invoke

NAMES = ["collect", "build_judgment_data", "evaluate_judgment", "train_judgment", "phase1", "sweep"]


@pytest.mark.parametrize("name", NAMES)
def test_help_says_what_it_reads_and_writes(name):
    result = invoke(name, "--help")
    assert result.exit_code == 0
    assert "Usage: mlflow run . -e" in result.output
    assert "--seed" in result.output or "--collect_run_id" in result.output or "--data_run_id" in result.output


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
