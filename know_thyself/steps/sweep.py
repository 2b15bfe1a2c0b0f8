"""The sweep step: judgment training variants over a small grid, each scored on a dev split.

Reads the train questions of a finished collect run (its validation questions are dropped on
reading and never used), carves a label-stratified dev split from them
(:func:`know_thyself.training.dev_split.dev_split`), and for every grid point trains a judge on the rest
exactly as train_judgment does (:func:`know_thyself.steps.train_judgment.fit_judge`) and scores
it on dev with the evaluation's own functions, beside the baselines fitted on the fit part (the
linear probe among them). Each grid point is a child run of the parent ``sweep`` run, with its
settings as parameters and its dev metrics as ``dev/<method>/<metric>``, so MLflow's compare and
parallel-coordinates views show the grid. The parent carries the grid as a table
(``sweep_grid.json``), the reference methods' dev metrics, and the tag ``best_run_id``; the best
child is tagged ``best=true``.
"""

from __future__ import annotations

import gc
import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from know_thyself.config import SweepConfig
from know_thyself.data.labels import labels_for, scheme_of
from know_thyself.evaluation.ability import RESPONSES
from know_thyself.evaluation.judgment import Forwards, judge_split
from know_thyself.evaluation.methods import HEADLINE, References, epoch_scorer, fit_references, score_split
from know_thyself.inference.judgments import judge
from know_thyself.inference.models import check_model_exists, load_model
from know_thyself.steps.collect import require_collect_run
from know_thyself.tracking import TAG_STEP, process_tags, read_jsonl_artifact, step_run
from know_thyself.tracking.datasets import log_collect_questions
from know_thyself.tracking.training_log import MlflowMetricsCallback, log_adapter, log_epochs, log_training
from know_thyself.training.best_epoch import BestEpoch
from know_thyself.training.dev_split import best_point, dev_split
from know_thyself.training.divergence import check_training
from know_thyself.training.judge import fit_judge
from know_thyself.training.judgment_examples import build_examples
from know_thyself.training.lora import load_adapter

logger = logging.getLogger(__name__)

POINT_STEP = "sweep_point"
TAG_BEST_RUN = "best_run_id"
TAG_BEST = "best"
GRID_TABLE = "sweep_grid.json"
# Methods scored beside each grid point's judge whose dev numbers do not depend on the point.
REFERENCE_METHODS = ("probe", "first_token", "majority", "oracle", "prior", "answer_logprob", "actual")


def run_sweep(cfg: SweepConfig, reuse: bool = True) -> dict[str, str]:
    """Train and score one judge per grid point; return the run ids of the sweep and of its best point.

    A finished sweep with the same parameters and code version is reused, not rerun.
    """
    collected = require_collect_run(cfg.collect_run_id, "collect_run_id", needs=("train",))
    scheme = scheme_of(collected.data.params)
    check_model_exists(cfg.model)
    points = cfg.grid()
    # Validation is dropped here, on reading: nothing below can see it.
    train_rows = [r for r in read_jsonl_artifact(collected.info.run_id, RESPONSES) if r["split"] == "train"]
    fit, dev = dev_split(train_rows, cfg.dev_fraction, cfg.seed)  # a bad dev_fraction fails before the run
    with step_run(cfg.step, cfg.params(), reuse=reuse) as run:
        if run.reused:
            best = mlflow.get_run(run.run_id).data.tags.get(TAG_BEST_RUN, "")
            return {"sweep": run.run_id, **({"best": best} if best else {})}
        log_collect_questions(collected, splits=("train",))
        references, dev_forwards = _references(cfg, fit, dev, scheme)
        questions = [r["question"] for r in dev]
        # What build_judgment_data builds from train rows.
        examples, dev_examples = build_examples(fit, scheme), build_examples(dev, scheme)
        results = []
        from tqdm.auto import tqdm

        for index, point in enumerate(tqdm(points, desc="sweep", unit="point", dynamic_ncols=True)):
            results.append(_grid_point(cfg, index, point, (examples, dev_examples), questions, dev, references,
                                       dev_forwards, scheme))
        best = _tag_best(cfg, results)
        mlflow.log_table(_grid_table(points, results, best), GRID_TABLE)
    return {"sweep": run.run_id, **({"best": results[best]["run_id"]} if best is not None else {})}


def _references(cfg: SweepConfig, fit: list[dict], dev: list[dict], scheme: str) -> tuple[References, Forwards]:
    """Fit the baselines (probe, first token, majority, correctness rates) on the fit part; the bare model's dev forwards."""
    model, tokenizer = load_model(cfg.model, dtype=cfg.dtype)
    fitted, dev_forwards = (
        judge_split(model, tokenizer, [r["question"] for r in part], scheme, cfg.inference_batch_size, False)
        for part in (fit, dev)
    )
    labels = labels_for(scheme)
    references = fit_references(fit, fitted.features, labels, fitted.first_token, probe_c=cfg.probe_c)
    counts = {
        f"{name}/label_count/{label}": sum(r["ability"] == label for r in part)
        for name, part in (("fit", fit), ("dev", dev))
        for label in labels
    }
    mlflow.log_metrics({"fit/questions": len(fit), "dev/questions": len(dev), **counts})
    mlflow.log_metrics({f"fit/correct_rate/{label}": rate for label, rate in references.rates.items()})
    del model
    gc.collect()
    return references, dev_forwards


def _grid_point(
    cfg: SweepConfig, index: int, point: dict[str, Any], examples: tuple[list[dict], list[dict]], questions: list[str],
    dev: list[dict], references: References, dev_forwards: Forwards, scheme: str,
) -> dict[str, Any]:
    """Train one grid point's judge in a child run (its best epoch on dev kept) and score it on dev; returns its run id and dev metrics."""
    name = f"point-{index}: " + " ".join(f"{key}={value}" for key, value in point.items())
    training = cfg.training(point)
    tags = {TAG_STEP: POINT_STEP, **process_tags()}
    with mlflow.start_run(run_name=name, nested=True, tags=tags) as child:
        mlflow.log_params({
            **{key: str(value) for key, value in point.items()},
            "lora_alpha": str(cfg.lora_alpha), "lora_dropout": str(cfg.lora_dropout), "batch_size": str(cfg.batch_size),
            "max_steps": str(cfg.max_steps), "seed": str(cfg.seed), "model": cfg.model,
            "collect_run_id": cfg.collect_run_id, "dev_fraction": str(cfg.dev_fraction), "dtype": cfg.dtype,
            "min_label_share": str(training.min_label_share), "label_mass_weight": str(training.label_mass_weight),
            "max_length": str(training.max_length), "probe_c": str(cfg.probe_c),
        })
        fit_examples, dev_examples = examples
        model_and_tokenizer = load_model(cfg.model, dtype="float32")
        keeper = BestEpoch(epoch_scorer(model_and_tokenizer[1], dev_examples, fit_examples, scheme), training.select_by,
                           training.min_label_share)
        trained = fit_judge(fit_examples, training, scheme, model_and_tokenizer, (MlflowMetricsCallback(), keeper))
        check_training(trained.trainer, training, trained.metrics["train/final_loss"], what=name)
        log_training(trained)
        log_epochs(keeper, prefix="epoch/dev/judge")
        with tempfile.TemporaryDirectory(prefix="know-thyself-sweep-") as scratch:
            adapter_dir = log_adapter(trained.trainer, cfg.model, folder=Path(scratch))
            del trained
            gc.collect()
            # Scored as evaluate_judgment scores an adapter: the base in the inference dtype, adapter on top.
            model, tokenizer = load_model(cfg.model, dtype=cfg.dtype)
            model = load_adapter(model, adapter_dir)
            judged = judge(model, tokenizer, questions, scheme, cfg.inference_batch_size)
            del model
            gc.collect()
        scores = score_split("dev", dev, judged, references, dev_forwards.features, first_token=dev_forwards.first_token)
        mlflow.log_metrics(scores.metrics)
        mlflow.log_table(pd.DataFrame(scores.rows), "dev_comparison.json")
        previous = mlflow.get_run(child.info.run_id).data.tags.get("undefined_metrics", "none")
        undefined = [u for u in previous.split(", ") if u and u != "none"] + scores.undefined
        mlflow.set_tag("undefined_metrics", ", ".join(undefined) if undefined else "none")
    return {"run_id": child.info.run_id, "metrics": scores.metrics}


def _tag_best(cfg: SweepConfig, results: list[dict[str, Any]]) -> int | None:
    """Tag the best grid point (child ``best=true``, parent ``best_run_id``); log the references on the parent."""
    key = f"dev/judge/{cfg.select_by}"
    best = best_point([r["metrics"] for r in results], key)
    first = results[0]["metrics"]
    mlflow.log_metrics({k: v for k, v in first.items() if k.split("/")[1] in REFERENCE_METHODS})
    client = mlflow.MlflowClient()
    for index, result in enumerate(results):
        client.set_tag(result["run_id"], TAG_BEST, "true" if index == best else "false")
    mlflow.set_tag("select_by", key)
    if best is None:
        logger.warning("no grid point has %s defined; no best point tagged", key)
        mlflow.set_tag(TAG_BEST_RUN, "none")
        return None
    mlflow.set_tag(TAG_BEST_RUN, results[best]["run_id"])
    mlflow.log_metrics({f"best/{k}": v for k, v in results[best]["metrics"].items() if k.startswith("dev/judge/")})
    return best


def _grid_table(points: list[dict], results: list[dict], best: int | None) -> pd.DataFrame:
    """One row per grid point (settings, dev headline metrics with intervals, predicted shares), then the probe."""
    labels = sorted({k.rsplit("/", 1)[1] for r in results for k in r["metrics"] if k.startswith("dev/judge/predicted/")})
    columns = [f"{metric}{bound}" for metric in HEADLINE for bound in ("", "_low", "_high")]

    def values(metrics: dict[str, float], method: str) -> dict[str, float | None]:
        return {column: metrics.get(f"dev/{method}/{column}") for column in columns}

    rows = []
    for index, (point, result) in enumerate(zip(points, results)):
        metrics = result["metrics"]
        rows.append({
            "method": "judge", "run_id": result["run_id"], "best": index == best, **point,
            **values(metrics, "judge"),
            **{f"predicted_{label}": metrics.get(f"dev/judge/predicted/{label}") for label in labels},
        })
    reference = results[0]["metrics"] if results else {}
    rows.append({"method": "probe", "run_id": "", "best": False, **values(reference, "probe")})
    return pd.DataFrame(rows)

