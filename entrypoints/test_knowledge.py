"""Measure knowledge learning: QA accuracy before and after, trial-based and greedy, per split.

Usage: mlflow run . -e test_knowledge -P collect_before_run_id=<id>
       -P collect_after_run_id=<id> --env-manager local

Reads two collect runs of the same questions, one with the model before knowledge training and
one with the merged model after; writes before/after metrics and knowledge_before_after.png.
"""

from know_thyself.cli import step_command
from know_thyself.config import TestKnowledgeConfig
from know_thyself.steps.test_knowledge import run_test_knowledge

main = step_command(__doc__, TestKnowledgeConfig, lambda cfg: {"test_knowledge": run_test_knowledge(cfg).run_id})

if __name__ == "__main__":
    main()
