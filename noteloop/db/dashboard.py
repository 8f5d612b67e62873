"""What the Dashboard shows, computed from the rows: curves, suggestion outcomes, throughput,
agreement, simulated strategy curves. Session-first, read-only except for simulations.

Simulated curves (``noteloop simulate`` results) are stored as curve points without a
model version, their ``strategy`` naming the series: the value is the mean over seeds,
``ci_low``/``ci_high`` the lowest and highest seed (as :mod:`noteloop.core.curves` sums
them up).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from noteloop.core.active import StopAdvice, stopping_signal
from noteloop.core.agreement import Agreement, agreement
from noteloop.core.curves import summarise
from noteloop.core.effort import (
    MIN_FIT_NOTES,
    Action,
    Costs,
    Effort,
    NoteEffort,
    fit_costs,
    note_effort,
)
from noteloop.core.metrics import evaluate
from noteloop.core.schema import AnnotationStatus, Document, Relation, Span
from noteloop.core.schema import Suggestion as Suggested
from noteloop.core.simulate import METRICS, SimulationResult
from noteloop.db import adjudication, audit, gold, jobs, learning, models, projects, suggestions
from noteloop.db.errors import StoreError
from noteloop.db.models import Annotation, CurvePoint, ModelVersion, Project, Suggestion

# A simulation metric -> (task, metric) of a curve point, as the worker writes them.
SIMULATED_AS = {
    "entity_strict": ("entity", "strict_f1"),
    "entity_lenient": ("entity", "lenient_f1"),
    "relation": ("relation", "f1"),
}
_SERIES_MAX = 100  # curve_points.strategy is a String(100)


# --------------------------------------------------------------------------- curves


def curve_labels(session: Session, project: Project) -> list[str]:
    """The labels that have per-label points on the project's live curves."""
    query = (
        select(CurvePoint.label)
        .where(
            CurvePoint.project_id == project.id,
            CurvePoint.model_version_id.is_not(None),
            CurvePoint.label != "",
        )
        .distinct()
        .order_by(CurvePoint.label)
    )
    return list(session.scalars(query))


def read_results(files: Sequence[tuple[str, bytes]]) -> list[Any]:
    """Simulation results from uploaded files: each a result object or a list of them.

    Raises:
        ValueError: a file that is not UTF-8 JSON, naming the file.
    """
    results: list[Any] = []
    for name, data in files:
        try:
            parsed = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{name}: not a JSON file of simulation results ({exc})") from None
        results.extend(parsed if isinstance(parsed, list) else [parsed])
    return results


def save_simulation(
    session: Session, project: Project, results: Sequence[Mapping[str, Any]], user: str
) -> list[str]:
    """Store simulation results (``SimulationResult.to_dict()``) as simulated curves.

    One series per strategy (and backend, when the results mix backends), named
    "STRATEGY on CORPUS"; a series stored before under the same name is replaced.

    Returns:
        The names of the series stored.

    Raises:
        ValueError: a result of the wrong shape (naming the key), results of several
            corpora, a run given twice, or no results.
        StoreError: a series name longer than 100 characters.
    """
    parsed = []
    for i, raw in enumerate(results, start=1):
        try:
            parsed.append(SimulationResult.from_dict(raw))
        except ValueError as exc:
            raise ValueError(f"simulation result {i} of {len(results)}: {exc}") from None
    summaries = summarise(parsed)
    corpus = parsed[0].corpus
    names = []
    for summary in summaries:
        name = f"{summary.name} on {corpus}"
        if len(name) > _SERIES_MAX:
            raise StoreError(f"series name {name!r} is longer than {_SERIES_MAX} characters")
        _delete_series(session, project, name)
        session.add_all(_series_points(project, name, summary.bands))
        names.append(name)
    after = {"series": names, "runs": len(parsed)}
    audit.record_audit(session, user, "save_simulation", "projects", project.id, None, after)
    session.flush()
    return names


def _series_points(project: Project, name: str, bands: Mapping[str, Any]) -> list[CurvePoint]:
    return [
        CurvePoint(
            project_id=project.id,
            model_version_id=None,
            strategy=name,
            n_gold_docs=n,
            annotator_hours=0.0,  # a replay spends no annotator time
            task=SIMULATED_AS[metric][0],
            label="",
            metric=SIMULATED_AS[metric][1],
            value=mean,
            ci_low=low,
            ci_high=high,
        )
        for metric in METRICS
        for n, mean, low, high in zip(
            bands[metric].n_docs,
            bands[metric].mean,
            bands[metric].low,
            bands[metric].high,
            strict=True,
        )
    ]


def _delete_series(session: Session, project: Project, name: str) -> int:
    statement = delete(CurvePoint).where(
        CurvePoint.project_id == project.id,
        CurvePoint.model_version_id.is_(None),
        CurvePoint.strategy == name,
    )
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def delete_simulation(session: Session, project: Project, name: str, user: str) -> int:
    """Remove one simulated series; returns how many points went.

    Raises:
        StoreError: the project has no simulated series of that name.
    """
    removed = _delete_series(session, project, name)
    if not removed:
        raise StoreError(f"project {project.name} has no simulated series named {name!r}")
    audit.record_audit(session, user, "delete_simulation", "projects", project.id, {"series": name})
    session.flush()
    return removed


def simulated_curves(session: Session, project: Project) -> list[dict[str, Any]]:
    """The stored simulated points, in the shape of :func:`learning.curve` rows."""
    query = (
        select(CurvePoint)
        .where(CurvePoint.project_id == project.id, CurvePoint.model_version_id.is_(None))
        .order_by(CurvePoint.strategy, CurvePoint.task, CurvePoint.metric, CurvePoint.n_gold_docs)
    )
    return [learning.curve_row(p, "") for p in session.scalars(query)]


def stop_advice(points: Sequence[Mapping[str, Any]]) -> StopAdvice | None:
    """:func:`core.active.stopping_signal` on the live micro entity strict F1 curve."""
    strict = sorted(
        (p for p in points if (p["task"], p["metric"]) == ("entity", "strict_f1")),
        key=lambda p: p["n_gold_docs"],
    )
    if not strict:
        return None
    last = strict[-1]
    half = None
    if last["ci_low"] is not None and last["ci_high"] is not None:
        half = (last["ci_high"] - last["ci_low"]) / 2
    curve = [(p["n_gold_docs"], p["value"]) for p in strict]
    return stopping_signal(curve, ci_half_width=half, metric="entity strict F1")


# --------------------------------------------------------------------------- suggestions


@dataclass(frozen=True)
class Outcome:
    """How annotators treated one model version's suggestions of one kind.

    Counted per annotator's decision: a note two people annotated counts twice. A
    suggestion still open when its annotator submitted the note counts as ``rejected``
    (the annotator confirmed rejecting it: submitting asks first); ``pending``: open on
    a note nobody submitted yet. ``manual`` (spans only): spans drawn by hand on the
    notes whose annotator was shown this version's suggestions, i.e. what the model
    missed there. ``unreviewed`` stays 0 since submits record every open suggestion.
    """

    version: str
    created_at: datetime
    kind: str
    accepted: int = 0
    edited: int = 0
    rejected: int = 0
    unreviewed: int = 0
    pending: int = 0
    manual: int = 0

    @property
    def reviewed(self) -> int:
        return self.accepted + self.edited + self.rejected

    def rate(self, status: str) -> float | None:
        """The share of reviewed suggestions with ``status``; None before any review."""
        if status not in ("accepted", "edited", "rejected"):
            raise ValueError(f"status must be accepted, edited or rejected, not {status!r}")
        return getattr(self, status) / self.reviewed if self.reviewed else None


def _submitted_annotations(session: Session, project: Project) -> list[Any]:
    """(annotation id, document id, annotator, started_at) of every annotator's own
    submitted annotation on a live document."""
    query = (
        select(Annotation.id, Annotation.document_id, Annotation.annotator, Annotation.started_at)
        .join(models.Document, models.Document.id == Annotation.document_id)
        .where(
            models.Document.project_id == project.id,
            models.Document.retired_at.is_(None),
            Annotation.status == AnnotationStatus.SUBMITTED.value,
            Annotation.adjudicated.is_(False),
        )
    )
    return list(session.execute(query))


def _batch_totals(session: Session, project: Project) -> list[Any]:
    """(version, document, kind, suggestions, made at) of every suggestion batch."""
    query = (
        select(
            Suggestion.model_version_id,
            Suggestion.document_id,
            Suggestion.kind,
            func.count(),
            func.min(Suggestion.created_at),
        )
        .join(ModelVersion, ModelVersion.id == Suggestion.model_version_id)
        .join(models.Document, models.Document.id == Suggestion.document_id)
        .where(ModelVersion.project_id == project.id, models.Document.retired_at.is_(None))
        .group_by(Suggestion.model_version_id, Suggestion.document_id, Suggestion.kind)
    )
    return list(session.execute(query))


def _decision_counts(session: Session, project: Project) -> list[Any]:
    """(version, document, kind, annotator, status, count) of the recorded decisions."""
    D = models.SuggestionDecision
    query = (
        select(
            Suggestion.model_version_id,
            Suggestion.document_id,
            Suggestion.kind,
            D.annotator,
            D.status,
            func.count(),
        )
        .join(Suggestion, Suggestion.id == D.suggestion_id)
        .join(ModelVersion, ModelVersion.id == Suggestion.model_version_id)
        .where(ModelVersion.project_id == project.id)
        .group_by(
            Suggestion.model_version_id, Suggestion.document_id, Suggestion.kind, D.annotator,
            D.status,
        )
    )  # fmt: skip
    return list(session.execute(query))


def _manual_spans(session: Session, annotation_ids: list[int]) -> Counter[int]:
    counts: Counter[int] = Counter()
    for i in range(0, len(annotation_ids), 500):  # SQLite's bound-parameter limit
        query = (
            select(models.Span.annotation_id, func.count())
            .where(
                models.Span.annotation_id.in_(annotation_ids[i : i + 500]),
                models.Span.source == "manual",
            )
            .group_by(models.Span.annotation_id)
        )
        counts.update(dict(session.execute(query).all()))
    return counts


def _shown_versions(
    totals: Sequence[Any], decisions: Sequence[Any], annotations: Sequence[Any]
) -> dict[int, int]:
    """Annotation id -> the version whose suggestions its annotator saw: the batch they
    decided on, else the newest batch for the note made before they started it."""
    batches: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for version_id, doc_id, _kind, _n, made in totals:
        batches[doc_id].append((made, version_id))
    decided: dict[tuple[int, str], Counter[int]] = defaultdict(Counter)
    for version_id, doc_id, _kind, who, _status, n in decisions:
        decided[(doc_id, who)][version_id] += n
    shown = {}
    for ann_id, doc_id, who, started in annotations:
        if decided.get((doc_id, who)):
            shown[ann_id] = decided[(doc_id, who)].most_common(1)[0][0]
            continue
        earlier = [(made, v) for made, v in batches.get(doc_id, []) if made <= started]
        if earlier:
            shown[ann_id] = max(earlier)[1]
    return shown


@dataclass(frozen=True)
class _Batches:
    """The rows both the outcomes and the effort read: every suggestion batch, the
    recorded decisions, the submitted annotations and the batch each one was shown."""

    totals: list[Any]
    decisions: list[Any]
    annotations: list[Any]
    shown: dict[int, int]


def _batches(session: Session, project: Project) -> _Batches:
    totals = _batch_totals(session, project)
    decisions = _decision_counts(session, project)
    annotations = _submitted_annotations(session, project)
    return _Batches(totals, decisions, annotations, _shown_versions(totals, decisions, annotations))


def suggestion_outcomes(
    session: Session, project: Project, batches: _Batches | None = None
) -> list[Outcome]:
    """Per model version (newest first) and kind: how its suggestions were treated."""
    read = _batches(session, project) if batches is None else batches
    totals, decisions, annotations = read.totals, read.decisions, read.annotations
    counts: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)
    by_annotator: dict[tuple[int, int, str, str], int] = defaultdict(int)
    for version_id, doc_id, kind, who, status, n in decisions:
        counts[(version_id, kind)][status] += n
        by_annotator[(version_id, doc_id, kind, who)] += n
    total = {(v, d, k): n for v, d, k, n, _ in totals}
    shown = read.shown
    for ann_id, doc_id, who, _started in annotations:  # open at submit counts as rejected
        version_id = shown.get(ann_id)
        if version_id is None:  # no suggestion was shown for that note
            continue
        for kind in ("span", "relation"):
            left = total.get((version_id, doc_id, kind), 0) - by_annotator.get(
                (version_id, doc_id, kind, who), 0
            )
            counts[(version_id, kind)]["rejected"] += max(left, 0)
    _count_pending(counts, totals, decisions, {doc for _, doc, _, _ in annotations})
    manual = _manual_spans(session, [a for a, _, _, _ in annotations])
    for ann_id, version_id in shown.items():
        counts[(version_id, "span")]["manual"] += manual.get(ann_id, 0)
    versions = {v.id: v for v in learning.model_versions(session, project)}
    return [
        Outcome(versions[vid].name, versions[vid].created_at, kind, **dict(counts[(vid, kind)]))
        for vid in versions
        for kind in ("span", "relation")
        if counts.get((vid, kind))
    ]


def _count_pending(
    counts: dict[tuple[int, str], Counter[str]],
    totals: Sequence[Any],
    decisions: Sequence[Any],
    submitted_docs: set[int],
) -> None:
    """Suggestions without a decision on notes nobody submitted yet."""
    decided: Counter[tuple[int, int, str]] = Counter()
    for version_id, doc_id, kind, _who, _status, n in decisions:
        decided[(version_id, doc_id, kind)] += n
    for version_id, doc_id, kind, n, _made in totals:
        if doc_id not in submitted_docs:
            counts[(version_id, kind)]["pending"] += max(n - decided[(version_id, doc_id, kind)], 0)


# --------------------------------------------------------------------------- effort


@dataclass(frozen=True)
class VersionEffort:
    """The work annotators did on the notes that showed one model version's suggestions
    (``version`` "" for notes annotated with none shown): the actions that took the
    suggestions to their submitted gold, priced (:mod:`noteloop.core.effort`), beside
    the active time they logged on those notes."""

    version: str
    created_at: datetime | None
    effort: Effort
    logged_seconds: float  # on the notes of ``timed``
    timed: int  # notes with logged active time

    @property
    def logged_per_note(self) -> float | None:
        return self.logged_seconds / self.timed if self.timed else None


@dataclass(frozen=True)
class _Submitted:
    """One annotator's submitted note with what it was shown and what it took."""

    annotation_id: int
    document_id: int
    annotator: str
    version_id: int | None  # whose suggestions it showed; None: no suggestion
    gold: Document
    suggested: list[Suggested]
    seconds: float  # logged active time
    effort: NoteEffort


def _submitted_work(
    session: Session, project: Project, batches: _Batches | None = None
) -> list[_Submitted]:
    """Every annotator's own submitted note on a live document, with its shown batch."""
    read = _batches(session, project) if batches is None else batches
    annotations, shown = read.annotations, read.shown
    golds = gold.annotation_documents(session, [a for a, _, _, _ in annotations])
    batches = suggestions.batches(session, {(d, shown[a]) for a, d, _, _ in annotations
                                            if a in shown})
    symmetric = {r.name for r in projects.project_schema(project).relation_types if r.symmetric}
    seconds = _logged_seconds(session, [a for a, _, _, _ in annotations])
    out = []
    for ann_id, doc_id, who, _started in annotations:
        version_id = shown.get(ann_id)
        given = batches[(doc_id, version_id)] if version_id is not None else []
        effort = note_effort(golds[ann_id], given, symmetric=symmetric)
        out.append(_Submitted(ann_id, doc_id, who, version_id, golds[ann_id], given,
                              seconds.get(ann_id, 0.0), effort))
    return out


def annotator_effort(
    session: Session,
    project: Project,
    *,
    min_fit_notes: int = MIN_FIT_NOTES,
    work: Sequence[_Submitted] | None = None,
) -> tuple[list[VersionEffort], Costs]:
    """Per model version (newest first, then the notes shown no suggestion): the
    estimated effort with its suggestions against from scratch, on every annotator's own
    submitted notes; and the costs used: the keystroke-level ones, or fitted to the logged
    active time once ``min_fit_notes`` notes are timed."""
    work = _submitted_work(session, project) if work is None else work
    notes: dict[int | None, list[tuple[NoteEffort, float]]] = defaultdict(list)
    for note in work:
        notes[note.version_id].append((note.effort, note.seconds))
    costs = fit_costs([(n.effort, n.seconds) for n in work], min_notes=min_fit_notes) or Costs()
    versions = [(v.id, v.name, v.created_at) for v in learning.model_versions(session, project)]
    order = [*versions, (None, "", None)]
    return [_version_effort(name, made, notes[vid], costs) for vid, name, made in order
            if notes.get(vid)], costs


# --------------------------------------------------------------------------- the queue's guard


@dataclass(frozen=True)
class PickGroup:
    """The submitted notes one ranking strategy put in the queue, its own picks or the
    random share's (``pick``), and how much the model had to learn from them: its strict
    entity F1 on them before they were annotated (the suggestions shown against the gold)
    and the corrections they needed per 1,000 words read."""

    strategy: str
    pick: str  # "strategy" or "random"
    notes: int
    words: int
    model_f1: float
    corrections: int  # every action but an accept: what the model got wrong or missed

    @property
    def corrections_per_kword(self) -> float:
        return 1000 * self.corrections / self.words if self.words else 0.0


def queue_guard(
    session: Session, project: Project, work: Sequence[_Submitted] | None = None
) -> list[PickGroup]:
    """Per ranking strategy, its picks beside the random share's, on the submitted notes
    the queue offered (:class:`~noteloop.db.models.QueuePick`; cold-start picks left out:
    no model ranked them). A strategy pays when its picks are notes the model gets more
    wrong per word read than random ones."""
    work = _submitted_work(session, project) if work is None else work
    picks = _picks(session, project)
    groups: dict[tuple[str, str], list[_Submitted]] = defaultdict(list)
    for note in work:
        pick = picks.get((note.document_id, note.annotator))
        if pick is not None and pick[0] != "cold-start":
            groups[pick].append(note)
    return [_pick_group(strategy, pick, notes)
            for (strategy, pick), notes in sorted(groups.items())]


# Random picks needed before the guard judges the strategy: fewer are anecdotes.
GUARD_MIN_RANDOM = 10


def guard_warnings(groups: Sequence[PickGroup]) -> list[str]:
    """A sentence for each strategy whose picks needed no more corrections per word read
    than the random share's, once the random share has ``GUARD_MIN_RANDOM`` notes."""
    by = {(g.strategy, g.pick): g for g in groups}
    out = []
    for (strategy, pick), mine in by.items():
        rand = by.get((strategy, "random"))
        if pick != "strategy" or rand is None or rand.notes < GUARD_MIN_RANDOM:
            continue
        if mine.corrections_per_kword <= rand.corrections_per_kword:
            out.append(
                f"{strategy}: its {mine.notes} picks needed "
                f"{mine.corrections_per_kword:.1f} corrections per 1,000 words, the "
                f"{rand.notes} random ones {rand.corrections_per_kword:.1f}: the strategy is "
                "not finding what the model gets wrong; consider another on the Model page."
            )
    return out


def _picks(session: Session, project: Project) -> dict[tuple[int, str], tuple[str, str]]:
    """(document, annotator) -> (strategy, pick) of their latest claim from the queue."""
    query = (
        select(models.QueuePick.document_id, models.QueuePick.annotator,
               models.QueuePick.strategy, models.QueuePick.pick)
        .join(models.Document, models.Document.id == models.QueuePick.document_id)
        .where(models.Document.project_id == project.id)
        .order_by(models.QueuePick.id)
    )
    return {(doc, who): (strategy, pick) for doc, who, strategy, pick in session.execute(query)}


def _pick_group(strategy: str, pick: str, notes: Sequence[_Submitted]) -> PickGroup:
    shown = [_as_document(n.gold, n.suggested) for n in notes]
    f1 = evaluate([n.gold for n in notes], shown, n_bootstrap=0).entity_strict.f1
    accepted = (Action.ACCEPT, Action.BULK_ACCEPT)
    corrections = sum(k for n in notes for a, k in n.effort.actions.items() if a not in accepted)
    return PickGroup(strategy, pick, len(notes), sum(n.effort.words for n in notes), f1,
                     corrections)


def _as_document(gold_doc: Document, suggested: Sequence[Suggested]) -> Document:
    spans = [s.item for s in suggested if isinstance(s.item, Span)]
    rels = [s.item for s in suggested if isinstance(s.item, Relation)]
    return gold_doc.with_annotations(spans, rels, ())


def _version_effort(
    name: str, made: datetime | None, notes: Sequence[tuple[NoteEffort, float]], costs: Costs
) -> VersionEffort:
    timed = [s for _, s in notes if s > 0]
    return VersionEffort(name, made, Effort.of([n for n, _ in notes], costs), sum(timed),
                         len(timed))


def _logged_seconds(session: Session, annotation_ids: list[int]) -> dict[int, float]:
    out: dict[int, float] = {}
    for i in range(0, len(annotation_ids), 500):  # SQLite's bound-parameter limit
        query = select(Annotation.id, Annotation.seconds_spent).where(
            Annotation.id.in_(annotation_ids[i : i + 500])
        )
        out.update({a: float(s or 0.0) for a, s in session.execute(query)})
    return out


# --------------------------------------------------------------------------- people


@dataclass(frozen=True)
class Throughput:
    """One person's annotation: notes, time on submitted notes, adjudications."""

    annotator: str
    submitted: int
    in_progress: int
    adjudicated: int
    seconds: float  # logged on their own submitted notes
    words: int  # of their own submitted notes

    @property
    def notes_per_hour(self) -> float | None:
        return self.submitted / (self.seconds / 3600) if self.seconds > 0 else None

    @property
    def words_per_hour(self) -> float | None:
        return self.words / (self.seconds / 3600) if self.seconds > 0 else None


def throughput(session: Session, project: Project) -> list[Throughput]:
    """Per annotator (by name): notes submitted and in progress (held), time, words,
    adjudications. Time is the widget's active time: it counts only while the tab is
    visible and the annotator did something in the last minute."""
    query = (
        select(
            Annotation.annotator,
            Annotation.status,
            Annotation.adjudicated,
            Annotation.seconds_spent,
            models.Document.text,
        )
        .join(models.Document, models.Document.id == Annotation.document_id)
        .where(models.Document.project_id == project.id, models.Document.retired_at.is_(None))
    )
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    seconds: dict[str, float] = defaultdict(float)
    for name, status, adjudicated, spent, text in session.execute(query):
        if adjudicated:
            tally[name]["adjudicated"] += 1
        elif status == AnnotationStatus.SUBMITTED.value:
            tally[name]["submitted"] += 1
            tally[name]["words"] += len(text.split())
            seconds[name] += spent
        else:  # gold saved but never submitted (an import's, a script's)
            tally[name]["in_progress"] += 1
    for name, n in _held_notes(session, project).items():
        tally[name]["in_progress"] += n
    return [
        Throughput(
            name,
            t["submitted"],
            t["in_progress"],
            t["adjudicated"],
            seconds[name],
            t["words"],
        )
        for name, t in sorted(tally.items())
    ]


def _held_notes(session: Session, project: Project) -> Counter[str]:
    """Notes each annotator holds (claimed, or reopened for them) and has not submitted."""
    query = (
        select(models.Claim.annotator, func.count())
        .join(models.Document, models.Document.id == models.Claim.document_id)
        .where(models.Document.project_id == project.id, models.Document.retired_at.is_(None))
        .group_by(models.Claim.annotator)
    )
    return Counter(dict(session.execute(query).all()))


def annotator_hours(session: Session, project: Project) -> float:
    """Time logged on every annotation of the project's live documents (what the curves
    are plotted against; the same hours as :func:`projects.project_stats`)."""
    query = (
        select(func.sum(Annotation.seconds_spent))
        .join(models.Document, models.Document.id == Annotation.document_id)
        .where(models.Document.project_id == project.id, models.Document.retired_at.is_(None))
    )
    return float(session.scalar(query) or 0.0) / 3600


# --------------------------------------------------------------------------- agreement


@dataclass(frozen=True)
class PairAgreement:
    """Two annotators and their agreement over the notes both submitted."""

    a: str
    b: str
    agreement: Agreement


def _pair_agreements(
    session: Session, project: Project, shared: Sequence[adjudication.SharedNote]
) -> list[PairAgreement]:
    people = sorted({name for note in shared for name in note.annotators})
    versions = {name: _own_versions(session, project, name, shared) for name in people}
    schema = projects.project_schema(project)
    symmetric = {r.name for r in schema.relation_types if r.symmetric}
    out = []
    for i, a in enumerate(people):
        for b in people[i + 1 :]:
            ids = [d for d in versions[a] if d in versions[b]]
            if ids:
                pairs = [(versions[a][d], versions[b][d]) for d in ids]
                out.append(PairAgreement(a, b, agreement(pairs, symmetric=symmetric)))
    return out


def _own_versions(
    session: Session, project: Project, name: str, shared: Sequence[adjudication.SharedNote]
) -> dict[str, Document]:
    """``name``'s own submitted versions of the shared notes, by document id."""
    theirs = {note.external_id for note in shared if name in note.annotators}
    docs = gold.gold_documents(session, project, annotator=name)
    return {d.id: d for d in docs if d.id in theirs}


# --------------------------------------------------------------------------- the page


@dataclass(frozen=True)
class Dashboard:
    """Everything the Dashboard page draws, for one project and one label ('' = micro)."""

    trigger: jobs.TriggerState
    gold_test: int
    hours: float
    versions: int
    micro: list[dict[str, Any]]  # the live curves' micro points
    curve: list[dict[str, Any]]  # the chosen label's points (the micro ones by default)
    labels: list[str]
    simulated: list[dict[str, Any]]
    outcomes: list[Outcome]
    effort: list[VersionEffort]
    effort_costs: Costs
    guard: list[PickGroup]
    people: list[Throughput]
    agreement: list[PairAgreement]
    shared: list[adjudication.SharedNote]
    stop: StopAdvice | None


def _gold_notes(session: Session, project: Project, split: str) -> int:
    query = (
        select(func.count(func.distinct(Annotation.document_id)))
        .join(models.Document, models.Document.id == Annotation.document_id)
        .where(
            models.Document.project_id == project.id,
            models.Document.split == split,
            models.Document.retired_at.is_(None),
            Annotation.status == AnnotationStatus.SUBMITTED.value,
        )
    )
    return int(session.scalar(query) or 0)


def dashboard(session: Session, project: Project, *, label: str = "") -> Dashboard:
    """The Dashboard's data; ``label`` picks a per-label curve (default: micro)."""
    micro = learning.curve(session, project)
    shared = adjudication.shared_notes(session, project)
    ready = [v for v in learning.model_versions(session, project) if v.status == "ready"]
    batches = _batches(session, project)  # read once: outcomes and effort share them
    work = _submitted_work(session, project, batches)
    effort, costs = annotator_effort(session, project, work=work)
    return Dashboard(
        trigger=jobs.trigger_state(session, project),
        gold_test=_gold_notes(session, project, "test"),
        hours=annotator_hours(session, project),
        versions=len(ready),
        micro=micro,
        curve=learning.curve(session, project, label=label) if label else micro,
        labels=curve_labels(session, project),
        simulated=simulated_curves(session, project),
        outcomes=suggestion_outcomes(session, project, batches),
        effort=effort,
        effort_costs=costs,
        guard=queue_guard(session, project, work),
        people=throughput(session, project),
        agreement=_pair_agreements(session, project, shared),
        shared=shared,
        stop=stop_advice(micro),
    )
