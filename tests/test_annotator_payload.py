"""The annotator's pure half: the payload it is given and what its state turns into."""

from __future__ import annotations

import json
from typing import Any

import pytest

from noteloop.core.errors import InvalidRelationError, InvalidSpanError
from noteloop.core.schema import Document, LabelSchema, Relation, Span, SpanSource, Suggestion
from noteloop.screen.components.annotator import (
    AnnotatorView,
    EmptySubmitError,
    UndecidedSuggestionsError,
    WidgetStateError,
    check_deliberate,
    open_at_submit,
    result_to_annotation,
    view_payload,
)

SCHEMA = LabelSchema.from_dict(
    {
        "entity_types": [
            {"name": "Problem", "color": "#e15759", "hotkey": "p"},
            {"name": "Drug", "hotkey": "d"},
            {"name": "Dosage"},
            {"name": "Anatomy"},
        ],
        "relation_types": [
            {"name": "treats", "heads": ["Drug"], "tails": ["Problem"]},
            {"name": "has_dosage", "heads": ["Drug"], "tails": ["Dosage"]},
        ],
        "attributes": [{"name": "negated"}, {"name": "severity", "values": ["mild", "severe"]}],
    }
)
TEXT = "🩺 Pain in chest <b>. Gave aspirin 81 mg for chest pain today."


def at(phrase: str) -> tuple[int, int]:
    start = TEXT.index(phrase)
    return start, start + len(phrase)


def sugg(key: str, label: str, phrase: str, score: float, sid: int) -> Suggestion:
    return Suggestion(Span(key, label, *at(phrase), suggestion_id=sid), score)


def make_view(**changes: Any) -> AnnotatorView:
    fields: dict[str, Any] = {
        "document_id": "doc-1",
        "text": TEXT,
        "schema": SCHEMA,
        "spans": (Span("T1", "Problem", *at("Pain in chest")),),
        "suggestions": (
            sugg("S1", "Drug", "aspirin", 0.93, 11),
            sugg("S2", "Dosage", "81 mg", 0.71, 12),
            sugg("S3", "Problem", "chest pain", 0.88, 13),
            Suggestion(Relation("SR1", "has_dosage", "S1", "S2"), 0.8),
            Suggestion(Relation("SR2", "treats", "S1", "S3"), 0.6),
        ),
        "version": 4,
        "status": "in_progress",
        "suggestion_ids": {"SR1": 21, "SR2": 22},
    }
    fields.update(changes)
    return AnnotatorView(**fields)


def span_state(span_id: str, label: str, phrase: str, **extra: Any) -> dict[str, Any]:
    start, end = at(phrase)
    state = {
        "id": span_id, "label": label, "start": start, "end": end,
        "fragments": [[start, end]], "attributes": {}, "source": "manual",
        "suggestion_id": None, "concept": "", "notes": [],
    }  # fmt: skip
    state.update(extra)
    return state


def state_of(spans: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    state = {
        "document_id": "doc-1", "version": 4, "spans": spans, "relations": [],
        "decisions": {}, "seconds": 12.5, "submitted": True,
    }  # fmt: skip
    state.update(extra)
    return state


# --------------------------------------------------------------------------- payload


def test_payload_shape_is_exact():
    payload = view_payload(make_view())
    assert set(payload) == {
        "format", "document_id", "version", "status", "threshold", "text", "entity_types",
        "relation_types", "attributes", "spans", "relations", "suggested_spans",
        "suggested_relations", "draft", "payload_id",
    }  # fmt: skip
    assert payload["draft"] is None
    assert (payload["document_id"], payload["version"], payload["status"]) == (
        "doc-1", 4, "in_progress",
    )  # fmt: skip
    assert payload["text"] == TEXT  # verbatim: the widget renders it as text, never HTML
    assert payload["threshold"] == 0.8
    assert payload["spans"] == [
        {
            "id": "T1", "label": "Problem", "start": 2, "end": 15, "fragments": [[2, 15]],
            "attributes": {}, "source": "manual", "suggestion_id": None, "concept": "",
            "notes": [],
        }
    ]  # fmt: skip
    assert payload["suggested_spans"][0] == {
        "id": "S1", "key": "S1", "label": "Drug", "start": 26, "end": 33,
        "fragments": [[26, 33]], "attributes": {}, "source": "manual", "suggestion_id": 11,
        "score": 0.93, "concept": "", "notes": [],
    }  # fmt: skip
    assert payload["suggested_relations"] == [
        {"key": "SR1", "label": "has_dosage", "head": {"key": "S1"}, "tail": {"key": "S2"},
         "score": 0.8, "suggestion_id": 21, "notes": []},
        {"key": "SR2", "label": "treats", "head": {"key": "S1"}, "tail": {"key": "S3"},
         "score": 0.6, "suggestion_id": 22, "notes": []},
    ]  # fmt: skip
    assert payload["relation_types"][0] == {
        "name": "treats", "heads": ["Drug"], "tails": ["Problem"], "symmetric": False,
        "description": "",
    }  # fmt: skip
    assert payload["attributes"] == [
        {"name": "negated", "values": [], "description": ""},
        {"name": "severity", "values": ["mild", "severe"], "description": ""},
    ]
    json.dumps(payload)  # JSON-ready as it is


def test_entity_types_get_colours_and_a_free_hotkey_each():
    types = view_payload(make_view())["entity_types"]
    assert [(t["name"], t["hotkey"]) for t in types] == [
        ("Problem", "p"), ("Drug", "d"), ("Dosage", "1"), ("Anatomy", "2"),
    ]  # fmt: skip
    assert types[0]["color"] == "#e15759"
    assert all(t["color"].startswith("#") and len(t["color"]) == 7 for t in types)


def test_payload_is_deterministic_and_its_id_follows_the_content():
    first, again = view_payload(make_view()), view_payload(make_view())
    assert first == again
    assert view_payload(make_view(version=5))["payload_id"] != first["payload_id"]
    assert view_payload(make_view(suggestions=()))["payload_id"] != first["payload_id"]


def test_relation_suggestion_anchors_on_a_span_accepted_earlier():
    accepted = Span("T7", "Drug", *at("aspirin"), source=SpanSource.ACCEPTED, suggestion_id=11)
    view = make_view(
        spans=(accepted,),
        suggestions=(
            sugg("S2", "Dosage", "81 mg", 0.71, 12),
            Suggestion(Relation("SR1", "has_dosage", "S1", "S2"), 0.8),
            Suggestion(Relation("SR9", "has_dosage", "S8", "S2"), 0.8),  # S8: unknown
        ),
        suggestion_ids={"S1": 11, "SR1": 21},
    )
    rels = view_payload(view)["suggested_relations"]
    assert [(r["key"], r["head"], r["tail"]) for r in rels] == [
        ("SR1", {"span": "T7"}, {"key": "S2"})
    ]


def test_payload_carries_the_draft_without_changing_its_id():
    draft = state_of(
        [span_state("T2", "Drug", "aspirin", suggestion_id=11, source="accepted")],
        decisions={"11": "accepted", "12": "rejected"},
        submitted=False,
    )
    view = make_view(draft=draft)
    payload = view_payload(view)
    assert payload["draft"] == draft
    json.dumps(payload)
    # A page that stores every draft and shows the note with it must not remount the
    # widget each time a draft comes back: the id names the note, not the draft.
    assert payload["payload_id"] == view_payload(make_view())["payload_id"]
    draft["spans"].clear()  # the caller's dict is not the view's
    assert view_payload(view)["draft"]["spans"] != []


def test_from_document_passes_the_draft_on():
    doc = Document("doc-1", TEXT)
    draft = {"spans": [], "relations": [], "decisions": {}, "seconds": 3.0}
    view = AnnotatorView.from_document(doc, SCHEMA, version=2, draft=draft)
    assert view.draft == draft
    assert view_payload(view)["draft"] == draft


@pytest.mark.parametrize(
    ("draft", "message"),
    [
        (state_of([]), r"the draft is for note 'doc-1' version 4, but the view shows note "
         r"'doc-1' version 5"),
        (state_of([], document_id="doc-2", version=5), "the draft is for note 'doc-2'"),
        ([], "draft must be a widget state \\(an object\\), got list"),
        ({"seconds": float("nan")}, "draft must be JSON-ready"),
    ],
)  # fmt: skip
def test_a_draft_of_another_note_or_version_is_refused(draft, message):
    with pytest.raises(ValueError, match=message):
        make_view(version=5, draft=draft)


def test_view_refuses_a_threshold_outside_zero_one():
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\], got 1.5"):
        make_view(threshold=1.5)


def test_from_document_takes_the_gold_of_a_loaded_document():
    doc = Document("doc-1", TEXT, spans=(Span("T1", "Problem", *at("chest pain")),))
    view = AnnotatorView.from_document(doc, SCHEMA, version=2, document_id="42")
    assert (view.document_id, view.version, view.spans) == ("42", 2, doc.spans)


# --------------------------------------------------------------------------- state


def test_sources_and_decisions():
    state = state_of(
        [
            span_state("T1", "Problem", "Pain in chest"),  # saved before: keeps its source
            span_state("T2", "Drug", "aspirin", suggestion_id=11),  # accepted unchanged
            span_state("T3", "Dosage", "81 mg", suggestion_id=12, attributes={}),
            span_state("T4", "Problem", "chest", suggestion_id=13),  # accepted, shrunk
            span_state("T5", "Problem", "today", attributes={"negated": "true"}),  # manual
        ],
        relations=[
            {"id": "R1", "label": "has_dosage", "head": "T2", "tail": "T3", "suggestion_id": 21},
            {"id": "R2", "label": "treats", "head": "T2", "tail": "T5", "suggestion_id": None},
        ],
        decisions={"11": "accepted", "12": "accepted", "13": "edited", "21": "accepted"},
    )
    spans, relations, decisions, seconds = result_to_annotation(state, make_view())
    sources = {s.id: (s.source, s.suggestion_id) for s in spans}
    assert sources == {
        "T1": (SpanSource.MANUAL, None),
        "T2": (SpanSource.ACCEPTED, 11),
        "T3": (SpanSource.ACCEPTED, 12),
        "T4": (SpanSource.EDITED, 13),
        "T5": (SpanSource.MANUAL, None),
    }
    assert next(s for s in spans if s.id == "T5").attributes == (("negated", "true"),)
    assert relations == [
        Relation("R1", "has_dosage", "T2", "T3"),
        Relation("R2", "treats", "T2", "T5"),
    ]
    assert decisions == {11: "accepted", 12: "accepted", 13: "edited", 21: "accepted"}
    assert seconds == 12.5


def test_a_relabelled_suggestion_is_edited_and_untouched_ones_stay_open():
    state = state_of([span_state("T2", "Problem", "aspirin", suggestion_id=11)])
    spans, _, decisions, _ = result_to_annotation(state, make_view())
    assert (spans[-1].source, decisions) == (SpanSource.EDITED, {11: "edited"})


def test_rejected_and_accepted_then_deleted_both_count_as_rejected():
    state = state_of(
        [span_state("T1", "Problem", "Pain in chest")],
        decisions={"11": "accepted", "12": "rejected", "22": "rejected"},
    )
    _, _, decisions, _ = result_to_annotation(state, make_view())
    assert decisions == {11: "rejected", 12: "rejected", 22: "rejected"}


def test_a_relation_suggestion_with_another_type_is_edited():
    state = state_of(
        [
            span_state("T2", "Drug", "aspirin", suggestion_id=11),
            span_state("T3", "Problem", "chest pain", suggestion_id=13),
        ],
        relations=[{"id": "R1", "label": "treats", "head": "T2", "tail": "T3",
                    "suggestion_id": 21}],  # suggested as has_dosage
    )  # fmt: skip
    view = make_view(suggestion_ids={"SR1": 21})
    _, _, decisions, _ = result_to_annotation(state, view)
    assert decisions == {11: "accepted", 13: "accepted", 21: "edited"}


def test_a_saved_accepted_span_that_changes_becomes_edited():
    saved = Span("T9", "Drug", *at("aspirin"), source=SpanSource.ACCEPTED, suggestion_id=11)
    view = make_view(spans=(saved,), suggestions=())
    unchanged = state_of([span_state("T9", "Drug", "aspirin", suggestion_id=11)])
    relabelled = state_of([span_state("T9", "Problem", "aspirin", suggestion_id=11)])
    assert result_to_annotation(unchanged, view).spans[0].source is SpanSource.ACCEPTED
    assert result_to_annotation(relabelled, view).spans[0].source is SpanSource.EDITED
    assert result_to_annotation(relabelled, view).decisions == {}


def test_offsets_count_code_points_like_python():
    (span,) = result_to_annotation(
        state_of([span_state("T1", "Problem", "Pain in chest")]), make_view()
    ).spans
    assert span.text_in(TEXT) == "Pain in chest"  # the emoji before it is one character


def test_state_of_another_note_or_version_is_refused():
    with pytest.raises(WidgetStateError, match=r"for note 'doc-1' version 4, but the view"):
        result_to_annotation(state_of([]), make_view(version=5))
    with pytest.raises(WidgetStateError, match="for note 'doc-2'"):
        result_to_annotation(state_of([], document_id="doc-2"), make_view())


@pytest.mark.parametrize(
    ("state", "error", "message"),
    [
        (
            state_of([span_state("T2", "Drug", "aspirin", suggestion_id=99)]),
            WidgetStateError,
            "span T2 names suggestion 99, which is neither",
        ),
        (state_of([], decisions={"77": "rejected"}), WidgetStateError, r"unknown suggestion id"),
        (state_of([], decisions={"11": "maybe"}), WidgetStateError, "decision 'maybe'"),
        (
            state_of([span_state("T2", "Symptom", "aspirin")]),
            WidgetStateError,
            "entity type 'Symptom' is not in the schema",
        ),
        (
            state_of([span_state("T2", "Drug", "aspirin", end=999, fragments=[[26, 999]])]),
            InvalidSpanError,
            "span T2 ends at 999, beyond the text",
        ),
        (
            state_of([], relations=[{"id": "R1", "label": "treats", "head": "T8", "tail": "T9"}]),
            InvalidRelationError,
            "head T8 is not a span",
        ),
        (state_of([], seconds=-1), WidgetStateError, "seconds must be >= 0"),
        (state_of([], seconds="a while"), WidgetStateError, "seconds must be a number"),
        (state_of([{"id": "T1", "label": "Drug"}]), WidgetStateError, "start must be an integer"),
    ],
)
def test_bad_state_is_refused_with_a_clear_message(state, error, message):
    with pytest.raises(error, match=message):
        result_to_annotation(state, make_view())


def test_a_disallowed_relation_is_refused_before_the_database():
    state = state_of(
        [span_state("T2", "Drug", "aspirin"), span_state("T3", "Problem", "chest pain")],
        relations=[{"id": "R1", "label": "has_dosage", "head": "T2", "tail": "T3"}],
    )
    with pytest.raises(WidgetStateError, match="has_dosage is not allowed from Drug to Problem"):
        result_to_annotation(state, make_view())


# --------------------------------------------------------------------------- submit


def test_open_suggestions_are_refused_unless_the_annotator_rejected_them():
    state = state_of(
        [span_state("T1", "Problem", "Pain in chest"),
         span_state("T2", "Drug", "aspirin", suggestion_id=11)],
        decisions={"11": "accepted", "12": "rejected"},
    )  # fmt: skip
    # Open: 13 (chest pain) and the relation suggestions 21 and 22.
    with pytest.raises(
        UndecidedSuggestionsError,
        match=r"^3 suggestions are still open: reject them and submit, or go back$",
    ) as caught:
        check_deliberate(state, make_view())
    assert caught.value.count == 3
    assert isinstance(caught.value, WidgetStateError)
    check_deliberate({**state, "confirm": {"reject_open": True, "empty": False}}, make_view())


def test_one_open_suggestion_is_named_in_the_singular():
    state = state_of(
        [span_state("T2", "Drug", "aspirin", suggestion_id=11)],
        relations=[],
        decisions={"12": "rejected", "21": "rejected", "22": "rejected"},
    )
    with pytest.raises(
        UndecidedSuggestionsError,
        match=r"^1 suggestion is still open: reject it and submit, or go back$",
    ):
        check_deliberate(state, make_view())


def test_a_relation_suggestion_the_widget_cannot_show_does_not_hold_a_submit():
    view = make_view(
        spans=(),
        suggestions=(
            sugg("S1", "Drug", "aspirin", 0.93, 11),
            Suggestion(Relation("SR9", "treats", "S1", "S8"), 0.8),  # S8: not in the view
        ),
        suggestion_ids={"SR9": 29},
    )
    state = state_of([span_state("T2", "Drug", "aspirin", suggestion_id=11)])
    check_deliberate(state, view)  # nothing the widget showed is open
    assert open_at_submit(state, view) == [29]  # ...but the page records 29 as rejected


def test_an_empty_note_needs_its_confirmation():
    view = make_view(spans=(), suggestions=())
    with pytest.raises(
        EmptySubmitError,
        match=r"^this note has no span: confirm that there is nothing to annotate in it$",
    ):
        check_deliberate(state_of([]), view)
    check_deliberate(state_of([], confirm={"reject_open": False, "empty": True}), view)
    with pytest.raises(EmptySubmitError):  # only a true confirms
        check_deliberate(state_of([], confirm={"empty": "yes"}), view)


def test_open_suggestions_are_asked_about_before_an_empty_note():
    state = state_of([], decisions={"11": "rejected"})
    with pytest.raises(UndecidedSuggestionsError, match=r"^4 suggestions are still open"):
        check_deliberate(state, make_view())
    confirmed = {**state, "confirm": {"reject_open": True, "empty": False}}
    with pytest.raises(EmptySubmitError):
        check_deliberate(confirmed, make_view())
    check_deliberate({**state, "confirm": {"reject_open": True, "empty": True}}, make_view())


def test_check_deliberate_refuses_a_state_of_another_version():
    with pytest.raises(WidgetStateError, match="for note 'doc-1' version 4, but the view"):
        check_deliberate(state_of([]), make_view(version=5))


def test_open_at_submit_names_every_undecided_suggestion():
    state = state_of(
        [span_state("T2", "Drug", "aspirin", suggestion_id=11),
         span_state("T3", "Dosage", "81 mg", suggestion_id=12)],
        relations=[{"id": "R1", "label": "has_dosage", "head": "T2", "tail": "T3",
                    "suggestion_id": 21}],
        decisions={"11": "accepted", "12": "accepted", "21": "accepted"},
    )  # fmt: skip
    assert open_at_submit(state, make_view()) == [13, 22]
    assert open_at_submit(state_of([]), make_view()) == [11, 12, 13, 21, 22]
    everything = {"11": "rejected", "12": "rejected", "13": "rejected", "21": "rejected",
                  "22": "rejected"}  # fmt: skip
    assert open_at_submit(state_of([], decisions=everything), make_view()) == []


# --------------------------------------------------------------------------- imports


def test_the_widget_mounts_in_a_streamlit_script():
    from streamlit.testing.v1 import AppTest

    def app() -> None:
        from noteloop.core.schema import LabelSchema
        from noteloop.screen.components.annotator import AnnotatorView, annotator

        schema = LabelSchema.from_dict({"entity_types": [{"name": "Problem"}]})
        view = AnnotatorView(document_id="d", text="chest pain", schema=schema)
        result = annotator(view, key="annotator-d")
        assert result is None  # nothing reported before the browser says anything

    at = AppTest.from_function(app).run(timeout=30)
    assert not at.exception, at.exception
