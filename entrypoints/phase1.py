"""Phase 1 (judgment v1) under one parent run: collect -> build_judgment_data -> train_judgment
-> evaluate_judgment (the trained judge beside the bare model and the other baselines).
Finished steps with the same inputs are reused.

Usage: mlflow run . -e phase1 --env-manager local
   or: python entrypoints/phase1.py --num_samples 200 --test_samples 100

Writes one child run per step (see each step's --help) under the parent run "phase1".
"""

from know_thyself.cli import step_command
from know_thyself.config import Phase1Config
from know_thyself.steps.phase1 import run_phase1

main = step_command(__doc__, Phase1Config, run_phase1)

if __name__ == "__main__":
    main()
