"""The knowledge test: QA accuracy before and after Phase 2, from two collect runs of the same questions.

Two collect runs are comparable only when they sampled the same questions alike
(:func:`check_comparable`); :func:`knowledge_gains` compares their per-split accuracies and
:func:`taught_gains` the taught and untaught train questions apart (step ``test_knowledge``).
"""

from __future__ import annotations

from know_thyself.data.questions import SPLITS
from know_thyself.evaluation.ability import answer_seed_of

# Collect parameters that must agree for a before/after comparison: the same questions, sampled alike.
COMPARABLE_PARAMS = (
    "dataset", "num_samples", "test_samples", "seed", "num_trials", "temperature", "max_new_tokens", "label_scheme",
)


def taught_gains(before: list[dict], after: list[dict], taught_ids: set[str]) -> dict[str, float]:
    """QA accuracy before and after on the taught and the untaught train questions, and the gains.

    Named like :func:`knowledge_gains`' values with ``taught`` / ``untaught`` for the split
    (``before/taught/qa_accuracy_greedy``, ``taught/qa_accuracy_gain_greedy``, ...); a group
    without questions is left out.

    Args:
        before: ``responses.jsonl`` rows of the collect run before knowledge training.
        after: The same questions' rows after it.
        taught_ids: Question ids of the QA examples trained on.
    """
    before_by_id = {row["question_id"]: row for row in before if row["split"] == "train"}
    after_by_id = {row["question_id"]: row for row in after if row["split"] == "train"}
    values: dict[str, float] = {}
    for group, wanted in (("taught", True), ("untaught", False)):
        ids = [i for i in before_by_id if (i in taught_ids) == wanted]
        missing = [i for i in ids if i not in after_by_id]
        if missing:
            raise ValueError(
                f"{len(missing)} train questions of the collect run before knowledge training are missing from the "
                f"one after it (e.g. {missing[0]!r}); compare collect runs of the same questions"
            )
        if not ids:
            continue
        for when, rows in (("before", before_by_id), ("after", after_by_id)):
            values[f"{when}/{group}/qa_accuracy_trials"] = sum(rows[i]["accuracy"] for i in ids) / len(ids)
            values[f"{when}/{group}/qa_accuracy_greedy"] = sum(bool(rows[i]["greedy_correct"]) for i in ids) / len(ids)
        for kind in ("trials", "greedy"):
            values[f"{group}/qa_accuracy_gain_{kind}"] = (
                values[f"after/{group}/qa_accuracy_{kind}"] - values[f"before/{group}/qa_accuracy_{kind}"]
            )
        values[f"{group}/questions"] = float(len(ids))
    return values



def check_comparable(
    before: dict[str, str], after: dict[str, str], before_questions: str | None = None, after_questions: str | None = None
) -> None:
    """Refuse a before/after pair of collect runs that did not sample the same questions alike.

    Args:
        before: Parameters of the collect run before knowledge training.
        after: Parameters of the collect run after it.
        before_questions: The before run's question-set fingerprint (``None`` for a run made
            before collect recorded one: then the parameters alone are compared).
        after_questions: The after run's.

    Raises:
        ValueError: naming the first parameter that differs, or the question sets.
    """
    for key in COMPARABLE_PARAMS:
        if before.get(key) != after.get(key):
            raise ValueError(
                f"the two collect runs differ in {key} ({before.get(key)!r} vs {after.get(key)!r}); compare "
                "collect runs of the same questions, sampled with the same settings"
            )
    if answer_seed_of(before) != answer_seed_of(after):
        raise ValueError(
            f"the two collect runs sampled their answers with different seeds ({answer_seed_of(before)!r} vs "
            f"{answer_seed_of(after)!r}, from seed and sample_seed); compare collect runs sampled with the same seed"
        )
    if before_questions and after_questions and before_questions != after_questions:
        raise ValueError(
            "the two collect runs sampled different questions (the dataset changed between them); compare "
            "collect runs of the same questions: collect again with the model before knowledge training"
        )


def knowledge_gains(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """QA accuracy before and after (trial-based and greedy) per split, and the gains, from two collect runs' metrics."""
    values: dict[str, float] = {}
    for when, metrics in (("before", before), ("after", after)):
        for split in SPLITS:
            values[f"{when}/{split}/qa_accuracy_trials"] = metrics[f"{split}/qa_accuracy"]
            values[f"{when}/{split}/qa_accuracy_greedy"] = metrics[f"{split}/greedy_qa_accuracy"]
    for split in SPLITS:
        for kind in ("trials", "greedy"):
            values[f"{split}/qa_accuracy_gain_{kind}"] = (
                values[f"after/{split}/qa_accuracy_{kind}"] - values[f"before/{split}/qa_accuracy_{kind}"]
            )
    return values
