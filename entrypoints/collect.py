"""Sample answers to questions and label each question's ability.

Usage: mlflow run . -e collect -P num_samples=200 --env-manager local
   or: python entrypoints/collect.py --num_samples 200

Reads the dataset; writes responses.jsonl, per-split QA accuracy and ability distribution.
"""

from know_thyself.cli import step_command
from know_thyself.config import CollectConfig
from know_thyself.steps.collect import run_collect

main = step_command(__doc__, CollectConfig, lambda cfg: {"collect": run_collect(cfg).run_id})

if __name__ == "__main__":
    main()
