"""LoRA-train the model to output its ability label (TRL SFTTrainer; loss on the label only).

Usage: mlflow run . -e train_judgment -P data_run_id=<build_judgment_data run id> --env-manager local

Reads judgment_data/train.jsonl of the data run; writes the LoRA adapter (adapter/) and the
training loss.
"""

import click

from know_thyself.cli import config_options, echo_ids, run_cli
from know_thyself.config import TrainConfig
from know_thyself.steps.train_judgment import run_train_judgment
from know_thyself.tracking import configure_tracking


@click.command(help=__doc__)
@config_options(TrainConfig)
@run_cli
def main(**options):
    cfg = TrainConfig.from_options(options)
    configure_tracking()
    echo_ids({"train_judgment": run_train_judgment(cfg).run_id})


if __name__ == "__main__":
    main()
