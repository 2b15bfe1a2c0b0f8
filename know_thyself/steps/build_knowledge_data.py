"""The build_knowledge_data step: QA SFT examples from a collect run's train questions.

Logs ``knowledge_data/train.jsonl``: every train question, or a seeded share of them
(``fraction``). With ``targets=own_words`` the model restates each reference
answer in its own sentence first (:func:`know_thyself.knowledge.restate_in_own_words`).
"""

from __future__ import annotations

import mlflow

from know_thyself.config import KnowledgeDataConfig
from know_thyself.evaluation.ability import RESPONSES
from know_thyself.inference.models import check_model_exists
from know_thyself.steps.collect import require_collect_run
from know_thyself.tracking import StepRun, describe_run, log_jsonl, read_jsonl_artifact, step_run
from know_thyself.tracking.datasets import log_questions
from know_thyself.training.knowledge_examples import DATA_FILE, build_qa_examples, choose_taught, restate_in_own_words


def run_build_knowledge_data(cfg: KnowledgeDataConfig, reuse: bool = True) -> StepRun:
    """Log ``knowledge_data/train.jsonl`` built from the collect run's train split."""
    upstream = require_collect_run(cfg.collect_run_id, "collect_run_id", needs=("train",))
    # The model that restates the answers: the one given, else the collect run's (which the
    # collect_run_id parameter already pins, so the cache key needs nothing more).
    restater = cfg.model or upstream.data.params.get("model", "")
    if cfg.targets == "own_words":
        check_model_exists(restater)
    with step_run(cfg.step, cfg.params(), reuse=reuse, requires=(DATA_FILE,)) as run:
        if not run.reused:
            train = [r for r in read_jsonl_artifact(upstream.info.run_id, RESPONSES) if r["split"] == "train"]
            log_questions(train, upstream.data.params.get("dataset", ""))
            rows = choose_taught(train, cfg.fraction, cfg.seed)
            examples = build_qa_examples(rows)
            how = "the reference answers"
            if cfg.targets == "own_words":
                from know_thyself.inference.sampling import load_sampler

                mlflow.log_param("restated_by", restater)
                replaced = restate_in_own_words(rows, examples, load_sampler("transformers", restater))
                mlflow.log_metric("train/own_words_targets", replaced)
                how = f"{replaced} answers restated in {restater}'s own words, the reference answer for the rest"
            log_jsonl(examples, DATA_FILE)
            mlflow.log_metrics({"train/examples": len(examples), "train/untaught_questions": len(train) - len(rows)})
            describe_run(f"Built {len(examples)} question-answer examples from {len(rows)} of the {len(train)} train "
                         f"questions of collect run {upstream.info.run_id}: {how}.")
    return run
