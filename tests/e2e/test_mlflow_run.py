"""Every MLproject entry point through `mlflow run . --env-manager local`, as a user starts it.

One module-scoped chain on the tiny model: each entry point gets only its required parameters
(plus the tiny model, a small dataset and small sizes where the defaults would take minutes),
and the upstream run ids come from the runs made earlier in the chain. Also: a parameter value
holding quotes, a semicolon and ``$(...)`` reaches the command as one literal argument.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from helpers import ROOT

SMALL_COLLECT = {"num_samples": 6, "test_samples": 4, "num_trials": 2, "max_new_tokens": 4, "inference_batch_size": 4}
SMALL_TRAIN = {"max_steps": 1, "batch_size": 2}


class MlflowRun:
    """Runs entry points with `mlflow run` in one temporary store and keeps what they printed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.store = f"sqlite:///{folder / 'mlflow.db'}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        self.env["MLFLOW_TRACKING_URI"] = self.store
        # `mlflow run` starts `python entrypoints/...`: this environment's python first on PATH.
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.done: set[str] = set()

    def __call__(self, entry: str, **params) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", entry, "--env-manager", "local",
                   "--experiment-name", "entry-points"]
        for key, value in params.items():
            command += ["-P", f"{key}={value}"]
        result = subprocess.run(command, cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=900,
                                check=False)
        self.done.add(entry)
        return result

    def ok(self, entry: str, **params) -> dict[str, str]:
        """Run an entry point that must succeed; return the ``step: run_id`` lines it printed."""
        result = self(entry, **params)
        assert result.returncode == 0, f"{entry} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return dict(re.findall(r"^([\w/]+): ([0-9a-f]{32})$", result.stdout, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def chain(tmp_path_factory, tiny_model_dir):
    """collect -> build_judgment_data -> evaluate (bare) -> train -> evaluate (adapter) -> knowledge steps."""
    folder = tmp_path_factory.mktemp("mlflow-run")
    dataset = folder / "trivia"
    dataset.mkdir()
    from know_thyself.data.questions import write_jsonl

    records = [
        {"question_id": f"q{i}", "question": f"What is {i} plus {i}?", "answer": {"value": str(2 * i), "aliases": [str(2 * i)]}}
        for i in range(12)
    ]
    write_jsonl(records[:8], dataset / "train.jsonl")
    write_jsonl(records[8:], dataset / "validation.jsonl")
    run = MlflowRun(folder)
    ids: dict[str, str] = {}
    ids.update(run.ok("collect", model=tiny_model_dir, dataset=dataset, **SMALL_COLLECT))
    ids.update(run.ok("build_judgment_data", collect_run_id=ids["collect"]))
    # No adapter: the optional parameter's empty default must reach the command intact.
    ids["evaluate_bare"] = run.ok("evaluate_judgment", model=tiny_model_dir, collect_run_id=ids["collect"])["evaluate_judgment"]
    ids.update(run.ok("train_judgment", model=tiny_model_dir, data_run_id=ids["build_judgment_data"], **SMALL_TRAIN))
    ids["evaluate_adapter"] = run.ok(
        "evaluate_judgment", model=tiny_model_dir, collect_run_id=ids["collect"], adapter_run_id=ids["train_judgment"]
    )["evaluate_judgment"]
    # A two-point grid on a dev split of half the 6 train questions; lists pass as one -P value.
    ids.update(run.ok("sweep", model=tiny_model_dir, collect_run_id=ids["collect"], dev_fraction=0.5,
                      learning_rate="1e-3,3e-3", epochs=1, **SMALL_TRAIN))
    ids.update(run.ok("build_knowledge_data", collect_run_id=ids["collect"]))
    ids.update(run.ok("train_knowledge", model=tiny_model_dir, data_run_id=ids["build_knowledge_data"], **SMALL_TRAIN))
    # A second model (a copy of the tiny one) collected on the same questions, for test_knowledge.
    other = folder / "tiny-copy"
    shutil.copytree(tiny_model_dir, other)
    ids["collect_after"] = run.ok("collect", model=other, dataset=dataset, **SMALL_COLLECT)["collect"]
    ids.update(run.ok("test_knowledge", collect_before_run_id=ids["collect"], collect_after_run_id=ids["collect_after"]))
    chain_params = {"model": tiny_model_dir, "dataset": dataset, **SMALL_COLLECT, **SMALL_TRAIN}
    ids["phase1"] = run.ok("phase1", **chain_params)["phase1"]
    ids["multiphase"] = run.ok("multiphase", **chain_params)["multiphase"]
    ids["main"] = run.ok("main", **chain_params)["multiphase"]
    # The judge multiphase registered, scored on one file of questions.
    ids["evaluate_registered"] = run.ok(
        "evaluate_registered", model_uri="models:/judgment_v2@current", dataset=dataset / "validation.jsonl"
    )["evaluate_registered"]
    return run, ids


def test_every_entry_point_runs_through_mlflow_run(chain):
    run, ids = chain
    declared = set(yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"])
    assert declared == run.done, f"entry points not run through mlflow run: {sorted(declared - run.done)}"
    client = mlflow.MlflowClient(run.store)
    for name, run_id in ids.items():
        assert client.get_run(run_id).info.status == "FINISHED", name
    bare = client.get_run(ids["evaluate_bare"])
    # `mlflow run` logs the value as it quoted it for the shell: the empty string as ''.
    assert bare.data.params["adapter_run_id"] in ("", "''")
    assert 0.0 <= bare.data.metrics["validation/judge/exact_match"] <= 1.0
    assert "validation/prompt_only/exact_match" not in bare.data.metrics  # no adapter was loaded
    assert client.get_run(ids["evaluate_adapter"]).data.params["adapter_run_id"] == ids["train_judgment"]
    sweep = client.get_run(ids["sweep"])
    assert sweep.data.params["learning_rate"] == "1e-3,3e-3"
    assert sweep.data.tags["best_run_id"] == ids["best"]
    # `main` is multiphase under another name: the same parameters reuse every finished step.
    assert client.get_run(ids["main"]).data.params == client.get_run(ids["multiphase"]).data.params
    downstream = client.get_run(ids["evaluate_registered"])
    note = downstream.data.tags["mlflow.note.content"]
    assert note.startswith("judgment_v2/")
    if "every question has one label" in note:  # the tiny model's usual ground truth: all `cannot`
        assert "balanced accuracy undefined" in note
        assert "validation/judge/balanced_accuracy" not in downstream.data.metrics
    else:
        assert "validation/judge/balanced_accuracy" in downstream.data.metrics


@pytest.mark.parametrize("parameter", ["adapter_run_id", "collect_run_id", "model"])
def test_parameter_values_reach_the_command_as_one_literal_argument(chain, tmp_path, parameter):
    run, ids = chain
    marker = tmp_path / "pwned"
    hostile = f'x" ; touch {marker} ; echo "$(touch {marker})\' ; touch {marker} ; \''
    params = {"collect_run_id": ids["collect"], parameter: hostile}
    result = run("evaluate_judgment", **params)
    assert result.returncode != 0
    assert not marker.exists(), "a parameter value was executed by the shell"
    # The whole value arrived as one argument and was refused by name, in the run mlflow run opened.
    assert parameter in result.stderr + result.stdout
    client = mlflow.MlflowClient(run.store)
    failed = [r for r in client.search_runs([client.get_experiment_by_name("entry-points").experiment_id])
              if r.info.status == "FAILED" and str(marker) in r.data.tags.get("mlflow.note.content", "")]
    assert failed and parameter in failed[0].data.tags["mlflow.note.content"]
