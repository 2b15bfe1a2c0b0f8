"""The registered judge as an MLflow pyfunc model, logged from code (no pickled Python objects).

``mlflow.pyfunc.load_model("models:/judgment_v2@current").predict(questions)`` takes a list of
questions or a DataFrame with a ``question`` column and returns one row per question:
``question``, ``ability`` (the predicted label) and ``p_<label>`` for each label.

The model's ``model_config`` names the base model the adapter needs (``base_model``: the
embedded default, a Hub id, or a ``models:/knowledge_base/<version>`` URI, which resolves
through the registry of the current tracking URI) and the label scheme; the adapter itself is a
model artifact. Nothing refers to a path of the machine that trained it.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc


class JudgeModel(mlflow.pyfunc.PythonModel):
    """Base model + judgment LoRA adapter -> predicted ability and label probabilities."""

    def load_context(self, context: Any) -> None:
        from peft import PeftModel

        from know_thyself.models import load_model

        config = context.model_config
        self.scheme = config.get("label_scheme", "three")
        self.batch_size = int(config.get("batch_size", 32))
        model, self.tokenizer = load_model(config["base_model"], dtype=config.get("dtype", "auto"))
        self.model = PeftModel.from_pretrained(model, context.artifacts["adapter"])
        self.model.eval()

    def predict(self, context, model_input, params=None):  # no type hints: MLflow reads them as a schema
        import pandas as pd

        from know_thyself.judge import judge

        questions = _questions(model_input)
        judged = judge(self.model, self.tokenizer, questions, self.scheme, self.batch_size)
        frame = pd.DataFrame({"question": questions, "ability": judged.predicted})
        for column, label in enumerate(judged.labels):
            frame[f"p_{label}"] = judged.probabilities[:, column]
        return frame


def _questions(model_input: Any) -> list[str]:
    import pandas as pd

    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, pd.DataFrame):
        if "question" in model_input.columns:
            return [str(q) for q in model_input["question"]]
        if model_input.shape[1] == 1:
            return [str(q) for q in model_input.iloc[:, 0]]
        raise ValueError("give a DataFrame with a 'question' column, or a list of question strings")
    if isinstance(model_input, pd.Series):
        return [str(q) for q in model_input]
    if isinstance(model_input, (list, tuple)):
        return [str(q) for q in model_input]
    raise ValueError(f"cannot read questions from {type(model_input).__name__}; give a list of strings or a DataFrame")


mlflow.models.set_model(JudgeModel())
