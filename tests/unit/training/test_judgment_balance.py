"""Balancing the judgment training data: counts and determinism against hand-computed values."""

from collections import Counter

import pytest

from know_thyself.training.judgment_examples import balance_examples

EXAMPLES = (
    [{"label": "cannot", "id": f"n{i}"} for i in range(7)]
    + [{"label": "uncertain", "id": f"u{i}"} for i in range(3)]
    + [{"label": "can", "id": f"c{i}"} for i in range(2)]
)


def test_oversample_brings_every_label_to_the_largest_count():
    balanced = balance_examples(EXAMPLES, "oversample", seed=1)
    assert Counter(e["label"] for e in balanced) == {"cannot": 7, "uncertain": 7, "can": 7}
    uses = Counter(e["id"] for e in balanced)
    # 7 = 2 * 3 + 1: every uncertain example twice, one of them a third time; 7 = 3 * 2 + 1 for can.
    assert sorted(uses[f"u{i}"] for i in range(3)) == [2, 2, 3]
    assert sorted(uses[f"c{i}"] for i in range(2)) == [3, 4]
    assert all(uses[f"n{i}"] == 1 for i in range(7))


def test_none_keeps_the_examples_and_both_modes_are_seeded():
    kept = balance_examples(EXAMPLES, "none", seed=1)
    assert sorted(e["id"] for e in kept) == sorted(e["id"] for e in EXAMPLES)
    assert balance_examples(EXAMPLES, "oversample", seed=3) == balance_examples(EXAMPLES, "oversample", seed=3)
    assert balance_examples([], "oversample") == []


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="balance must be none or oversample"):
        balance_examples(EXAMPLES, "undersample")


def test_the_judge_trains_on_random_batches_not_length_groups(monkeypatch):
    """Oversampled copies share a length: length grouping would put them in one batch."""
    from know_thyself.config.judgment import JudgeOptions
    from know_thyself.training import judge
    from know_thyself.training.lora import Trained

    seen = {}

    def fake_train(examples, cfg, mt=None, group_by_length=None, callbacks=(), label_ids=None):
        seen.update(group_by_length=group_by_length, n=len(examples))
        return Trained(trainer=None)

    monkeypatch.setattr(judge, "train_lora", fake_train)
    examples = [{"prompt": [], "completion": [{"role": "assistant", "content": label}], "label": label}
                for label in ("can", "cannot", "cannot", "cannot")]
    options = JudgeOptions(loss="sft", balance="oversample", label_targets="hard")
    trained = judge.fit_judge(examples, options, "three", model_and_tokenizer=(None, None))
    assert seen == {"group_by_length": False, "n": 6}  # `can` oversampled to `cannot`'s 3
    assert trained.metrics == {"train/balanced_count/can": 3.0, "train/balanced_count/cannot": 3.0}


def test_the_label_loss_weighs_labels_instead_of_copying_examples(monkeypatch):
    """balance weights: every example once, each with its label's class weight and its target distribution."""
    from know_thyself.config.judgment import JudgeOptions
    from know_thyself.training import judge
    from know_thyself.training.lora import Trained

    seen = {}

    def fake_train(examples, cfg, mt=None, group_by_length=None, callbacks=(), label_ids=None):
        seen.update(examples=examples, label_ids=label_ids)
        return Trained(trainer=None)

    monkeypatch.setattr(judge, "train_lora", fake_train)
    monkeypatch.setattr(judge, "label_token_ids", lambda tokenizer, labels: [10, 11, 12])
    examples = [{"prompt": [], "completion": [], "label": label, "correct_trials": right, "trials": 5}
                for label, right in (("can", 5), ("cannot", 0), ("cannot", 1), ("cannot", 2))]
    judge.fit_judge(examples, JudgeOptions(label_targets="hard"), "three", model_and_tokenizer=(None, None))
    by_label = {e["label"]: e for e in seen["examples"]}
    assert len(seen["examples"]) == 4 and seen["label_ids"] == [10, 11, 12]
    # 4 examples over 2 labels present: can 4 / (2 * 1) = 2, cannot 4 / (2 * 3) = 2/3
    assert by_label["can"]["weight"] == pytest.approx(2.0) and by_label["cannot"]["weight"] == pytest.approx(2 / 3)
    assert by_label["can"]["target"] == [1.0, 0.0, 0.0]
    judge.fit_judge(examples, JudgeOptions(label_targets="soft"), "three", model_and_tokenizer=(None, None))
    soft = {e["correct_trials"]: e["target"] for e in seen["examples"]}
    assert soft[5][0] > 0.5 and soft[0][2] > 0.9 and sum(soft[2]) == pytest.approx(1.0)
