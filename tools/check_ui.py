"""Check in a real browser that the MLflow UI tells the pipeline's story.

Usage: python tools/check_ui.py [--store sqlite:///mlflow.db] [--run-id <parent run id>] [--screenshots DIR]

Starts `mlflow ui` on a free local port against the tracking store, loads the experiment page
and the parent run's page (by default the newest `multiphase` run) in headless Chromium, and
checks that the rendered pages show the run names (the parent on the experiment page; the parent
and its child runs on the run page), the parent's description (the summary's first line and the
first cell of each table row) and the names of the question sets it used (the runs table's
Dataset column, the run page's datasets); and, for a run of the experiment that recorded system
metrics, that its System metrics tab shows the CPU chart. Screenshots of both pages go to DIR (default
ui-screenshots/, which git ignores); --log-screenshots also logs them as artifacts (ui/) of the
parent run. Exits 0 when everything is on the pages, 1 naming what is missing, 2 when Chromium
is not installed (Debian: apt-get install chromium).

MLflow 3.17 shows an experiment in its GenAI or its model-training view according to a switch
at the top of its sidebar, remembered per browser; the pages are loaded with
`?workflowType=machine_learning`, the link that opens the model-training view directly.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import html
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VIEW = "workflowType=machine_learning"
# A system metric every run that records them has (MLflow's CPU monitor).
SYSTEM_METRIC = "system/cpu_utilization_percentage"


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


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

    The MLflow UI is a single-page app whose charts fill in after their own requests answer; a
    one-shot ``--dump-dom`` stops at a virtual-time budget that does not wait for them, so a slow
    chart can miss it on any try. Polling the live page in real time waits exactly as long as the
    page needs. The protocol's messages are JSON, each ended by a NUL byte; Chromium reads them on
    its file descriptor 3 and answers on 4.
    """

    def __init__(self, chromium: str, size: tuple[int, int] = (1600, 1100)):
        from_browser, browser_out = os.pipe()
        browser_in, to_browser = os.pipe()
        # Above 4, so that moving them onto 3 and 4 in the child cannot clobber one with the other.
        high_in, high_out = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (browser_in, browser_out))
        os.close(browser_in)
        os.close(browser_out)

        def onto_3_and_4() -> None:  # runs in the child before exec; dup2's copies are inheritable
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        self._profile = tempfile.TemporaryDirectory(prefix="check-ui-profile-")
        try:
            self.process = subprocess.Popen(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}", f"--window-size={size[0]},{size[1]}",
                 "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                close_fds=False, start_new_session=True,
                preexec_fn=onto_3_and_4,  # noqa: PLW1509 - only way onto fds 3 and 4; this tool runs no threads
            )
        finally:
            os.close(high_in)
            os.close(high_out)
        self._read, self._write = from_browser, to_browser
        self._buffer, self._last_id = b"", 0
        try:
            page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
            self._session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        except Exception:
            self.close()
            raise

    def call(self, method: str, session: str = "", timeout: float = 60, **params) -> dict:
        """Send one protocol command and return its result, skipping the events that arrive meanwhile."""
        self._last_id += 1
        message = {"id": self._last_id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._last_id:
                    if "error" in reply:
                        raise RuntimeError(f"Chromium refused {method}: {reply['error']}")
                    return reply.get("result", {})
            left = deadline - time.time()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer {method} within {timeout:g} s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed its DevTools pipe (exit code {self.process.poll()})")
            self._buffer += chunk

    def _page(self, method: str, **params) -> dict:
        return self.call(method, session=self._session, **params)

    def open(self, url: str) -> None:
        """Load url afresh (through about:blank: a URL that differs only after '#' would not reload the app)."""
        self._page("Page.navigate", url="about:blank")
        self._page("Page.navigate", url=url)

    def html(self) -> str:
        """The page's current DOM as markup."""
        result = self._page("Runtime.evaluate", expression="document.documentElement.outerHTML", returnByValue=True)
        return result["result"].get("value", "")

    def screenshot(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(self._page("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.call("Browser.close", timeout=10)
                self.process.wait(timeout=10)
            except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for fd in (self._read, self._write):
            os.close(fd)
        self._profile.cleanup()


def visible_text(markup: str) -> str:
    """The text of a page's markup without its scripts and styles, whitespace collapsed."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", markup, flags=re.DOTALL)
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(html.unescape(text).split())


def wait_for(browser: Browser, url: str, wanted: list[str], timeout: float, poll: float = 0.5) -> list[str]:
    """Open url and poll it until every wanted text shows or timeout seconds pass; returns what never showed.

    Once everything shows, waits (at most 10 s) for the page to stop changing, so that a screenshot
    taken next shows the charts drawn rather than their spinners.
    """
    browser.open(url)
    deadline = time.time() + timeout
    while True:
        absent = missing(visible_text(browser.html()), wanted)
        if not absent or time.time() > deadline:
            break
        time.sleep(poll)
    if not absent:
        settle, last = time.time() + 10, None
        while time.time() < settle and (markup := browser.html()) != last:
            last = markup
            time.sleep(1.0)
    return absent


def _squash(text: str) -> str:
    """Text without whitespace: markup between words renders as spaces that the source does not have."""
    return re.sub(r"\s+", "", text)


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


def missing(text: str, wanted: list[str]) -> list[str]:
    squashed = _squash(text)
    return [item for item in wanted if _squash(item) not in squashed]


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
        page = "system metrics tab"
        urls[page] = f"{base}/#/experiments/{experiment_id}/runs/{measured[0].info.run_id}/system-metrics?{VIEW}"
        expectations[page] = [SYSTEM_METRIC.split("/", 1)[1]]
    shots = Path(args.screenshots)
    shots.mkdir(parents=True, exist_ok=True)
    process = start_ui(args.store, port, shots / "mlflow-ui.log")
    problems = []
    try:
        browser = Browser(chromium)
        try:
            for page, url in urls.items():
                absent = wait_for(browser, url, expectations[page], args.timeout)
                problems += [f"{page} ({url}) does not show {item!r} after {args.timeout:g} s" for item in absent]
                browser.screenshot(shots / f"{page.replace(' ', '_')}.png")
        finally:
            browser.close()
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
