"""Other libraries' internals, behind one door: every place this package reads or writes an attribute
that a library does not document as its API.

The speed-ups of training and sampling go where TRL's and transformers' options do not reach: they
patch a private function of TRL, switch a model's private attention setting, read and fill the
layers of transformers' KV cache, and hook a private method of the Trainer; the tracking layer
converts a dataset with a private method of MLflow. Each such touch is a function here, and
:data:`RELIED_ON` names every attribute they rely on, with the code that relies on it.
``tests/unit/test_internals.py`` checks each one on the installed versions, so an upgrade that
removes or renames one fails a test naming it instead of a speed-up silently turning itself off.

This module sits below every layer (it imports none of the package) and imports each library only
inside the function that needs it.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# TRL: the fused LM head scores only the labelled positions (training/speedups.py)
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def trl_head_on_labelled_positions() -> Iterator[bool]:
    """Inside the block, TRL's fused LM head projects only the positions whose next token is trained on.

    TRL's fused forward (``trl.trainer.utils.add_fused_lm_head``) keeps only the labelled positions
    where ``trl.trainer.utils._use_triton(device)`` says True (CUDA, XPU); the name only decides
    that, so it is made to say True for the block. Yields whether it did (False, with a warning,
    when this TRL has no such function).
    """
    from trl.trainer import utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        logger.warning("trl.trainer.utils._use_triton is gone (TRL upgraded?): the LM head scores every position")
        yield False
        return
    trl_utils._use_triton = lambda device: True
    try:
        yield True
    finally:
        trl_utils._use_triton = original


# --------------------------------------------------------------------------------------------
# transformers' Trainer: dataset columns kept beside those the model's forward takes (training/lora.py)
# --------------------------------------------------------------------------------------------


def trainer_keeping_columns(trainer_class: type) -> type:
    """A subclass of the transformers Trainer class ``trainer_class`` that keeps the columns ``extra_columns`` names.

    The Trainer drops every dataset column its model's forward does not take (the signature
    columns it finds in ``_set_signature_columns_if_needed`` and stores in ``_signature_columns``);
    a loss that reads more per-example columns sets the subclass's ``extra_columns`` to keep them.
    """

    class KeepingColumns(trainer_class):
        extra_columns: tuple[str, ...] = ()

        def _set_signature_columns_if_needed(self) -> None:
            super()._set_signature_columns_if_needed()
            if self.extra_columns:
                self._signature_columns = [*self._signature_columns, *self.extra_columns]

    return KeepingColumns


# --------------------------------------------------------------------------------------------
# transformers' attention functions (inference/cascade.py)
# --------------------------------------------------------------------------------------------


def register_attention(name: str, function: Callable[..., Any]) -> None:
    """Register ``function`` as transformers attention ``name``, with SDPA's masks."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(name, function)
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, sdpa_mask)


def sdpa_attention(*args: Any, **kwargs: Any) -> Any:
    """transformers' own SDPA attention function (``sdpa_attention_forward``), called with these arguments."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(*args, **kwargs)


@contextlib.contextmanager
def attention_implementation(model: Any, name: str) -> Iterator[None]:
    """Run ``model`` with the registered attention function ``name`` inside the block; its own after.

    The attention layers read ``config._attn_implementation`` on every forward; it is set and restored.
    """
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = name
    try:
        yield
    finally:
        config._attn_implementation = before


# --------------------------------------------------------------------------------------------
# transformers' KV cache layers (inference/prefix_cache.py, training/speedups.py)
# --------------------------------------------------------------------------------------------


def is_plain_dynamic_cache(cache: Any) -> bool:
    """Whether ``cache`` holds one filled plain ``DynamicLayer`` per layer (not sliding-window or otherwise special)."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer and layer.is_initialized for layer in layers)


def cache_keys_values(cache: Any) -> list[tuple[Any, Any]]:
    """Each layer's ``(keys, values)`` tensors of a transformers ``DynamicCache``."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def new_cache(config: Any, keys_values: Sequence[tuple[Any, Any]] = ()) -> Any:
    """A fresh ``DynamicCache`` for a model of ``config``, its first layers filled with ``keys_values``.

    ``update`` concatenates onto an empty tensor, so the tensors are copied, not aliased.
    """
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    for layer, (keys, values) in zip(cache.layers, keys_values):
        layer.update(keys, values)
    return cache


# --------------------------------------------------------------------------------------------
# MLflow: a dataset as a run input (tracking/datasets.py)
# --------------------------------------------------------------------------------------------


def dataset_entity(data: Any) -> Any:
    """The ``mlflow.entities.Dataset`` of an ``mlflow.data`` dataset, for ``MlflowClient.log_inputs``."""
    return data._to_mlflow_entity()


# --------------------------------------------------------------------------------------------
# What the functions above rely on, checked by tests/unit/test_internals.py
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Internal:
    """One attribute of another library that code here relies on.

    Attributes:
        module: The module to import.
        path: The dotted attribute path inside it (``Class.attribute``).
        used_by: What stops working without it.
        check: Beyond the attribute's existence, a function of it that is true when it still
            behaves as relied on (e.g. it is still read where patching it has an effect).
    """

    module: str
    path: str
    used_by: str
    check: Callable[[Any], bool] | None = None

    @property
    def name(self) -> str:
        return f"{self.module}.{self.path}"

    def problem(self) -> str | None:
        """Why the installed library no longer offers this (None when it does)."""
        try:
            target: Any = importlib.import_module(self.module)
        except ImportError as error:
            return f"{self.name}: cannot import {self.module} ({error}); {self.used_by}"
        for part in self.path.split("."):
            if not hasattr(target, part):
                return f"{self.name}: {part!r} is gone (renamed or removed by an upgrade?); {self.used_by}"
            target = getattr(target, part)
        if self.check is not None and not self.check(target):
            return f"{self.name}: no longer behaves as relied on; {self.used_by}"
        return None


def _reads_global(module_name: str, name: str) -> Callable[[Any], bool]:
    """A check: a function of ``module_name`` reads ``name`` as a global (patching the module's attribute reaches it)."""

    def reads(_: Any) -> bool:
        module = importlib.import_module(module_name)

        def codes(code: Any) -> Iterator[Any]:
            yield code
            for const in code.co_consts:
                if inspect.iscode(const):
                    yield from codes(const)

        functions = []
        for value in vars(module).values():
            if inspect.isfunction(value) and value.__module__ == module_name:
                functions.append(value)
            elif inspect.isclass(value) and value.__module__ == module_name:
                functions += [getattr(f, "__func__", f) for f in vars(value).values()]
        return any(name in code.co_names for f in functions if inspect.isfunction(f) for code in codes(f.__code__))

    return reads


def _source_mentions(*words: str) -> Callable[[Any], bool]:
    """A check: the function's source code mentions each of ``words``."""

    def mentions(function: Any) -> bool:
        source = inspect.getsource(function)
        return all(word in source for word in words)

    return mentions


RELIED_ON: tuple[Internal, ...] = (
    Internal("trl.trainer.utils", "_use_triton",
             "training scores every position with the LM head (speedups.label_positions_only does nothing)",
             _reads_global("trl.trainer.utils", "_use_triton")),
    Internal("transformers", "Trainer._set_signature_columns_if_needed",
             "the judge's label loss loses its target and weight columns (training/lora.py)",
             _source_mentions("self._signature_columns")),
    Internal("transformers", "Trainer._remove_unused_columns",
             "the judge's label loss loses its target and weight columns (training/lora.py)",
             _source_mentions("self._signature_columns")),
    Internal("transformers", "PretrainedConfig._attn_implementation",
             "cascade attention cannot be switched on (inference/cascade.py)"),
    Internal("transformers.models.llama.modeling_llama", "LlamaAttention.forward",
             "cascade attention is never called: the attention layer no longer reads config._attn_implementation",
             _source_mentions("_attn_implementation")),
    Internal("transformers", "AttentionInterface.register", "cascade attention cannot be registered"),
    Internal("transformers.masking_utils", "ALL_MASK_ATTENTION_FUNCTIONS.register", "cascade attention gets no masks"),
    Internal("transformers.masking_utils", "sdpa_mask", "cascade attention gets no masks"),
    Internal("transformers.integrations.sdpa_attention", "sdpa_attention_forward",
             "cascade attention without a shared prefix has no SDPA to fall back on"),
    Internal("transformers.cache_utils", "Cache.__init__",
             "no shared-prefix cache (the cache's layers are no longer its .layers): every batch prefills the "
             "whole prompt (inference/prefix_cache.py)", _source_mentions("self.layers")),
    Internal("transformers.cache_utils", "DynamicLayer",
             "no shared-prefix cache: every batch prefills the whole prompt (inference/prefix_cache.py)"),
    Internal("transformers.cache_utils", "DynamicLayer.update",
             "the shared prefix cannot be copied into a batch's cache (inference/prefix_cache.py)"),
    Internal("transformers.cache_utils", "DynamicLayer.lazy_initialization",
             "the cache layers' keys, values and is_initialized are no longer set where they are read",
             _source_mentions("self.keys", "self.values", "self.is_initialized")),
    Internal("mlflow.data.dataset", "Dataset._to_mlflow_entity",
             "question sets cannot be logged on another run (tracking/datasets.py)"),
)


def problems() -> list[str]:
    """One line per relied-on attribute the installed libraries no longer offer (none: ``[]``)."""
    return [problem for internal in RELIED_ON if (problem := internal.problem()) is not None]
