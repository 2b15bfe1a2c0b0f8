"""The phase1 chain: judgment v1 under one parent run (its judgment chain also serves Phase 3).

Every step runs as a nested child run of the parent and hands the next step run ids, never
paths. A step whose finished run already exists with the same parameters, upstream run ids and
code version is reused (see :mod:`know_thyself.tracking`), so rerunning a chain resumes it; runs
that a killed earlier start left RUNNING are marked KILLED first
(:func:`know_thyself.tracking.close_stale_runs`).
"""

from __future__ import annotations

import mlflow

from know_thyself.config import JudgmentDataConfig, Phase1Config
from know_thyself.evaluation.ability import SPLITS, load_questions
from know_thyself.evaluation.comparison import describe, headline
from know_thyself.inference.models import check_model_exists
from know_thyself.steps.build_judgment_data import run_build_judgment_data
from know_thyself.steps.collect import run_collect
from know_thyself.steps.evaluate_judgment import run_evaluate_judgment
from know_thyself.steps.train_judgment import run_train_judgment
from know_thyself.tracking import chain_run, close_stale_runs, code, describe_run

CHAIN_LINE = ("collect answers and ability labels, build judgment examples, evaluate the bare model, train the "
              "LoRA judge, evaluate it beside the baselines.")
# The step tags of the runs this chain opens.
STEPS = ("phase1", "collect", "build_judgment_data", "evaluate_judgment", "train_judgment")


def run_phase1(cfg: Phase1Config, reuse: bool = True) -> dict[str, str]:
    """collect -> build_judgment_data -> train_judgment -> evaluate_judgment.

    Opens the parent run ``phase1`` (or continues the run ``mlflow run`` opened, or nests under an
    active run) and returns the run id of every step, keyed by step.
    """
    # Fail on bad data or a missing model before any run exists.
    load_questions(cfg.dataset, cfg.num_samples, cfg.test_samples, cfg.seed)
    check_model_exists(cfg.model)
    close_stale_runs(STEPS)
    with chain_run("phase1", cfg.params()) as parent:
        ids = {"phase1": parent.info.run_id}
        ids.update(judgment_chain(cfg, cfg.model, reuse, suffix="v1"))
        _log_headline(ids, "v1")
        judged = mlflow.get_run(ids["evaluate_judgment"]).data.metrics
        describe_run(f"Phase 1, judgment v1 on {code(cfg.model)}: {CHAIN_LINE} Validation: "
                     f"{describe(headline(judged, 'validation'))}.")
    return ids


def judgment_chain(
    cfg: Phase1Config, model: str, reuse: bool, suffix: str, knowledge_data_run_id: str = "",
    baseline_adapter_run_id: str = "", holdout_fraction: float = JudgmentDataConfig.holdout_fraction,
    init_adapter_run_id: str = "",
) -> dict[str, str]:
    """collect -> build -> train -> evaluate, for ``model``; returns step run ids.

    After Phase 2 (``knowledge_data_run_id``: the run that taught the model), ``holdout_fraction`` of
    the taught train questions and of the untaught ones is kept out of the judge's training, and the
    evaluation reports the judge on them beside judgment v1 (``baseline_adapter_run_id``) applied unchanged.

    The one evaluation runs with the trained adapter; its ``prompt_only`` rows are the bare
    model's numbers (the same forward also feeds the probe), so no separate evaluation of the
    bare model runs.

    With ``cfg.reference_sample_seed`` set, the validation questions are collected a second time
    with that answer seed (run ``collect_reference``) and both evaluations report the label-noise
    ceiling against it. With ``init_adapter_run_id`` the judge's training continues that run's adapter.
    """
    ids = {}
    ids["collect"] = run_collect(cfg.collect(model), reuse=reuse).run_id
    reference = ""
    if cfg.reference_sample_seed != -1:  # validation again with another answer seed: the label-noise ceiling
        reference = run_collect(cfg.reference_collect(model), reuse=reuse, run_name="collect_reference").run_id
        ids["collect_reference"] = reference
    ids["build_judgment_data"] = run_build_judgment_data(
        JudgmentDataConfig(collect_run_id=ids["collect"], knowledge_data_run_id=knowledge_data_run_id,
                           holdout_fraction=holdout_fraction, seed=cfg.seed), reuse=reuse
    ).run_id
    ids["train_judgment"] = run_train_judgment(
        cfg.train(ids["build_judgment_data"], model=model, init_adapter_run_id=init_adapter_run_id), reuse=reuse
    ).run_id
    ids["evaluate_judgment"] = run_evaluate_judgment(
        cfg.evaluate(model, ids["collect"], ids["train_judgment"], reference, baseline_adapter_run_id), reuse=reuse,
        run_name=f"evaluate_judgment_{suffix}",
    ).run_id
    return ids


HEADLINE_METRICS = ("balanced_accuracy", "qwk", "auroc", "exact_match")


def _log_headline(ids: dict[str, str], suffix: str) -> None:
    """Copy the evaluation's headline numbers onto the parent run.

    ``judgment_<suffix>/<split>/judge/<metric>`` is the trained judge; ``baseline/<split>/judge/<metric>``
    is the bare model as a judge, read from the same evaluation's ``prompt_only`` rows.
    """
    child = mlflow.get_run(ids["evaluate_judgment"]).data.metrics
    headline = {}
    for split in SPLITS:
        for metric in HEADLINE_METRICS:
            for name, method in (("baseline", "prompt_only"), (f"judgment_{suffix}", "judge")):
                key = f"{split}/{method}/{metric}"
                if key in child:
                    headline[f"{name}/{split}/judge/{metric}"] = child[key]
    mlflow.log_metrics(headline)
    collected = mlflow.get_run(ids["collect"]).data.metrics
    mlflow.log_metrics({k: v for k, v in collected.items() if k.endswith("qa_accuracy")})
