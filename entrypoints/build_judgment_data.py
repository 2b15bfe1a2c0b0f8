"""Turn a collect run's ability labels into chat-format SFT examples (question -> one label word).

Usage: mlflow run . -e build_judgment_data -P collect_run_id=<run id> --env-manager local

Reads responses.jsonl of the collect run; writes judgment_data/{train,validation}.jsonl and the
label counts.
"""

from know_thyself.cli import step_command
from know_thyself.config import JudgmentDataConfig
from know_thyself.steps.build_judgment_data import run_build_judgment_data

main = step_command(__doc__, JudgmentDataConfig, lambda cfg: {"build_judgment_data": run_build_judgment_data(cfg).run_id})

if __name__ == "__main__":
    main()
