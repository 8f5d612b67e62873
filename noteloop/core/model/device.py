"""Device, thread budget and seeds: the process-wide torch settings, set in one place."""

from __future__ import annotations

import random

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


def seed_everything(seed: int) -> None:
    """Seeds Python, numpy and torch (CPU and CUDA) so a CPU run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
