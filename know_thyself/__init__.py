"""know-thyself: teach a language model to predict, before answering, whether it will answer
a trivia question correctly, with every step tracked in MLflow."""

__version__ = "0.1.0"
