"""A judge trained with the stacked readout: train_judgment fits and logs it on the dev split, and the
evaluation, the held-out test's baseline and the pyfunc judge all read the label through it; a dev
split without every label falls back to the label words, and says so."""

import json

import mlflow
import numpy as np
import pytest
from helpers import fake_collect_run

from know_thyself.config import EvaluateConfig, JudgmentDataConfig, TrainConfig
from know_thyself.inference.judgments import first_token_probability, judge
from know_thyself.inference.models import load_model
from know_thyself.inference.readout import READOUT_FILE, Readout
from know_thyself.steps.build_judgment_data import run_build_judgment_data
from know_thyself.steps.evaluate_judgment import PREDICTIONS, run_evaluate_judgment
from know_thyself.steps.train_judgment import TAG_READOUT, run_train_judgment
from know_thyself.tracking import downloaded, read_jsonl_artifact, read_readout
from know_thyself.training.lora import ADAPTER_DIR, load_adapter

LABELS = ("can", "uncertain", "cannot")
CORRECT = {"can": [True, True], "uncertain": [True, False], "cannot": [False, False]}


def _collect(train_labels):
    rows = [{"split": "train", "question_id": f"t{i}", "question": f"Which river flows through town {i}?",
             "ability": label, "correct": CORRECT[label], "aliases": ["yes"], "greedy_response": "x",
             "greedy_correct": label != "cannot", "greedy_mean_logprob": -1.0}
            for i, label in enumerate(train_labels)]
    rows += [{"split": "validation", "question_id": f"v{i}", "question": f"Who founded city {i}?", "ability": label,
              "correct": CORRECT[label], "aliases": ["yes"], "greedy_response": "x", "greedy_correct": label == "can",
              "greedy_mean_logprob": -1.0} for i, label in enumerate(LABELS * 2)]
    return fake_collect_run(rows, {"num_trials": "2"})


def _train(tiny_model_dir, train_labels, **options):
    collect = _collect(train_labels)
    data = run_build_judgment_data(JudgmentDataConfig(collect_run_id=collect)).run_id
    # float32 throughout, as the evaluation below: the judge answers in the precision it was trained in.
    options = {"epochs": 1, "batch_size": 8, "lora_r": 2, "readout": "stacked", "dev_fraction": 0.4, "dtype": "float32",
               **options}
    cfg = TrainConfig(model=tiny_model_dir, data_run_id=data, **options)
    return collect, run_train_judgment(cfg).run_id


def test_the_stacked_readout_is_fitted_logged_and_read_by_the_evaluation_and_the_judge(tracking, tiny_model_dir):
    collect, trained = _train(tiny_model_dir, list(LABELS) * 10)
    run = mlflow.get_run(trained)
    assert run.data.tags[TAG_READOUT] == "stacked"
    assert {"readout/dev/auroc", "readout/dev_label/auroc", "readout/dev/predicted/can"} <= set(run.data.metrics)
    readout = read_readout(trained)
    assert readout is not None and readout.labels == LABELS
    with downloaded(trained, READOUT_FILE) as path:
        assert json.loads(path.read_text())["features"] == ["log_p_label", "log_p_first_token"]

    # What the evaluation reports as the judge is the readout applied to the adapter's label
    # probabilities and the bare model's first tokens, recomputed here by hand.
    evaluated = run_evaluate_judgment(EvaluateConfig(model=tiny_model_dir, collect_run_id=collect,
                                                     adapter_run_id=trained, dtype="float32")).run_id
    predictions = [p for p in read_jsonl_artifact(evaluated, PREDICTIONS) if p["split"] == "validation"]
    questions = [p["question"] for p in predictions]
    model, tokenizer = load_model(tiny_model_dir, dtype="float32")
    with downloaded(trained, ADAPTER_DIR) as adapter_dir:
        model = load_adapter(model, adapter_dir)
    with model.disable_adapter():
        first = first_token_probability(model, tokenizer, questions)
    words = judge(model, tokenizer, questions)
    expected = readout.apply(words, first)
    got = np.array([[p["probabilities"][label] for label in LABELS] for p in predictions])
    assert np.allclose(got, expected.probabilities, atol=1e-5)
    assert [p["predicted"] for p in predictions] == expected.predicted
    assert not np.allclose(expected.probabilities, words.probabilities, atol=1e-3)
    # Beside them, what the readout read: the adapter's label-word probabilities.
    read = np.array([[p["label_word_probabilities"][label] for label in LABELS] for p in predictions])
    assert np.allclose(read, words.probabilities, atol=1e-5)

    # The judge as users load it gives the same probabilities.
    frame = mlflow.pyfunc.load_model(f"runs:/{trained}/judge").predict(questions)
    assert np.allclose(frame[[f"p_{label}" for label in LABELS]].to_numpy(), expected.probabilities, atol=1e-5)
    assert frame["ability"].tolist() == expected.predicted


def test_a_dev_split_without_every_label_falls_back_to_the_label_words_and_says_so(tracking, tiny_model_dir):
    # 0.2 of 8 + 8 + 1 questions: one can and two cannot, or the other way round, held out; no uncertain.
    _, trained = _train(tiny_model_dir, ["can", "cannot"] * 8 + ["uncertain"], dev_fraction=0.2)
    run = mlflow.get_run(trained)
    assert run.data.tags[TAG_READOUT].startswith("label (the dev split holds no 'uncertain' question")
    assert read_readout(trained) is None
    assert "readout" not in mlflow.pyfunc.load_model(f"runs:/{trained}/judge").metadata.to_dict().get("artifacts", {})


def test_stacked_without_a_dev_split_is_refused():
    with pytest.raises(ValueError, match="readout stacked is fitted on the dev split; set dev_fraction above 0"):
        TrainConfig(model="smollm2-135m-instruct", data_run_id="a" * 32, readout="stacked", dev_fraction=0.0)
    with pytest.raises(ValueError, match="readout must be one of"):
        TrainConfig(model="smollm2-135m-instruct", data_run_id="a" * 32, readout="probe")


def test_a_readout_json_that_is_not_a_readout_is_refused(tracking):
    with mlflow.start_run() as run:
        mlflow.log_text('{"features": ["log_p_label", "log_p_first_token"], "labels": ["can"], "coef": [[1]], '
                        '"intercept": [0]}', READOUT_FILE)
    with pytest.raises(ValueError, match=r"coef of shape \(1, 2\)"):
        read_readout(run.info.run_id)
    assert isinstance(Readout.from_dict({"features": ["log_p_label", "log_p_first_token"], "labels": ["can"],
                                         "coef": [[1, 2]], "intercept": [0]}), Readout)
