"""Sweep judgment training settings on a dev split carved from a collect run's train questions.

Usage: mlflow run . -e sweep -P collect_run_id=<collect run id> -P learning_rate=3e-4,1e-3 -P epochs=1,2 --env-manager local

Reads responses.jsonl of the collect run, train split only (validation is never read); holds out
dev_fraction of it as a label-stratified dev split and, for every combination of the
comma-separated grid options, trains a judge on the rest and scores it on dev. Writes one child
run per grid point (its settings as parameters, dev metrics as dev/<method>/<metric>, its
adapter/), and on the parent run sweep_grid.json and the tag best_run_id (the best child is
tagged best=true).
"""

from know_thyself.cli import step_command
from know_thyself.config import SweepConfig
from know_thyself.steps.sweep import run_sweep

main = step_command(__doc__, SweepConfig, run_sweep)

if __name__ == "__main__":
    main()
