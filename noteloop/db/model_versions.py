"""Model versions: registering a trained (or imported) version, and its files.

A version is registered ``ready`` only once it is complete. The worker that trains a version
stores its files in the database (:func:`add_files`) in the same transaction that registers
it, so that every host can load it: a host without the version's folder reads them back
(:func:`files_of`) and writes them into its own models folder
(:func:`noteloop.usecases.modeling.version_folder`). Which version serves a project is
:mod:`noteloop.db.serving`'s.

The caller owns the transaction, as everywhere in ``db``; the writers start it with
``BEGIN IMMEDIATE`` when none is open yet (:func:`noteloop.db.engine.begin_write`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from noteloop.core.errors import NoteloopError
from noteloop.db import limits
from noteloop.db.engine import begin_write
from noteloop.db.errors import DuplicateError
from noteloop.db.models import ModelFile, ModelVersion, Project


def register_model_version(
    session: Session,
    project: Project,
    *,
    name: str,
    backend: str,
    path: str,
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    n_train_docs: int = 0,
    status: str = "ready",
) -> ModelVersion:
    """Record a model version. Register ``ready`` only once the adapter is complete on disk.

    Raises:
        DuplicateError: the project has a version of that name already.
    """
    limits.check_name("model version", name)
    begin_write(session)
    taken = select(ModelVersion.id).where(
        ModelVersion.project_id == project.id, ModelVersion.name == name
    )
    if session.scalar(taken) is not None:
        raise DuplicateError(f"project {project.name} has a model version named {name!r} already")
    version = ModelVersion(
        project_id=project.id,
        name=name,
        backend=backend,
        path=str(path),
        config=dict(config or {}),
        metrics=dict(metrics or {}),
        n_train_docs=n_train_docs,
        status=status,
    )
    session.add(version)
    session.flush()
    return version


# --------------------------------------------------------------------------- files


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
