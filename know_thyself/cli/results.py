"""The results table, printed from a finished multiphase run: the README's numbers, regenerated, never typed.

Usage: python -m know_thyself.cli.results                 (the newest finished multiphase run)
       python -m know_thyself.cli.results --run-id RUN_ID (that multiphase run)
       make results

Reads the parent run's ``summary.json`` artifact (the table :func:`know_thyself.steps.multiphase.log_summary`
logs) and prints markdown: one line saying which run it came from (run id, commit and code version,
model, dataset, numbers of questions and trials, precision, where recorded), then judgment v1 and
judgment v2 side by side on validation, each judge metric with its 95% bootstrap interval. The store is
``$MLFLOW_TRACKING_URI``, or ``sqlite:///mlflow.db`` in the working folder; nothing is written to it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import click

from know_thyself.cli import run_cli
from know_thyself.evaluation.summary import PHASE_NAMES
from know_thyself.tracking import DEFAULT_TRACKING_URI, TAG_CODE_VERSION, TAG_STEP, code
from know_thyself.tracking.registry import TAG_PRECISION

SUMMARY_ARTIFACT = "summary.json"
STEP = "multiphase"
# The phases the table shows, one column each, always both (a run that stopped after Phase 1 shows "-").
PHASES = ("phase1", "phase3")
FIRST_HEADER = "validation unless said"
# The precision the answers were sampled in: a tag of each collect run (written by the sampler's dtype_tags).
TAG_SAMPLED_IN = "know_thyself.dtype_used"
# The step runs a phase run names in its tags, know_thyself.<run name>.run_id, and what is read from them.
EVALUATIONS = {"phase1": "evaluate_judgment_v1", "phase3": "evaluate_judgment_v2"}
MISSING = "-"

Record = dict[str, Any]


class ResultsError(ValueError):
    """No table can be printed: no store, no finished multiphase run, or a run without its summary."""


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(record: Record | None, column: str, signed: bool = False) -> str:
    """A value with its 95% interval in brackets where the summary holds one; ``-`` where it holds nothing."""
    value = None if record is None else record.get(column)
    if _missing(value):
        return MISSING
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    low, high = record.get(f"{column}_low"), record.get(f"{column}_high")
    if _missing(low) or _missing(high) or low == high == value:  # no interval, or a constant one (the majority's)
        return text
    return f"{text} [{low:.3f}, {high:.3f}]"


def _labels(records: list[Record]) -> list[str]:
    """The label words, most able first, as the summary's ``actual_<label>`` columns list them."""
    return list(dict.fromkeys(c.removeprefix("actual_") for record in records for c in record if c.startswith("actual_")))


def _mix(record: Record | None, labels: list[str]) -> str:
    """Predicted label shares (actual in brackets), in percent: ``13 / 22 / 64% (11 / 16 / 73%)``."""
    if record is None:
        return MISSING

    def shares(kind: str) -> str | None:
        values = [record.get(f"{kind}_{label}") for label in labels]
        return None if any(_missing(v) for v in values) else " / ".join(f"{100 * v:.0f}" for v in values) + "%"

    predicted, actual = shares("predicted"), shares("actual")
    if predicted is None:
        return MISSING if actual is None else f"{MISSING} ({actual})"
    return predicted if actual is None else f"{predicted} ({actual})"


@dataclass(frozen=True)
class Row:
    """One row of the table: a column of summary.json on one split, for each phase.

    Attributes:
        label: The row's first cell.
        split: The summary row it reads, per phase.
        column: The summary column it reads.
        signed: Show the sign (a difference).
        elsewhere: Phases whose cell is read from another phase's row: phase -> (phase, column).
    """

    label: str
    split: str
    column: str
    signed: bool = False
    elsewhere: tuple[tuple[str, tuple[str, str]], ...] = ()


# The predicted vs actual label shares, a row of its own between the rankers and the held-out test.
MIX_ROW = "predicted {labels} (actual)"
ROWS = (
    Row("judge balanced accuracy", "validation", "judge_balanced_accuracy"),
    Row("majority baseline, balanced accuracy", "validation", "majority_balanced_accuracy"),
    Row("judge - majority, balanced accuracy (paired)", "validation", "judge_minus_majority_balanced_accuracy",
        signed=True),
    Row("judge QWK", "validation", "judge_qwk"),
    Row("judge AUROC of P(correct)", "validation", "judge_auroc"),
    Row("judge - judgment v1 applied unchanged to the same model, AUROC (paired; v2 only)", "validation",
        "judge_minus_v1_unchanged_auroc", signed=True),
    Row("linear probe on the model's hidden state, AUROC", "validation", "probe_auroc"),
    Row("first answer token's probability, AUROC (before answering, untrained)", "validation", "first_token_auroc"),
    Row(MIX_ROW, "validation", ""),
    # Judgment v1 is not retrained after Phase 2: its cell is v1 applied unchanged to the merged model.
    Row("held-out taught vs untaught train questions, P(can) AUROC (v1: unchanged, on the merged model)", "train",
        "heldout_judge_auroc", elsewhere=(("phase1", ("phase3", "heldout_baseline_judge_auroc")),)),
    Row("held-out test, judge - judgment v1 unchanged, P(can) AUROC (paired; v2 only)", "train",
        "heldout_judge_minus_baseline_auroc", signed=True),
    Row("knowledge test: greedy QA accuracy, train", "train", "greedy_qa_accuracy"),
    Row("knowledge test: greedy QA accuracy, validation", "validation", "greedy_qa_accuracy"),
)


def header_cells() -> list[str]:
    """The table's column headings."""
    return [FIRST_HEADER, *(PHASE_NAMES[phase] for phase in PHASES)]


def summary_records(summary: Any) -> list[Record]:
    """The rows of a ``summary.json`` artifact (MLflow's table format: ``columns`` and ``data``) as dicts.

    Raises:
        ResultsError: when it is not such a table, or lacks the ``phase`` and ``split`` columns.
    """
    columns = summary.get("columns") if isinstance(summary, dict) else None
    data = summary.get("data") if isinstance(summary, dict) else None
    if not isinstance(columns, list) or not isinstance(data, list) or not {"phase", "split"} <= set(columns):
        raise ResultsError(f"{SUMMARY_ARTIFACT} is not the summary table a multiphase run logs (columns and data, "
                           "with phase and split)")
    return [dict(zip(columns, row)) for row in data if isinstance(row, list)]


def results_table(records: list[Record]) -> str:
    """The results table in markdown: judgment v1 and v2 side by side (``-`` where the summary holds nothing).

    Args:
        records: The rows of ``summary.json`` (:func:`summary_records`), one per phase and split.
    """
    def record(phase: str, split: str) -> Record | None:
        return next((r for r in records if r.get("phase") == phase and r.get("split") == split), None)

    labels = _labels(records)
    lines = ["| " + " | ".join(header_cells()) + " |", "|" + "---|" * (len(PHASES) + 1)]
    for row in ROWS:
        if row.label == MIX_ROW:
            cells = [MIX_ROW.format(labels=" / ".join(labels)),
                     *(_mix(record(phase, row.split), labels) for phase in PHASES)]
        else:
            sources = [dict(row.elsewhere).get(phase, (phase, row.column)) for phase in PHASES]
            cells = [row.label, *(_number(record(phase, row.split), column, row.signed) for phase, column in sources)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def provenance_line(run: Any, details: dict[str, str]) -> str:
    """Which run the table came from, and what it ran on, as far as the run records it.

    Args:
        run: The multiphase parent run (an MLflow ``Run``).
        details: ``code_version``, ``sampled_in`` and ``judged_in`` as the step runs recorded them ('' unknown).
    """
    params, tags = run.data.params, run.data.tags
    where = [f"Multiphase run {code(run.info.run_id)}"]
    commit = tags.get("mlflow.source.git.commit", "")
    if commit:
        where.append(f"commit {code(commit[:7])}")
    if details.get("code_version"):
        where.append(f"code version {code(details['code_version'])}")
    what = []
    if params.get("model"):
        what.append(f"{code(params['model'])}" + (f" on {code(params['dataset'])}" if params.get("dataset") else ""))
    if params.get("num_samples") and params.get("test_samples"):
        what.append(f"{params['num_samples']} train / {params['test_samples']} validation questions")
    if params.get("num_trials"):
        what.append(f"{params['num_trials']} trials per question")
    line = ", ".join(where) + (": " + ", ".join(what) if what else "")
    sampled, judged = details.get("sampled_in", ""), details.get("judged_in", "")
    if sampled and sampled == judged:
        line += f"; precision {sampled}"
    elif sampled or judged:
        line += "; precision: " + ", ".join(
            text for text in (sampled and f"answers sampled in {sampled}", judged and f"judges scored in {judged}") if text
        )
    return line + ". 95% bootstrap intervals over questions in brackets."


def tracking_uri() -> str:
    """The store to read: ``$MLFLOW_TRACKING_URI``, or ``sqlite:///mlflow.db`` here; an SQLite file must exist (nothing is created).

    Raises:
        ResultsError: when the SQLite file does not exist (the default one: in the working folder).
    """
    from sqlalchemy.engine import make_url

    from know_thyself.tracking import check_server, check_sqlite_store

    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:"):
        database = make_url(uri).database or ""
        if uri == DEFAULT_TRACKING_URI and not os.path.isfile(database):
            raise ResultsError(f"no tracking store here: {os.getcwd()} has no mlflow.db; run `make run` in this folder "
                               "first, or set MLFLOW_TRACKING_URI to the store that holds the runs")
        if not os.path.isfile(database):
            raise ResultsError(f"the tracking store {uri} does not exist (no file {database!r}); correct "
                               "MLFLOW_TRACKING_URI (sqlite:/// then an absolute path has four slashes)")
        check_sqlite_store(uri)
    elif uri.startswith(("http://", "https://")):
        check_server(uri)
    return uri


def find_run(run_id: str = "") -> Any:
    """The multiphase parent run: ``run_id``, or the newest finished one in any experiment of the store.

    Raises:
        ResultsError: no finished multiphase run exists, or ``run_id`` is not one.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    if not run_id:
        runs = mlflow.search_runs(
            search_all_experiments=True,
            filter_string=f"tags.`{TAG_STEP}` = '{STEP}' and attributes.status = 'FINISHED'",
            order_by=["attributes.end_time DESC"], max_results=1, output_format="list",
        )
        if not runs:
            raise ResultsError(f"no finished multiphase run in the tracking store {mlflow.get_tracking_uri()}; run "
                               "`make run` first, or pass --run-id of a finished multiphase run")
        return runs[0]
    try:
        run = mlflow.get_run(run_id)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ResultsError(f"no run {run_id} in the tracking store {mlflow.get_tracking_uri()}; pass the id of a "
                           "finished multiphase run (the newest one is used without --run-id)") from None
    step = run.data.tags.get(TAG_STEP, "")
    if step != STEP:
        raise ResultsError(f"run {run_id} is {f'a {step} run' if step else 'not a step of this project'}, not a "
                           "multiphase run; pass the id of the multiphase parent run (make run's top-level run)")
    if run.info.status != "FINISHED":
        raise ResultsError(f"multiphase run {run_id} is {run.info.status}, not FINISHED; pass a finished one, or "
                           "leave out --run-id for the newest")
    return run


def load_summary(run: Any) -> list[Record]:
    """The rows of the run's ``summary.json``.

    Raises:
        ResultsError: the run has no ``summary.json``, or it is not the summary table.
    """
    import mlflow

    run_id = run.info.run_id
    if not any(f.path == SUMMARY_ARTIFACT for f in mlflow.MlflowClient().list_artifacts(run_id)):
        raise ResultsError(f"multiphase run {run_id} has no {SUMMARY_ARTIFACT} (it ended before its summary was "
                           "logged, or the artifact was deleted); rerun `make run` (finished steps are reused) "
                           "or pass --run-id of another multiphase run")
    try:
        return summary_records(mlflow.artifacts.load_dict(f"runs:/{run_id}/{SUMMARY_ARTIFACT}"))
    except ResultsError as exc:
        raise ResultsError(f"multiphase run {run_id}: {exc}") from None
    except ValueError as exc:  # not JSON
        raise ResultsError(f"multiphase run {run_id}: {SUMMARY_ARTIFACT} cannot be read ({exc})") from None


def run_details(run: Any) -> dict[str, str]:
    """The code version and the precisions the parent's step runs recorded ('' where none did).

    Each phase run (a child of the parent) names its step runs in ``know_thyself.<run name>.run_id`` tags,
    reused ones included; the code version is any step's (a reused step has the same one by construction).
    """
    import mlflow

    phases = mlflow.search_runs(
        experiment_ids=[run.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run.info.run_id}'",
        output_format="list",
    )
    by_phase = {p.data.tags.get(TAG_STEP, ""): p.data.tags for p in phases}
    versions, sampled, judged = [], [], []
    for phase in PHASES:
        tags = by_phase.get(phase, {})
        for name, found in (("collect", sampled), (EVALUATIONS[phase], judged)):
            step_id = tags.get(f"know_thyself.{name}.run_id")
            if not step_id:
                continue
            step_tags = mlflow.get_run(step_id).data.tags
            versions.append(step_tags.get(TAG_CODE_VERSION, ""))
            found.append(step_tags.get(TAG_SAMPLED_IN if name == "collect" else TAG_PRECISION, ""))

    def one(values: list[str]) -> str:
        distinct = list(dict.fromkeys(v for v in values if v))
        return distinct[0] if len(distinct) == 1 else " / ".join(distinct)

    return {"code_version": one(versions), "sampled_in": one(sampled), "judged_in": one(judged)}


def results_markdown(run_id: str = "") -> str:
    """The provenance line and the results table of a finished multiphase run (the newest by default)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    run = find_run(run_id)
    records = load_summary(run)
    return provenance_line(run, run_details(run)) + "\n\n" + results_table(records)


@click.command(help=__doc__)
@click.option("--run-id", "run_id", default="", help="The multiphase parent run to read (default: the newest "
              "finished one in the store).")
@run_cli
def main(run_id: str) -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # the table alone on stdout
    click.echo(results_markdown(run_id.strip()))


if __name__ == "__main__":
    main()
