"""A judge answers in the precision its evaluation used, on any machine: the training run records the
precision (float32 or bfloat16, never 'auto'), the logged judge loads in it unless the caller asks for
another, and evaluate_judgment, evaluate_registered and the loaded judge agree on the same questions.

Each test runs in both numeric paths, whatever this CPU prefers: bf16 runs on any CPU (slowly
without AVX-512 BF16), so a machine without it still covers the path a machine with it takes.
"""

import mlflow
import numpy as np
import pytest
import yaml

from know_thyself.config import EvaluateConfig, EvaluateRegisteredConfig, JudgmentDataConfig, TrainConfig
from know_thyself.data.questions import write_jsonl
from know_thyself.inference.models import precision_of
from know_thyself.steps.build_judgment_data import run_build_judgment_data
from know_thyself.steps.evaluate_judgment import PREDICTIONS, run_evaluate_judgment
from know_thyself.steps.evaluate_registered import run_evaluate_registered
from know_thyself.steps.train_judgment import run_train_judgment
from know_thyself.tracking import read_jsonl_artifact
from know_thyself.tracking.judges import judge_precision
from know_thyself.tracking.registry import JUDGE_ARTIFACT, TAG_PRECISION, load_judge, register

LABELS = ("can", "uncertain", "cannot")
PRECISIONS = ("float32", "bfloat16")
# The evaluations score in batches of inference_batch_size and the loaded judge all questions at once: other
# padding, other matmul shapes, so float32 rounding differs by up to a few 1e-5 (more with torch on one
# thread); bfloat16 keeps about three significant digits, so the other precision moves them far more.
SAME = 1e-4


def _probabilities(frame):
    return frame[[f"p_{label}" for label in LABELS]].to_numpy()


@pytest.fixture
def trained_judge(tracking, tiny_model_dir, trivia_dir, request):
    """A judge with a stacked readout trained on the tiny model in ``request.param``; its collect and run ids."""
    from helpers import fake_collect_run, labelled_rows

    rows = labelled_rows(10, 2)
    collect = fake_collect_run(rows, {"num_trials": "2"})
    data = run_build_judgment_data(JudgmentDataConfig(collect_run_id=collect)).run_id
    cfg = TrainConfig(model=tiny_model_dir, data_run_id=data, epochs=1, batch_size=8, lora_r=2, readout="stacked",
                      dev_fraction=0.4, dtype=request.param)
    return collect, run_train_judgment(cfg).run_id, request.param


@pytest.mark.parametrize("trained_judge", PRECISIONS, indirect=True)
def test_the_evaluation_and_the_loaded_judge_answer_alike_in_the_recorded_precision(trained_judge, tiny_model_dir):
    collect, trained, precision = trained_judge
    assert mlflow.get_run(trained).data.tags[TAG_PRECISION] == precision
    mlmodel = mlflow.artifacts.download_artifacts(run_id=trained, artifact_path=f"{JUDGE_ARTIFACT}/MLmodel")
    with open(mlmodel) as file:
        assert yaml.safe_load(file)["flavors"]["python_function"]["config"]["dtype"] == precision

    # dtype auto follows the judge, whatever this machine would pick for itself.
    evaluated = run_evaluate_judgment(EvaluateConfig(model=tiny_model_dir, collect_run_id=collect,
                                                     adapter_run_id=trained)).run_id
    assert mlflow.get_run(evaluated).data.tags[TAG_PRECISION] == precision
    predictions = [p for p in read_jsonl_artifact(evaluated, PREDICTIONS) if p["split"] == "validation"]
    questions = [p["question"] for p in predictions]
    frame = mlflow.pyfunc.load_model(f"runs:/{trained}/{JUDGE_ARTIFACT}").predict(questions)
    scored = np.array([[p["probabilities"][label] for label in LABELS] for p in predictions])
    assert np.allclose(_probabilities(frame), scored, atol=SAME, rtol=0)
    assert frame["ability"].tolist() == [p["predicted"] for p in predictions]

    # Asked for the other precision, the judge loads in it and its numbers move.
    other = next(p for p in PRECISIONS if p != precision)
    loaded = load_judge(f"runs:/{trained}/{JUDGE_ARTIFACT}", dtype=other)
    assert str(next(loaded.unwrap_python_model().model.parameters()).dtype) == f"torch.{other}"
    assert not np.allclose(_probabilities(loaded.predict(questions)), scored, atol=1e-6, rtol=0)


@pytest.mark.parametrize("trained_judge", PRECISIONS, indirect=True)
def test_evaluate_registered_scores_the_judge_as_users_load_it(trained_judge, tiny_model_dir, tmp_path):
    _, trained, precision = trained_judge
    register(trained, JUDGE_ARTIFACT, "judgment_v1", {"base_model": tiny_model_dir})
    own = [{"question_id": f"o{i}", "question": f"Which lake lies next to village {i}?",
            "answer": {"value": "Lake", "aliases": ["Lake"]}} for i in range(6)]
    write_jsonl(own, tmp_path / "own.jsonl")
    outcome = run_evaluate_registered(EvaluateRegisteredConfig(
        model_uri="models:/judgment_v1/1", dataset=str(tmp_path / "own.jsonl"), num_trials=1, inference_batch_size=4))
    evaluation = outcome.run_ids["judgment_v1/1/evaluation"]
    assert mlflow.get_run(evaluation).data.tags[TAG_PRECISION] == precision
    predictions = read_jsonl_artifact(evaluation, PREDICTIONS)
    frame = load_judge("models:/judgment_v1/1").predict([p["question"] for p in predictions])
    scored = np.array([[p["probabilities"][label] for label in LABELS] for p in predictions])
    assert np.allclose(_probabilities(frame), scored, atol=SAME, rtol=0)


def test_auto_follows_the_recorded_precision_and_an_explicit_one_is_named():
    assert judge_precision("auto", "bfloat16", "cpu") == ("bfloat16", "")
    assert judge_precision("float32", "float32", "cpu") == ("float32", "")
    precision, note = judge_precision("float32", "bfloat16", "cpu")
    assert precision == "float32" and "while the judge answers in bfloat16" in note
    # A bare model, or a judge from before precisions were recorded: auto resolves on this machine.
    assert judge_precision("auto", None, "cpu") == (precision_of("auto", "cpu"), "")


@pytest.mark.parametrize("dtype", PRECISIONS)
def test_a_collect_run_records_the_precision_it_sampled_in(tracking, tiny_model_dir, trivia_dir, dtype):
    from know_thyself.config import CollectConfig
    from know_thyself.steps.collect import run_collect

    collected = run_collect(CollectConfig(model=tiny_model_dir, dataset=str(trivia_dir), num_samples=4, test_samples=2,
                                          num_trials=1, max_new_tokens=2, inference_batch_size=4, dtype=dtype)).run_id
    assert mlflow.get_run(collected).data.tags[TAG_PRECISION] == dtype
