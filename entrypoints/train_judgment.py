"""LoRA-train the model to output its ability label (TRL SFTTrainer; loss on the label only).

Usage: mlflow run . -e train_judgment -P data_run_id=<build_judgment_data run id> --env-manager local

Reads judgment_data/train.jsonl of the data run; writes the LoRA adapter (adapter/) and the
training loss.
"""

from know_thyself.cli import step_command
from know_thyself.config import TrainConfig
from know_thyself.steps.train_judgment import run_train_judgment

main = step_command(__doc__, TrainConfig, lambda cfg: {"train_judgment": run_train_judgment(cfg).run_id})

if __name__ == "__main__":
    main()
