"""Registered judges: from a ``models:/`` URI to the training runs behind the version, and the tags that
link a version to its evaluations."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import mlflow

from know_thyself.data.labels import scheme_of
from know_thyself.inference.models import REGISTRY_URI, default_device, precision_of
from know_thyself.tracking.registry import TAG_PRECISION
from know_thyself.tracking.runs import TAG_STEP, require_step_run

logger = logging.getLogger(__name__)

# The registered models that hold judges.
JUDGES = ("judgment_v1", "judgment_v2")


@dataclass
class RegisteredJudge:
    """A registered judge version and the runs it leads to."""

    uri: str
    name: str
    version: str
    run_id: str
    base_model: str
    model_id: str | None
    training_collect: Any
    precision: str | None = None

    @property
    def title(self) -> str:
        """``judgment_v2/3``."""
        return f"{self.name}/{self.version}"

    @property
    def scheme(self) -> str:
        return scheme_of(self.training_collect.data.params)


def resolve_judge(uri: str) -> RegisteredJudge:
    """The registered version ``uri`` names, checked to be a judge, with its base model and training runs.

    Raises:
        ValueError: naming the URI and the fix, when the version does not exist or is not a judge.
    """
    match = REGISTRY_URI.match(uri)
    if match is None:
        raise ValueError(f"model_uri {uri!r} is not a registry URI; give models:/judgment_v2/<version> or @<alias>")
    name, number, alias = match.groups()
    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)
    except Exception as exc:  # MlflowException for a missing name, version or alias
        if exc.__class__.__name__ not in ("MlflowException", "RestException"):
            raise
        raise ValueError(
            f"model_uri {uri!r} is not registered in {mlflow.get_tracking_uri()} ({registered_judges(client)}); "
            "check the name and version or alias on the MLflow UI's Models page, or point MLFLOW_TRACKING_URI "
            "at the store that holds it"
        ) from None
    source = client.get_run(version.run_id) if version.run_id else None
    step = source.data.tags.get(TAG_STEP, "") if source is not None else ""
    if step != "train_judgment":
        what = " (the knowledge-merged base model, not a judge)" if step == "train_knowledge" else ", not a judge"
        made_by = f"made by a {step} run" if step else "not made by this pipeline's train_judgment step"
        raise ValueError(
            f"model_uri {uri!r} is {name} version {version.version}{what}, {made_by}; give a judgment_v1 or "
            "judgment_v2 version, e.g. models:/judgment_v2@current"
        )
    data_run = require_step_run(source.data.params.get("data_run_id", ""), "build_judgment_data",
                                f"the data_run_id of {uri}'s training run")
    collected = require_step_run(data_run.data.params.get("collect_run_id", ""), "collect", f"the collect run behind {uri}")
    base = version.tags.get("base_model") or source.data.params.get("model", "")
    return RegisteredJudge(uri, name, str(version.version), source.info.run_id, base,
                           version.model_id or logged_model_id(source), collected, recorded_precision(source))


def recorded_precision(training_run: Any | None) -> str | None:
    """The precision a train_judgment run recorded for its judge (None: no run, or one from before it was recorded)."""
    return training_run.data.tags.get(TAG_PRECISION) if training_run is not None else None


def judge_precision(dtype: str, recorded: str | None, device: str | None = None) -> tuple[str, str]:
    """The precision to score a judge in, and a note when it is not the one the judge answers in.

    ``auto`` follows the judge: the precision its training run recorded (``know_thyself.precision``),
    which its logged pyfunc model loads in, so an evaluation's numbers are the judge's own on any
    machine. Without a judge, or for a judge trained before precisions were recorded, ``auto``
    resolves here (bf16 where the hardware is fast at it). A ``dtype`` other than the judge's own is
    honoured, and the note says so.

    Args:
        dtype: The step's ``dtype`` option.
        recorded: The judge's precision (:func:`recorded_precision`); None for the bare model.
        device: Where the model runs (default: CUDA when available).

    Returns:
        ``(precision, note)``; ``note`` is empty when the precision is the judge's own.
    """
    device = device or default_device()
    if dtype == "auto" and recorded:
        return recorded, ""
    precision = precision_of(dtype, device)
    if recorded and precision != recorded:
        return precision, (f"scored in {precision} as dtype asked, while the judge answers in {recorded} "
                           "(leave dtype at auto to score it as users load it)")
    return precision, ""


def registered_judges(client: Any) -> str:
    found = [f"{v.name}/{v.version}" for name in JUDGES for v in client.search_model_versions(f"name = '{name}'")]
    return f"judges registered there: {', '.join(sorted(found))}" if found else "no judge is registered there yet"


def logged_model_id(run: Any) -> str | None:
    """The MLflow logged model of the judge the training run logged (MLflow 3), if the store has one."""
    try:
        models = mlflow.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}' AND name = 'judge'",
            output_format="list",
        )
    except Exception:  # an older server without logged models: tags still link the runs
        logger.debug("no logged models for run %s", run.info.run_id, exc_info=True)
        return None
    return models[0].model_id if models else None




def tag_version(judge: RegisteredJudge, key: str, value: str, run_id: str) -> None:
    """Tag the judge's model version with an evaluation's headline (``key``) and the run that made it."""
    client = mlflow.MlflowClient()
    client.set_model_version_tag(judge.name, judge.version, key, value)
    client.set_model_version_tag(judge.name, judge.version, "downstream.last_run_id", run_id)
