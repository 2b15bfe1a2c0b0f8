"""The data layer: what a question is, where questions come from, and how answers are judged.

* :mod:`~know_thyself.data.questions`: question sets (the bundled one, TriviaQA on the Hub, local
  files), validated and sampled;
* :mod:`~know_thyself.data.grading`: the one grading rule;
* :mod:`~know_thyself.data.labels`: ability labels from graded trials;
* :mod:`~know_thyself.data.prompts`: every prompt text, rendered through the chat template.

Nothing here loads a model or touches the tracking store.
"""

from know_thyself.data.questions import (
    BUNDLED,
    SPLITS,
    DataError,
    draw_disjoint,
    load_split,
    read_jsonl,
    sample_questions,
    single_file,
    write_jsonl,
)

__all__ = [
    "BUNDLED", "SPLITS", "DataError", "draw_disjoint", "load_split", "read_jsonl", "sample_questions", "single_file",
    "write_jsonl",
]
