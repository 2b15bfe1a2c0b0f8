"""The multiphase parent run's summary: one table (phase x split), one figure telling the story, and the
table as markdown for the run's description. Plain data in: the multiphase step reads the runs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from know_thyself.data.labels import labels_for, scheme_of
from know_thyself.data.questions import SPLITS
from know_thyself.evaluation.methods import HEADLINE

# The trained judge and the baselines it is compared with in the same evaluation run; after Phase 2,
# judgment v1 applied unchanged to the merged model (``v1_unchanged``) is one of them.
METHODS = ("judge", "v1_unchanged", "probe", "first_token", "prompt_only", "majority")
# Paired differences the summary carries with their intervals: column -> metric of the split.
DIFFERENCES = {
    "judge_minus_majority_balanced_accuracy": "judge_minus_majority/balanced_accuracy",
    **{f"judge_minus_v1_unchanged_{m}": f"judge_minus_v1_unchanged/{m}" for m in HEADLINE},
}
# The Phase 3 test of what was taught (know_thyself.evaluation.taught), read from the evaluation of
# judgment v2 onto its phase's train row: column -> metric.
TAUGHT_COLUMNS = {
    "heldout_judge_auroc": "heldout/judge/auroc",
    "heldout_baseline_judge_auroc": "heldout/baseline_judge/auroc",
    "heldout_judge_minus_baseline_auroc": "heldout/judge_minus_baseline_judge/auroc",
    "heldout_judge_predicted_can_taught": "heldout/judge/predicted_can/taught",
    "heldout_judge_predicted_can_untaught": "heldout/judge/predicted_can/untaught",
    "heldout_actual_can_taught": "heldout/actual_can/taught",
    "heldout_actual_can_untaught": "heldout/actual_can/untaught",
    "heldout_taught_questions": "heldout/taught/questions",
    "heldout_untaught_questions": "heldout/untaught/questions",
    "first_token_auroc_taught": "where_known/train/first_token/auroc_taught",
    "answer_logprob_auroc_taught": "where_known/train/answer_logprob/auroc_taught",
}


@dataclass
class PhaseRuns:
    """What the summary reads of one phase: its collect run's parameters and metrics, its evaluation's metrics."""

    collect_params: dict[str, str]
    collect_metrics: dict[str, float]
    evaluation_metrics: dict[str, float]


def summary_table(phases: dict[str, PhaseRuns]) -> pd.DataFrame:
    """Rows per (phase, split): QA accuracy, judge vs baselines (exact match, AUROC), distributions.

    Args:
        phases: ``phase1`` and, when it ran, ``phase3``, in that order.
    """
    rows = []
    for phase, runs in phases.items():
        scheme = scheme_of(runs.collect_params)
        trained = runs.evaluation_metrics
        for split in SPLITS:
            row = {
                "phase": phase,
                "model": runs.collect_params["model"],
                "split": split,
                "qa_accuracy": runs.collect_metrics.get(f"{split}/qa_accuracy"),
                "greedy_qa_accuracy": runs.collect_metrics.get(f"{split}/greedy_qa_accuracy"),
            }
            for method in METHODS:
                for metric in HEADLINE:
                    row[f"{method}_{metric}"] = trained.get(f"{split}/{method}/{metric}")
                    for bound in ("low", "high"):
                        row[f"{method}_{metric}_{bound}"] = trained.get(f"{split}/{method}/{metric}_{bound}")
            for column, metric in DIFFERENCES.items():
                row[column] = trained.get(f"{split}/{metric}")
                for bound in ("low", "high"):
                    row[f"{column}_{bound}"] = trained.get(f"{split}/{metric}_{bound}")
            for method in METHODS:  # exact match last: it rewards predicting the majority label
                row[f"{method}_exact_match"] = trained.get(f"{split}/{method}/exact_match")
            for label in labels_for(scheme):
                row[f"actual_{label}"] = runs.collect_metrics.get(f"{split}/ability/{label}")
                row[f"predicted_{label}"] = trained.get(f"{split}/judge/predicted/{label}")
            for column, metric in TAUGHT_COLUMNS.items():
                for suffix in ("", "_low", "_high"):
                    value = trained.get(f"{metric}{suffix}") if split == "train" else None
                    if suffix == "" or metric.endswith(("auroc", "auroc_taught")):
                        row[f"{column}{suffix}"] = value
            rows.append(row)
    return pd.DataFrame(rows)


def story_figure(table: pd.DataFrame):
    """QA accuracy per phase, judge vs baselines (balanced accuracy), the ability mix, and after Phase 3 what was taught."""
    taught = table[(table["phase"] == "phase3") & (table["split"] == "train")] if "heldout_judge_auroc" in table else table[:0]
    taught = taught if len(taught) and not _missing(taught.iloc[0]["heldout_judge_auroc"]) else taught[:0]
    figure = Figure(figsize=(20 if len(taught) else 15, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 4 if len(taught) else 3)
    phases = list(dict.fromkeys(table["phase"]))
    x = np.arange(len(phases))
    width = 0.38
    qa, judge_ax, mix = axes[:3]
    if len(taught):
        _taught_panel(axes[3], taught.iloc[0].to_dict())
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
        heights = val[f"{method}_balanced_accuracy"].astype(float).to_numpy()
        low = val[f"{method}_balanced_accuracy_low"].astype(float).to_numpy()
        high = val[f"{method}_balanced_accuracy_high"].astype(float).to_numpy()
        # error bars from the 95% bootstrap interval (absent where it could not be computed)
        errors = np.nan_to_num(np.vstack([heights - low, high - heights]), nan=0.0).clip(min=0.0)
        bars = judge_ax.bar(x + offset, heights, narrow, yerr=errors, capsize=3, label=method)
        judge_ax.bar_label(bars, fmt="%.2f", fontsize=7)
    judge_ax.axhline(1 / max(1, len([c for c in table.columns if c.startswith("actual_")])), color="grey",
                     linestyle=":", linewidth=1)
    judge_ax.set_xticks(x, ["judgment v1", "judgment v2"][: len(phases)])
    judge_ax.set_title("validation: balanced accuracy (95% CI), judge vs baselines")
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


def _taught_panel(ax, row: dict) -> None:
    """AUROCs of telling the taught train questions from the untaught ones (0.5: chance)."""
    bars = [("v2, held out", "heldout_judge_auroc"), ("v1 unchanged,\nheld out", "heldout_baseline_judge_auroc"),
            ("first token\n(before)", "first_token_auroc_taught"), ("answer log-prob\n(after)", "answer_logprob_auroc_taught")]
    heights = np.array([float(row.get(c) if not _missing(row.get(c)) else np.nan) for _, c in bars])
    low = np.array([float(row.get(f"{c}_low") if not _missing(row.get(f"{c}_low")) else np.nan) for _, c in bars])
    high = np.array([float(row.get(f"{c}_high") if not _missing(row.get(f"{c}_high")) else np.nan) for _, c in bars])
    errors = np.nan_to_num(np.vstack([heights - low, high - heights]), nan=0.0).clip(min=0.0)
    drawn = ax.bar(np.arange(len(bars)), np.nan_to_num(heights), 0.6, yerr=errors, capsize=3,
                   color=["tab:blue", "tab:gray", "tab:green", "tab:orange"])
    ax.bar_label(drawn, fmt="%.2f", fontsize=8)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(np.arange(len(bars)), [name for name, _ in bars], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title("phase 3: taught vs untaught, AUROC (95% CI)")


def _with_interval(record: dict, column: str) -> str:
    value = record.get(column)
    if value is None or pd.isna(value):
        return "-"
    low, high = record.get(f"{column}_low"), record.get(f"{column}_high")
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return f"{value:.2f}"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


PHASE_NAMES = {"phase1": "judgment v1 (base model)", "phase3": "judgment v2 (knowledge merged)"}


def summary_markdown(table: pd.DataFrame) -> str:
    """The summary as markdown for the parent run's description: a headline sentence, then phase x split.

    Each judge metric carries its 95% bootstrap interval in brackets; ``judge - majority`` is the
    paired difference in balanced accuracy.
    """
    records = table.to_dict("records")
    last = [r for r in records if r["split"] == "validation"][-1:] or records[-1:]
    lines = []
    for record in last:
        lines.append(
            f"**{PHASE_NAMES.get(record['phase'], record['phase'])}, {record['split']}:** judge balanced accuracy "
            f"{_with_interval(record, 'judge_balanced_accuracy')} vs majority "
            f"{_with_interval(record, 'majority_balanced_accuracy')}, QWK {_with_interval(record, 'judge_qwk')}, "
            f"AUROC {_with_interval(record, 'judge_auroc')}; QA accuracy {record['qa_accuracy']:.2f}."
        )
        if not _missing(record.get("v1_unchanged_auroc")):
            lines[-1] += (
                f" Judgment v1 applied unchanged to the same model: AUROC {_with_interval(record, 'v1_unchanged_auroc')}, "
                f"balanced accuracy {_with_interval(record, 'v1_unchanged_balanced_accuracy')}; judgment v2 minus it "
                f"(paired): AUROC {_with_interval(record, 'judge_minus_v1_unchanged_auroc')}, balanced accuracy "
                f"{_with_interval(record, 'judge_minus_v1_unchanged_balanced_accuracy')}."
            )
    lines += one_label_lines(records)
    lines += [
        "",
        (
            "| phase | split | QA accuracy | judge balanced accuracy | judge QWK | judge AUROC | probe AUROC "
            "| first-token AUROC | majority balanced accuracy | judge - majority |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for record in records:
        cells = [
            PHASE_NAMES.get(record["phase"], record["phase"]), record["split"],
            "-" if record["qa_accuracy"] is None or pd.isna(record["qa_accuracy"]) else f"{record['qa_accuracy']:.2f}",
            *(_with_interval(record, column) for column in (
                "judge_balanced_accuracy", "judge_qwk", "judge_auroc", "probe_auroc", "first_token_auroc",
                "majority_balanced_accuracy", "judge_minus_majority_balanced_accuracy")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += taught_lines(records)
    lines += ["", "95% bootstrap intervals over questions in brackets. Figures: summary.png; table: summary.json."]
    return "\n".join(lines)


# A judge that gives one label to at least this share of a split's questions has collapsed onto it.
ONE_LABEL_SHARE = 0.95


def one_label_lines(records: list[dict]) -> list[str]:
    """A warning for each judge and split where the judge gives (nearly) every question the same label."""
    lines = []
    for record in records:
        shares = {c.removeprefix("predicted_"): record[c] for c in record
                  if c.startswith("predicted_") and not _missing(record[c])}
        label, share = max(shares.items(), key=lambda item: item[1], default=(None, 0.0))
        if share >= ONE_LABEL_SHARE:
            lines += ["", (
                f"**{PHASE_NAMES.get(record['phase'], record['phase'])} predicts `{label}` for {share:.0%} of "
                f"the {record['split']} questions:** it has collapsed onto one label, and its balanced "
                "accuracy is the majority's; its AUROC still ranks by P(correct)."
            )]
    return lines


def taught_lines(records: list[dict]) -> list[str]:
    """What Phase 3's held-out test found, in words (none before Phase 3 ran)."""
    row = next((r for r in records if r["phase"] == "phase3" and r["split"] == "train"), None)
    if row is None or _missing(row.get("heldout_judge_auroc")):
        return []
    low, high = row.get("heldout_judge_auroc_low"), row.get("heldout_judge_auroc_high")
    chance = not _missing(low) and low <= 0.5 <= high
    verdict = ("**No better than chance:** judgment v2 does not tell the taught questions it never saw from the "
               "untaught ones; what Phase 2 taught is not in what the judge reads." if chance else
               "Judgment v2 tells the held-out taught questions from the untaught ones better than chance.")
    return [
        "",
        (
            f"**Phase 3, held-out test.** {row['heldout_taught_questions']:.0f} taught and "
            f"{row['heldout_untaught_questions']:.0f} untaught train questions were kept out of judgment v2's "
            f"training (measured `can` after Phase 2: {_share(row, 'heldout_actual_can_taught')} and "
            f"{_share(row, 'heldout_actual_can_untaught')}). Judgment v2's P(can) separates them with AUROC "
            f"{_with_interval(row, 'heldout_judge_auroc')} (judgment v1 applied unchanged: "
            f"{_with_interval(row, 'heldout_baseline_judge_auroc')}; paired difference "
            f"{_with_interval(row, 'heldout_judge_minus_baseline_auroc')}); it calls "
            f"{_share(row, 'heldout_judge_predicted_can_taught')} of the taught and "
            f"{_share(row, 'heldout_judge_predicted_can_untaught')} of the untaught ones `can`. {verdict}"
        ),
        "",
        (
            f"**Where the merged model shows what it was taught** (taught vs untaught train questions, AUROC): the "
            f"first answer token's probability, before answering, {_with_interval(row, 'first_token_auroc_taught')}; "
            f"the greedy answer's mean log-probability, after answering, "
            f"{_with_interval(row, 'answer_logprob_auroc_taught')}."
        ),
    ]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _share(record: dict, column: str) -> str:
    value = record.get(column)
    return "-" if _missing(value) else f"{value:.0%}"


# The summary's columns logged as metrics of the parent run, ``<phase>/<split>/<column>``.
METRIC_COLUMNS = ("qa_accuracy", "judge_balanced_accuracy", "judge_qwk", "judge_auroc", "probe_balanced_accuracy",
                  "probe_auroc", "first_token_auroc", "judge_minus_majority_balanced_accuracy", "judge_exact_match",
                  "v1_unchanged_auroc", "judge_minus_v1_unchanged_auroc",
                  *TAUGHT_COLUMNS)


def summary_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The final numbers of the summary as metrics: ``<phase>/<split>/<column>`` for each defined value."""
    metrics = {}
    for record in table.to_dict("records"):
        for column in METRIC_COLUMNS:
            value = record.get(column)
            if value is not None and not pd.isna(value):
                metrics[f"{record['phase']}/{record['split']}/{column}"] = float(value)
    return metrics
