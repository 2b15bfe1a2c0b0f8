"""The collect step: sample answers, grade them, and label each question's ability.

Logs ``responses.jsonl``, the per-split metrics, the ability distribution figure, and a
fingerprint of the sampled question records (tag ``know_thyself.question_set``) that the knowledge
test compares two collect runs by. The same fingerprint is part of the step's cache key: a dataset
whose questions or answers changed since a finished run (an edited file, another bundled set) is
collected again, never answered from the old run; so is one whose finished run lost its
``responses.jsonl``.
"""

from __future__ import annotations

from typing import Any

import mlflow

from know_thyself.config import CollectConfig
from know_thyself.data.labels import labels_for
from know_thyself.evaluation.ability import (
    RESPONSES,
    SPLITS,
    ability_figure,
    collect,
    collected_splits,
    load_questions,
    question_set_digest,
)
from know_thyself.inference.memory import check_sampling_memory
from know_thyself.inference.models import check_model_exists, default_device, precision_of
from know_thyself.inference.sampling import resolve_backend
from know_thyself.tracking import StepRun, code, describe_run, find_finished_run, log_jsonl, require_step_run, step_run
from know_thyself.tracking.datasets import log_questions
from know_thyself.tracking.registry import TAG_PRECISION

TAG_QUESTION_SET = "know_thyself.question_set"
# What a finished collect run must still hold to be reused: what every step after it reads.
REQUIRES = (RESPONSES,)


def run_collect(cfg: CollectConfig, reuse: bool = True, run_name: str | None = None) -> StepRun:
    """Run the collect step in its own (possibly nested) run, or reuse an identical finished one."""
    # Load and check the data and the model before opening a run: bad input leaves no run behind.
    questions = load_questions(cfg.dataset, cfg.num_samples, cfg.test_samples, cfg.seed)
    digest = question_set_digest({split: questions[split] for split in cfg.split_list()})
    if not (reuse and find_finished_run(cfg.step, cfg.params(), digest, requires=REQUIRES)):
        check_model_exists(cfg.model)
        check_sampling_memory(
            cfg.model, [[q["question"] for q in questions[split]] for split in cfg.split_list()],
            batch_size=cfg.inference_batch_size, num_trials=cfg.num_trials, max_new_tokens=cfg.max_new_tokens,
            dtype=cfg.dtype, backend=resolve_backend(cfg.backend),
        )
    with step_run(cfg.step, cfg.params(), reuse=reuse, run_name=run_name, inputs=digest, system_metrics=True,
                  requires=REQUIRES) as run:
        if not run.reused:
            result = collect(cfg, questions)
            mlflow.set_tags({**result.tags, TAG_QUESTION_SET: digest,
                             TAG_PRECISION: precision_of(cfg.dtype, default_device())})
            mlflow.log_metrics(result.metrics)
            log_jsonl(result.rows, RESPONSES)
            log_questions(result.rows, cfg.dataset)
            if cfg.split_list() == SPLITS:
                mlflow.log_figure(ability_figure(result.metrics, cfg.label_scheme), "ability_distribution.png")
            describe_run(collect_line(cfg, result.metrics))
    return run


def collect_line(cfg: CollectConfig, metrics: dict[str, float]) -> str:
    """The run's one-line description: what was sampled, and what came out per split."""
    labels = labels_for(cfg.label_scheme)
    parts = []
    for split in cfg.split_list():
        shares = "/".join(f"{metrics[f'{split}/ability/{label}']:.0%}" for label in labels)
        parts.append(f"{split}: {int(metrics[f'{split}/questions'])} questions, QA accuracy "
                     f"{metrics[f'{split}/qa_accuracy']:.2f}, {'/'.join(labels)} {shares}")
    return (f"Sampled {cfg.num_trials} answers per question from {code(cfg.model)} on {code(cfg.dataset)} (temperature "
            f"{cfg.temperature}) and labelled each question's ability; " + "; ".join(parts) + ".")


def require_collect_run(run_id: str, option: str, needs: tuple[str, ...] = SPLITS) -> Any:
    """Fetch a finished collect run that sampled answers for every split in ``needs``.

    Args:
        run_id: The collect run id the user or the chain passed.
        option: The option name, for the error message.
        needs: The splits the consuming step reads.
    """
    run = require_step_run(run_id, "collect", option)
    missing = [split for split in needs if split not in collected_splits(run.data.params)]
    if missing:
        raise ValueError(
            f"{option} {run_id!r} collected only {run.data.params.get('splits')!r}, without {', '.join(missing)}; "
            "pass a collect run of both splits (splits=train,validation)"
        )
    return run
