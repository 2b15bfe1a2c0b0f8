"""Turn a collect run's ability labels into chat-format SFT examples (question -> one label word).

Usage: mlflow run . -e build_judgment_data -P collect_run_id=<run id> --env-manager local

Reads responses.jsonl of the collect run; writes judgment_data/{train,validation}.jsonl and the
label counts.
"""

import click

from know_thyself.cli import config_options, echo_ids, run_cli
from know_thyself.config import JudgmentDataConfig
from know_thyself.steps.build_judgment_data import run_build_judgment_data
from know_thyself.tracking import configure_tracking


@click.command(help=__doc__)
@config_options(JudgmentDataConfig)
@run_cli
def main(**options):
    cfg = JudgmentDataConfig.from_options(options)
    configure_tracking()
    echo_ids({"build_judgment_data": run_build_judgment_data(cfg).run_id})


if __name__ == "__main__":
    main()
