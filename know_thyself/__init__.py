"""know-thyself: teach a language model to predict, before answering, whether it will answer
a trivia question correctly, with every step tracked in MLflow."""

__version__ = "0.1.0"


def judge_questions(uri: str, questions: list[str]):
    """Predicted ability and label probabilities of ``questions`` from a registered judge.

    ``know_thyself.judge_questions("models:/judgment_v2@current", ["Who wrote Hamlet?"])``
    """
    from know_thyself.registry import judge_questions as _judge_questions

    return _judge_questions(uri, questions)
