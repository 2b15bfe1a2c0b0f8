"""Turn a collect run's train questions into QA SFT examples (answer prompt -> reference answer).

Usage: mlflow run . -e build_knowledge_data -P collect_run_id=<run id> --env-manager local

Reads responses.jsonl of the collect run; writes knowledge_data/train.jsonl.
"""

import click

from know_thyself.cli import config_options, echo_ids, run_cli
from know_thyself.config import KnowledgeDataConfig
from know_thyself.steps.build_knowledge_data import run_build_knowledge_data
from know_thyself.tracking import configure_tracking


@click.command(help=__doc__)
@config_options(KnowledgeDataConfig)
@run_cli
def main(**options):
    cfg = KnowledgeDataConfig.from_options(options)
    configure_tracking()
    echo_ids({"build_knowledge_data": run_build_knowledge_data(cfg).run_id})


if __name__ == "__main__":
    main()
