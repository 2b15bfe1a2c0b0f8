"""One typed, validated configuration per pipeline step, and the one home of every default.

* :mod:`~know_thyself.config.base`: :class:`StepConfig` (conversion, unknown-key rejection,
  parameter export, help beside each field);
* :mod:`~know_thyself.config.choices`: the values options may take and the shared help texts;
* one module per part of the pipeline: :mod:`~know_thyself.config.collection`,
  :mod:`~know_thyself.config.judgment`, :mod:`~know_thyself.config.knowledge`,
  :mod:`~know_thyself.config.chains` (phase1, multiphase), :mod:`~know_thyself.config.registered`
  (evaluate_registered) and :mod:`~know_thyself.config.grid` (the sweep).

The dataclasses hold the measured defaults; MLproject is generated from them
(``python -m know_thyself.cli.mlproject``), so ``mlflow run . -e multiphase`` with no ``-P`` runs
what ``make run`` runs.
"""

from know_thyself.config.base import StepConfig, check_run_id
from know_thyself.config.chains import MultiphaseConfig, Phase1Config
from know_thyself.config.collection import CollectConfig, CollectOptions
from know_thyself.config.grid import SweepConfig
from know_thyself.config.judgment import EvaluateConfig, JudgmentDataConfig, TrainConfig, TrainingOptions
from know_thyself.config.knowledge import KnowledgeDataConfig, KnowledgeTrainConfig, TestKnowledgeConfig
from know_thyself.config.registered import EvaluateRegisteredConfig

# The config of each MLproject entry point (``main`` is multiphase under MLflow's default name).
ENTRY_POINT_CONFIGS: dict[str, type[StepConfig]] = {
    "collect": CollectConfig,
    "build_judgment_data": JudgmentDataConfig,
    "evaluate_judgment": EvaluateConfig,
    "train_judgment": TrainConfig,
    "phase1": Phase1Config,
    "build_knowledge_data": KnowledgeDataConfig,
    "train_knowledge": KnowledgeTrainConfig,
    "test_knowledge": TestKnowledgeConfig,
    "evaluate_registered": EvaluateRegisteredConfig,
    "multiphase": MultiphaseConfig,
    "main": MultiphaseConfig,
    "sweep": SweepConfig,
}

__all__ = [
    "ENTRY_POINT_CONFIGS", "CollectConfig", "CollectOptions", "EvaluateConfig", "EvaluateRegisteredConfig",
    "JudgmentDataConfig", "KnowledgeDataConfig", "KnowledgeTrainConfig", "MultiphaseConfig", "Phase1Config",
    "StepConfig", "SweepConfig", "TestKnowledgeConfig", "TrainConfig", "TrainingOptions", "check_run_id",
]
