"""Other libraries' internals behind one door (know_thyself/internals.py): every attribute it relies on
exists on the installed versions, each touch works on real objects, and no other module reaches into a
library's private attributes.

A failure here after an upgrade names the attribute that moved and what stops working without it;
without this test the speed-ups built on them would turn themselves off silently (or fail deep in a run).
"""

from __future__ import annotations

import ast
from types import SimpleNamespace

import pytest
import torch
from helpers import ROOT

from know_thyself import internals
from know_thyself.internals import RELIED_ON, Internal

PACKAGE = ROOT / "know_thyself"
DOOR = PACKAGE / "internals.py"


@pytest.mark.parametrize("internal", RELIED_ON, ids=lambda internal: internal.name)
def test_each_relied_on_internal_exists_on_the_installed_libraries(internal):
    problem = internal.problem()
    assert problem is None, problem


def test_a_missing_or_changed_internal_is_reported_by_name():
    gone = Internal("json", "JSONDecoder.no_such_method", "nothing works").problem()
    assert gone == "json.JSONDecoder.no_such_method: 'no_such_method' is gone (renamed or removed by an upgrade?); nothing works"
    changed = Internal("json", "dumps", "nothing works", check=lambda f: False).problem()
    assert changed == "json.dumps: no longer behaves as relied on; nothing works"
    assert "cannot import no_such_module" in Internal("no_such_module", "x", "").problem()
    assert internals.problems() == []


def test_an_upgrade_that_drops_trl_s_function_fails_by_name_and_training_goes_on_without_it(monkeypatch, caplog):
    from trl.trainer import utils as trl_utils

    [relied_on] = [internal for internal in RELIED_ON if internal.path == "_use_triton"]
    assert relied_on.check(None)  # the fused head reads the name as a global of trl.trainer.utils
    assert not internals._reads_global("trl.trainer.utils", "no_such_global")(None)
    monkeypatch.delattr(trl_utils, "_use_triton")
    assert relied_on.problem().startswith("trl.trainer.utils._use_triton: '_use_triton' is gone")
    with internals.trl_head_on_labelled_positions() as patched:
        assert not patched
    assert "trl.trainer.utils._use_triton is gone" in caplog.text
    assert not hasattr(trl_utils, "_use_triton")


def test_trl_s_head_is_told_to_keep_the_labelled_positions_inside_the_block_only():
    from trl.trainer import utils as trl_utils

    original = trl_utils._use_triton
    with internals.trl_head_on_labelled_positions() as patched:
        assert patched and trl_utils._use_triton(torch.device("cpu")) is True
    assert trl_utils._use_triton is original


def test_the_trainer_keeps_the_extra_columns():
    class Base:
        def _set_signature_columns_if_needed(self):
            self._signature_columns = ["input_ids", "labels"]

    keeping = internals.trainer_keeping_columns(Base)
    plain, extended = keeping(), type("Extended", (keeping,), {"extra_columns": ("target", "weight")})()
    plain._set_signature_columns_if_needed()
    extended._set_signature_columns_if_needed()
    assert plain._signature_columns == ["input_ids", "labels"]
    assert extended._signature_columns == ["input_ids", "labels", "target", "weight"]


def _config():
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=16, hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2,
                       num_key_value_heads=1)


def test_a_cache_is_filled_from_and_read_back_as_keys_and_values():
    config = _config()
    kv = [(torch.randn(2, 1, 3, 4), torch.randn(2, 1, 3, 4)) for _ in range(config.num_hidden_layers)]
    cache = internals.new_cache(config, kv)
    assert internals.is_plain_dynamic_cache(cache)
    for (keys, values), (want_keys, want_values) in zip(internals.cache_keys_values(cache), kv):
        assert torch.equal(keys, want_keys) and torch.equal(values, want_values)
        assert keys.data_ptr() != want_keys.data_ptr()  # copied, not aliased
    assert not internals.is_plain_dynamic_cache(internals.new_cache(config))  # nothing in it yet
    assert not internals.is_plain_dynamic_cache(None)


def test_the_attention_implementation_is_switched_inside_the_block_only():
    from know_thyself.inference.cascade import CASCADE_ATTENTION, cascade_attention_on

    model = SimpleNamespace(config=_config())
    before = model.config._attn_implementation
    with cascade_attention_on(model):
        assert model.config._attn_implementation == CASCADE_ATTENTION
    assert model.config._attn_implementation == before


def _private_touches(path):
    """``line: code`` of each private attribute of another object read or written in ``path``, and each
    private name imported from outside the package."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith("know_thyself"):
            found += [f"{node.lineno}: from {node.module} import {alias.name}" for alias in node.names
                      if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


def test_no_other_module_touches_another_object_s_private_attributes():
    touches = {str(path.relative_to(ROOT)): _private_touches(path) for path in sorted(PACKAGE.rglob("*.py"))
               if path != DOOR and "__pycache__" not in path.parts}
    assert {path: found for path, found in touches.items() if found} == {}, (
        "private attributes of other libraries are touched only in know_thyself/internals.py (with an entry in RELIED_ON)"
    )
    assert _private_touches(DOOR)  # the scan does see them where they are
