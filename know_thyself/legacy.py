"""Module names that judges logged before the package took its layered shape still import.

A judge is logged as an MLflow model from code: its code file is stored inside the model and runs
when the model is loaded. Judges logged before the modules moved into packages import
``know_thyself.models`` and ``know_thyself.judge``; :func:`install` maps those names to where the
modules live now, so that every registered judge keeps loading by its URI. Nothing in the project
imports the old names.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

# Old module name -> its home now.
MOVED = {
    "know_thyself.models": "know_thyself.inference.models",
    "know_thyself.judge": "know_thyself.inference.judgments",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name and hands back the module at its new home (imported on first use)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was imported under its own name."""


def install() -> None:
    """Let the old module names import (once per process)."""
    if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules())
