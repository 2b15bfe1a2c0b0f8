"""The evaluate_judgment step: a judge (optionally with its adapter) beside cheap baselines."""

from __future__ import annotations

from know_thyself.config import EvaluateConfig
from know_thyself.evaluate import TRAINING_STEPS, evaluate_judgment
from know_thyself.tracking import StepRun, require_step_run, step_run


def run_evaluate_judgment(cfg: EvaluateConfig, reuse: bool = True, run_name: str | None = None) -> StepRun:
    """Run evaluate_judgment in its own (possibly nested) run, or reuse an identical finished one."""
    require_step_run(cfg.collect_run_id, "collect", "collect_run_id")
    if cfg.adapter_run_id:
        require_step_run(cfg.adapter_run_id, TRAINING_STEPS, "adapter_run_id")
    with step_run(cfg.step, cfg.params(), reuse=reuse, run_name=run_name) as run:
        if not run.reused:
            evaluate_judgment(cfg)
    return run
