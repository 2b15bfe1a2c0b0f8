"""The whole pipeline on the tiny model: chaining, registry, summary, resume, kill-and-resume, loading."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest
from helpers import ROOT, SMALL_CHAIN


def _env(store: Path) -> dict:
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(var, None)
    return env


def _multiphase(store: Path, model: str, dataset: Path, *extra: str, **kwargs) -> subprocess.Popen:
    args = [sys.executable, str(ROOT / "entrypoints" / "multiphase.py"), "--model", model, "--dataset", str(dataset), *SMALL_CHAIN, *extra]
    return subprocess.Popen(args, cwd=store, env=_env(store), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def _ids(output: str) -> dict:
    return dict(re.findall(r"^([\w/]+): (\w+)$", output, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_model_dir):
    """One multiphase run on the tiny model, then the same command again."""
    store = tmp_path_factory.mktemp("store")
    dataset = tmp_path_factory.mktemp("data")
    from know_thyself.data.questions import write_jsonl

    records = [
        {"question_id": f"q{i}", "question": f"What is item number {i}?", "answer": {"value": f"item {i}", "aliases": [f"item {i}"]}}
        for i in range(16)
    ]
    write_jsonl(records[:10], dataset / "train.jsonl")
    write_jsonl(records[10:], dataset / "validation.jsonl")
    first = _multiphase(store, tiny_model_dir, dataset)
    out1, _ = first.communicate(timeout=900)
    assert first.returncode == 0, out1[-3000:]
    second = _multiphase(store, tiny_model_dir, dataset)
    out2, _ = second.communicate(timeout=900)
    assert second.returncode == 0, out2[-3000:]
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    mlflow.set_experiment("know-thyself")
    yield {"store": store, "dataset": dataset, "first": _ids(out1), "second": _ids(out2), "model": tiny_model_dir}
    mlflow.set_tracking_uri(None)


def test_every_phase_and_step_is_nested_under_the_parent(pipeline):
    ids = pipeline["first"]
    parent = ids["multiphase"]
    steps = [k for k in ids if "/" in k]
    assert {"phase1/collect", "phase1/train_judgment", "phase2/train_knowledge", "phase3/collect",
            "phase3/test_knowledge", "phase3/evaluate_judgment"} <= set(steps)
    for key in steps:
        run = mlflow.get_run(ids[key])
        assert run.info.status == "FINISHED", key
        # Every step and phase run says in one line what it did (its description in the UI).
        note = run.data.tags.get("mlflow.note.content", "")
        assert note and "\n" not in note, (key, note)
        phase_run = mlflow.get_run(run.data.tags["mlflow.parentRunId"])
        assert phase_run.data.tags["mlflow.note.content"].startswith(phase_run.info.run_name.replace("phase", "Phase "))
        assert phase_run.info.run_name == key.split("/")[0]
        assert phase_run.data.tags["mlflow.parentRunId"] == parent
    summary = mlflow.load_table("summary.json", run_ids=[parent])
    assert sorted(set(summary["phase"])) == ["phase1", "phase3"]
    assert set(summary["split"]) == {"train", "validation"}
    assert "phase3/validation/judge_exact_match" in mlflow.get_run(parent).data.metrics
    assert "phase1/validation/judge_balanced_accuracy" in mlflow.get_run(parent).data.metrics
    assert {"judge_balanced_accuracy", "judge_qwk", "judge_auroc", "judge_minus_majority_balanced_accuracy_low"} <= set(summary.columns)
    # The parent's description is the summary in markdown, with the headline numbers and intervals.
    note = mlflow.get_run(parent).data.tags["mlflow.note.content"]
    assert note.startswith("**judgment v2 (knowledge merged), validation:** judge balanced accuracy")
    validation = summary[(summary["phase"] == "phase3") & (summary["split"] == "validation")].iloc[0]
    assert f"{validation['judge_balanced_accuracy']:.2f} [{validation['judge_balanced_accuracy_low']:.2f}, " in note
    assert "| judgment v1 (base model) | train |" in note
    # The experiment opens in MLflow's model-training view.
    experiment = mlflow.get_experiment(mlflow.get_run(parent).info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent)}
    assert {"summary.png", "summary.json"} <= artifacts
    assert "first_token_auroc" in summary.columns and "| first-token AUROC |" in note


def test_phase3_holds_taught_questions_out_and_reports_both_judges_on_them(pipeline):
    from know_thyself.tracking import read_jsonl_artifact

    ids = pipeline["first"]
    held = read_jsonl_artifact(ids["phase3/build_judgment_data"], "judgment_data/heldout.jsonl")
    trained_on = read_jsonl_artifact(ids["phase3/build_judgment_data"], "judgment_data/train.jsonl")
    taught = {e["question_id"] for e in read_jsonl_artifact(ids["phase2/build_knowledge_data"], "knowledge_data/train.jsonl")}
    assert {h["taught"] for h in held} == {True, False}
    assert all(h["taught"] == (h["question_id"] in taught) for h in held)
    assert {e["question_id"] for e in trained_on}.isdisjoint(h["question_id"] for h in held)
    assert all(e["taught"] == (e["question_id"] in taught) for e in trained_on)  # what balance taught reads
    assert "judgment_data/heldout.jsonl" not in {
        a.path for a in mlflow.MlflowClient().list_artifacts(ids["phase1/build_judgment_data"], "judgment_data")}
    evaluation = mlflow.get_run(ids["phase3/evaluate_judgment"]).data.metrics
    assert evaluation["heldout/taught/questions"] == sum(h["taught"] for h in held)
    for who in ("judge", "baseline_judge"):
        assert 0.0 <= evaluation[f"heldout/{who}/predicted_can/taught"] <= 1.0
        assert 0.0 <= evaluation[f"heldout/{who}/auroc"] <= 1.0
    assert "heldout/judge_minus_baseline_judge/auroc" in evaluation  # paired with v1 unchanged, question by question
    # Judgment v2 continues judgment v1's adapter (v2_start v1, the default).
    assert mlflow.get_run(ids["phase3/train_judgment"]).data.params["init_adapter_run_id"] == ids["phase1/train_judgment"]
    # Judgment v1 applied unchanged to the merged model, on validation beside judgment v2 (Phase 3's labels).
    for metric in ("v1_unchanged/balanced_accuracy", "judge_minus_v1_unchanged/balanced_accuracy"):
        assert f"validation/{metric}" in evaluation and f"validation/{metric}_low" in evaluation
    summary = mlflow.load_table("summary.json", run_ids=[ids["multiphase"]])
    assert {"v1_unchanged_balanced_accuracy", "judge_minus_v1_unchanged_auroc_low",
            "heldout_judge_minus_baseline_auroc"} <= set(summary.columns)
    assert "where_known/train/first_token/auroc_taught" in evaluation
    assert "where_known/train/answer_logprob/auroc_taught" in evaluation
    note = mlflow.get_run(ids["multiphase"]).data.tags["mlflow.note.content"]
    assert "**Phase 3, held-out test.**" in note and "**Where the merged model shows what it was taught**" in note


def test_three_registered_models_with_tags_and_alias(pipeline):
    client = mlflow.MlflowClient()
    parent = pipeline["first"]["multiphase"]
    for name in ("judgment_v1", "knowledge_base", "judgment_v2"):
        version = client.get_model_version_by_alias(name, "current")
        assert version.tags["parent_run_id"] == parent
        assert version.tags["num_samples"] == "6" and version.tags["dataset"] == str(pipeline["dataset"])
    v2 = client.get_model_version_by_alias("judgment_v2", "current")
    kb = client.get_model_version_by_alias("knowledge_base", "current")
    assert v2.tags["base_model"] == f"models:/knowledge_base/{kb.version}"


def test_rerun_reuses_every_step_and_registers_nothing_new(pipeline):
    first, second = pipeline["first"], pipeline["second"]
    for key, run_id in first.items():
        if "/" in key or key in ("judgment_v1", "knowledge_base", "judgment_v2"):
            assert second[key] == run_id, (key, first, second)
    assert second["multiphase"] != first["multiphase"]
    client = mlflow.MlflowClient()
    for name in ("judgment_v1", "knowledge_base", "judgment_v2"):
        assert len(client.search_model_versions(f"name = '{name}'")) == 1


def test_knowledge_test_logs_before_and_after(pipeline):
    metrics = mlflow.get_run(pipeline["first"]["phase3/test_knowledge"]).data.metrics
    for when in ("before", "after"):
        for split in ("train", "validation"):
            for kind in ("trials", "greedy"):
                assert 0 <= metrics[f"{when}/{split}/qa_accuracy_{kind}"] <= 1
    assert "knowledge_before_after.png" in {a.path for a in mlflow.MlflowClient().list_artifacts(pipeline["first"]["phase3/test_knowledge"])}


LOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import mlflow
    import know_thyself
    judge = mlflow.pyfunc.load_model(sys.argv[1])
    frame = judge.predict(["What is item number 3?", "Who wrote Hamlet?"])
    helper = know_thyself.judge_questions(sys.argv[1], ["What is item number 3?"])
    print(json.dumps({"columns": list(frame.columns), "rows": len(frame), "ability": list(frame["ability"]),
                      "sums": [float(frame.iloc[i][["p_can", "p_uncertain", "p_cannot"]].sum()) for i in range(len(frame))],
                      "helper": helper["ability"].tolist()}))
    """
)


@pytest.mark.parametrize("name", ["judgment_v1", "judgment_v2"])
def test_registered_judge_loads_in_a_fresh_process_elsewhere(pipeline, name, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, f"models:/{name}@current"],
        cwd=elsewhere, env=_env(pipeline["store"]), capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["columns"] == ["question", "ability", "p_can", "p_uncertain", "p_cannot"]
    assert got["rows"] == 2 and set(got["ability"]) <= {"can", "uncertain", "cannot"}
    assert all(abs(s - 1) < 1e-4 for s in got["sums"])
    assert got["helper"] == got["ability"][:1]


def test_knowledge_base_loads_in_a_fresh_process(pipeline, tmp_path):
    script = textwrap.dedent(
        """
        import mlflow, sys
        from know_thyself.inference.models import load_model
        components = mlflow.transformers.load_model("models:/knowledge_base@current", return_type="components")
        model, tokenizer = load_model("models:/knowledge_base@current", dtype="float32")
        print(type(components["model"]).__name__, model.config.num_hidden_layers, tokenizer.chat_template is not None)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=_env(pipeline["store"]),
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-3:] == ["LlamaForCausalLM", "2", "True"]


def test_nothing_pickled_in_what_the_pipeline_logs(pipeline):
    pickles = [p for p in (pipeline["store"] / "mlruns").rglob("*") if p.suffix in (".pkl", ".pickle", ".bin", ".pt")]
    assert pickles == []


def test_killed_step_is_redone_and_finished_steps_are_not(pipeline, tmp_path):
    # A fresh store: run to completion of phase 1, then kill the pipeline during train_knowledge.
    store = tmp_path
    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    client.search_experiments()  # create the store's tables before the pipeline touches it
    process = _multiphase(store, pipeline["model"], pipeline["dataset"], "--knowledge_epochs", "150", "--max_steps", "-1", "--seed", "7",
                          start_new_session=True)
    killed = None
    deadline = time.time() + 600
    while time.time() < deadline and killed is None:
        time.sleep(0.2)
        try:
            runs = client.search_runs(["1"], "attributes.run_name = 'train_knowledge' and attributes.status = 'RUNNING'")
        except Exception:  # noqa: BLE001, S112 - the store may still be initialising: poll it again
            continue
        if runs:
            time.sleep(0.5)  # let it start training
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            killed = runs[0].info.run_id
    assert killed, "train_knowledge never started"
    assert client.get_run(killed).info.status == "RUNNING"  # what a SIGKILL leaves behind
    assert client.search_model_versions("name = 'knowledge_base'") == []
    finished_before = {r.info.run_name: r.info.run_id for r in client.search_runs(["1"], "attributes.status = 'FINISHED'")}
    rerun = _multiphase(store, pipeline["model"], pipeline["dataset"], "--knowledge_epochs", "150", "--max_steps", "-1", "--seed", "7", "--phase", "2")
    out, _ = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, out[-3000:]
    ids = _ids(out)
    # The killed runs no longer claim to be running: the second start closed them.
    assert client.get_run(killed).info.status == "KILLED"
    assert "ended without closing the run" in client.get_run(killed).data.tags["know_thyself.killed_reason"]
    assert client.search_runs(["1"], "attributes.status = 'RUNNING'") == []
    assert ids["phase1/collect"] == finished_before["collect"]
    assert ids["phase1/train_judgment"] == finished_before["train_judgment"]
    assert ids["phase2/train_knowledge"] != killed
    version = client.get_model_version_by_alias("knowledge_base", "current")
    assert version.run_id == ids["phase2/train_knowledge"]


def test_readme_loading_snippet_runs_as_written(pipeline):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Using a registered judge"):]
    snippet = section[section.index("```python") + len("```python"): section.index("```", section.index("```python") + 9)]
    env = _env(pipeline["store"])
    env.pop("MLFLOW_TRACKING_URI")  # the snippet sets it itself
    result = subprocess.run([sys.executable, "-c", snippet], cwd=pipeline["store"], env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "p_uncertain" in result.stdout and "Who wrote Hamlet?" in result.stdout
