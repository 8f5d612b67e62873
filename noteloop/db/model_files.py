"""A published model version's files, kept in the database so that every host can load it.

The worker that trains a version stores its files in the same transaction that registers
it; a host without the version's folder reads them back and writes them into its own
models folder (:func:`noteloop.modeling.version_folder`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from noteloop.core.errors import NoteloopError
from noteloop.db.engine import begin_write
from noteloop.db.models import ModelFile


class ModelFileError(NoteloopError):
    """A model file read back from the database is not the one stored (size or digest)."""


def add_files(session: Session, model_version_id: int, files: Sequence[tuple[str, bytes]]) -> int:
    """Store ``files`` (relative '/'-separated path, content) of a version; returns how many."""
    begin_write(session)
    rows = [
        {
            "model_version_id": model_version_id,
            "path": path,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "data": data,
        }
        for path, data in files
    ]
    if rows:
        session.execute(insert(ModelFile), rows)
    return len(rows)


def has_files(session: Session, model_version_id: int) -> bool:
    query = select(ModelFile.id).where(ModelFile.model_version_id == model_version_id).limit(1)
    return session.scalar(query) is not None


def files_of(session: Session, model_version_id: int) -> list[tuple[str, bytes]]:
    """The version's files, each checked against the size and digest stored with it.

    Raises:
        ModelFileError: a file came back other than it was stored.
    """
    query = (
        select(ModelFile)
        .where(ModelFile.model_version_id == model_version_id)
        .order_by(ModelFile.path)
    )
    out = []
    for row in session.scalars(query):
        data = bytes(row.data)
        if len(data) != row.size or hashlib.sha256(data).hexdigest() != row.sha256:
            raise ModelFileError(
                f"model file {row.path} of model version {model_version_id} came back from the "
                f"database with {len(data)} bytes and another digest than it was stored with"
            )
        out.append((row.path, data))
    return out
