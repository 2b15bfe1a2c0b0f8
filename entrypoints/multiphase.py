"""The whole pipeline under one parent run: Phase 1 (judgment v1), Phase 2 (knowledge, merged
into the base) and Phase 3 (judgment v2 on the merged base). Finished steps with the same
inputs are reused, so rerunning the command resumes it.

Usage: mlflow run . -e multiphase --env-manager local
   or: python entrypoints/multiphase.py --phase 2

Registers judgment_v1, knowledge_base and judgment_v2 (alias "current"); writes summary.json
and summary.png on the parent run.
"""

from know_thyself.cli import step_command
from know_thyself.config import MultiphaseConfig
from know_thyself.steps.multiphase import run_multiphase

main = step_command(__doc__, MultiphaseConfig, run_multiphase)

if __name__ == "__main__":
    main()
