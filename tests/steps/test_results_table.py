"""The results command (know_thyself.cli.results): the table it prints from a multiphase run's summary.json,
the README's table in the same layout, and its one-line refusals.

The fake multiphase runs are written by the real writers: chain_run for the parent and phase runs, step_run
for the collect and evaluation runs (with the tags a chain leaves), log_summary for summary.json.
"""

from __future__ import annotations

import re

import mlflow
import pytest
from click.testing import CliRunner
from helpers import ROOT

from know_thyself.cli import results
from know_thyself.config import MultiphaseConfig
from know_thyself.evaluation.summary import PhaseRuns, summary_table
from know_thyself.steps.multiphase import log_summary
from know_thyself.tracking import TAG_STEP, chain_run, step_run
from know_thyself.tracking.registry import TAG_PRECISION

LABELS = ("can", "uncertain", "cannot")


def _interval(value: float, low: float, high: float) -> dict[str, float]:
    return {"": value, "_low": low, "_high": high}


def collect_metrics(greedy_train: float, greedy_validation: float, actual: tuple[float, ...]) -> dict[str, float]:
    """A collect run's metrics as the collect step names them."""
    metrics = {}
    for split, greedy in (("train", greedy_train), ("validation", greedy_validation)):
        metrics[f"{split}/qa_accuracy"] = greedy - 0.05
        metrics[f"{split}/greedy_qa_accuracy"] = greedy
        metrics.update({f"{split}/ability/{label}": share for label, share in zip(LABELS, actual)})
    return metrics


def evaluation_metrics(judge: dict[str, tuple[float, float, float]], probe_auroc: tuple[float, float, float],
                       first_token_auroc: tuple[float, float, float], difference: tuple[float, float, float],
                       predicted: tuple[float, ...], held_out: dict[str, tuple[float, float, float]] | None = None,
                       ) -> dict[str, float]:
    """An evaluate_judgment run's validation metrics as the evaluation step names them (train gets the same)."""
    metrics = {}
    for split in ("train", "validation"):
        for metric, numbers in judge.items():
            metrics.update({f"{split}/judge/{metric}{k}": v for k, v in _interval(*numbers).items()})
        metrics.update({f"{split}/probe/auroc{k}": v for k, v in _interval(*probe_auroc).items()})
        metrics.update({f"{split}/first_token/auroc{k}": v for k, v in _interval(*first_token_auroc).items()})
        metrics.update({f"{split}/majority/balanced_accuracy{k}": 1 / 3 for k in ("", "_low", "_high")})
        metrics.update({f"{split}/judge_minus_majority/balanced_accuracy{k}": v
                        for k, v in _interval(*difference).items()})
        metrics.update({f"{split}/judge/predicted/{label}": share for label, share in zip(LABELS, predicted)})
    for name, numbers in (held_out or {}).items():
        metrics.update({f"heldout/{name}/auroc{k}": v for k, v in _interval(*numbers).items()})
    if held_out:
        metrics.update({"heldout/taught/questions": 52, "heldout/untaught/questions": 98})
    return metrics


# The README's current numbers (parent run 1a2491d…), as the steps would have logged them.
PHASE1 = (
    {"model": "smollm2-135m-instruct", "label_scheme": "three"},
    collect_metrics(0.346, 0.34, (0.11, 0.16, 0.73)),
    evaluation_metrics({"balanced_accuracy": (0.454, 0.370, 0.544), "qwk": (0.272, 0.121, 0.418),
                        "auroc": (0.662, 0.577, 0.741)}, (0.708, 0.630, 0.779), (0.642, 0.564, 0.717),
                       (0.121, 0.037, 0.211), (0.13, 0.22, 0.64)),
)
PHASE3 = (
    {"model": "models:/knowledge_base/1", "label_scheme": "three"},
    collect_metrics(0.578, 0.31, (0.16, 0.15, 0.70)),
    evaluation_metrics({"balanced_accuracy": (0.401, 0.322, 0.481), "qwk": (0.168, 0.056, 0.285),
                        "auroc": (0.667, 0.576, 0.746)}, (0.582, 0.496, 0.655), (0.687, 0.602, 0.767),
                       (0.067, -0.011, 0.148), (0.36, 0.23, 0.41),
                       held_out={"judge": (0.679, 0.586, 0.761), "baseline_judge": (0.535, 0.437, 0.629)}),
)


def summary_records(*phases: tuple) -> list[dict]:
    """summary.json's rows, from the real writer, for these phases (phase1, then phase3)."""
    runs = {name: PhaseRuns(*phase) for name, phase in zip(("phase1", "phase3"), phases)}
    return summary_table(runs).to_dict("records")


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of the first markdown table in ``markdown`` (the separator line left out)."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            if set(line) <= set("|-: "):
                continue
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    return rows


def cell(markdown: str, row_start: str, column: int) -> str:
    """The cell in ``column`` (1: judgment v1, 2: judgment v2) of the row whose label starts with ``row_start``."""
    return next(row[column] for row in table_rows(markdown) if row[0].startswith(row_start))


def test_the_table_shows_each_judge_with_its_intervals_beside_the_baselines():
    table = results.results_table(summary_records(PHASE1, PHASE3))
    assert table_rows(table)[0] == ["validation unless said", "judgment v1 (base model)",
                                    "judgment v2 (knowledge merged)"]
    assert cell(table, "judge balanced accuracy", 1) == "0.454 [0.370, 0.544]"
    assert cell(table, "judge balanced accuracy", 2) == "0.401 [0.322, 0.481]"
    assert cell(table, "majority baseline", 1) == "0.333"  # a constant interval is not shown
    assert cell(table, "judge - majority", 1) == "+0.121 [0.037, 0.211]"
    assert cell(table, "judge - majority", 2) == "+0.067 [-0.011, 0.148]"
    assert cell(table, "judge QWK", 2) == "0.168 [0.056, 0.285]"
    assert cell(table, "judge AUROC", 1) == "0.662 [0.577, 0.741]"
    assert cell(table, "linear probe", 2) == "0.582 [0.496, 0.655]"
    assert cell(table, "first answer token", 2) == "0.687 [0.602, 0.767]"
    assert cell(table, "predicted can / uncertain / cannot (actual)", 1) == "13 / 22 / 64% (11 / 16 / 73%)"
    assert cell(table, "predicted", 2) == "36 / 23 / 41% (16 / 15 / 70%)"
    # Judgment v1's held-out cell is v1 applied unchanged to the merged model (read from Phase 3's row).
    assert cell(table, "held-out", 1) == "0.535 [0.437, 0.629]"
    assert cell(table, "held-out", 2) == "0.679 [0.586, 0.761]"
    assert cell(table, "knowledge test: greedy QA accuracy, train", 1) == "0.346"
    assert cell(table, "knowledge test: greedy QA accuracy, train", 2) == "0.578"
    assert cell(table, "knowledge test: greedy QA accuracy, validation", 2) == "0.310"


def test_a_run_that_stopped_after_phase_1_shows_dashes_for_judgment_v2():
    table = results.results_table(summary_records(PHASE1))
    rows = table_rows(table)
    assert [row[0] for row in rows] == [row[0] for row in table_rows(results.results_table(summary_records(PHASE1, PHASE3)))]
    assert all(row[2] == "-" for row in rows[1:])
    assert cell(table, "held-out", 1) == "-"  # measured only after Phase 2
    assert cell(table, "judge balanced accuracy", 1) == "0.454 [0.370, 0.544]"


def test_the_binary_scheme_names_its_two_labels():
    params, collected, evaluated = PHASE1
    collected = {k: v for k, v in collected.items() if not k.endswith("/uncertain")}
    evaluated = {k: v for k, v in evaluated.items() if not k.endswith("/uncertain")}
    table = results.results_table(summary_records(({**params, "label_scheme": "binary"}, collected, evaluated)))
    assert cell(table, "predicted", 0) == "predicted can / cannot (actual)"
    assert cell(table, "predicted", 1) == "13 / 64% (11 / 73%)"


def readme_results_table() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Current results\n", 1)[1].split("\n## ", 1)[0]
    return table_rows(section)


def test_the_readme_table_has_the_commands_columns_and_rows():
    """The README's results table is the command's output (pasted after a run), not a hand-made layout."""
    readme = readme_results_table()
    printed = table_rows(results.results_table(summary_records(PHASE1, PHASE3)))
    assert readme[0] == printed[0], "README.md's results table has other columns than `make results` prints"
    assert [row[0] for row in readme] == [row[0] for row in printed], (
        "README.md's results table has other rows than `make results` prints; paste its output"
    )
    assert all(len(row) == len(printed[0]) for row in readme)


def test_the_readme_says_how_to_regenerate_its_table():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Current results\n", 1)[1].split("\n## ", 1)[0]
    assert "Regenerate with `make results` after `make run`" in section
    assert re.search(r"^results:", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_a_summary_that_is_not_the_table_is_refused():
    for bad in ({"columns": ["a"], "data": [[1]]}, {"data": []}, [1, 2], "text"):
        with pytest.raises(results.ResultsError, match="not the summary table"):
            results.summary_records(bad)


def test_the_provenance_line_leaves_out_what_the_run_did_not_record():
    from types import SimpleNamespace

    run = SimpleNamespace(info=SimpleNamespace(run_id="abc"),
                          data=SimpleNamespace(params={"model": "m", "num_samples": "6"}, tags={}))
    line = results.provenance_line(run, {"code_version": "", "sampled_in": "float32", "judged_in": "bfloat16"})
    assert line == ("Multiphase run `abc`: `m`; precision: answers sampled in float32, judges scored in bfloat16. "
                    "95% bootstrap intervals over questions in brackets.")
    assert results.provenance_line(run, {}).startswith("Multiphase run `abc`: `m`. 95%")


# --- the command on a tracking store ---------------------------------------------------------------------


def fake_multiphase_run(phases: tuple = (PHASE1, PHASE3), commit: str = "419aca7f00d", summary: bool = True) -> str:
    """A finished multiphase parent run as the chain leaves it: phase runs, step runs, summary.json."""
    ids = {}
    with chain_run("multiphase", MultiphaseConfig().params()) as parent:
        mlflow.set_tag("mlflow.source.git.commit", commit)  # what `mlflow run` records
        for phase, (params, collected, evaluated), suffix in zip(("phase1", "phase3"), phases, ("v1", "v2")):
            with chain_run(phase):
                with step_run("collect", params, reuse=False) as step:
                    mlflow.log_metrics(collected)
                    mlflow.set_tag("know_thyself.dtype_used", "float32")
                ids[f"{phase}/collect"] = step.run_id
                with step_run("evaluate_judgment", {"collect_run_id": step.run_id}, reuse=False,
                              run_name=f"evaluate_judgment_{suffix}") as step:
                    mlflow.log_metrics(evaluated)
                    mlflow.set_tag(TAG_PRECISION, "float32")
                ids[f"{phase}/evaluate_judgment"] = step.run_id
        if summary:
            log_summary(ids)
    return parent.info.run_id


def invoke(*args: str):
    return CliRunner().invoke(results.main, list(args))


def test_the_command_prints_the_newest_finished_runs_table_and_where_it_came_from(tracking):
    older = fake_multiphase_run((PHASE1,), commit="1111111aaaa")
    newer = fake_multiphase_run()
    experiment_id = mlflow.get_run(newer).info.experiment_id  # a run still going is not the newest finished one
    mlflow.MlflowClient().create_run(experiment_id, tags={TAG_STEP: "multiphase"})
    result = invoke()
    assert result.exit_code == 0, result.output
    first, blank, *table = result.stdout.splitlines()
    assert first.startswith(f"Multiphase run `{newer}`, commit `419aca7`, code version `")
    assert ("`smollm2-135m-instruct` on `bundled`, 500 train / 205 validation questions, 5 trials per question; "
            "precision float32.") in first
    assert blank == ""
    assert cell("\n".join(table), "judge balanced accuracy", 2) == "0.401 [0.322, 0.481]"
    assert cell("\n".join(table), "held-out", 1) == "0.535 [0.437, 0.629]"

    chosen = invoke("--run-id", older)
    assert chosen.exit_code == 0, chosen.output
    assert f"`{older}`, commit `1111111`" in chosen.stdout
    assert cell(chosen.stdout, "judge balanced accuracy", 2) == "-"


def test_the_readme_header_is_what_the_command_prints_from_a_store(tracking):
    fake_multiphase_run()
    printed = table_rows(invoke().stdout.split("\n\n", 1)[1])
    readme = readme_results_table()
    assert readme[0] == printed[0]
    assert [row[0] for row in readme] == [row[0] for row in printed]


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_empty_store_has_no_finished_multiphase_run(tracking):
    with chain_run("phase1"):  # another chain's run is not a multiphase run
        pass
    assert "no finished multiphase run in the tracking store" in _one_line_error(invoke())


def test_a_run_without_its_summary_is_refused_with_its_id(tracking):
    run_id = fake_multiphase_run(summary=False)
    line = _one_line_error(invoke())
    assert f"multiphase run {run_id} has no summary.json" in line


def test_run_ids_that_are_not_finished_multiphase_runs_are_refused(tracking):
    fake_multiphase_run()
    with chain_run("phase1") as phase1:
        pass
    assert f"run {phase1.info.run_id} is a phase1 run, not a multiphase run" in _one_line_error(
        invoke("--run-id", phase1.info.run_id))
    assert "no run 0123456789abcdef0123456789abcdef in the tracking store" in _one_line_error(
        invoke("--run-id", "0123456789abcdef0123456789abcdef"))
    with chain_run("multiphase") as running:
        pass
    mlflow.MlflowClient().set_terminated(running.info.run_id, "FAILED")
    assert f"multiphase run {running.info.run_id} is FAILED, not FINISHED" in _one_line_error(
        invoke("--run-id", running.info.run_id))


def test_no_store_in_the_working_folder_is_refused_without_creating_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert "has no mlflow.db; run `make run` in this folder first" in _one_line_error(invoke())
    assert not (tmp_path / "mlflow.db").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert f"no file '{tmp_path / 'elsewhere.db'}'" in _one_line_error(invoke())
    assert not (tmp_path / "elsewhere.db").exists()


def test_help_says_what_it_reads():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "summary.json" in result.output and "--run-id" in result.output
