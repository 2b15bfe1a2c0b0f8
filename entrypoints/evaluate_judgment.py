"""Evaluate a model's judgment (optionally with a trained adapter) against a collect run's labels.

Usage: mlflow run . -e evaluate_judgment -P collect_run_id=<id> [-P adapter_run_id=<id>] --env-manager local

Reads responses.jsonl of the collect run and the adapter of the train_judgment run; writes
predictions.jsonl, exact match and other metrics, confusion matrices (figure and table) and
predicted vs actual distributions for train and validation.
"""

from know_thyself.cli import step_command
from know_thyself.config import EvaluateConfig
from know_thyself.steps.evaluate_judgment import run_evaluate_judgment

main = step_command(__doc__, EvaluateConfig, lambda cfg: {"evaluate_judgment": run_evaluate_judgment(cfg).run_id})

if __name__ == "__main__":
    main()
