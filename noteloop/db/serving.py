"""Which model version serves a project: the one lookup and the one writer.

The serving version is the row ``serving_models`` names, not the newest one: a version
trained later may be worse, and then it waits as a candidate (its ``verdict`` says why)
until a lead serves it. Everything that predicts or shows suggestions (the worker, the
CLI, the app) reads it here, so they agree; :func:`use_version` is the only function that
changes it, whoever calls it (the publish rule in :mod:`noteloop.usecases.modeling`, a lead on the
Model page, ``noteloop model use``), and it writes the audit row.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from noteloop.core.errors import NotFoundError
from noteloop.db import audit, jobs, projects
from noteloop.db.engine import begin_write
from noteloop.db.errors import StoreError
from noteloop.db.models import ModelVersion, Project, ServingModel, TrainingJob, utcnow

# Version names an unknown-name error lists; a project trains a few rounds a day at most.
LISTED_NAMES = 20


def serving_version(session: Session, project: Project) -> ModelVersion | None:
    """The model version the project serves (``serving_models`` names it); None when none."""
    query = (
        select(ModelVersion)
        .join(ServingModel, ServingModel.model_version_id == ModelVersion.id)
        .where(ServingModel.project_id == project.id)
    )
    return session.scalar(query)


def lock(session: Session, project: Project) -> None:
    """Hold the project's serving choice until the transaction ends: the write lock, and
    on PostgreSQL a lock on the project's row (the serving row may not exist yet to be
    locked). Take it before reading the serving version to decide on it."""
    begin_write(session)
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update())


def use_version(
    session: Session, project: Project, version_name: str, by: str, reason: str
) -> ModelVersion:
    """Serve ``version_name`` for ``project`` from now on; writes the audit row.

    Atomic on every database: the write lock is taken first (on PostgreSQL, a lock on
    the project's row, so two choices made at the same moment run one after the other and
    each audit row names the version the other left), and the project's one
    ``serving_models`` row is upserted (``INSERT ... ON CONFLICT``). The caller commits.

    Raises:
        NotFoundError: the project has no version of that name (the error lists them).
        StoreError: the version is not ready, or holds imported suggestions (no model).
    """
    lock(session, project)
    version = servable_version(session, project, version_name)
    current = serving_version(session, project)
    before = None if current is None else current.name
    _upsert(session, project, version, by, reason)
    audit.record_audit(
        session,
        by,
        "use_model_version",
        "serving_models",
        project.id,
        before={"version": before},
        after={"version": version.name, "reason": reason},
    )
    session.flush()
    return version


def servable_version(session: Session, project: Project, version_name: str) -> ModelVersion:
    """The project's version ``version_name``, if a model can serve from it.

    Raises:
        NotFoundError: no version of that name, with the project's version names.
        StoreError: the version is not ready, or is an imported suggestion batch.
    """
    version = session.scalar(
        select(ModelVersion).where(
            ModelVersion.project_id == project.id, ModelVersion.name == version_name
        )
    )
    if version is None:
        raise NotFoundError(_unknown(session, project, version_name))
    if version.backend == "import":
        raise StoreError(
            f"model version {version_name} holds imported suggestions, not a trained model: "
            "nothing can predict with it"
        )
    if version.status != "ready":
        raise StoreError(
            f"model version {version_name} is {version.status}, not ready: only a version "
            "stored completely can serve"
        )
    return version


def _unknown(session: Session, project: Project, version_name: str) -> str:
    names = list(
        session.scalars(
            select(ModelVersion.name)
            .where(ModelVersion.project_id == project.id)
            .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
            .limit(LISTED_NAMES + 1)
        )
    )
    if not names:
        return f"project {project.name} has no model version {version_name!r}: it has none yet"
    more = ", ..." if len(names) > LISTED_NAMES else ""
    known = ", ".join(names[:LISTED_NAMES]) + more
    return f"project {project.name} has no model version {version_name!r}; its versions: {known}"


def _upsert(
    session: Session, project: Project, version: ModelVersion, by: str, reason: str
) -> None:
    values = {
        "project_id": project.id,
        "model_version_id": version.id,
        "chosen_by": by,
        "chosen_at": utcnow(),
        "reason": reason,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    else:  # no upsert in SQLAlchemy's terms: the project's lock taken above orders writers
        session.merge(ServingModel(**values))
        return
    statement = insert(ServingModel).values(**values)
    changed = {k: statement.excluded[k] for k in values if k != "project_id"}
    session.execute(statement.on_conflict_do_update(index_elements=["project_id"], set_=changed))


def choose_version(
    session: Session, project_name: str, version_name: str, by: str, reason: str = ""
) -> tuple[ModelVersion, TrainingJob, bool]:
    """A lead serves a version (Model page, ``noteloop model use``) and the pool follows.

    Serves it (:func:`use_version`) and queues a ``predict`` job: the worker suggests,
    with the serving version, every pool note that lacks its suggestions, and re-ranks
    the queue with it. Returns the version, the job and whether the job is new (a
    ``predict`` job already queued does the same work).

    Raises:
        NotFoundError, StoreError: as :func:`use_version`; nothing is written then.
    """
    begin_write(session)
    project = projects.get_project(session, project_name)
    version = use_version(session, project, version_name, by, reason)
    job, created = jobs.enqueue(
        session, project, kind="predict", reason=f"{by} chose {version.name}"[:200]
    )
    return version, job, created
