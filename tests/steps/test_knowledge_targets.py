"""Knowledge targets in the model's own words: which targets are replaced, and the step that builds them."""

import json

import mlflow
import pytest

from know_thyself import config
from know_thyself.data.prompts import RESTATE_SYSTEM
from know_thyself.inference.sampling import Answers
from know_thyself.steps.build_knowledge_data import run_build_knowledge_data
from know_thyself.tracking import TAG_STEP, read_jsonl_artifact
from know_thyself.training.knowledge_examples import (
    MAX_RESTATEMENT_CHARS,
    build_qa_examples,
    choose_taught,
    restate_in_own_words,
)

ROWS = [
    {"question_id": "q1", "question": "What is the capital of Japan?", "answer": "Tokyo", "aliases": ["Tokyo"]},
    {"question_id": "q2", "question": "How many legs has a spider?", "answer": "Eight", "aliases": ["Eight", "8"]},
    {"question_id": "q3", "question": "Who painted Guernica?", "answer": "Pablo Picasso", "aliases": ["Picasso"]},
    {"question_id": "q4", "question": "Which planet is red?", "answer": "Mars", "aliases": ["Mars"]},
]


class FakeSampler:
    """Answers each restating prompt with a fixed sentence; records the prompts it was given."""

    tokenizer = None

    def __init__(self, sentences):
        self.sentences, self.prompts = sentences, []

    def sample(self, prompts, num_samples, max_new_tokens=24, temperature=1.0, seed=0, progress=None):
        self.prompts = list(prompts)
        n = len(prompts)
        return Answers(samples=[[""] * num_samples] * n, greedy=self.sentences[:n], greedy_tokens=[[]] * n,
                       greedy_mean_logprob=None, generated_tokens=[0] * n)


def test_only_short_sentences_the_grader_accepts_replace_the_reference(monkeypatch):
    monkeypatch.setattr("know_thyself.training.knowledge_examples.render", lambda tokenizer, messages: json.dumps(messages))
    sentences = [
        "The capital of Japan is Tokyo.",  # accepted
        "A spider has 8 legs.",  # accepted through an alias
        "Guernica was painted by Salvador Dali.",  # wrong: the reference stays
        "Mars is " + "very " * 40 + "red.",  # right but too long: the reference stays
    ]
    examples = build_qa_examples(ROWS)
    sampler = FakeSampler(sentences)
    assert restate_in_own_words(ROWS, examples, sampler) == 2
    targets = [e["completion"][0]["content"] for e in examples]
    assert targets == ["The capital of Japan is Tokyo.", "A spider has 8 legs.", "Pablo Picasso", "Mars"]
    assert len(sentences[3]) > MAX_RESTATEMENT_CHARS
    # the model was asked each question with its reference answer as a hint, in the restating prompt
    first = json.loads(sampler.prompts[0])
    assert first[0]["content"] == RESTATE_SYSTEM
    assert first[1]["content"] == "What is the capital of Japan? (The correct answer is Tokyo.)"
    # the prompts the examples train on are still the answer prompt, untouched
    assert [e["prompt"] for e in examples] == [e["prompt"] for e in build_qa_examples(ROWS)]


def _collect_run(model: str) -> str:
    rows = [{**r, "split": "train"} for r in ROWS] + [{**ROWS[0], "split": "validation", "question_id": "v1"}]
    with mlflow.start_run(tags={TAG_STEP: "collect"}) as run:
        mlflow.log_params({"label_scheme": "three", "model": model})
        mlflow.log_text("".join(json.dumps(r) + "\n" for r in rows), "responses.jsonl")
    return run.info.run_id


def test_the_step_restates_with_the_collect_runs_model(tracking, tiny_model_dir):
    collect = _collect_run(tiny_model_dir)
    run = run_build_knowledge_data(config.KnowledgeDataConfig(collect_run_id=collect, targets="own_words", fraction=1.0))
    logged = mlflow.get_run(run.run_id)
    assert logged.data.params["restated_by"] == tiny_model_dir and logged.data.params["targets"] == "own_words"
    examples = read_jsonl_artifact(run.run_id, "knowledge_data/train.jsonl")
    assert [e["question_id"] for e in examples] == ["q1", "q2", "q3", "q4"]
    # a random tiny model rarely states the answer: every example keeps a target either way
    replaced = logged.data.metrics["train/own_words_targets"]
    kept = sum(e["completion"][0]["content"] == r["answer"] for e, r in zip(examples, ROWS))
    assert replaced + kept == len(ROWS)


def test_unknown_targets_are_refused():
    with pytest.raises(ValueError, match="targets must be one of reference, own_words, got 'paraphrase'"):
        config.KnowledgeDataConfig(collect_run_id="a" * 32, targets="paraphrase")
    with pytest.raises(ValueError, match="knowledge_targets must be one of reference, own_words"):
        config.MultiphaseConfig(knowledge_targets="mine")


def test_the_chain_passes_its_model_only_for_own_words():
    assert config.MultiphaseConfig(knowledge_targets="reference").knowledge_data("a" * 32).model == ""
    chain = config.MultiphaseConfig(knowledge_targets="own_words")
    data = chain.knowledge_data("a" * 32)
    assert (data.targets, data.model, data.collect_run_id) == ("own_words", chain.model, "a" * 32)


def test_a_share_of_the_questions_is_taught_in_order_and_seeded():
    rows = [{"question_id": f"q{i}"} for i in range(10)]
    taught = choose_taught(rows, 0.3, seed=7)
    assert len(taught) == 3
    assert [r["question_id"] for r in taught] == sorted((r["question_id"] for r in taught), key=lambda q: int(q[1:]))
    assert taught == choose_taught(rows, 0.3, seed=7) and taught != choose_taught(rows, 0.3, seed=8)
    assert choose_taught(rows, 1.0, seed=7) == rows
    assert len(choose_taught(rows, 0.01, seed=7)) == 1  # at least one question


def test_the_step_teaches_the_share_it_is_given(tracking):
    collect = _collect_run("unused")
    run = run_build_knowledge_data(
        config.KnowledgeDataConfig(collect_run_id=collect, targets="reference", fraction=0.5, seed=3)
    )
    examples = read_jsonl_artifact(run.run_id, "knowledge_data/train.jsonl")
    chosen = [r["question_id"] for r in choose_taught([r for r in ROWS], 0.5, 3)]
    assert [e["question_id"] for e in examples] == chosen and len(chosen) == 2
    metrics = mlflow.get_run(run.run_id).data.metrics
    assert (metrics["train/examples"], metrics["train/untaught_questions"]) == (2.0, 2.0)


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_a_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]"):
        config.KnowledgeDataConfig(collect_run_id="a" * 32, fraction=fraction)
    with pytest.raises(ValueError, match=r"knowledge_fraction must be in \(0, 1\]"):
        config.MultiphaseConfig(knowledge_fraction=fraction)
    assert config.MultiphaseConfig(knowledge_fraction=0.4).knowledge_data("a" * 32).fraction == 0.4
