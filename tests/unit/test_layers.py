"""The package's layers (docs/architecture.md), checked from the source: each package imports only the
layers below it, only the tracking layer, the steps and the command line talk to MLflow, and no
module-level import goes round in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import ROOT

PACKAGE = ROOT / "know_thyself"
# Each layer may import itself and the layers listed before it, except where ALSO_NOT says otherwise.
LAYERS = ["data", "inference", "config", "training", "evaluation", "tracking", "steps", "cli"]
# training and evaluation stand side by side: neither imports the other.
ALSO_NOT = {"training": {"evaluation"}, "evaluation": {"training"}}
# Besides tracking, steps and cli, only this module reads MLflow: to fetch a registered model's files.
MLFLOW_READERS = {"know_thyself/inference/models.py"}
# Outside the layers, at the package's root: the front door (__init__.py), the one door to other
# libraries' internals (internals.py), and the old names of moved modules, which judges logged before
# the layered layout import. An old name imports its new home and nothing else.
OLD_NAMES = {"know_thyself/models.py": "know_thyself.inference.models",
             "know_thyself/judge.py": "know_thyself.inference.judgments"}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _layer(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def _imports(path: Path, top_level_only: bool = False) -> list[tuple[str, int]]:
    """``(module name, line)`` of every import in a file (or only those at module level)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{alias.name}", node.lineno) for alias in node.names]
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_package_imports_only_the_layers_below_it(path):
    layer = _layer(path)
    if layer not in LAYERS:
        return  # the package's root: the front door, internals.py and the old names (OLD_NAMES)
    allowed = set(LAYERS[: LAYERS.index(layer) + 1]) - ALSO_NOT.get(layer, set())
    for name, line in _imports(path):
        parts = name.split(".")
        if parts[0] == "know_thyself" and len(parts) > 1 and parts[1] in LAYERS:
            assert parts[1] in allowed, f"{path.relative_to(ROOT)}:{line} ({layer}) imports {name}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_tracking_steps_and_cli_talk_to_mlflow(path):
    relative = str(path.relative_to(ROOT))
    if _layer(path) in ("tracking", "steps", "cli") or relative in MLFLOW_READERS:
        return
    for name, line in _imports(path):
        assert name.split(".")[0] != "mlflow", f"{relative}:{line} imports {name}"


@pytest.mark.parametrize(("path", "home"), sorted(OLD_NAMES.items()))
def test_an_old_name_imports_its_new_home_and_nothing_else(path, home):
    imported = {name for name, _ in _imports(ROOT / path)}
    # ``from know_thyself.inference import models`` reads as the package and the module.
    assert imported - {"sys"} == {home.rpartition(".")[0], home}, f"{path} imports {sorted(imported)}"


def test_nothing_below_the_steps_imports_them():
    for path in _modules():
        if _layer(path) in ("steps", "cli"):
            continue
        for name, line in _imports(path):
            assert not name.startswith("know_thyself.steps"), f"{path.relative_to(ROOT)}:{line} imports {name}"


def test_no_import_cycle_at_module_level():
    def module_name(path: Path) -> str:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    names = {module_name(p): p for p in _modules()}
    graph = {}
    for name, path in names.items():
        targets = set()
        for imported, _ in _imports(path, top_level_only=True):
            while imported and imported not in names:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    # A package's __init__ importing its own submodules is how it re-exports them, not a cycle.
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if target.startswith(node + "."):
                continue
            if state.get(target) == 1:
                cycle = trail[trail.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
