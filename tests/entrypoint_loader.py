"""Load an entry point's click command from entrypoints/ (a folder of scripts, not a package)."""

import importlib.util
from pathlib import Path

ENTRYPOINTS = Path(__file__).resolve().parents[1] / "entrypoints"


def command(name: str):
    """The ``main`` click command of ``entrypoints/<name>.py``."""
    spec = importlib.util.spec_from_file_location(f"entrypoint_{name}", ENTRYPOINTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main
