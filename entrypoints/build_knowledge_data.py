"""Turn a collect run's train questions into QA SFT examples (answer prompt -> reference answer).

Usage: mlflow run . -e build_knowledge_data -P collect_run_id=<run id> --env-manager local

Reads responses.jsonl of the collect run; writes knowledge_data/train.jsonl.
"""

from know_thyself.cli import step_command
from know_thyself.config import KnowledgeDataConfig
from know_thyself.steps.build_knowledge_data import run_build_knowledge_data

main = step_command(__doc__, KnowledgeDataConfig, lambda cfg: {"build_knowledge_data": run_build_knowledge_data(cfg).run_id})

if __name__ == "__main__":
    main()
