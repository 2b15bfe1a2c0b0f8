"""`accelerate launch --cpu --num_processes 2`: data-parallel training logs once, into the right run."""

import os
import re
import subprocess
import sys

import mlflow
from helpers import ROOT, fake_collect_run

from know_thyself.config import JudgmentDataConfig, KnowledgeDataConfig
from know_thyself.steps.build_judgment_data import run_build_judgment_data
from know_thyself.steps.build_knowledge_data import run_build_knowledge_data
from know_thyself.tracking import TAG_STEP


def _collect_run() -> str:
    rows = [
        {"split": split, "question_id": f"{split}{i}", "question": f"What is item {i}?", "answer": f"item {i}",
         "aliases": [f"item {i}"], "ability": ["can", "uncertain", "cannot"][i % 3],
         "correct": [[True, True], [True, False], [False, False]][i % 3], "greedy_correct": i % 3 != 2}
        for split, n in (("train", 8), ("validation", 4))
        for i in range(n)
    ]
    return fake_collect_run(rows)


def _launch(entrypoint: str, *args: str) -> str:
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               str(ROOT / "entrypoints" / entrypoint), *args]
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID",)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def _logged_models(run_id: str) -> list[str]:
    return sorted(m.name for m in mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'", output_format="list"))


def _single_finished_run(step: str) -> str:
    runs = mlflow.search_runs(filter_string=f"tags.`{TAG_STEP}` = '{step}'", output_format="list")
    assert len(runs) == 1, f"{len(runs)} {step} runs"  # one run, not one per process
    assert runs[0].info.status == "FINISHED"
    return runs[0].info.run_id


def test_two_process_judgment_training(tracking, tiny_model_dir):
    data_id = run_build_judgment_data(JudgmentDataConfig(collect_run_id=_collect_run())).run_id
    out = _launch("train_judgment.py", "--model", tiny_model_dir, "--data_run_id", data_id,
                  "--max_steps", "3", "--batch_size", "2", "--learning_rate", "0.01")
    run_id = _single_finished_run("train_judgment")
    assert re.findall(r"train_judgment: (\w+)", out) == [run_id]  # printed once, by the main process
    client = mlflow.MlflowClient()
    history = client.get_metric_history(run_id, "train/loss")
    assert len(history) == len({m.step for m in history}) >= 1  # each step logged once
    assert "adapter" in {a.path for a in client.list_artifacts(run_id)}
    assert _logged_models(run_id) == ["judge"]  # MLflow 3 keeps logged models beside the run's artifacts
    assert {a.path for a in client.list_artifacts(run_id, "adapter")} >= {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"}


def test_two_process_knowledge_training(tracking, tiny_model_dir):
    data_id = run_build_knowledge_data(KnowledgeDataConfig(collect_run_id=_collect_run(), targets="reference")).run_id
    _launch("train_knowledge.py", "--model", tiny_model_dir, "--data_run_id", data_id, "--max_steps", "2", "--batch_size", "2")
    run_id = _single_finished_run("train_knowledge")
    assert "adapter" in {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert _logged_models(run_id) == ["model"]
    components = mlflow.transformers.load_model(f"runs:/{run_id}/model", return_type="components")
    assert components["model"].config.num_hidden_layers == 2
