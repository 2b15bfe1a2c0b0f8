"""Check in a real browser that the MLflow UI tells the pipeline's story.

Usage: python tools/check_ui.py [--store sqlite:///mlflow.db] [--run-id <parent run id>] [--screenshots DIR]

Starts `mlflow ui` on a free local port against the tracking store, loads the experiment page
and the parent run's page (by default the newest `multiphase` run) in headless Chromium, driven by
Playwright, and checks that the pages show the run names (the parent on the experiment page; the
parent and its child runs on the run page), the parent's description (the summary's first line
and the first cell of each table row; a collapsed description is expanded first) and the names of
the question sets it used (the runs table's Dataset column, the run page's datasets); and, for a
run of the experiment that recorded system metrics, that its System metrics tab shows the CPU
chart. Each text must be visible, as Playwright judges it: text in the markup that the page hides
does not count. Screenshots of the pages go to DIR (default ui-screenshots/, which git ignores);
--log-screenshots also logs them as artifacts (ui/) of the parent run. Exits 0 when everything is
on the pages, 1 naming what is missing, 2 when Chromium is not installed (Debian: apt-get install
chromium). Playwright drives that installed Chromium and downloads no browser of its own.

MLflow 3.17 shows an experiment in its GenAI or its model-training view according to a switch
at the top of its sidebar, remembered per browser; the pages are loaded with
`?workflowType=machine_learning`, the link that opens the model-training view directly.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VIEW = "workflowType=machine_learning"
# A system metric every run that records them has (MLflow's CPU monitor).
SYSTEM_METRIC = "system/cpu_utilization_percentage"
# The spinner that MLflow's design system (Du Bois, after Ant Design: `du-bois-light-spin-spinning`) shows while
# a part of the page loads; once checked, a page gets at most SETTLE_S seconds for them to go before its screenshot.
SPINNER = "[class*='-spin-spinning']"
SETTLE_S = 10


def find_chromium() -> str | None:
    """The Chromium binary: ``$CHROMIUM`` or the first of the usual names on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_ui(store: str, port: int, log: Path) -> subprocess.Popen:
    """``mlflow ui`` on 127.0.0.1:port in its own process group; returns once /health answers."""
    handle = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", str(port)],
        stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.time() + 90
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow ui exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    stop_ui(process)
    raise RuntimeError(f"mlflow ui did not answer on port {port} within 90 s; see {log}")


def stop_ui(process: subprocess.Popen) -> None:
    """End the ``mlflow ui`` process group this script started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def expected_summary(note: str) -> list[str]:
    """What of a markdown description must show: its first line, and each table row's first cell."""
    lines = [line.strip() for line in note.splitlines() if line.strip()]
    if not lines:
        return []
    wanted = [re.sub(r"[*_`]", "", lines[0])]
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("|") and cells and not set(cells[0]) <= set("-: "):
            wanted.append(re.sub(r"[*_`]", "", cells[0]))
    return list(dict.fromkeys(wanted))


@contextmanager
def browser_context(chromium: str, size: tuple[int, int] = (1600, 1100)) -> Iterator[BrowserContext]:
    """A context (a fresh profile) of headless Chromium, the binary at ``chromium``, with a window of ``size``."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--disable-dev-shm-usage"])
        try:
            yield browser.new_context(viewport={"width": size[0], "height": size[1]})
        finally:
            browser.close()


def open_page(context: BrowserContext, url: str) -> Page:
    """A new tab on url that expands a run's description whenever it shows collapsed ("Show more").

    A collapsed description clips its table, and clipped text still counts as visible to Playwright;
    expanded, the table is on screen and in the screenshot. Playwright clicks the button before the
    next check that finds it showing.
    """
    page = context.new_page()  # a fresh tab each: a URL that differs only after '#' would not reload the app
    page.add_locator_handler(page.get_by_role("button", name="Expand description"), lambda button: button.click())
    page.goto(url)
    return page


def missing(page: Page, wanted: list[str], timeout: float) -> list[str]:
    """The texts of ``wanted`` that ``page`` does not show within ``timeout`` seconds (for all of them together).

    A text shows when a visible element holds it, matched as to case, with any run of whitespace between its
    words (markup breaks lines where the source has a space). Text of a hidden element, a script or a style
    does not count. Once the time is up, each text left gets half a second.
    """
    deadline = time.monotonic() + timeout
    absent = []
    for text in wanted:
        words = re.compile(r"\s+".join(map(re.escape, text.split())))
        shown = page.get_by_text(words).filter(visible=True).first
        try:
            expect(shown).to_be_visible(timeout=max(deadline - time.monotonic(), 0.5) * 1000)
        except AssertionError:
            absent.append(text)
    return absent


def settle(page: Page) -> None:
    """Wait (at most SETTLE_S seconds) for the page's spinners to go, so that a screenshot shows charts drawn."""
    try:
        page.locator(SPINNER).filter(visible=True).first.wait_for(state="hidden", timeout=SETTLE_S * 1000)
    except PlaywrightTimeout:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db")
    parser.add_argument("--run-id", default="", help="the parent run to check (default: the newest multiphase run)")
    parser.add_argument("--screenshots", default="ui-screenshots", help="folder for the screenshots")
    parser.add_argument("--log-screenshots", action="store_true", help="also log them as artifacts (ui/) of the run")
    parser.add_argument("--expect", action="append", default=[], help="more text the run page must show")
    parser.add_argument("--timeout", type=float, default=120, help="seconds a page gets to show its texts")
    args = parser.parse_args(argv)

    chromium = find_chromium()
    if chromium is None:
        print("Chromium is not installed (Debian: apt-get install chromium); set $CHROMIUM to use another binary")
        return 2
    import mlflow

    client = mlflow.MlflowClient(args.store)
    if args.run_id:
        run = client.get_run(args.run_id)
    else:
        experiments = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(experiments, "tags.`know_thyself.step` = 'multiphase'", order_by=["attributes.start_time DESC"],
                                  max_results=1)
        if not runs:
            print(f"no multiphase run in {args.store}; run the pipeline first (make run) or pass --run-id")
            return 1
        run = runs[0]
    experiment_id, run_id = run.info.experiment_id, run.info.run_id
    children = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
    note = run.data.tags.get("mlflow.note.content", "")
    datasets = sorted({i.dataset.name for i in run.inputs.dataset_inputs})
    expectations = {
        "experiment page": [run.info.run_name, *datasets],
        "run page": [run.info.run_name, *(c.info.run_name for c in children), *expected_summary(note), *datasets,
                     *args.expect],
    }

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    urls = {
        "experiment page": f"{base}/#/experiments/{experiment_id}?{VIEW}",
        "run page": f"{base}/#/experiments/{experiment_id}/runs/{run_id}?{VIEW}",
    }
    measured = client.search_runs([experiment_id], f"metrics.`{SYSTEM_METRIC}` >= 0", max_results=1)
    if measured:
        tab = "system metrics tab"
        urls[tab] = f"{base}/#/experiments/{experiment_id}/runs/{measured[0].info.run_id}/system-metrics?{VIEW}"
        expectations[tab] = [SYSTEM_METRIC.split("/", 1)[1]]
    shots = Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    process = start_ui(args.store, port, shots / "mlflow-ui.log")
    problems = []
    try:
        with browser_context(chromium) as context:
            for name, url in urls.items():
                page = open_page(context, url)
                absent = missing(page, expectations[name], args.timeout)
                problems += [f"{name} ({url}) does not show {item!r} after {args.timeout:g} s" for item in absent]
                settle(page)
                page.screenshot(path=shots / f"{name.replace(' ', '_')}.png")
                page.close()
    finally:
        stop_ui(process)
    if args.log_screenshots:
        for image in sorted(shots.glob("*.png")):
            client.log_artifact(run_id, str(image), "ui")
    for problem in problems:
        print(problem)
    if not problems:
        checked = sum(len(v) for v in expectations.values())
        print(f"ok: {checked} texts on the experiment and run pages of run {run_id}; screenshots in {shots}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
