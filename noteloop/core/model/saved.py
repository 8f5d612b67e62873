"""The ``noteloop.json`` beside a saved model's weights: which backend wrote it, in which
format version, with which config. Light (no torch): ``modeling`` reads it to pick the
backend that loads a folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from noteloop.core.errors import NoteloopError

META_FILE = "noteloop.json"


class FormatError(NoteloopError, ValueError):
    """A saved model folder this version cannot read."""


def read_meta(path: Path, backend: str, version: int) -> dict[str, Any]:
    """The metadata of the model saved in ``path``.

    Raises:
        FormatError: no metadata file, another backend's model, or another format version.
    """
    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise FormatError(f"{path}: no {META_FILE}, not a saved noteloop model")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("backend") != backend:
        raise FormatError(f"{path}: backend {meta.get('backend')!r} is not {backend!r}")
    if meta.get("format_version") != version:
        raise FormatError(
            f"{path}: format version {meta.get('format_version')!r}, this noteloop reads "
            f"{version}"
        )
    return meta
