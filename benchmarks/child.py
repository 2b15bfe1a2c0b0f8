"""Run one benchmark measurement in a fresh Python process and read back its result.

Each measurement runs alone in its own process, so that one variant's warm caches, allocator
state and thread pools do not favour the next. The child prints one line ``RESULT <json>``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "RESULT "


def report(result: dict) -> None:
    """In the child: hand ``result`` back to the parent."""
    print(PREFIX + json.dumps(result))


def run_child(script: str, *args: str) -> dict:
    """In the parent: run ``script --child ARGS`` and return the result it reported."""
    env = dict(os.environ, TQDM_DISABLE="1", TRANSFORMERS_VERBOSITY="error", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, script, "--child", *args], capture_output=True, text=True, env=env,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child {args} failed:\n{out.stderr[-3000:]}")
    line = next(line for line in out.stdout.splitlines() if line.startswith(PREFIX))
    return json.loads(line[len(PREFIX):])


def load_average() -> str:
    """The machine's load average, for the benchmark's header (timings are only as quiet as this)."""
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"
