"""LoRA-train the model on QA pairs (TRL SFTTrainer), then merge the adapter into the base.

Usage: mlflow run . -e train_knowledge -P data_run_id=<build_knowledge_data run id> --env-manager local

Reads knowledge_data/train.jsonl of the data run; writes the knowledge adapter (adapter/) and
the merged model as an MLflow transformers model (model/), which multiphase registers as
knowledge_base.
"""

import click

from know_thyself.cli import config_options, echo_ids, run_cli
from know_thyself.config import KnowledgeTrainConfig
from know_thyself.steps.train_knowledge import run_train_knowledge
from know_thyself.tracking import configure_tracking


@click.command(help=__doc__)
@config_options(KnowledgeTrainConfig)
@run_cli
def main(**options):
    cfg = KnowledgeTrainConfig.from_options(options)
    configure_tracking()
    echo_ids({"train_knowledge": run_train_knowledge(cfg).run_id})


if __name__ == "__main__":
    main()
