"""Shared fixtures: a temporary tracking store per test, a tiny randomly initialised model, a small dataset.

The tiers: ``tests/unit/<package>/`` (one folder per library package), ``tests/steps/`` (the steps
and entry points), ``tests/e2e/`` (whole pipelines, servers, launches, the embedded model: marked
``slow`` here, run by ``make test`` and skipped by ``make test-fast``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mlflow
import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e/ is slow: it runs a pipeline, a server, a launch or the embedded model."""
    for item in items:
        if E2E in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite tracking store with MLflow's tables and nothing else, created once per session.

    Creating the tables runs MLflow's migrations (seconds); each test copies the file instead.
    """
    folder = tmp_path_factory.mktemp("empty-store")
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> Path:
    """A fresh SQLite tracking store and artifact folder in a temporary working directory."""
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    from know_thyself.tracking import configure_tracking

    configure_tracking()
    yield tmp_path
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    """The embedded SmolLM2 checkpoint (its tokenizer and chat template serve the tiny model)."""
    from know_thyself.inference.models import embedded_checkpoint

    return embedded_checkpoint()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> str:
    """A 2-layer Llama with random weights and SmolLM2's tokenizer, saved as a local checkpoint."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    target = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return str(target)


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_dir: str):
    """The tiny model and its tokenizer in fp32, loaded once the way the pipeline loads models."""
    from know_thyself.inference.models import load_model

    return load_model(tiny_model_dir, dtype="float32", device="cpu")


@pytest.fixture
def tiny(tiny_loaded):
    """``(model, tokenizer)`` of the tiny model: a fresh copy for each test, which may change it freely
    (copying takes a tenth of the time loading the tokenizer does)."""
    import copy

    model, tokenizer = tiny_loaded
    return copy.deepcopy(model), copy.deepcopy(tokenizer)


@pytest.fixture
def trivia_dir(tmp_path: Path) -> Path:
    """A small dataset folder (train 12, validation 8 questions) in TriviaQA's schema."""
    from know_thyself.data.questions import write_jsonl

    capitals = [
        ("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
        ("Egypt", "Cairo"), ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Norway", "Oslo"),
        ("Chile", "Santiago"), ("Cuba", "Havana"), ("Greece", "Athens"), ("Poland", "Warsaw"),
        ("Austria", "Vienna"), ("Ireland", "Dublin"), ("Portugal", "Lisbon"), ("Hungary", "Budapest"),
        ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"), ("Belgium", "Brussels"),
    ]
    records = [
        {
            "question_id": f"cap-{i}",
            "question": f"What is the capital of {country}?",
            "answer": {"value": city, "aliases": [city]},
        }
        for i, (country, city) in enumerate(capitals)
    ]
    folder = tmp_path / "trivia"
    write_jsonl(records[:12], folder / "train.jsonl")
    write_jsonl(records[12:], folder / "validation.jsonl")
    return folder
