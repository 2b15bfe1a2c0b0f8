"""Collecting answers: sample answers, grade them, and label each question's ability.

:func:`collect` returns the rows of ``responses.jsonl`` (one per question: split, id, question,
aliases, every sampled response, every correct flag, accuracy, ability, and the greedy answer
with its correctness and mean token log-probability) and the per-split metrics; the collect step
(:mod:`know_thyself.steps.collect`) logs them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from know_thyself import data
from know_thyself.config import CollectConfig
from know_thyself.data.grading import is_correct, is_exact_match
from know_thyself.data.labels import ability_from_trials, labels_for
from know_thyself.data.prompts import answer_messages, render
from know_thyself.data.records import MAX_QUESTION_CHARS
from know_thyself.evaluation import plots
from know_thyself.inference.sampling import load_sampler, tqdm_progress

logger = logging.getLogger(__name__)

SPLITS = data.SPLITS
RESPONSES = "responses.jsonl"


def load_questions(dataset: str, num_samples: int, test_samples: int, seed: int) -> dict[str, list[dict]]:
    """The seeded train and validation question samples of a dataset.

    A size of 0 leaves that split empty (and its file unread): a collect run of validation
    questions only is the ground truth a registered judge is evaluated on. A single question
    file is one pool: both samples are drawn from it without overlap
    (:func:`know_thyself.data.questions.draw_disjoint`). A question longer than ``MAX_QUESTION_CHARS`` is
    refused: trivia questions are short, and a runaway one would blow up every batch it lands in.
    """
    sizes = {"train": num_samples, "validation": test_samples}
    file = data.single_file(dataset)
    if file is not None:
        chosen = data.draw_disjoint(data.load_split(dataset, "validation"), sizes, seed, str(file))
    else:
        loaded = {split: data.load_split(dataset, split) for split in SPLITS if sizes[split]}  # every file checked first
        chosen = {split: data.sample_questions(loaded[split], sizes[split], seed) if sizes[split] else [] for split in SPLITS}
    for split, records in chosen.items():
        for record in records:
            if len(record["question"]) > MAX_QUESTION_CHARS:
                raise data.DataError(
                    f"dataset {dataset!r}, {split} question {record['question_id']!r} is {len(record['question'])} "
                    f"characters long; the limit is {MAX_QUESTION_CHARS}: shorten or drop it"
                )
    return chosen


def grade_questions(
    questions: list[dict], responses: list[list[str]], split: str, scheme: str
) -> list[dict[str, Any]]:
    """Rows of ``responses.jsonl``: each question with its responses, flags, accuracy and ability."""
    rows = []
    for record, answers in zip(questions, responses, strict=True):
        aliases = record["answer"]["aliases"]
        flags = [is_correct(answer, aliases) for answer in answers]
        rows.append(
            {
                "split": split,
                "question_id": record["question_id"],
                "question": record["question"],
                "answer": record["answer"]["value"],
                "aliases": aliases,
                "responses": answers,
                "correct": flags,
                "accuracy": sum(flags) / len(flags),
                "ability": ability_from_trials(flags, scheme),
            }
        )
    return rows


def split_metrics(rows: list[dict], split: str, scheme: str) -> dict[str, float]:
    """QA accuracy (mean over trials, and greedy), and the ability distribution of one split."""
    counts = Counter(row["ability"] for row in rows)
    metrics = {
        f"{split}/qa_accuracy": sum(row["accuracy"] for row in rows) / len(rows),
        f"{split}/questions": float(len(rows)),
    }
    if all("greedy_correct" in row for row in rows):
        metrics[f"{split}/greedy_qa_accuracy"] = sum(row["greedy_correct"] for row in rows) / len(rows)
    if all("greedy_exact" in row for row in rows):
        metrics[f"{split}/greedy_qa_accuracy_strict"] = sum(row["greedy_exact"] for row in rows) / len(rows)
    for label in labels_for(scheme):
        metrics[f"{split}/ability/{label}"] = counts.get(label, 0) / len(rows)
    return metrics


def question_set_digest(questions: dict[str, list[dict]]) -> str:
    """A fingerprint of the sampled questions, to compare two runs by and to key the collect step's cache.

    It covers each whole validated record with its split: id, question, ``answer.value`` (the
    knowledge data's reference targets), ``answer.aliases`` (grading) and
    ``answer.normalized_aliases``, so a question file whose only change is an answer is collected
    again rather than answered from a run that holds the old one.
    """
    digest = hashlib.sha256()
    for split in SPLITS:
        for record in questions.get(split, []):
            line = [split, record]
            digest.update((json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n").encode())
    return digest.hexdigest()


@dataclass
class Collection:
    """What :func:`collect` measured: the ``responses.jsonl`` rows, the metrics, and tags for the run."""

    rows: list[dict]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)


def collect(cfg: CollectConfig, questions: dict[str, list[dict]] | None = None) -> Collection:
    """Sample, grade and label the questions; return the rows, the metrics and the run's tags.

    Questions are chosen with ``cfg.seed``; answers are sampled with ``cfg.answer_seed()`` (the
    seed plus the split's index in ``SPLITS``), so a split collected alone gets the same answers as
    when collected beside the other.

    Args:
        cfg: The validated collect options.
        questions: Pre-loaded question samples per split (loaded from ``cfg`` when omitted).
    """
    questions = questions or load_questions(cfg.dataset, cfg.num_samples, cfg.test_samples, cfg.seed)
    questions = {split: questions[split] for split in cfg.split_list()}
    seed = cfg.answer_seed()
    sampler = load_sampler(
        cfg.backend, cfg.model, dtype=cfg.dtype, batch_size=cfg.inference_batch_size, seed=seed,
        tensor_parallel_size=cfg.tensor_parallel_size,
    )
    tags = sampler.tags()
    rows: list[dict] = []
    metrics: dict[str, float] = {}
    total = sum(len(q) for q in questions.values())
    bar, progress = tqdm_progress(total, desc="collect")
    generated_tokens = 0
    started = time.perf_counter()
    try:
        for split, records in questions.items():
            offset = SPLITS.index(split)
            prompts = [render(sampler.tokenizer, answer_messages(q["question"])) for q in records]
            # The samples, and one greedy answer per question: the answer a judge's prediction
            # is checked against, and the knowledge test's greedy accuracy.
            answers = sampler.sample(
                prompts, cfg.num_trials, cfg.max_new_tokens, cfg.temperature, seed=seed + offset, progress=progress
            )
            generated_tokens += sum(answers.generated_tokens)
            split_rows = grade_questions(records, answers.samples, split, cfg.label_scheme)
            for row, answer, logprob in zip(split_rows, answers.greedy, answers.greedy_mean_logprob):
                correct = is_correct(answer, row["aliases"])
                # Strict beside containment: a hedge such as "London or Paris" is correct only by containment.
                exact = is_exact_match(answer, row["aliases"])
                row.update(greedy_response=answer, greedy_correct=correct, greedy_exact=exact,
                           greedy_mean_logprob=float(logprob))
            metrics.update(split_metrics(split_rows, split, cfg.label_scheme))
            rows.extend(split_rows)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    metrics["collect_seconds"] = elapsed
    metrics["samples_per_s"] = total * cfg.num_trials / elapsed
    metrics["generated_tokens_per_s"] = generated_tokens / elapsed
    return Collection(rows, metrics, tags)


def ability_figure(metrics: dict[str, float], scheme: str) -> Any:
    """The ability distribution of both splits, from :func:`collect`'s metrics."""
    labels = labels_for(scheme)
    train, validation = ({label: metrics[f"{split}/ability/{label}"] for label in labels} for split in SPLITS)
    return plots.distribution_figure(train, validation, labels, "ability distribution", names=SPLITS)


# Collect parameters two collects of the same questions, sampled alike, share.
SAMPLING_PARAMS = ("model", "dataset", "test_samples", "seed", "num_trials", "temperature", "max_new_tokens", "label_scheme")


def answer_seed_of(params: dict[str, str]) -> str:
    """The answer-sampling seed a collect run used, from its parameters (runs before ``sample_seed``: ``seed``)."""
    sample_seed = params.get("sample_seed", "-1")
    return params.get("seed", "") if sample_seed == "-1" else sample_seed


def collected_splits(params: dict[str, str]) -> tuple[str, ...]:
    """The splits a collect run sampled answers for, from its parameters (runs before ``splits``: both)."""
    return tuple(s.strip() for s in params.get("splits", ",".join(SPLITS)).split(","))


def check_reference_collect(params: dict[str, str], reference: dict[str, str]) -> None:
    """Refuse a reference collect that does not measure the label noise of the first one.

    It must have collected the same model on the same questions with the same settings, and
    sampled its answers with another seed (the same seed would repeat the same answers).

    Args:
        params: Parameters of the collect run being evaluated.
        reference: Parameters of the reference collect run.

    Raises:
        ValueError: naming the parameter that differs, or the shared answer seed.
    """
    for key in SAMPLING_PARAMS:
        if params.get(key) != reference.get(key):
            raise ValueError(
                f"the reference collect run differs in {key} ({reference.get(key)!r} vs {params.get(key)!r}); "
                "collect the reference with the same settings, changing only sample_seed"
            )
    if answer_seed_of(params) == answer_seed_of(reference):
        raise ValueError(
            f"the reference collect run sampled its answers with the same seed ({answer_seed_of(params)}), so its "
            "labels repeat the first run's; collect it again with another sample_seed"
        )
