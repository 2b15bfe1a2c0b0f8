"""A registered judge scored on the user's own questions: by alias, on one Parquet file in the Hub's
nested schema and on one flat JSONL file; two versions compared; bad model URIs refused before any run."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import command

from know_thyself.config import CollectConfig, EvaluateRegisteredConfig, JudgmentDataConfig, TrainConfig
from know_thyself.data.questions import write_jsonl
from know_thyself.steps.build_judgment_data import run_build_judgment_data
from know_thyself.steps.collect import run_collect
from know_thyself.steps.train_judgment import run_train_judgment
from know_thyself.tracking import TAG_NOTE, TAG_STEP, configure_tracking, read_jsonl_artifact
from know_thyself.tracking.registry import JUDGE_ARTIFACT, register

CAPITALS = [
    ("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"), ("Egypt", "Cairo"),
    ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Norway", "Oslo"), ("Chile", "Santiago"), ("Cuba", "Havana"),
    ("Greece", "Athens"), ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Ireland", "Dublin"),
    ("Portugal", "Lisbon"), ("Hungary", "Budapest"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"),
]


def _record(i: int, country: str, city: str) -> dict:
    return {"question_id": f"cap-{i}", "question": f"What is the capital of {country}?",
            "answer": {"value": city, "aliases": [city, city.upper()]}}


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_model_dir):
    """A store with judgment_v1 versions 1 and 2 (alias current on 2) and a knowledge_base version."""
    folder = tmp_path_factory.mktemp("registered")
    patch = pytest.MonkeyPatch()
    patch.chdir(folder)
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        patch.delenv(var, raising=False)
    patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
    configure_tracking()
    records = [_record(i, *pair) for i, pair in enumerate(CAPITALS)]
    training = folder / "training"
    write_jsonl(records[:10], training / "train.jsonl")
    write_jsonl(records[10:14], training / "validation.jsonl")
    collect = run_collect(CollectConfig(model=tiny_model_dir, dataset=str(training), num_samples=10, test_samples=4,
                                        num_trials=2, max_new_tokens=4, inference_batch_size=8)).run_id
    data_run = run_build_judgment_data(JudgmentDataConfig(collect_run_id=collect)).run_id
    for seed in (1, 2):
        trained = run_train_judgment(TrainConfig(model=tiny_model_dir, data_run_id=data_run, max_steps=1,
                                                 batch_size=2, seed=seed)).run_id
        register(trained, JUDGE_ARTIFACT, "judgment_v1", {"base_model": tiny_model_dir, "dataset": str(training)})
    with mlflow.start_run(run_name="train_knowledge", tags={TAG_STEP: "train_knowledge"}) as knowledge:
        mlflow.log_text("a merged model would be here", "model/README.txt")
    client = mlflow.MlflowClient()
    client.create_registered_model("knowledge_base")
    client.create_model_version("knowledge_base", f"runs:/{knowledge.info.run_id}/model", run_id=knowledge.info.run_id)

    # The user's own questions: 8 in a Parquet file in the Hub's nested schema (with its extra
    # columns), 6 in a JSONL file in the flat schema; the first two repeat training questions.
    own = [records[0], records[1]] + [_record(100 + i, *pair) for i, pair in enumerate(CAPITALS[12:])]
    hub = pd.DataFrame([{**r, "question_source": "https://example.org", "entity_pages": {"title": []},
                         "answer": {**r["answer"], "normalized_aliases": [a.lower() for a in r["answer"]["aliases"]],
                                    "matched_wiki_entity_name": "", "type": "WikipediaEntity"}} for r in own])
    hub.to_parquet(folder / "questions.parquet")
    flat = [{"question_id": r["question_id"], "question": r["question"], "answer.value": r["answer"]["value"],
             "answer.aliases": r["answer"]["aliases"]} for r in own[:6]]
    (folder / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flat))
    yield {"folder": folder, "model": tiny_model_dir, "training_collect": collect}
    while mlflow.active_run() is not None:
        mlflow.end_run()
    patch.undo()
    mlflow.set_tracking_uri(None)


def _invoke(*args: str):
    result = CliRunner().invoke(command("evaluate_registered"), list(args))
    ids = dict(re.findall(r"^([\w/]+): ([0-9a-f]{32})$", result.stdout, flags=re.MULTILINE))
    return result, ids


def test_alias_on_a_parquet_file_in_the_hub_schema(store):
    result, ids = _invoke("--model_uri", "models:/judgment_v1@current", "--dataset", str(store["folder"] / "questions.parquet"))
    assert result.exit_code == 0, result.output
    client = mlflow.MlflowClient()
    # Ground truth: the judge's own base, validation questions only, sampled as in its training.
    collected = client.get_run(ids["judgment_v1/2/collect"])
    assert collected.data.params["model"] == store["model"]
    assert (collected.data.params["num_samples"], collected.data.params["test_samples"]) == ("0", "8")
    assert collected.data.params["num_trials"] == "2" and collected.data.params["max_new_tokens"] == "4"
    assert collected.data.metrics["validation/questions"] == 8 and "train/questions" not in collected.data.metrics
    evaluation = client.get_run(ids["judgment_v1/2/evaluation"])
    metrics = evaluation.data.metrics
    predictions = [json.loads(line) for line in Path(mlflow.artifacts.download_artifacts(
        run_id=evaluation.info.run_id, artifact_path="predictions.jsonl")).read_text().splitlines()]
    assert len(predictions) == 8 and {p["split"] for p in predictions} == {"validation"}
    assert metrics["validation/judge/exact_match"] == pytest.approx(sum(p["actual"] == p["predicted"] for p in predictions) / 8)
    assert metrics["validation/judge/balanced_accuracy_low"] <= metrics["validation/judge/balanced_accuracy"] <= metrics["validation/judge/balanced_accuracy_high"]
    assert metrics["validation/overlap_with_judge_training"] == pytest.approx(2 / 8)
    # The baselines were fitted on the judge's training questions: the rates match its collect run's train split.
    train_rows = [json.loads(line) for line in Path(mlflow.artifacts.download_artifacts(
        run_id=store["training_collect"], artifact_path="responses.jsonl")).read_text().splitlines()]
    cannot = [r for r in train_rows if r["split"] == "train" and r["ability"] == "cannot"]
    if cannot:
        assert metrics["train/correct_rate/cannot"] == pytest.approx(sum(r["greedy_correct"] for r in cannot) / len(cannot))
    artifacts = {a.path for a in client.list_artifacts(evaluation.info.run_id)}
    assert {"comparison.json", "confusion_validation.png", "reliability_validation.png", "predictions.jsonl"} <= artifacts
    # Linked both ways: tags on the run and on the version, and the version's logged model holds the headline.
    assert evaluation.data.tags["know_thyself.registered_model"] == "judgment_v1"
    assert evaluation.data.tags["know_thyself.model_version"] == "2"
    version = client.get_model_version("judgment_v1", "2")
    assert version.tags["downstream.last_run_id"] == evaluation.info.run_id
    model_id = next(m.model_id for m in mlflow.search_logged_models(
        experiment_ids=[evaluation.info.experiment_id], output_format="list") if m.source_run_id == version.run_id)
    linked = {m.key: m for m in mlflow.get_logged_model(model_id).metrics}
    actual = {p["actual"] for p in predictions}
    if len(actual) == 1:
        # Every question has one label (the tiny model answers none right): balanced accuracy and QWK
        # measure nothing, so the version says so instead of a constant interval such as [1.00, 1.00].
        assert metrics["validation/judge/balanced_accuracy_low"] == metrics["validation/judge/balanced_accuracy_high"]
        tag = version.tags["downstream.questions.parquet"]
        assert tag.startswith("balanced accuracy undefined, QWK undefined, AUROC ") and "[1.00, 1.00]" not in tag
        assert tag.endswith(f" (every question has one label, {actual.pop()!r}) on 8 questions (run {evaluation.info.run_id})")
        assert not {"validation/judge/balanced_accuracy", "validation/judge/balanced_accuracy_low",
                    "validation/judge/qwk"} & set(linked)
        assert "validation/judge/balanced_accuracy" not in client.get_run(ids["evaluate_registered"]).data.metrics
    else:
        assert version.tags["downstream.questions.parquet"].startswith(
            f"balanced accuracy {metrics['validation/judge/balanced_accuracy']:.2f} [")
        assert linked["validation/judge/balanced_accuracy"].value == metrics["validation/judge/balanced_accuracy"]
        assert linked["validation/judge/balanced_accuracy"].dataset_name == "questions.parquet"
    assert "evaluate_registered" in ids, result.output
    parent = client.get_run(ids["evaluate_registered"])
    assert parent.data.tags[TAG_NOTE].startswith("judgment_v1/2 on 8 questions (questions.parquet): balanced accuracy")
    assert "balanced accuracy" in result.output and "judgment_v1/2 on 8 questions" in result.output


def test_flat_jsonl_file_a_sample_of_it_and_a_rerun_that_reuses(store):
    args = ("--model_uri", "models:/judgment_v1/1", "--dataset", str(store["folder"] / "questions.jsonl"), "--num_questions", "5")
    first, ids = _invoke(*args)
    assert first.exit_code == 0, first.output
    client = mlflow.MlflowClient()
    assert client.get_run(ids["judgment_v1/1/collect"]).data.metrics["validation/questions"] == 5
    metrics = client.get_run(ids["judgment_v1/1/evaluation"]).data.metrics
    low, value, high = (metrics[f"validation/judge/balanced_accuracy{s}"] for s in ("_low", "", "_high"))
    assert 0.0 <= low <= value <= high <= 1.0
    assert client.get_model_version("judgment_v1", "1").tags["downstream.last_run_id"] == ids["judgment_v1/1/evaluation"]
    again, again_ids = _invoke(*args)
    assert again.exit_code == 0, again.output
    assert again_ids["judgment_v1/1/collect"] == ids["judgment_v1/1/collect"]
    assert again_ids["judgment_v1/1/evaluation"] == ids["judgment_v1/1/evaluation"]
    assert again_ids["evaluate_registered"] != ids["evaluate_registered"]


def test_two_versions_compared_on_the_same_questions(store):
    result, ids = _invoke("--model_uri", "models:/judgment_v1/1, models:/judgment_v1/2",
                          "--dataset", str(store["folder"] / "questions.jsonl"))
    assert result.exit_code == 0, result.output
    assert ids["judgment_v1/1/collect"] == ids["judgment_v1/2/collect"]  # one base: one ground truth
    client = mlflow.MlflowClient()
    first = client.get_run(ids["judgment_v1/1/evaluation"]).data.metrics
    second = client.get_run(ids["judgment_v1/2/evaluation"]).data.metrics
    parent = client.get_run(ids["evaluate_registered"])
    # QWK is undefined when a judge gives every question one label (the tiny judges may): compared where defined.
    compared = [m for m in ("balanced_accuracy", "qwk", "exact_match")
                if f"validation/judge/{m}" in first and f"validation/judge/{m}" in second]
    assert {"balanced_accuracy", "exact_match"} <= set(compared)
    for metric in compared:
        difference = parent.data.metrics[f"validation/first_minus_second/{metric}"]
        assert difference == pytest.approx(first[f"validation/judge/{metric}"] - second[f"validation/judge/{metric}"])
        assert parent.data.metrics[f"validation/first_minus_second/{metric}_low"] <= difference
    table = mlflow.load_table("paired_comparison.json", run_ids=[parent.info.run_id])
    assert list(table["metric"]) == ["balanced_accuracy", "qwk", "auroc", "exact_match"]
    assert "judgment_v1/1 - judgment_v1/2" in table.columns
    assert "| balanced accuracy |" in parent.data.tags[TAG_NOTE] and "judgment_v1/1 vs judgment_v1/2" in result.output


def test_an_edited_question_file_is_collected_and_scored_again(store):
    """Not the old headline re-tagged onto the version: the edited questions are answered and judged."""
    edited = store["folder"] / "edited.jsonl"
    shutil.copyfile(store["folder"] / "questions.jsonl", edited)
    args = ("--model_uri", "models:/judgment_v1/1", "--dataset", str(edited))
    first, ids = _invoke(*args)
    assert first.exit_code == 0, first.output
    rows = [json.loads(line) for line in edited.read_text().splitlines()]
    rows[0]["question"] = "Which city is the capital of the edited country?"
    edited.write_text("".join(json.dumps(r) + "\n" for r in rows))
    second, again = _invoke(*args)
    assert second.exit_code == 0, second.output
    assert again["judgment_v1/1/collect"] != ids["judgment_v1/1/collect"]
    assert again["judgment_v1/1/evaluation"] != ids["judgment_v1/1/evaluation"]
    questions = {r["question"] for r in read_jsonl_artifact(again["judgment_v1/1/collect"], "responses.jsonl")}
    assert "Which city is the capital of the edited country?" in questions
    version = mlflow.MlflowClient().get_model_version("judgment_v1", "1")
    assert version.tags["downstream.last_run_id"] == again["judgment_v1/1/evaluation"]


def test_a_tiny_evaluation_warns_and_leaves_the_version_untagged(store):
    tiny = store["folder"] / "two.jsonl"
    lines = (store["folder"] / "questions.jsonl").read_text().splitlines()[:2]
    tiny.write_text("\n".join(lines) + "\n")
    client = mlflow.MlflowClient()
    before = client.get_model_version("judgment_v1", "2").tags
    result, ids = _invoke("--model_uri", "models:/judgment_v1/2", "--dataset", str(tiny))
    assert result.exit_code == 0, result.output
    assert "2 questions are too few for meaningful intervals, so judgment_v1/2 was not tagged" in result.output
    assert client.get_model_version("judgment_v1", "2").tags == before
    assert "downstream.two.jsonl" not in before
    assert client.get_run(ids["judgment_v1/2/evaluation"]).info.status == "FINISHED"  # the run keeps its numbers


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/judgment_v1/99", "'models:/judgment_v1/99' is not registered in"),
        ("models:/judgment_v2@current", "is not registered in"),
        ("models:/knowledge_base/1", "is knowledge_base version 1 (the knowledge-merged base model, not a judge)"),
        ("judgment_v1", "model_uri 'judgment_v1' is not a registry URI"),
        ("models:/judgment_v1/1,models:/judgment_v1/1", "names 'models:/judgment_v1/1' twice"),
    ],
)
def test_bad_model_uri_is_one_clear_line_and_leaves_no_run(store, uri, expected):
    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    before = len(client.search_runs(experiments))
    result, _ = _invoke("--model_uri", uri, "--dataset", str(store["folder"] / "questions.jsonl"))
    assert result.exit_code != 0
    assert expected in result.output and result.output.strip().count("\n") == 0, result.output
    assert len(client.search_runs(experiments)) == before
    assert client.search_runs(experiments, "attributes.status = 'RUNNING'") == []


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="split must be 'train' or 'validation'"):
        EvaluateRegisteredConfig(split="test")
    with pytest.raises(ValueError, match="num_trials must be in 0..100"):
        EvaluateRegisteredConfig(num_trials=101)
    with pytest.raises(ValueError, match="one registered judge or two"):
        EvaluateRegisteredConfig(model_uri="models:/a/1,models:/a/2,models:/a/3")
