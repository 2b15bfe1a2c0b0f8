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

from know_thyself import data, plots
from know_thyself.config import CollectConfig
from know_thyself.grading import is_correct
from know_thyself.labels import ability_from_trials, labels_for
from know_thyself.models import checkpoint_path, load_model, load_tokenizer
from know_thyself.prompts import answer_messages, render
from know_thyself.sampling import sample_answers, tqdm_progress
from know_thyself.scores import GreedyAnswers, greedy_answers

logger = logging.getLogger(__name__)

SPLITS = data.SPLITS
RESPONSES = "responses.jsonl"


def choose_backend(backend: str) -> str:
    """Resolve ``auto`` to the measured-fastest backend for this machine (see README)."""
    return "transformers" if backend == "auto" else backend


MAX_QUESTION_CHARS = 1000


def load_questions(dataset: str, num_samples: int, test_samples: int, seed: int) -> dict[str, list[dict]]:
    """The seeded train and validation question samples of a dataset.

    A question longer than ``MAX_QUESTION_CHARS`` is refused: trivia questions are short, and a
    runaway one would blow up every batch it lands in.
    """
    sizes = {"train": num_samples, "validation": test_samples}
    loaded = {split: data.load_split(dataset, split) for split in SPLITS}  # every file checked first
    chosen = {split: data.sample_questions(loaded[split], sizes[split], seed) for split in SPLITS}
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
    for label in labels_for(scheme):
        metrics[f"{split}/ability/{label}"] = counts.get(label, 0) / len(rows)
    return metrics


def question_set_digest(questions: dict[str, list[dict]]) -> str:
    """A fingerprint of the sampled questions (split, id, text and aliases of each), to compare two runs by."""
    digest = hashlib.sha256()
    for split in SPLITS:
        for record in questions[split]:
            line = [split, record["question_id"], record["question"], record["answer"]["aliases"]]
            digest.update((json.dumps(line, ensure_ascii=False) + "\n").encode())
    return digest.hexdigest()


@dataclass
class Collection:
    """What :func:`collect` measured: the ``responses.jsonl`` rows, the metrics, and tags for the run."""

    rows: list[dict]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)


def collect(cfg: CollectConfig, questions: dict[str, list[dict]] | None = None) -> Collection:
    """Sample, grade and label the questions; return the rows, the metrics and the run's tags.

    Args:
        cfg: The validated collect options.
        questions: Pre-loaded question samples per split (loaded from ``cfg`` when omitted).
    """
    questions = questions or load_questions(cfg.dataset, cfg.num_samples, cfg.test_samples, cfg.seed)
    backend = choose_backend(cfg.backend)
    engine = model = None
    if backend == "vllm":
        from know_thyself.vllm_backend import VllmSampler

        tokenizer = load_tokenizer(cfg.model)
        engine = VllmSampler(checkpoint_path(cfg.model), seed=cfg.seed, tensor_parallel_size=cfg.tensor_parallel_size)
        tags = {"know_thyself.backend": backend}
    else:
        model, tokenizer = load_model(cfg.model, dtype=cfg.dtype)
        tags = {"know_thyself.backend": backend, "know_thyself.dtype_used": str(model.dtype).replace("torch.", "")}
    rows: list[dict] = []
    metrics: dict[str, float] = {}
    total = sum(len(q) for q in questions.values())
    bar, progress = tqdm_progress(total, desc="collect")
    counts: dict[str, int] = {}
    started = time.perf_counter()
    try:
        for offset, split in enumerate(SPLITS):
            records = questions[split]
            aliases = [q["answer"]["aliases"] for q in records]
            prompts = [render(tokenizer, answer_messages(q["question"])) for q in records]
            # One greedy answer per question too: the answer a judge's prediction is checked
            # against, and the knowledge test's greedy accuracy.
            if engine is not None:
                responses, _ = engine.sample(prompts, cfg.num_trials, cfg.max_new_tokens, cfg.temperature)
                progress(len(prompts), len(prompts) * cfg.num_trials)
                texts, logprobs = engine.sample(prompts, 1, cfg.max_new_tokens, 0.0)
                greedy = GreedyAnswers([t[0] for t in texts], [is_correct(t[0], a) for t, a in zip(texts, aliases)], logprobs)
            else:
                responses = sample_answers(
                    model,
                    tokenizer,
                    prompts,
                    num_samples=cfg.num_trials,
                    max_new_tokens=cfg.max_new_tokens,
                    temperature=cfg.temperature,
                    batch_size=cfg.inference_batch_size,
                    seed=cfg.seed + offset,
                    backend=backend,
                    progress=progress,
                    stats=counts,
                )
                greedy = greedy_answers(
                    model, tokenizer, [q["question"] for q in records], aliases, cfg.max_new_tokens, cfg.inference_batch_size
                )
            split_rows = grade_questions(records, responses, split, cfg.label_scheme)
            for row, answer, correct, logprob in zip(split_rows, greedy.answers, greedy.correct, greedy.mean_logprob):
                row.update(greedy_response=answer, greedy_correct=correct, greedy_mean_logprob=float(logprob))
            metrics.update(split_metrics(split_rows, split, cfg.label_scheme))
            rows.extend(split_rows)
    finally:
        bar.close()
    elapsed = time.perf_counter() - started
    metrics["collect_seconds"] = elapsed
    metrics["samples_per_s"] = total * cfg.num_trials / elapsed
    if "generated_tokens" in counts:
        metrics["generated_tokens_per_s"] = counts["generated_tokens"] / elapsed
    return Collection(rows, metrics, tags)


def ability_figure(metrics: dict[str, float], scheme: str) -> Any:
    """The ability distribution of both splits, from :func:`collect`'s metrics."""
    labels = labels_for(scheme)
    train, validation = ({label: metrics[f"{split}/ability/{label}"] for label in labels} for split in SPLITS)
    return plots.distribution_figure(train, validation, labels, "ability distribution", names=SPLITS)
