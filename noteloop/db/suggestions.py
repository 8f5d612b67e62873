"""Suggestions: what a model version (or an imported batch) proposes for a note, kept apart
from gold, and each annotator's decisions on them.

- :func:`add_suggestions` stores one version's batch for a note (checked against it);
  :func:`add_checked_suggestions` is the worker's writer for a few notes at once.
- :func:`suggestions_for` reads the batch a note shows (:func:`shown_batch`), open or all.
- How an annotator treated each suggestion is theirs alone
  (:class:`~noteloop.db.models.SuggestionDecision`, :func:`record_decisions`): on a note two
  people annotate, the second one's decisions never replace the first one's.

The caller owns the transaction, as everywhere in ``db``; the writers start it with
``BEGIN IMMEDIATE`` when none is open yet (:func:`noteloop.db.engine.begin_write`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from noteloop.core.errors import NotFoundError
from noteloop.core.schema import Relation, Span, Suggestion
from noteloop.db import convert, documents, limits, models
from noteloop.db.engine import begin_write
from noteloop.db.errors import DuplicateError, StoreError
from noteloop.db.models import ModelVersion, SuggestionDecision, utcnow

DECISIONS = frozenset(models.DECISIONS)

# --------------------------------------------------------------------------- writers


def add_suggestions(
    session: Session, document_id: int, model_version_id: int, suggestions: Iterable[Suggestion]
) -> int:
    """Store one model version's suggestions for a document; returns how many.

    Relation suggestions name span suggestions of the same batch as head and tail.

    Raises:
        DuplicateError: that model version has suggestions for the document already.
        StoreError: the model version belongs to another project.
        InvalidSpanError, InvalidRelationError: offsets beyond the text, unknown heads/tails.
    """
    items = list(suggestions)
    begin_write(session)
    doc_row = documents.get_document(session, document_id)
    version = _model_version(session, model_version_id)
    _check_suggestion_batch(session, doc_row, version, items)
    spans = [s for s in items if isinstance(s.item, Span)]
    relations = [s for s in items if not isinstance(s.item, Span)]
    if spans:
        values = [convert.suggestion_values(s, doc_row.id, version.id, {}) for s in spans]
        session.execute(insert(models.Suggestion), values)
    if relations:
        ids = _suggestion_ids(session, doc_row.id, version.id)
        values = [convert.suggestion_values(s, doc_row.id, version.id, ids) for s in relations]
        session.execute(insert(models.Suggestion), values)
    return len(items)


def add_checked_suggestions(
    session: Session, model_version_id: int, batches: Sequence[tuple[int, Sequence[Suggestion]]]
) -> int:
    """Store one model version's suggestions for a few documents, skipping the documents
    that have that version's suggestions already; returns how many were stored.

    The worker's writer. It runs while SQLite's write lock is held, which every annotator's
    save waits for, so it only writes: the caller built each batch against its document
    (``Document.with_annotations``) of the version's project, outside the transaction.
    Three statements whatever the number of notes: the check, the spans (one executemany)
    and, after one read of the new spans' ids, the relations.
    """
    begin_write(session)
    rows = [row for row, _ in batches]
    have = suggested_by(session, model_version_id, rows)
    todo = [(row, items) for row, items in batches if row not in have and items]
    spans = [
        convert.suggestion_values(s, row, model_version_id, {})
        for row, items in todo
        for s in items
        if isinstance(s.item, Span)
    ]
    if spans:
        session.execute(insert(models.Suggestion), spans)
    relations = [(row, s) for row, items in todo for s in items if not isinstance(s.item, Span)]
    if relations:
        ids = _span_ids_by_document(session, model_version_id, {row for row, _ in relations})
        values = [
            convert.suggestion_values(s, row, model_version_id, ids[row]) for row, s in relations
        ]
        session.execute(insert(models.Suggestion), values)
    return len(spans) + len(relations)


def _span_ids_by_document(
    session: Session, model_version_id: int, rows: set[int]
) -> dict[int, dict[str, int]]:
    query = select(
        models.Suggestion.document_id, models.Suggestion.key, models.Suggestion.id
    ).where(
        models.Suggestion.model_version_id == model_version_id,
        models.Suggestion.document_id.in_(rows),
        models.Suggestion.kind == "span",
    )
    out: dict[int, dict[str, int]] = {row: {} for row in rows}
    for row, key, suggestion_id in session.execute(query):
        out[row][key] = suggestion_id
    return out


def _model_version(session: Session, model_version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, model_version_id)
    if version is None:
        raise NotFoundError(f"no model version with id {model_version_id}")
    return version


def _check_suggestion_batch(
    session: Session, doc_row: models.Document, version: ModelVersion, items: list[Suggestion]
) -> None:
    if version.project_id != doc_row.project_id:
        raise StoreError(
            f"model version {version.name} belongs to another project than document "
            f"{doc_row.external_id}"
        )
    # Building a Document checks offsets against the text, unique ids and relation ends.
    convert.document_from_row(doc_row).with_annotations(
        [s.item for s in items if isinstance(s.item, Span)],
        [s.item for s in items if isinstance(s.item, Relation)],
    )
    exists = select(models.Suggestion.id).where(
        models.Suggestion.document_id == doc_row.id,
        models.Suggestion.model_version_id == version.id,
    )
    if session.scalar(exists.limit(1)) is not None:
        raise DuplicateError(
            f"model version {version.name} has suggestions for document "
            f"{doc_row.external_id} already"
        )


def _suggestion_ids(session: Session, document_id: int, model_version_id: int) -> dict[str, int]:
    query = select(models.Suggestion.key, models.Suggestion.id).where(
        models.Suggestion.document_id == document_id,
        models.Suggestion.model_version_id == model_version_id,
    )
    return dict(session.execute(query).all())


# --------------------------------------------------------------------------- readers


def suggested_by(session: Session, model_version_id: int, document_ids: Iterable[int]) -> set[int]:
    """Which of ``document_ids`` have suggestions from the model version already."""
    query = (
        select(models.Suggestion.document_id)
        .where(
            models.Suggestion.model_version_id == model_version_id,
            models.Suggestion.document_id.in_(list(document_ids)),
        )
        .distinct()
    )
    return set(session.scalars(query))


def suggestions_for(
    session: Session,
    document_id: int,
    model_version_id: int | None = None,
    *,
    open_for: str | None = None,
) -> list[Suggestion]:
    """A document's suggestions from one batch: ``model_version_id``'s, by default the
    batch annotators are shown (:func:`shown_batch`).

    ``open_for`` (an annotator) leaves out the ones that annotator decided already; each
    annotator's decisions are their own. Span items carry their row id as ``suggestion_id``.
    """
    if model_version_id is None:
        model_version_id = shown_batch(session, document_id)
        if model_version_id is None:
            return []
    query = (
        select(models.Suggestion)
        .where(
            models.Suggestion.document_id == document_id,
            models.Suggestion.model_version_id == model_version_id,
        )
        .order_by(models.Suggestion.id)
    )
    rows = list(session.scalars(query))
    keys = {r.id: r.key for r in rows}
    decided = _decided_by(session, document_id, open_for) if open_for else set()
    return [convert.suggestion_from_row(r, keys) for r in rows if r.id not in decided]


def batches(
    session: Session, pairs: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], list[Suggestion]]:
    """(document id, model version id) -> that version's whole batch for the note, for
    many notes at once (a few queries instead of one per note); a pair with no
    suggestion maps to an empty list."""
    wanted = set(pairs)
    rows_by: dict[tuple[int, int], list[models.Suggestion]] = {pair: [] for pair in wanted}
    docs = sorted({d for d, _ in wanted})
    versions = sorted({v for _, v in wanted})
    for i in range(0, len(docs), 500):  # SQLite's bound-parameter limit
        query = (
            select(models.Suggestion)
            .where(
                models.Suggestion.document_id.in_(docs[i : i + 500]),
                models.Suggestion.model_version_id.in_(versions),
            )
            .order_by(models.Suggestion.id)
        )
        for row in session.scalars(query):
            pair = (row.document_id, row.model_version_id)
            if pair in rows_by:
                rows_by[pair].append(row)
    return {pair: _converted(rows) for pair, rows in rows_by.items()}


def _converted(rows: Sequence[models.Suggestion]) -> list[Suggestion]:
    keys = {r.id: r.key for r in rows}
    return [convert.suggestion_from_row(r, keys) for r in rows]


def _decided_by(session: Session, document_id: int, annotator: str) -> set[int]:
    query = (
        select(models.SuggestionDecision.suggestion_id)
        .join(models.Suggestion, models.Suggestion.id == models.SuggestionDecision.suggestion_id)
        .where(
            models.Suggestion.document_id == document_id,
            models.SuggestionDecision.annotator == annotator,
        )
    )
    return set(session.scalars(query))


def shown_batch(session: Session, document_id: int) -> int | None:
    """The model version whose suggestions a note shows: the serving version's when it
    suggested for the note, else the newest ready version that did (an imported batch,
    or an older model while the serving one has not reached this note yet)."""
    suggesting = (
        select(ModelVersion.id)
        .join(models.Suggestion, models.Suggestion.model_version_id == ModelVersion.id)
        .where(models.Suggestion.document_id == document_id, ModelVersion.status == "ready")
    )
    serving = (
        select(models.ServingModel.model_version_id)
        .join(models.Document, models.Document.project_id == models.ServingModel.project_id)
        .where(models.Document.id == document_id)
    )
    chosen = session.scalar(suggesting.where(ModelVersion.id.in_(serving)).limit(1))
    if chosen is not None:
        return chosen
    newest = suggesting.order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
    return session.scalar(newest.limit(1))


def suggestion_row_ids(
    session: Session, document_id: int, model_version_id: int | None = None
) -> dict[str, int]:
    """Item id -> row id of the note's suggestions from one batch (default: the shown one).

    Relation items carry no row id of their own; the annotator widget needs these to
    record what the annotator did with each relation suggestion.
    """
    if model_version_id is None:
        model_version_id = shown_batch(session, document_id)
    if model_version_id is None:
        return {}
    return _suggestion_ids(session, document_id, model_version_id)


# --------------------------------------------------------------------------- decisions


def record_decisions(session: Session, annotator: str, decisions: Mapping[int, str]) -> None:
    """Make ``decisions`` (suggestion row id -> accepted, edited or rejected) the
    annotator's: earlier decisions of theirs on those suggestions are replaced.

    Written as one delete and one insert per chunk, in suggestion id order, never as an
    update per status: two writers then take their row locks in the same order and cannot
    deadlock. Call it after :func:`noteloop.db.gold.save_annotation` in the same
    transaction: that save's versioned UPDATE locks the annotation row first, so a second
    submit of the same note waits there and then ends in a ConflictError.

    Raises:
        StoreError: a status that is not a decision.
        NotFoundError: a suggestion that does not exist (nothing is written).
    """
    bad = sorted({s for s in decisions.values() if s not in DECISIONS})
    if bad:
        raise StoreError(f"a decision must be accepted, edited or rejected, not {bad[0]!r}")
    ids = sorted(decisions)
    _check_exist(session, ids)
    now = utcnow()
    for chunk in limits.chunks(ids):
        session.execute(
            delete(SuggestionDecision).where(
                SuggestionDecision.annotator == annotator,
                SuggestionDecision.suggestion_id.in_(chunk),
            )
        )
        rows = [
            {"suggestion_id": i, "annotator": annotator, "status": decisions[i], "decided_at": now}
            for i in chunk
        ]
        session.execute(insert(SuggestionDecision), rows)


def _check_exist(session: Session, ids: Sequence[int]) -> None:
    found: set[int] = set()
    for chunk in limits.chunks(ids):
        found.update(
            session.scalars(select(models.Suggestion.id).where(models.Suggestion.id.in_(chunk)))
        )
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFoundError(
            f"{len(missing)} of the decided suggestions do not exist: {missing[:10]}"
        )


def decided(session: Session, annotator: str, suggestion_ids: Sequence[int]) -> dict[int, str]:
    """The annotator's decisions on these suggestions (the undecided ones are absent)."""
    out: dict[int, str] = {}
    for chunk in limits.chunks(list(suggestion_ids)):
        query = select(SuggestionDecision.suggestion_id, SuggestionDecision.status).where(
            SuggestionDecision.annotator == annotator,
            SuggestionDecision.suggestion_id.in_(chunk),
        )
        out.update(dict(session.execute(query).all()))
    return out
