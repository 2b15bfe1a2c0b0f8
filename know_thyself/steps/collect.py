"""The collect step: sample answers, grade them, and label each question's ability."""

from __future__ import annotations

from know_thyself.collect import SPLITS, collect, load_questions
from know_thyself.config import CollectConfig
from know_thyself.memory import check_sampling_memory
from know_thyself.sampling import resolve_backend
from know_thyself.tracking import StepRun, find_finished_run, step_run


def run_collect(cfg: CollectConfig, reuse: bool = True) -> StepRun:
    """Run the collect step in its own (possibly nested) run, or reuse an identical finished one."""
    # Load and check the data before opening a run: bad input leaves no run behind.
    questions = load_questions(cfg.dataset, cfg.num_samples, cfg.test_samples, cfg.seed)
    if not (reuse and find_finished_run(cfg.step, cfg.params())):
        check_sampling_memory(
            cfg.model, [[q["question"] for q in questions[split]] for split in SPLITS],
            batch_size=cfg.inference_batch_size, num_trials=cfg.num_trials, max_new_tokens=cfg.max_new_tokens,
            dtype=cfg.dtype, backend=resolve_backend(cfg.backend),
        )
    with step_run(cfg.step, cfg.params(), reuse=reuse) as run:
        if not run.reused:
            collect(cfg, questions)
    return run
