"""Score a registered judge (or compare two) on a question set of your choice.

Usage: mlflow run . -e evaluate_registered -P model_uri=models:/judgment_v2@current -P dataset=my_questions.parquet --env-manager local

Reads the registered version(s) and, through them, the judge's base model and training runs;
collects ground-truth labels with that base on the questions (a collect run, reused when an
identical one exists); writes, per judge, a run linked to its model version with the metrics
and their 95% intervals, confusion matrices, reliability and risk-coverage figures,
comparison.json and predictions.jsonl, and tags on the version. Two judges also get
paired_comparison.json (each metric's difference with its 95% paired interval).
"""

from know_thyself.cli import step_command
from know_thyself.config import EvaluateRegisteredConfig
from know_thyself.steps.evaluate_registered import run_evaluate_registered

main = step_command(__doc__, EvaluateRegisteredConfig, run_evaluate_registered)

if __name__ == "__main__":
    main()
