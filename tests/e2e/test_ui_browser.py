"""The MLflow UI in a real browser: headless Chromium, driven by Playwright, against `mlflow ui` shows the run names
and the summary.

The browser tests need Chromium (Debian: `apt-get install chromium`; CI installs it) and are skipped, saying so,
without it. What must be on the page is decided without a browser; what counts as shown is checked on a small
page of known markup, then on MLflow's own pages.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import mlflow
import pandas as pd
import pytest
from helpers import ROOT

_spec = importlib.util.spec_from_file_location("check_ui", ROOT / "tools" / "check_ui.py")
check_ui = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_ui)
needs_chromium = pytest.mark.skipif(check_ui.find_chromium() is None,
                                    reason="Chromium is not installed (Debian: apt-get install chromium)")


def _summary() -> pd.DataFrame:
    """A summary table as the multiphase chain builds it (phase x split), with known numbers."""
    rows = []
    for phase, base in (("phase1", 0.40), ("phase3", 0.48)):
        for split, shift in (("train", 0.05), ("validation", 0.0)):
            value = base + shift
            rows.append({
                "phase": phase, "model": "tiny", "split": split, "qa_accuracy": 0.31 + shift,
                "judge_balanced_accuracy": value, "judge_balanced_accuracy_low": value - 0.08,
                "judge_balanced_accuracy_high": value + 0.08, "judge_qwk": 0.21, "judge_qwk_low": 0.05,
                "judge_qwk_high": 0.37, "judge_auroc": 0.66, "judge_auroc_low": 0.58, "judge_auroc_high": 0.74,
                "probe_balanced_accuracy": 0.41, "majority_balanced_accuracy": 1 / 3,
                "judge_minus_majority_balanced_accuracy": value - 1 / 3,
            })
    return pd.DataFrame(rows)


def test_summary_markdown_leads_with_the_last_validation_row_and_its_intervals():
    from know_thyself.evaluation.summary import summary_markdown

    note = summary_markdown(_summary())
    first = note.splitlines()[0]
    assert first == ("**judgment v2 (knowledge merged), validation:** judge balanced accuracy 0.48 [0.40, 0.56] vs "
                     "majority 0.33, QWK 0.21 [0.05, 0.37], AUROC 0.66 [0.58, 0.74]; QA accuracy 0.31.")
    assert "| judgment v1 (base model) | train | 0.36 | 0.45 [0.37, 0.53] |" in note
    wanted = check_ui.expected_summary(note)
    assert wanted[0].startswith("judgment v2 (knowledge merged), validation: judge balanced accuracy 0.48")
    assert "judgment v1 (base model)" in wanted and "phase" in wanted  # the header's first cell too


@needs_chromium
def test_missing_counts_only_text_a_reader_sees():
    from know_thyself.evaluation.summary import summary_markdown

    headline = check_ui.expected_summary(summary_markdown(_summary()))[0]
    bold, rest = headline.split(": ", 1)
    markup = (  # the headline as MLflow renders the markdown: bold, then text, wrapped across lines
        f"<p><strong>{bold}:</strong>\n  {rest}</p>"
        "<div style='display:none'>tucked away</div><div style='visibility:hidden'>see-through</div>"
        "<script>var note = 'in a script';</script><style>.x::after { content: 'in a style' }</style>"
        "<div>Phase1</div><script>setTimeout(() => document.body.append('drawn late'), 300)</script>"
    )
    with check_ui.browser_context(check_ui.find_chromium()) as context:
        page = context.new_page()
        page.set_content(markup)
        wanted = [headline, "drawn late", "tucked away", "see-through", "in a script", "in a style", "phase1", "absent"]
        assert check_ui.missing(page, wanted, timeout=1.5) == wanted[2:]


@needs_chromium
def test_experiment_and_run_pages_show_run_names_and_summary(tracking):
    from know_thyself.evaluation.summary import summary_markdown
    from know_thyself.tracking import TAG_NOTE, TAG_STEP
    from know_thyself.tracking.datasets import log_questions

    rows = [{"split": split, "question_id": f"{split}-{i}", "question": f"Question {i}?"}
            for split in ("train", "validation") for i in range(3)]
    with mlflow.start_run(run_name="multiphase", tags={TAG_STEP: "multiphase"}) as parent:
        mlflow.set_tag(TAG_NOTE, summary_markdown(_summary()))
        log_questions(rows, "capitals-quiz.jsonl")
        for name in ("phase1", "phase2", "phase3"):
            with mlflow.start_run(run_name=name, nested=True, tags={TAG_STEP: name}):
                mlflow.set_tag(TAG_NOTE, f"{name}: one line")
                mlflow.log_metrics({"system/cpu_utilization_percentage": 42.0, "system/system_memory_usage_megabytes": 900.0})
    experiment = mlflow.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    shots = tracking / "shots"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_ui.py"), "--store", mlflow.get_tracking_uri(), "--screenshots", str(shots),
         "--expect", "0.45 [0.37, 0.53]"],
        check=False, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # names and summary as before, the dataset's name on both pages, and the CPU chart of the System metrics tab
    assert result.stdout.startswith(f"ok: 13 texts on the experiment and run pages of run {parent.info.run_id}")
    for page in ("experiment_page", "run_page", "system_metrics_tab"):
        assert (shots / f"{page}.png").stat().st_size > 10_000, page

