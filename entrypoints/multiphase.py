"""The whole pipeline under one parent run: Phase 1 (judgment v1), Phase 2 (knowledge, merged
into the base) and Phase 3 (judgment v2 on the merged base). Finished steps with the same
inputs are reused, so rerunning the command resumes it.

Usage: mlflow run . -e multiphase --env-manager local
   or: python entrypoints/multiphase.py --phase 2

Registers judgment_v1, knowledge_base and judgment_v2 (alias "current"); writes summary.json
and summary.png on the parent run.
"""

import click

from know_thyself.cli import config_options, echo_ids, run_cli
from know_thyself.config import MultiphaseConfig
from know_thyself.steps.multiphase import run_multiphase
from know_thyself.tracking import configure_tracking


@click.command(help=__doc__)
@config_options(MultiphaseConfig)
@run_cli
def main(**options):
    cfg = MultiphaseConfig.from_options(options)
    configure_tracking()
    echo_ids(run_multiphase(cfg))


if __name__ == "__main__":
    main()
