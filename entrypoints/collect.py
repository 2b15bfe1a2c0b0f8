"""Sample answers to questions and label each question's ability.

Usage: mlflow run . -e collect -P num_samples=200 --env-manager local
   or: python entrypoints/collect.py --num_samples 200

Reads the dataset; writes responses.jsonl, per-split QA accuracy and ability distribution.
"""

import click

from know_thyself.cli import config_options, echo_ids, run_cli
from know_thyself.config import CollectConfig
from know_thyself.steps.collect import run_collect
from know_thyself.tracking import configure_tracking


@click.command(help=__doc__)
@config_options(CollectConfig)
@run_cli
def main(**options):
    cfg = CollectConfig.from_options(options)
    configure_tracking()
    echo_ids({"collect": run_collect(cfg).run_id})


if __name__ == "__main__":
    main()
