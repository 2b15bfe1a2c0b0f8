"""Shared command-line plumbing for the entry points: options generated from the step configs,
and errors turned into one clear line with a non-zero exit."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, get_type_hints

import click

from know_thyself.config import StepConfig

HELP: dict[str, str] = {
    "model": "Model: 'smollm2-135m-instruct' (embedded), a local checkpoint folder, models:/name/version, or a Hub id.",
    "dataset": "Questions: 'bundled', 'trivia_qa' (Hub, online), or a folder with train/validation .jsonl/.json/.parquet/.csv.",
    "num_samples": "Train questions to sample (seeded).",
    "test_samples": "Validation questions to sample (seeded).",
    "num_trials": "Answers sampled per question; the ability label comes from how many are correct.",
    "temperature": "Sampling temperature of the collected answers.",
    "max_new_tokens": "Longest answer, in tokens.",
    "inference_batch_size": "Questions per batch when sampling or judging.",
    "label_scheme": "'three' (can/uncertain/cannot) or 'binary' (can/cannot).",
    "backend": "Sampler: 'auto', 'transformers' (fast decode loop), 'plain' (model.generate) or 'vllm' (optional package).",
    "tensor_parallel_size": "GPUs to shard the model over (backend vllm).",
    "dtype": "Inference precision: 'auto' (bf16 where the hardware is fast at it), 'bfloat16', 'float16', 'float32'.",
    "seed": "Seed for question sampling, answer sampling and training.",
    "collect_run_id": "Run id of a finished collect run.",
    "adapter_run_id": "Run id of a finished train_judgment run whose adapter to evaluate ('' for the bare model).",
    "data_run_id": "Run id of a finished build_judgment_data run.",
    "balance": "Judgment training data: 'oversample' (rarer ability labels repeated up to the most common one's count) or 'none'.",
    "learning_rate": "LoRA learning rate.",
    "epochs": "Training epochs.",
    "batch_size": "Training batch size per device.",
    "lora_r": "LoRA rank.",
    "lora_alpha": "LoRA alpha (scaling).",
    "lora_dropout": "LoRA dropout.",
    "max_steps": "Stop training after this many optimiser steps (-1: train for all epochs).",
    "knowledge_epochs": "Epochs of knowledge (QA) training in Phase 2.",
    "phase": "Run phases up to this one (1, 2 or 3), reusing finished earlier steps; 0 runs all.",
    "collect_before_run_id": "Collect run of the model before knowledge training.",
    "collect_after_run_id": "Collect run of the model after knowledge training.",
}

_CLICK_TYPES = {int: click.INT, float: click.FLOAT, str: click.STRING, bool: click.BOOL}


def config_options(config_cls: type[StepConfig]) -> Callable:
    """Add one ``--option`` per field of ``config_cls``, with its type, default and help."""
    hints = get_type_hints(config_cls)

    def decorate(command: Callable) -> Callable:
        for field in reversed(fields(config_cls)):
            default = field.default if field.default is not MISSING else None
            command = click.option(
                f"--{field.name}",
                field.name,
                type=_CLICK_TYPES.get(hints[field.name], click.STRING),
                default=default,
                show_default=True,
                required=field.default is MISSING,
                help=HELP.get(field.name, ""),
            )(command)
        return command

    return decorate


def run_cli(body: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an entry point: set up logging and tracking; expected errors become one line and exit 1.

    Set ``KNOW_THYSELF_DEBUG=1`` to see the full traceback instead.
    """

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        if os.environ.get("KNOW_THYSELF_DEBUG") == "1":
            return body(*args, **kwargs)
        try:
            return body(*args, **kwargs)
        except (ValueError, OSError) as exc:  # ConnectionError is an OSError
            raise click.ClickException(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - MLflow and connection errors: one line, not a traceback
            name = exc.__class__.__name__
            if name in ("MlflowException", "RestException", "ConnectionError", "OperationalError", "DatabaseError"):
                from know_thyself.tracking import damaged_store_hint

                first = str(exc).strip().splitlines()[0] if str(exc).strip() else name
                raise click.ClickException(f"tracking store error: {first}{damaged_store_hint(first)}") from None
            raise

    return wrapper


def echo_ids(ids: dict[str, str]) -> None:
    """Print step -> run id lines, for chaining steps by hand (main process only)."""
    from know_thyself.tracking import is_main_process

    if not is_main_process():
        return
    for step, run_id in ids.items():
        click.echo(f"{step}: {run_id}")
    sys.stdout.flush()
