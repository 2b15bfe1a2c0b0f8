"""Judges registered before the package took its layered shape keep loading by their URI.

A judge is an MLflow model from code: the code file stored inside it runs when it loads. The file in
tests/data/legacy_judge_model.py is the judge's code as the earlier layout logged it (it imports
``know_thyself.models`` and ``know_thyself.judge``). Those names are two small modules that hand back
the modules' homes now; importing the package itself installs nothing (no import hook).
"""

import subprocess
import sys
from pathlib import Path

import mlflow

from know_thyself.tracking.registry import JUDGE_ARTIFACT, register

LEGACY_CODE = Path(__file__).resolve().parents[2] / "data" / "legacy_judge_model.py"
ROOT = Path(__file__).resolve().parents[3]


def test_a_judge_logged_with_the_old_layout_loads_and_judges(tracking, tiny, tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    assert "from know_thyself.models import load_model" in LEGACY_CODE.read_text()
    model, _ = tiny
    adapter = tmp_path / "adapter"
    get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")).save_pretrained(adapter)
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(
            name=JUDGE_ARTIFACT, python_model=str(LEGACY_CODE), artifacts={"adapter": str(adapter)},
            model_config={"base_model": tiny_model_dir, "label_scheme": "three"},
        )
    version = register(run.info.run_id, JUDGE_ARTIFACT, "judgment_v1", {})
    judged = mlflow.pyfunc.load_model(f"models:/judgment_v1/{version}").predict(["What is the capital of Peru?"])
    assert list(judged.columns) == ["question", "ability", "p_can", "p_uncertain", "p_cannot"]
    assert judged.loc[0, "ability"] in ("can", "uncertain", "cannot")
    assert abs(judged.loc[0, ["p_can", "p_uncertain", "p_cannot"]].sum() - 1.0) < 1e-5


def test_importing_the_package_leaves_the_import_system_alone():
    """No finder on sys.meta_path, no old name imported: only a judge that asks for an old name gets it."""
    check = (
        "import sys; finders = list(sys.meta_path); import know_thyself; "
        "assert sys.meta_path == finders, sys.meta_path[len(finders):]; "
        # The judge's own modules import MLflow, which adds finders of its dependencies: none of ours.
        "import know_thyself.tracking.registry, know_thyself.tracking.judge_model; "
        "ours = [f for f in sys.meta_path + sys.path_hooks "
        "        if (getattr(f, '__module__', None) or '').startswith('know_thyself')]; "
        "assert not ours, ours; "
        "assert not {'know_thyself.models', 'know_thyself.judge'} & set(sys.modules), 'an old name was imported'; "
        "import know_thyself.models, know_thyself.judge, know_thyself.inference.models as m, "
        "know_thyself.inference.judgments as j; "
        "assert know_thyself.models is m and know_thyself.judge is j; "
        "assert sys.modules['know_thyself.models'] is m and sys.modules['know_thyself.judge'] is j"
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_nothing_in_the_project_imports_the_old_names():
    import re

    old = re.compile(r"^\s*(from know_thyself import (models|judge)\b|from know_thyself\.(models|judge) import|"
                     r"import know_thyself\.(models|judge)\b)", re.MULTILINE)
    shims = {ROOT / "know_thyself" / "models.py", ROOT / "know_thyself" / "judge.py"}
    for folder in ("know_thyself", "entrypoints", "tools", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if path not in shims:
                assert not old.search(path.read_text()), f"{path.relative_to(ROOT)} imports an old module name"
