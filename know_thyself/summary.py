"""The multiphase parent run's summary: one table (phase x split) and one figure telling the story."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from know_thyself.data import SPLITS
from know_thyself.labels import labels_for

# The trained judge and the baselines it is compared with in the same evaluation run.
METHODS = ("judge", "prompt_only", "probe", "majority")


def summary_table(ids: dict[str, str]) -> pd.DataFrame:
    """Rows per (phase, split): QA accuracy, judge vs baselines (exact match, AUROC), distributions.

    Args:
        ids: Run ids from :func:`know_thyself.steps.multiphase.run_multiphase` (keys like ``phase1/collect``).
    """
    rows = []
    for phase in ("phase1", "phase3"):
        if f"{phase}/collect" not in ids:
            continue
        collected = mlflow.get_run(ids[f"{phase}/collect"])
        scheme = collected.data.params.get("label_scheme", "three")
        trained = mlflow.get_run(ids[f"{phase}/evaluate_judgment"]).data.metrics
        for split in SPLITS:
            row = {
                "phase": phase,
                "model": collected.data.params["model"],
                "split": split,
                "qa_accuracy": collected.data.metrics.get(f"{split}/qa_accuracy"),
                "greedy_qa_accuracy": collected.data.metrics.get(f"{split}/greedy_qa_accuracy"),
            }
            for method in METHODS:
                for metric in ("exact_match", "auroc"):
                    row[f"{method}_{metric}"] = trained.get(f"{split}/{method}/{metric}")
            for label in labels_for(scheme):
                row[f"actual_{label}"] = collected.data.metrics.get(f"{split}/ability/{label}")
                row[f"predicted_{label}"] = trained.get(f"{split}/judge/predicted/{label}")
            rows.append(row)
    return pd.DataFrame(rows)


def story_figure(table: pd.DataFrame):
    """Three panels: QA accuracy per phase, judge vs baselines (exact match), ability mix."""
    figure = Figure(figsize=(15, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3)
    phases = list(dict.fromkeys(table["phase"]))
    x = np.arange(len(phases))
    width = 0.38
    qa, judge_ax, mix = axes
    for offset, split in ((-width / 2, "train"), (width / 2, "validation")):
        part = table[table["split"] == split].set_index("phase").reindex(phases)
        bars = qa.bar(x + offset, part["qa_accuracy"].astype(float), width, label=split)
        qa.bar_label(bars, fmt="%.2f", fontsize=8)
    qa.set_xticks(x, ["phase 1\n(base)", "phase 3\n(knowledge merged)"][: len(phases)])
    qa.set_title("QA accuracy (mean over trials)")
    qa.set_ylim(0, 1.05)
    qa.legend()
    val = table[table["split"] == "validation"].set_index("phase").reindex(phases)
    narrow = 0.8 / len(METHODS)
    for index, method in enumerate(METHODS):
        offset = (index - (len(METHODS) - 1) / 2) * narrow
        bars = judge_ax.bar(x + offset, val[f"{method}_exact_match"].astype(float), narrow, label=method)
        judge_ax.bar_label(bars, fmt="%.2f", fontsize=7)
    judge_ax.set_xticks(x, ["judgment v1", "judgment v2"][: len(phases)])
    judge_ax.set_title("validation: exact match, judge vs baselines")
    judge_ax.set_ylim(0, 1.05)
    judge_ax.legend()
    labels = [c[len("actual_"):] for c in table.columns if c.startswith("actual_")]
    bottom = np.zeros(len(phases) * 2)
    names = [f"{p.replace('phase', 'ph')}\n{kind}" for p in phases for kind in ("actual", "predicted")]
    for label in labels:
        heights = np.array(
            [float(val.loc[p, f"{kind}_{label}"] or 0.0) for p in phases for kind in ("actual", "predicted")]
        )
        mix.bar(np.arange(len(names)), heights, 0.6, bottom=bottom, label=label)
        bottom += heights
    mix.set_xticks(np.arange(len(names)), names)
    mix.set_title("validation: ability, actual vs predicted")
    mix.set_ylim(0, 1.05)
    mix.legend()
    return figure


def log_summary(ids: dict[str, str]) -> pd.DataFrame:
    """Log the summary table (MLflow table), the story figure and the final numbers on the active run."""
    table = summary_table(ids)
    if table.empty:
        return table
    mlflow.log_table(table, "summary.json")
    mlflow.log_figure(story_figure(table), "summary.png")
    metrics = {}
    for record in table.to_dict("records"):
        for column in ("qa_accuracy", "judge_exact_match", "judge_auroc", "probe_auroc", "prompt_only_exact_match"):
            value = record[column]
            if value is not None and not pd.isna(value):
                metrics[f"{record['phase']}/{record['split']}/{column}"] = float(value)
    mlflow.log_metrics(metrics)
    return table
