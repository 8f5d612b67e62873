"""Device, thread budget and seeds: the process-wide torch settings, set in one place."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import random
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import torch

from noteloop.core.errors import NoteloopError


class DeviceUnavailableError(NoteloopError, RuntimeError):
    """A device was asked for that this machine does not have."""


def choose_device(pref: str = "auto") -> str:
    """``"cuda"`` when asked for or (``"auto"``) when available, else ``"cpu"``.

    Raises:
        DeviceUnavailableError: ``"cuda"`` was asked for and torch sees no CUDA device.
        ValueError: an unknown preference.
    """
    if pref not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {pref!r}")
    has_cuda = torch.cuda.is_available()
    if pref == "cuda" and not has_cuda:
        raise DeviceUnavailableError("device 'cuda' was asked for, but torch sees no CUDA device")
    if pref == "auto":
        return "cuda" if has_cuda else "cpu"
    return pref


@cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 matrix products in hardware (AMX or AVX512-BF16).

    Read from /proc/cpuinfo: where it cannot be read (not Linux), the answer is no, and
    "auto" precision stays float32: emulated bfloat16 is slower than float32.
    """
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return "amx_bf16" in flags or "avx512_bf16" in flags


def choose_precision(pref: str, device: str) -> str:
    """``"bf16"`` or ``"fp32"`` for ``device`` under the preference (see EncoderConfig).

    On a CPU with AMX, bfloat16 autocast runs MiniLM about 2.5x faster when predicting and
    1.5x when training (measured in bench/bench_encoder.py), at no measured cost in F1.
    """
    if pref not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {pref!r}")
    if pref != "auto":
        return pref
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager[object]:
    """Mixed precision for the forward pass when ``precision`` is bf16; else nothing.

    Weights and optimiser state stay float32; matrix products run in bfloat16, softmax,
    log-softmax and losses in float32 (torch's autocast lists).
    """
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=torch.bfloat16)


def apply_thread_budget(threads: int) -> int:
    """Caps torch's intra-op CPU threads (0 leaves torch's default); returns the count now.

    The worker shares a small machine with the app: on 2 cores, training with 2 threads
    while Streamlit renders is slower for both than an explicit budget.
    """
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def release_freed_memory() -> None:
    """Hands back to the system the memory a finished training round freed.

    glibc keeps freed heap blocks for reuse and returns them only on ``malloc_trim``:
    after a 50-note MACCROBAT round the process held 1,286 MB, and 785 MB once trimmed,
    while the worker went on to predict and wait for the next round. Does nothing where
    the C library is not glibc.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def seed_everything(seed: int) -> None:
    """Seeds Python, numpy and torch (CPU and CUDA) so a CPU run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def quiet_model_loading() -> None:
    """Silence what loading a model prints on every load: transformers' per-weight progress
    bar and peft's FutureWarning about a transformers API it still calls. The worker's log
    and the CLI show their own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )
