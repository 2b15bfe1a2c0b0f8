"""The questions a run used, as MLflow dataset inputs: the runs page's Dataset column and each run's page
name them, and the same questions carry the same digest in every run that read them.

A question set is logged as a pandas dataset of its question ids and texts (the digest is MLflow's
hash of those rows), with the split as the input's context (``train`` / ``validation``). Its source
is the file it was read from, the bundled set's file, or the Hugging Face dataset on the Hub.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from know_thyself import internals
from know_thyself.data import questions as question_sets

# Context of a dataset input: which split of the questions it is.
SPLIT_CONTEXTS = ("train", "validation")


def _source(dataset: str, split: str) -> object:
    """Where the questions came from, as MLflow names a dataset's source."""
    name = str(dataset)
    if name.strip().lower() in question_sets.HUB_ALIASES:
        from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource

        return HuggingFaceDatasetSource(path=question_sets.HUB_ID, config_name=question_sets.HUB_CONFIG, split=split)
    if name == question_sets.BUNDLED:
        return str(question_sets.BUNDLED_DIR / f"{split}.jsonl")
    return str(Path(name).expanduser().resolve())


def _label(dataset: str) -> str:
    name = str(dataset).rstrip("/")
    return name.rsplit("/", 1)[-1] or "questions"


def question_dataset(rows: list[dict], dataset: str, split: str) -> mlflow.data.Dataset:
    """The questions of ``rows`` (question records or ``responses.jsonl`` rows) as an MLflow dataset.

    Args:
        rows: Each with ``question_id`` and ``question``; their order does not change the digest.
        dataset: The dataset argument they were read from (``bundled``, a Hub id, a folder or a file).
        split: ``train`` or ``validation``.
    """
    frame = pd.DataFrame(
        sorted((r["question_id"], r["question"]) for r in rows), columns=["question_id", "question"]
    )
    return mlflow.data.from_pandas(frame, source=_source(dataset, split), name=_label(dataset))


def log_questions(rows: list[dict], dataset: str, run_id: str | None = None) -> None:
    """Log each split's questions in ``rows`` as a dataset input of the active run (or ``run_id``'s).

    Rows carry their split (``responses.jsonl`` rows) or are given per split by the caller.
    """
    by_split = {split: [r for r in rows if r.get("split") == split] for split in SPLIT_CONTEXTS}
    for split, part in by_split.items():
        if not part:
            continue
        data = question_dataset(part, dataset, split)
        if run_id is None:
            mlflow.log_input(data, context=split)
        else:
            mlflow.MlflowClient().log_inputs(run_id, [_as_input(data, split)])


def _as_input(data: mlflow.data.Dataset, split: str) -> object:
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    return DatasetInput(dataset=internals.dataset_entity(data),
                        tags=[InputTag(key=MLFLOW_DATASET_CONTEXT, value=split)])


def log_collect_questions(collect_run: object, splits: tuple[str, ...] = SPLIT_CONTEXTS, run_id: str | None = None) -> None:
    """Log the questions a finished collect run sampled (its ``splits``) as dataset inputs of the active run.

    A step that reads a collect run's questions, directly or through the data built from them,
    names the same question sets (same digests) as the collect run itself.
    """
    from know_thyself.tracking.artifacts import read_jsonl_artifact

    rows = [r for r in read_jsonl_artifact(collect_run.info.run_id, "responses.jsonl") if r["split"] in splits]
    log_questions(rows, collect_run.data.params.get("dataset", ""), run_id)
