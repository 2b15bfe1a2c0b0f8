"""The registered judge as an MLflow pyfunc model, logged from code (no pickled Python objects).

``mlflow.pyfunc.load_model("models:/judgment_v2@current").predict(questions)`` takes a list of
questions or a DataFrame with a ``question`` column (and, served with ``mlflow models serve``,
``{"inputs": [...]}``, ``dataframe_split`` and ``dataframe_records``) and returns one row per
question: ``question``, ``ability`` (the predicted label) and ``p_<label>`` for each label. A
missing, non-string, empty or over-long question is refused with one line naming the row and the
rule (an HTTP 400 from the scoring server): :mod:`know_thyself.tracking.judge_input`.

The model's ``model_config`` names the base model the adapter needs (``base_model``: the
embedded default, a Hub id, or a ``models:/knowledge_base/<version>`` URI, which resolves
through the registry of the current tracking URI) and the label scheme; the adapter itself is a
model artifact, and so is the stacked readout when the judge was trained with one
(:mod:`know_thyself.inference.readout`: the judge then also runs the base model, adapter off, over
the answer prompt). Nothing refers to a path of the machine that trained it.

The package this file imports, its Python files, travels inside the logged model (``code/``, see
:func:`know_thyself.tracking.registry.log_judge`): the judge loads where only its logged
requirements are installed, without this project.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc


class JudgeModel(mlflow.pyfunc.PythonModel):
    """Base model + judgment LoRA adapter -> predicted ability and label probabilities."""

    def load_context(self, context: Any) -> None:
        from peft import PeftModel

        from know_thyself.data.labels import scheme_of
        from know_thyself.inference.models import load_model

        config = context.model_config
        self.scheme = scheme_of(config)
        self.batch_size = int(config.get("batch_size", 32))
        model, self.tokenizer = load_model(config["base_model"], dtype=config.get("dtype", "auto"))
        self.model = PeftModel.from_pretrained(model, context.artifacts["adapter"])
        self.model.eval()
        self.readout = None
        if "readout" in context.artifacts:
            from know_thyself.inference.readout import Readout

            self.readout = Readout.load(context.artifacts["readout"])

    def predict(self, context, model_input, params=None):  # no type hints: MLflow reads them as a schema
        import numpy as np
        import pandas as pd

        from know_thyself.inference.judgments import first_token_probability, judge
        from know_thyself.tracking.judge_input import JudgeError, read_questions

        def refuse_non_finite(probabilities, source):
            """No NaN leaves the judge: one line instead (an HTTP 500 from the scoring server)."""
            bad = ~np.isfinite(np.asarray(probabilities, dtype=float)).reshape(len(questions), -1).all(axis=1)
            if bad.any():
                raise JudgeError(f"{source} gave probabilities that are not finite numbers (row {int(bad.argmax())}); "
                                 "nothing is returned: load the judge in float32 (model_config={'dtype': 'float32'}) "
                                 "or log it again")

        questions = read_questions(model_input)
        judged = judge(self.model, self.tokenizer, questions, self.scheme, self.batch_size)
        refuse_non_finite(judged.probabilities, "the judge's model")
        if self.readout is not None:
            with self.model.disable_adapter():
                first = first_token_probability(self.model, self.tokenizer, questions, self.batch_size)
            refuse_non_finite(first, "the judge's base model (first answer token)")
            try:
                judged = self.readout.apply(judged, first)  # finite, or a ValueError: Readout.probabilities
            except ValueError as error:
                raise JudgeError(f"the judge's readout (readout.json) gave no probabilities: {error}") from None
        frame = pd.DataFrame({"question": questions, "ability": judged.predicted})
        for column, label in enumerate(judged.labels):
            frame[f"p_{label}"] = judged.probabilities[:, column]
        return frame


mlflow.models.set_model(JudgeModel())
