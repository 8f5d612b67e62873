"""The annotator widget: a Streamlit components-v2 mount and the pure conversions around it.

The browser half lives in ``annotator/`` (plain HTML, CSS and an ES module; no build step).
This module turns a note, its gold, its open suggestions and the label schema into the
widget's JSON payload (:func:`view_payload`), and the widget's state back into core
dataclasses (:func:`result_to_annotation`). Both are pure: tests call them without a
Streamlit script, and importing this module imports neither streamlit nor sqlalchemy.

A page uses it like this (the page owns the database calls)::

    view = AnnotatorView.from_document(loaded.document, schema, suggestions,
                                       version=loaded.version, document_id=str(doc_id),
                                       draft=stored_draft)
    result = annotator(view, key=f"annotator-{doc_id}-{loaded.version}")
    if result is not None and result.state is not None:
        store_draft(result.state)  # every change, about a second after the last one
    if result is not None and result.submitted is not None:
        check_deliberate(result.submitted, view)  # UndecidedSuggestionsError, EmptySubmitError
        spans, relations, decisions, seconds = result_to_annotation(result.submitted, view)
        decisions |= {sid: "rejected" for sid in open_at_submit(result.submitted, view)}
        gold.save_annotation(session, doc_id, user, spans, relations,
                             expected_version=view.version, seconds_spent=seconds)
        suggestions.record_decisions(session, user, decisions)
        session.commit()

Around that call the page keeps two promises of the gold lifecycle. Drafts: the widget sends
its state (``result.state``) about a second after the last change and when the tab is hidden;
the page stores it, and passes it back as ``AnnotatorView(draft=...)`` when the note is shown
again in a new session, where the widget replays it exactly. Deliberate submits: before
saving, :func:`check_deliberate` refuses a state that leaves suggestions open or the note
empty without the annotator's confirmation, and :func:`open_at_submit` names the suggestions
to record as rejected.

Offsets everywhere here are Python string offsets (code points); the widget converts to
and from UTF-16 itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from noteloop.core.effort import BULK_THRESHOLD
from noteloop.core.errors import NoteloopError
from noteloop.core.schema import (
    Document,
    LabelSchema,
    Relation,
    Span,
    SpanSource,
    Suggestion,
)

ASSETS = Path(__file__).parent / "annotator"
COMPONENT_NAME = "noteloop_annotator"
DEFAULT_THRESHOLD = BULK_THRESHOLD  # the effort model prices the bulk accept at it
PAYLOAD_FORMAT = 1
Decision = Literal["accepted", "edited", "rejected"]
_DIGITS = "123456789"


class WidgetStateError(NoteloopError, ValueError):
    """Widget state that does not fit the view it came from: another note or version,
    unknown suggestion ids, or values of the wrong kind."""


class UndecidedSuggestionsError(WidgetStateError):
    """A submitted state leaves suggestions open that the annotator did not agree to reject."""

    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(undecided_message(count))


class EmptySubmitError(WidgetStateError):
    """A submitted state has no span, and the annotator did not confirm the note is empty."""

    def __init__(self) -> None:
        super().__init__("this note has no span: confirm that there is nothing to annotate in it")


def undecided_message(count: int) -> str:
    """The sentence the widget and the server both say about open suggestions at submit."""
    if count == 1:
        return "1 suggestion is still open: reject it and submit, or go back"
    return f"{count} suggestions are still open: reject them and submit, or go back"


@dataclass(frozen=True)
class AnnotatorView:
    """Everything the widget shows for one note.

    ``spans``/``relations`` are the annotator's saved gold; ``suggestions`` are the open
    model suggestions (span items carry their row id as ``suggestion_id``). Relation items
    carry no row id in the core vocabulary, so ``suggestion_ids`` maps suggestion keys
    (item ids) to row ids where the caller has them; it also lets a relation suggestion
    anchor on a span suggestion that was accepted before (now a gold span).

    ``draft`` is a state the widget emitted earlier for this same note and version (the
    ``annotation`` state: ``spans``, ``relations``, ``decisions``, ``seconds``); the widget
    replays it on top of the view when it mounts.
    """

    document_id: str
    text: str
    schema: LabelSchema
    spans: tuple[Span, ...] = ()
    relations: tuple[Relation, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()
    version: int = 0
    status: str | None = None
    threshold: float = DEFAULT_THRESHOLD
    suggestion_ids: Mapping[str, int] = field(default_factory=dict)
    draft: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("spans", "relations", "suggestions"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not isinstance(self.version, int) or self.version < 0:
            raise ValueError(f"version must be an integer >= 0, got {self.version!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold!r}")
        if self.draft is not None:
            object.__setattr__(self, "draft", self._own_draft(self.draft))

    def _own_draft(self, draft: Any) -> dict[str, Any]:
        """A JSON copy of ``draft`` (the caller may go on changing its dict), refused when
        it belongs to another note or version: replayed there, it would mean other things."""
        if not isinstance(draft, Mapping):
            raise ValueError(
                f"draft must be a widget state (an object), got {type(draft).__name__}"
            )
        doc = draft.get("document_id", self.document_id)
        version = draft.get("version", self.version)
        if doc != self.document_id or version != self.version:
            raise ValueError(
                f"the draft is for note {doc!r} version {version!r}, but the view shows "
                f"note {self.document_id!r} version {self.version}"
            )
        try:
            own: dict[str, Any] = json.loads(json.dumps(dict(draft), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"draft must be JSON-ready: {exc}") from None
        return own

    @classmethod
    def from_document(
        cls,
        document: Document,
        schema: LabelSchema,
        suggestions: Iterable[Suggestion] = (),
        *,
        version: int = 0,
        status: str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        document_id: str | None = None,
        suggestion_ids: Mapping[str, int] | None = None,
        draft: Mapping[str, Any] | None = None,
    ) -> AnnotatorView:
        """A view of ``document`` with its gold (a ``LoadedAnnotation.document``) and the
        annotator's ``draft`` for it, if any."""
        return cls(
            document_id=document_id or document.id,
            text=document.text,
            schema=schema,
            spans=document.spans,
            relations=document.relations,
            suggestions=tuple(suggestions),
            version=version,
            status=status,
            threshold=threshold,
            suggestion_ids=dict(suggestion_ids or {}),
            draft=draft,
        )

    @property
    def span_suggestions(self) -> list[Suggestion]:
        return [s for s in self.suggestions if isinstance(s.item, Span)]

    @property
    def relation_suggestions(self) -> list[Suggestion]:
        return [s for s in self.suggestions if isinstance(s.item, Relation)]

    def suggestion_id(self, suggestion: Suggestion) -> int | None:
        """The row id of a suggestion: its span's ``suggestion_id``, else ``suggestion_ids``."""
        own = getattr(suggestion.item, "suggestion_id", None)
        return own if own is not None else self.suggestion_ids.get(suggestion.item.id)


class WidgetAnnotation(NamedTuple):
    """What a submitted widget state means: unpacks as ``spans, relations, decisions, seconds``."""

    spans: list[Span]
    relations: list[Relation]
    decisions: dict[int, Decision]
    seconds: float


@dataclass(frozen=True)
class AnnotatorResult:
    """The widget's output in one script run.

    ``state`` is the latest annotation (sent about a second after the last change, and at
    once when the tab is hidden): the draft to store. ``submitted`` is the state sent with
    Submit, present only in the run that the submit triggered; it carries ``confirm``
    (``{"reject_open": bool, "empty": bool}``), what the annotator confirmed.
    """

    state: dict[str, Any] | None
    submitted: dict[str, Any] | None


# --------------------------------------------------------------------------- payload


def view_payload(view: AnnotatorView) -> dict[str, Any]:
    """The widget's ``data``: JSON-ready, deterministic (the same view gives the same bytes,
    so a Streamlit rerun does not remount the widget).

    ``payload_id`` names the note as the view shows it, draft left out: a page that stores
    each draft and builds its view with it must not remount the widget (and lose its
    selection, scroll and undo) every time a draft comes back. A draft is replayed when the
    widget mounts.
    """
    span_suggestions = view.span_suggestions
    payload: dict[str, Any] = {
        "format": PAYLOAD_FORMAT,
        "document_id": view.document_id,
        "version": view.version,
        "status": view.status,
        "threshold": view.threshold,
        "text": view.text,
        "entity_types": _entity_types(view.schema),
        "relation_types": [
            {
                "name": r.name,
                "heads": list(r.heads),
                "tails": list(r.tails),
                "symmetric": r.symmetric,
                "description": r.description,
            }
            for r in view.schema.relation_types
        ],
        "attributes": [
            {"name": a.name, "values": list(a.values), "description": a.description}
            for a in view.schema.attributes
        ],
        "spans": [_span_json(s) for s in view.spans],
        "relations": [_relation_json(r) for r in view.relations],
        "suggested_spans": [
            {
                **_span_json(s.item),
                "key": s.item.id,
                "score": round(s.score, 4),
                "suggestion_id": view.suggestion_id(s),
            }
            for s in span_suggestions
            if isinstance(s.item, Span)
        ],
        "suggested_relations": _suggested_relations(view),
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    payload["payload_id"] = hashlib.sha256(blob.encode()).hexdigest()[:20]
    payload["draft"] = None if view.draft is None else dict(view.draft)
    return payload


def _entity_types(schema: LabelSchema) -> list[dict[str, str]]:
    """Entity types with their colour and an effective hotkey: types without one get the
    first free digit, so every label can be set from the keyboard."""
    taken = {e.hotkey.lower() for e in schema.entity_types if e.hotkey}
    free = iter(d for d in _DIGITS if d not in taken)
    return [
        {
            "name": e.name,
            "color": schema.color(e.name),
            "hotkey": e.hotkey.lower() if e.hotkey else next(free, ""),
            "description": e.description,
        }
        for e in schema.entity_types
    ]


def _span_json(span: Span) -> dict[str, Any]:
    return {
        "id": span.id,
        "label": span.label,
        "start": span.start,
        "end": span.end,
        "fragments": [list(f) for f in span.fragments],
        "attributes": dict(span.attributes),
        "source": span.source.value,
        "suggestion_id": span.suggestion_id,
        "concept": span.concept,
        "notes": list(span.notes),
    }


def _relation_json(relation: Relation) -> dict[str, Any]:
    return {
        "id": relation.id,
        "label": relation.label,
        "head": relation.head,
        "tail": relation.tail,
        "notes": list(relation.notes),
    }


def _suggested_relations(view: AnnotatorView) -> list[dict[str, Any]]:
    """Relation suggestions with ends the widget can show; others are left out.

    An end is an open span suggestion (``{"key": ...}``) or, when the span suggestion was
    accepted earlier, the gold span that carries its row id (``{"span": ...}``).
    """
    open_keys = {s.item.id for s in view.span_suggestions}
    gold_by_sid = {s.suggestion_id: s.id for s in view.spans if s.suggestion_id is not None}

    def end(key: str) -> dict[str, str] | None:
        if key in open_keys:
            return {"key": key}
        gold = gold_by_sid.get(view.suggestion_ids.get(key, -1))
        return {"span": gold} if gold is not None else None

    out = []
    for s in view.relation_suggestions:
        rel = s.item
        assert isinstance(rel, Relation)
        head, tail = end(rel.head), end(rel.tail)
        if head is None or tail is None:
            continue
        out.append(
            {
                "key": rel.id,
                "label": rel.label,
                "head": head,
                "tail": tail,
                "score": round(s.score, 4),
                "suggestion_id": view.suggestion_id(s),
                "notes": list(rel.notes),
            }
        )
    return out


# --------------------------------------------------------------------------- state


def result_to_annotation(state: Mapping[str, Any], view: AnnotatorView) -> WidgetAnnotation:
    """The gold and the suggestion decisions that a widget state stands for.

    Sources are decided here, not taken from the browser: a span that carries an open
    suggestion's id is ``accepted`` when its label and offsets are the suggestion's and
    ``edited`` otherwise; a hand-drawn span is ``manual``; saved spans keep their source
    (an ``accepted`` one whose label or offsets changed becomes ``edited``). A suggestion
    accepted and then deleted counts as rejected. Suggestions the annotator did not touch
    are left out of ``decisions`` (still open).

    Raises:
        WidgetStateError: the state belongs to another note or version, names unknown
            suggestion ids, or does not fit the text or the schema.
        InvalidSpanError, InvalidRelationError: a span or relation that cannot be built.
    """
    _check_belongs(state, view)
    known = _Known.of(view)
    spans = [_span_from_state(raw, known) for raw in _list(state, "spans")]
    relations, relation_sids = _relations_from_state(state, view)
    _check_document(view, spans, relations)
    decisions = _decisions(state, view, spans, relations, relation_sids)
    return WidgetAnnotation(spans, relations, decisions, _seconds(state))


def _check_belongs(state: Mapping[str, Any], view: AnnotatorView) -> None:
    if not isinstance(state, Mapping):
        raise WidgetStateError(f"widget state must be a JSON object, got {type(state).__name__}")
    doc, version = state.get("document_id"), state.get("version")
    if doc != view.document_id or version != view.version:
        raise WidgetStateError(
            f"the widget state is for note {doc!r} version {version!r}, but the view shows "
            f"note {view.document_id!r} version {view.version}: reload the note"
        )


def _list(state: Mapping[str, Any], key: str) -> list[Any]:
    value = state.get(key) or []
    if not isinstance(value, list):
        raise WidgetStateError(f"widget state: {key} must be a list, got {type(value).__name__}")
    return value


def _int(raw: Mapping[str, Any], key: str, where: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise WidgetStateError(f"widget state: {where}: {key} must be an integer, got {value!r}")
    return value


def _str(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise WidgetStateError(f"widget state: {where}: {key} must be a non-empty string")
    return value


def _optional_id(raw: Mapping[str, Any], where: str) -> int | None:
    return None if raw.get("suggestion_id") is None else _int(raw, "suggestion_id", where)


class _Known(NamedTuple):
    """The view's spans by the ids a widget state refers to them with: looked up once per
    submission, not once per span (a note may hold hundreds of both)."""

    suggested: dict[int, Span]  # open span suggestions by row id
    saved_by_suggestion: dict[int, Span]  # saved gold by the suggestion it came from
    saved: dict[str, Span]  # saved gold by span id

    @classmethod
    def of(cls, view: AnnotatorView) -> _Known:
        suggested = {
            sid: s.item
            for s in view.span_suggestions
            if isinstance(s.item, Span) and (sid := view.suggestion_id(s)) is not None
        }
        by_suggestion: dict[int, Span] = {}
        for g in view.spans:
            if g.suggestion_id is not None:
                by_suggestion.setdefault(g.suggestion_id, g)
        return cls(suggested, by_suggestion, {g.id: g for g in reversed(view.spans)})


def _span_from_state(raw: Any, known: _Known) -> Span:
    if not isinstance(raw, Mapping):
        raise WidgetStateError(f"widget state: every span must be an object, got {raw!r}")
    span_id = _str(raw, "id", "span")
    where = f"span {span_id}"
    start, end = _int(raw, "start", where), _int(raw, "end", where)
    fragments = tuple((int(a), int(b)) for a, b in (raw.get("fragments") or [(start, end)]))
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise WidgetStateError(f"widget state: {where}: attributes must be an object")
    label = _str(raw, "label", where)
    suggestion_id = _optional_id(raw, where)
    return Span(
        id=span_id,
        label=label,
        start=start,
        end=end,
        fragments=fragments,
        attributes=tuple((str(k), str(v)) for k, v in attributes.items()),
        notes=tuple(str(n) for n in raw.get("notes") or ()),
        concept=str(raw.get("concept") or ""),
        source=_source(known, span_id, label, fragments, suggestion_id),
        suggestion_id=suggestion_id,
    )


def _source(
    known: _Known,
    span_id: str,
    label: str,
    fragments: tuple[tuple[int, int], ...],
    suggestion_id: int | None,
) -> SpanSource:
    if suggestion_id is not None:
        item = known.suggested.get(suggestion_id)
        if item is not None:
            same = (label, fragments) == (item.label, item.fragments)
            return SpanSource.ACCEPTED if same else SpanSource.EDITED
        before = known.saved_by_suggestion.get(suggestion_id)
        if before is None:
            raise WidgetStateError(
                f"widget state: span {span_id} names suggestion {suggestion_id}, which is "
                "neither an open suggestion nor the origin of a saved span"
            )
    else:
        before = known.saved.get(span_id)
        if before is None:
            return SpanSource.MANUAL
    changed = (label, fragments) != (before.label, before.fragments)
    if before.source is SpanSource.ACCEPTED and changed:
        return SpanSource.EDITED
    return before.source


def _relations_from_state(
    state: Mapping[str, Any], view: AnnotatorView
) -> tuple[list[Relation], dict[str, int]]:
    """Relations, and the suggestion row id of those that came from a suggestion."""
    relations: list[Relation] = []
    sids: dict[str, int] = {}
    for raw in _list(state, "relations"):
        if not isinstance(raw, Mapping):
            raise WidgetStateError(f"widget state: every relation must be an object, got {raw!r}")
        rel_id = _str(raw, "id", "relation")
        where = f"relation {rel_id}"
        relations.append(
            Relation(
                id=rel_id,
                label=_str(raw, "label", where),
                head=_str(raw, "head", where),
                tail=_str(raw, "tail", where),
                notes=tuple(str(n) for n in raw.get("notes") or ()),
            )
        )
        sid = _optional_id(raw, where)
        if sid is not None:
            sids[rel_id] = sid
    return relations, sids


def _check_document(view: AnnotatorView, spans: list[Span], relations: list[Relation]) -> None:
    """The gold must fit the text and the schema before anything reaches the database."""
    doc = Document(view.document_id, view.text).with_annotations(spans, relations)
    problems = view.schema.problems(doc)
    if problems:
        shown = "; ".join(message for _, message in problems[:10])
        raise WidgetStateError(f"widget state does not fit the schema: {shown}")


def _decisions(
    state: Mapping[str, Any],
    view: AnnotatorView,
    spans: list[Span],
    relations: list[Relation],
    relation_sids: dict[str, int],
) -> dict[int, Decision]:
    said = _said(state)
    rows = {sid: s.item for s in view.suggestions if (sid := view.suggestion_id(s)) is not None}
    unknown = sorted(set(said) - set(rows)) + sorted(
        sid for sid in relation_sids.values() if not isinstance(rows.get(sid), Relation)
    )
    if unknown:
        raise WidgetStateError(f"widget state names unknown suggestion id(s) {unknown}")
    out: dict[int, Decision] = {}
    for span in spans:
        sid = span.suggestion_id
        if sid is not None and isinstance(rows.get(sid), Span):  # an open suggestion
            out[sid] = "accepted" if span.source is SpanSource.ACCEPTED else "edited"
    for rel in relations:
        sid = relation_sids.get(rel.id)
        if sid is not None:
            out[sid] = "accepted" if rel.label == rows[sid].label else "edited"
    for sid in said:
        out.setdefault(sid, "rejected")  # decided in the widget but not in the gold
    return out


def _said(state: Mapping[str, Any]) -> dict[int, str]:
    raw = state.get("decisions") or {}
    if not isinstance(raw, Mapping):
        raise WidgetStateError("widget state: decisions must be an object")
    out: dict[int, str] = {}
    for key, value in raw.items():
        if value not in ("accepted", "edited", "rejected"):
            raise WidgetStateError(f"widget state: decision {value!r} for suggestion {key}")
        try:
            out[int(key)] = value
        except ValueError:
            raise WidgetStateError(f"widget state: suggestion id {key!r} is not a number") from None
    return out


def _seconds(state: Mapping[str, Any]) -> float:
    value = state.get("seconds", 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WidgetStateError(f"widget state: seconds must be a number, got {value!r}")
    if value < 0:
        raise WidgetStateError(f"widget state: seconds must be >= 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- submit


def check_deliberate(state: Mapping[str, Any], view: AnnotatorView) -> None:
    """Refuse a submitted state that the annotator did not finish deliberately.

    The widget asks before it submits; this is the server's half of the same rule, for a
    state that reached it another way. A suggestion the widget can show counts as open when
    the state's gold does not carry it and its ``decisions`` do not name it.

    Raises:
        WidgetStateError: the state belongs to another note or version.
        UndecidedSuggestionsError: suggestions are open and ``confirm.reject_open`` is not true.
        EmptySubmitError: the state has no span and ``confirm.empty`` is not true.
    """
    _check_belongs(state, view)
    confirm = state.get("confirm")
    confirm = confirm if isinstance(confirm, Mapping) else {}
    decided = _decided(state)
    shown = _showable(view)
    undecided = [sid for sid in shown if sid not in decided]
    if undecided and confirm.get("reject_open") is not True:
        raise UndecidedSuggestionsError(len(undecided))
    if not _list(state, "spans") and confirm.get("empty") is not True:
        raise EmptySubmitError()


def open_at_submit(state: Mapping[str, Any], view: AnnotatorView) -> list[int]:
    """Row ids of the view's suggestions that ``state`` leaves undecided, in ascending order.

    Relation suggestions the widget could not show (an end that is neither an open span
    suggestion nor a saved span) are among them: after a submit nothing stays open, so the
    caller records all of these as rejected.
    """
    _check_belongs(state, view)
    decided = _decided(state)
    rows = {sid for s in view.suggestions if (sid := view.suggestion_id(s)) is not None}
    return sorted(rows - decided)


def _decided(state: Mapping[str, Any]) -> set[int]:
    """Suggestion row ids the state has decided: carried by its gold or named in decisions."""
    out = set(_said(state))
    for key in ("spans", "relations"):
        for raw in _list(state, key):
            sid = raw.get("suggestion_id") if isinstance(raw, Mapping) else None
            if isinstance(sid, int) and not isinstance(sid, bool):
                out.add(sid)
    return out


def _showable(view: AnnotatorView) -> list[int]:
    """Row ids of the suggestions the widget shows for ``view``, as it shows them."""
    spans = [view.suggestion_id(s) for s in view.span_suggestions]
    relations = [r["suggestion_id"] for r in _suggested_relations(view)]
    return [sid for sid in spans + relations if sid is not None]


# --------------------------------------------------------------------------- streamlit


def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


@functools.cache
def _component() -> Callable[..., Any]:
    # Registered on first use, so importing this module needs no Streamlit runtime.
    import streamlit as st

    return st.components.v2.component(
        COMPONENT_NAME,
        html=_asset("annotator.html"),
        css=_asset("annotator.css"),
        js=_asset("annotator.js"),
    )


def _noop() -> None:
    return None


def annotator(
    view: AnnotatorView,
    *,
    key: str,
    on_change: Callable[[], None] | None = None,
    on_submit: Callable[[], None] | None = None,
) -> AnnotatorResult | None:
    """Mount the annotator for ``view``; None until the widget has reported anything.

    Use a ``key`` per note and version (``f"annotator-{doc_id}-{version}"``): the widget's
    state lives in session state under it. State for another note or version is ignored.
    """
    mount = _component()
    raw = mount(
        key=key,
        data=view_payload(view),
        on_annotation_change=on_change or _noop,
        on_submit_change=on_submit or _noop,
    )
    state = _own(raw.get("annotation"), view)
    submitted = _own(raw.get("submit"), view)
    if state is None and submitted is None:
        return None
    return AnnotatorResult(state=state, submitted=submitted)


def submitted_state(key: str, view: AnnotatorView) -> dict[str, Any] | None:
    """The state the widget under ``key`` submitted for ``view``, read from session state:
    what an ``on_submit`` callback saves (it runs before the page script, which then shows
    the next note in the same run)."""
    import streamlit as st

    raw = st.session_state.get(key)
    return None if raw is None else _own(raw.get("submit"), view)


def _own(value: Any, view: AnnotatorView) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        return None
    if value.get("document_id") != view.document_id or value.get("version") != view.version:
        return None
    return dict(value)
