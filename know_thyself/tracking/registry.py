"""The model registry: log the judge as a pyfunc, register versions with tags and an alias, load them.

Registered models: ``judgment_v1`` and ``judgment_v2`` (judges: base model + adapter) and
``knowledge_base`` (the base model with the knowledge adapter merged in). The pipeline points
the alias ``current`` at the version it just made. A step that failed has no version: only a
finished run is registered, after it finished.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow

logger = logging.getLogger(__name__)

ALIAS = "current"
JUDGE_ARTIFACT = "judge"
KNOWLEDGE_ARTIFACT = "model"
_PYFUNC_CODE = Path(__file__).with_name("judge_model.py")


def requirements() -> list[str]:
    """Pinned packages a judge needs when loaded elsewhere (the project itself must be installed)."""
    from importlib.metadata import version

    names = ("torch", "transformers", "peft", "accelerate", "mlflow", "pandas", "numpy", "gguf")
    return [f"{name}=={version(name)}" for name in names]


def log_judge(adapter_dir: str, base_model: str, label_scheme: str) -> None:
    """Log the judge (pyfunc from code + adapter artifact) into the active run under ``judge/``."""
    mlflow.pyfunc.log_model(
        name=JUDGE_ARTIFACT,
        python_model=str(_PYFUNC_CODE),
        artifacts={"adapter": adapter_dir},
        model_config={"base_model": base_model, "label_scheme": label_scheme},
        pip_requirements=requirements(),
    )


def register(run_id: str, artifact: str, name: str, tags: dict[str, str]) -> str:
    """Register ``runs:/<run_id>/<artifact>`` as ``name`` (once per run) with ``tags``; point the alias at it.

    Returns the version number. A run that is not FINISHED is refused.
    """
    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    if run.info.status != "FINISHED":
        raise ValueError(f"run {run_id} ended {run.info.status}; only finished runs are registered")
    existing = [v for v in client.search_model_versions(f"name = '{name}'") if v.run_id == run_id]
    if existing:
        # A reused step: its version keeps the tags of the pipeline that made it.
        version = str(max(int(v.version) for v in existing))
    else:
        version = str(mlflow.register_model(f"runs:/{run_id}/{artifact}", name, tags=tags).version)
    client.set_registered_model_alias(name, ALIAS, version)
    logger.info("registered %s version %s (alias %s)", name, version, ALIAS)
    return str(version)


def load_judge(uri: str) -> Any:
    """Load a registered judge, e.g. ``load_judge("models:/judgment_v2@current")``."""
    return mlflow.pyfunc.load_model(uri)


def judge_questions(uri: str, questions: list[str]) -> Any:
    """One line for downstream evaluations: the predicted ability and probabilities of ``questions``."""
    return load_judge(uri).predict(list(questions))
