"""Measure knowledge learning: QA accuracy before and after, trial-based and greedy, per split.

Usage: mlflow run . -e test_knowledge -P collect_before_run_id=<id>
       -P collect_after_run_id=<id> --env-manager local

Reads two collect runs of the same questions, one with the model before knowledge training and
one with the merged model after; writes before/after metrics and knowledge_before_after.png.
"""

import click

from know_thyself.cli import config_options, echo_ids, run_cli
from know_thyself.config import TestKnowledgeConfig
from know_thyself.steps.test_knowledge import run_test_knowledge
from know_thyself.tracking import configure_tracking


@click.command(help=__doc__)
@config_options(TestKnowledgeConfig)
@run_cli
def main(**options):
    cfg = TestKnowledgeConfig.from_options(options)
    configure_tracking()
    echo_ids({"test_knowledge": run_test_knowledge(cfg).run_id})


if __name__ == "__main__":
    main()
