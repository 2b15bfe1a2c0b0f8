"""LoRA-train the model on QA pairs (TRL SFTTrainer), then merge the adapter into the base.

Usage: mlflow run . -e train_knowledge -P data_run_id=<build_knowledge_data run id> --env-manager local

Reads knowledge_data/train.jsonl of the data run; writes the knowledge adapter (adapter/) and
the merged model as an MLflow transformers model (model/), which multiphase registers as
knowledge_base.
"""

from know_thyself.cli import step_command
from know_thyself.config import KnowledgeTrainConfig
from know_thyself.steps.train_knowledge import run_train_knowledge

main = step_command(__doc__, KnowledgeTrainConfig, lambda cfg: {"train_knowledge": run_train_knowledge(cfg).run_id})

if __name__ == "__main__":
    main()
