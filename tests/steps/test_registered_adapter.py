"""The adapter itself, for a user's own code: ``know_thyself.load_adapter_model(uri)`` gives the judge's
base model (resolved as the judge resolves it, a registered ``models:/knowledge_base/<n>`` included) with
the registered adapter applied, in the judge's precision; scored with the label words it gives the
judge's own probabilities, and so do the plain MLflow + PEFT lines the docs show. A URI that is not a
judge is one line."""

import logging

import mlflow
import numpy as np
import pytest
import torch
from helpers import fake_collect_run
from peft import PeftModel

import know_thyself
from know_thyself.config import JudgmentDataConfig, TrainConfig
from know_thyself.inference.judgments import judge
from know_thyself.inference.models import default_device, precision_of
from know_thyself.steps.build_judgment_data import run_build_judgment_data
from know_thyself.steps.train_judgment import run_train_judgment
from know_thyself.tracking import TAG_STEP
from know_thyself.tracking.registry import JUDGE_ARTIFACT, KNOWLEDGE_ARTIFACT, load_judge, register, requirements

LABELS = ("can", "uncertain", "cannot")
CORRECT = {"can": [True, True], "uncertain": [True, False], "cannot": [False, False]}
QUESTIONS = ["What is the capital of Peru?", "Who painted The Night Watch?", "Which river flows through Cairo?"]


def _train_judge(model: str) -> str:
    """A judge trained (label readout, the default) on ``model`` in float32; its finished run id."""
    rows = [{"split": split, "question_id": f"{split[0]}{i}", "question": f"Which river flows through town {split} {i}?",
             "ability": label, "correct": CORRECT[label], "aliases": ["yes"], "greedy_response": "x",
             "greedy_correct": label != "cannot", "greedy_mean_logprob": -1.0}
            for split, count in (("train", 4), ("validation", 1)) for i, label in enumerate(LABELS * count)]
    data = run_build_judgment_data(JudgmentDataConfig(collect_run_id=fake_collect_run(rows, {"num_trials": "2"}))).run_id
    cfg = TrainConfig(model=model, data_run_id=data, epochs=1, batch_size=4, lora_r=2, learning_rate=5e-3,
                      dtype="float32")
    return run_train_judgment(cfg).run_id


def _probabilities(frame):
    return frame[[f"p_{label}" for label in LABELS]].to_numpy()


def _same_as_the_judge(model, tokenizer, uri):
    judged = load_judge(uri).predict(QUESTIONS)
    mine = judge(model, tokenizer, QUESTIONS)
    assert np.allclose(mine.probabilities, _probabilities(judged), atol=1e-5, rtol=0)
    assert mine.predicted == judged["ability"].tolist()
    return mine.probabilities


def _plain_lines(uri, base):
    """The lines docs/reference.md shows for users who do not import the project (base already loaded)."""
    adapter_dir = mlflow.artifacts.download_artifacts(f"{uri}/artifacts/adapter")
    return PeftModel.from_pretrained(base, adapter_dir).eval()


def test_the_adapter_on_its_base_scores_as_the_judge(tracking, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    trained = _train_judge(tiny_model_dir)
    register(trained, JUDGE_ARTIFACT, "judgment_v1", {"base_model": tiny_model_dir})

    model, tokenizer = know_thyself.load_adapter_model("models:/judgment_v1@current", device="cpu")
    assert isinstance(model, PeftModel) and not model.training
    assert next(model.parameters()).dtype == torch.float32  # the judge's recorded precision
    assert model.peft_config["default"].r == 2
    ours = _same_as_the_judge(model, tokenizer, "models:/judgment_v1/1")
    with model.disable_adapter():  # the adapter is really on: the bare base answers otherwise
        assert not np.allclose(judge(model, tokenizer, QUESTIONS).probabilities, ours, atol=1e-6, rtol=0)

    # The plain lines: a local base folder loads as it is.
    config = mlflow.models.get_model_info("models:/judgment_v1/1").flavors["python_function"]["config"]
    assert config["base_model"] == tiny_model_dir and config["dtype"] == "float32"
    base = AutoModelForCausalLM.from_pretrained(config["base_model"], dtype=getattr(torch, config["dtype"]))
    plain = _plain_lines("models:/judgment_v1@current", base)
    assert np.allclose(judge(plain, tokenizer, QUESTIONS).probabilities, ours, atol=1e-5, rtol=0)

    # Asked for another precision, it loads in it; a runs:/ URI works as well.
    other, _ = know_thyself.load_adapter_model(f"runs:/{trained}/{JUDGE_ARTIFACT}", dtype="bfloat16", device="cpu")
    assert next(other.parameters()).dtype == torch.bfloat16


def test_a_judge_on_a_registered_knowledge_base_loads_on_that_base(tracking, tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("KNOW_THYSELF_CACHE", str(tracking / "cache"))
    # A knowledge_base version logged the way train_knowledge logs its merged model.
    with mlflow.start_run(run_name="train_knowledge", tags={TAG_STEP: "train_knowledge"}) as knowledge:
        mlflow.transformers.log_model(
            transformers_model={"model": AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                "tokenizer": AutoTokenizer.from_pretrained(tiny_model_dir)},
            name=KNOWLEDGE_ARTIFACT, task="text-generation", pip_requirements=requirements())
    assert register(knowledge.info.run_id, KNOWLEDGE_ARTIFACT, "knowledge_base", {}) == "1"
    trained = _train_judge("models:/knowledge_base/1")
    register(trained, JUDGE_ARTIFACT, "judgment_v2", {"base_model": "models:/knowledge_base/1"})

    model, tokenizer = know_thyself.load_adapter_model("models:/judgment_v2@current", device="cpu")
    assert isinstance(model, PeftModel)
    ours = _same_as_the_judge(model, tokenizer, "models:/judgment_v2/1")

    # The plain lines: a models:/knowledge_base base loads with MLflow's transformers flavour.
    config = mlflow.models.get_model_info("models:/judgment_v2/1").flavors["python_function"]["config"]
    assert config["base_model"] == "models:/knowledge_base/1"
    base = mlflow.transformers.load_model(config["base_model"], return_type="components",
                                          torch_dtype=getattr(torch, config["dtype"]))["model"]
    plain = _plain_lines("models:/judgment_v2@current", base)
    assert np.allclose(judge(plain, tokenizer, QUESTIONS).probabilities, ours, atol=1e-5, rtol=0)

    # The knowledge base itself is not a judge: one line that says what it is.
    with pytest.raises(ValueError, match="is not a judge \\(a transformers model") as error:
        know_thyself.load_adapter_model("models:/knowledge_base/1")
    assert "\n" not in str(error.value)


def test_an_older_judge_loads_in_auto_and_a_stacked_one_warns(tracking, tiny, tiny_model_dir, tmp_path, caplog):
    from peft import LoraConfig, get_peft_model

    from know_thyself.tracking.registry import _PYFUNC_CODE

    model, _ = tiny
    adapter = tmp_path / "adapter"
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM", init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(adapter)
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name=JUDGE_ARTIFACT, python_model=str(_PYFUNC_CODE), artifacts={"adapter": str(adapter)},
                                model_config={"base_model": tiny_model_dir, "label_scheme": "three"},
                                pip_requirements=requirements())
    register(run.info.run_id, JUDGE_ARTIFACT, "judgment_v1", {})
    loaded, tokenizer = know_thyself.load_adapter_model("models:/judgment_v1/1")
    assert str(next(loaded.parameters()).dtype) == f"torch.{precision_of('auto', default_device())}"
    if next(loaded.parameters()).dtype == torch.float32:
        _same_as_the_judge(loaded, tokenizer, "models:/judgment_v1/1")

    # A judge that reads its label through a stacked readout: the adapter alone is not its predict, and it says so.
    (tmp_path / "readout.json").write_text("{}")
    with mlflow.start_run() as run:
        mlflow.pyfunc.log_model(name=JUDGE_ARTIFACT, python_model=str(_PYFUNC_CODE),
                                artifacts={"adapter": str(adapter), "readout": str(tmp_path / "readout.json")},
                                model_config={"base_model": tiny_model_dir, "dtype": "float32"},
                                pip_requirements=requirements())
    with caplog.at_level(logging.WARNING, logger="know_thyself.tracking.registry"):
        stacked, _ = know_thyself.load_adapter_model(f"runs:/{run.info.run_id}/{JUDGE_ARTIFACT}")
    assert isinstance(stacked, PeftModel)
    assert "reads its label through a stacked readout (readout.json)" in caplog.text


def test_a_uri_that_is_not_a_judge_is_one_line(tracking):
    with mlflow.start_run() as run:
        mlflow.log_text("not a model", "notes/README.txt")
        # A pyfunc, but with no adapter or base model.
        mlflow.pyfunc.log_model(name="judge", python_model=_Echo(), pip_requirements=requirements())
    for uri, expected in [
        ("models:/judgment_v2@current", "'models:/judgment_v2@current' does not resolve in"),
        ("models:/judgment_v1/7", "'models:/judgment_v1/7' is not a model in"),
        (f"runs:/{run.info.run_id}/notes", "is not a model in"),
        (f"runs:/{run.info.run_id}/judge", "is not a judge: it holds no LoRA adapter"),
    ]:
        with pytest.raises(ValueError) as error:
            know_thyself.load_adapter_model(uri)
        assert expected in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_a_bad_dtype_is_refused_before_anything_is_read(tracking):
    with pytest.raises(ValueError, match="dtype must be auto, bfloat16, float16 or float32, got 'fp8'"):
        know_thyself.load_adapter_model("models:/judgment_v2@current", dtype="fp8")


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input
