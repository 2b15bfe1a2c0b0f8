"""know-thyself: teach a language model to predict, before answering, whether it will answer
a trivia question correctly, with every step tracked in MLflow.

The library is grouped by layer, each importing only the ones before it: ``data`` (questions,
grading, labels, prompts), ``inference`` (models, samplers, judgments), ``config`` (one typed
config per step), ``training`` and ``evaluation``, ``tracking`` (everything MLflow), then
``steps`` (one module per entry point) and ``cli``. See docs/architecture.md.
"""

__version__ = "0.1.0"


def judge_questions(uri: str, questions: list[str], dtype: str | None = None):
    """Predicted ability and label probabilities of ``questions`` from a registered judge.

    ``know_thyself.judge_questions("models:/judgment_v2@current", ["Who wrote Hamlet?"])``; the judge
    answers in the precision it was trained and evaluated in unless ``dtype`` names another.
    """
    from know_thyself.tracking.registry import judge_questions as _judge_questions

    return _judge_questions(uri, questions, dtype)


def load_adapter_model(uri: str, dtype: str | None = None, device: str | None = None):
    """A registered judge's LoRA adapter on its base model: ``(peft.PeftModel, tokenizer)`` for your own code.

    ``model, tokenizer = know_thyself.load_adapter_model("models:/judgment_v2@current")``; the base is the
    one the judge names (for judgment_v2, ``models:/knowledge_base/<version>``), in the judge's precision
    unless ``dtype`` names another. See :func:`know_thyself.tracking.registry.load_adapter_model`.
    """
    from know_thyself.tracking.registry import load_adapter_model as _load_adapter_model

    return _load_adapter_model(uri, dtype, device)
