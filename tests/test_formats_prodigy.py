"""Prodigy JSONL: noteloop gold as Prodigy's manual recipes hold it, and a db-out file back."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from noteloop.core.errors import ImportFileError, LineError
from noteloop.core.formats.brat import brat_units, read_brat
from noteloop.core.formats.peer_json import PAYLOAD
from noteloop.core.formats.prodigy import read_prodigy, write_prodigy
from noteloop.core.schema import Document, Equivalence, Relation, Span

MACCROBAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "maccrobat2020"
TEXT = "Aspirin 81mg for chest pain and left arm pain.\n\nNo  fever."
#       0123456789012345678901234567890123456789012345


def sample() -> Document:
    spans = (
        Span("T1", "Drug", 0, 7, attributes=(("Negated", "true"),), concept="MeSH:D001241"),
        Span("T2", "Dosage", 8, 11),  # "81m" cuts the word "81mg"
        Span("T3", "Sign", 17, 27, notes=("check",)),  # chest pain
        Span("T4", "Anatomy", 23, 27),  # "pain" inside T3: overlapping
        Span("T5", "Sign", 32, 45, fragments=((32, 40), (41, 45))),  # left arm pain, split
    )
    relations = (
        Relation("R1", "treats", "T1", "T3", notes=("first line",)),
        Relation("R2", "site", "T3", "T4"),  # both ends share their last token
    )
    equivalences = (Equivalence("Same", ("T3", "T5")),)
    return Document("n1", TEXT, spans, relations, equivalences, {"ward": "ICU", "id": "x"})


def tasks(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def carried(doc: Document) -> tuple[Counter, Counter]:
    """What Prodigy's own fields hold (doccano's too): span extents and labels, relations
    between them."""
    extent = {s.id: (s.start, s.end, s.label) for s in doc.spans}
    rels = Counter((r.label, extent[r.head], extent[r.tail]) for r in doc.relations)
    return Counter(extent.values()), rels


def test_the_note_comes_back_whole_and_prodigy_sees_what_it_can_hold(tmp_path):
    path = tmp_path / "documents.prodigy.jsonl"
    report = write_prodigy([sample(), Document("n2", "Plain.")], path)
    first, second = read_prodigy(path)
    back = first.doc
    assert (back.id, back.text, dict(back.metadata)) == ("n1", TEXT, {"ward": "ICU", "id": "x"})
    assert back.annotation_set() == sample().annotation_set()
    assert [s.id for s in back.spans] == ["T1", "T2", "T3", "T4", "T5"]
    assert (second.doc.id, second.doc.spans, PAYLOAD in tasks(path)[1]) == ("n2", (), False)
    assert (report.documents, report.spans, report.relations) == (2, 5, 2)
    assert (report.discontinuous, report.overlapping, report.kept_aside) == (1, 2, 4)
    # Prodigy's own fields
    task = tasks(path)[0]
    assert (task["answer"], task["meta"]) == ("accept", {"id": "n1", "ward": "ICU"})
    tokens = task["tokens"]
    assert "".join(t["text"] + " " * t["ws"] for t in tokens) == TEXT  # spaCy's invariant
    assert [t["id"] for t in tokens] == list(range(len(tokens)))
    for span in task["spans"]:  # every span covers whole tokens, token_end inclusive
        assert tokens[span["token_start"]]["start"] == span["start"]
        assert tokens[span["token_end"]]["end"] == span["end"]
    assert [(s["start"], s["end"], s["label"]) for s in task["spans"]] == [
        (0, 7, "Drug"), (8, 11, "Dosage"), (17, 27, "Sign"), (23, 27, "Anatomy"),
        (32, 45, "Sign")]  # T5 as one extent
    treats, site = task["relations"]
    assert (treats["head"], treats["child"]) == (0, treats["child_span"]["token_end"])
    assert treats["child_span"] == task["spans"][2]
    assert site["head"] == site["child"]  # "chest pain" and "pain" end on one token


def test_spans_edited_in_prodigy_come_back_as_prodigy_holds_them(tmp_path):
    path = tmp_path / "documents.prodigy.jsonl"
    write_prodigy([sample()], path)
    task = tasks(path)[0]
    # the annotator deletes "81m" and draws "fever"; Prodigy keeps the task's other keys
    task["spans"] = [s for s in task["spans"] if s["label"] != "Dosage"]
    task["spans"].append({"start": 53, "end": 58, "token_start": 14, "token_end": 14,
                          "label": "Sign"})
    path.write_text(json.dumps(task) + "\n", encoding="utf-8")
    (back,) = [p.doc for p in read_prodigy(path)]
    by_extent = {(s.start, s.end): s for s in back.spans}
    assert (53, 58) in by_extent and (8, 11) not in by_extent
    assert by_extent[(0, 7)].concept == "MeSH:D001241"  # unchanged spans keep their extras
    assert by_extent[(32, 45)].fragments == ((32, 40), (41, 45))
    assert [r.notes for r in back.relations] == [("first line",), ()]
    assert len({s.id for s in back.spans} | {r.id for r in back.relations}) == 7
    assert back.equivalences == sample().equivalences


# A rel.manual dataset as `prodigy db-out` writes it. The record shapes follow Prodigy's own
# saved examples: spans with "text"/"type", tokens with "disabled", relations with "head" and
# "child" (the last token of each span), "head_span"/"child_span" and "color", hashes,
# "_session_id"/"_view_id" and "answer" (prodi.gy/docs/api-interfaces#relations; the saved
# task shown in support.prodi.gy/t/6467). Line 3 is a source task without answer or meta.
DB_OUT = [
    {"text": "Metformin 500 mg for type 2 diabetes.", "meta": {"id": "p1", "source": "clinic"},
     "_input_hash": 101, "_task_hash": 201,
     "tokens": [{"text": "Metformin", "start": 0, "end": 9, "id": 0, "ws": True},
                {"text": "500", "start": 10, "end": 13, "id": 1, "ws": True},
                {"text": "mg", "start": 14, "end": 16, "id": 2, "ws": True},
                {"text": "for", "start": 17, "end": 20, "id": 3, "ws": True,
                 "disabled": True},
                {"text": "type", "start": 21, "end": 25, "id": 4, "ws": True},
                {"text": "2", "start": 26, "end": 27, "id": 5, "ws": True},
                {"text": "diabetes", "start": 28, "end": 36, "id": 6, "ws": False},
                {"text": ".", "start": 36, "end": 37, "id": 7, "ws": False}],
     "spans": [{"text": "Metformin", "start": 0, "token_start": 0, "token_end": 0, "end": 9,
                "type": "span", "label": "DRUG"},
               {"text": "500 mg", "start": 10, "token_start": 1, "token_end": 2, "end": 16,
                "type": "span", "label": "DOSE"},
               {"text": "type 2 diabetes", "start": 21, "token_start": 4, "token_end": 6,
                "end": 36, "type": "span", "label": "PROBLEM"}],
     "relations": [{"head": 0, "child": 6, "color": "#ffd882", "label": "TREATS",
                    "head_span": {"start": 0, "end": 9, "token_start": 0, "token_end": 0,
                                  "label": "DRUG"},
                    "child_span": {"start": 21, "end": 36, "token_start": 4, "token_end": 6,
                                   "label": "PROBLEM"}},
                   {"head": 2, "child": 0, "label": "DOSE_OF"}],  # token indices only
     "_session_id": "notes-alice", "_view_id": "relations", "answer": "accept"},
    {"text": "No chest pain.", "meta": {"id": "p2"}, "_input_hash": 102, "_task_hash": 202,
     "spans": [], "relations": [], "answer": "reject"},
    {"text": "Cough for 3 days.", "spans": [{"start": 0, "end": 5, "label": "SIGN"}]},
    {"text": "Seen by GP.", "meta": {"id": "p4"}, "_input_hash": 104, "answer": "ignore"},
]


def test_a_db_out_file_imports_its_accepted_tasks_and_notes_the_rest(tmp_path):
    path = tmp_path / "rel_dataset.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in DB_OUT), encoding="utf-8")
    notes: list[LineError] = []
    first, third = read_prodigy(path, notes=notes)
    doc = first.doc
    assert (doc.id, dict(doc.metadata)) == ("p1", {"source": "clinic"})
    assert [(s.start, s.end, s.label) for s in doc.spans] == [
        (0, 9, "DRUG"), (10, 16, "DOSE"), (21, 36, "PROBLEM")]
    ends = {s.id: s.label for s in doc.spans}
    assert [(r.label, ends[r.head], ends[r.tail]) for r in doc.relations] == [
        ("TREATS", "DRUG", "PROBLEM"), ("DOSE_OF", "DOSE", "DRUG")]
    assert (first.line, first.line_of("R2")) == (1, 1)
    assert (third.doc.id, third.line, [s.label for s in third.doc.spans]) == (
        "rel_dataset-3", 3, ["SIGN"])
    assert [(n.line, n.reason) for n in notes] == [
        (2, "skipped: task answered 'reject', not gold"),
        (4, "skipped: task answered 'ignore', not gold")]


def test_a_bad_file_is_refused_with_every_problem_on_its_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"text": "Fever.", "meta": {"id": "a"},
                    "spans": [{"start": 0, "end": 60, "label": "SIGN"},
                              {"start": "0", "end": 5, "label": "SIGN"}]}),
        '{"text": "truncated',
        json.dumps({"meta": {"id": "b"}, "spans": []}),
        json.dumps({"text": "Pain in arm.", "answer": "maybe",
                    "spans": [{"start": 0, "end": 4, "label": "SIGN"}],
                    "relations": [{"label": "AT", "head": 0, "child": 2,
                                   "head_span": {"start": 0, "end": 4, "label": "SIGN"},
                                   "child_span": {"start": 8, "end": 11, "label": None}}]}),
        json.dumps({"text": "Fever again.", "meta": {"id": "a"}}),
        json.dumps(["not", "a", "task"]),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ImportFileError) as caught:
        read_prodigy(path)
    assert [(e.line, e.reason) for e in caught.value.errors] == [
        (1, "spans[0]: end 60 is beyond the text (6 characters)"),
        (1, "spans[1]: start must be an integer, got '0'"),
        (2, "invalid JSON: Unterminated string starting at: column 10"),
        (3, "text: missing field text"),
        (4, "answer must be one of accept, reject, ignore, got 'maybe'"),
        (4, "relations[0]: child (characters 8-11) is not one of the task's spans: "
            "noteloop's relations join spans"),
        (5, "document id 'a' again (first on line 1): several annotations of one text; "
            "merge them first (prodigy review)"),
        (6, "expected a JSON object, got list"),
    ]
    assert str(caught.value).count("bad.jsonl:") == 8


@pytest.mark.skipif(not MACCROBAT.is_dir(), reason="MACCROBAT2020 (../shared/data) is absent")
def test_maccrobat_survives_prodigy_whole_and_prodigy_holds_every_span_and_relation(tmp_path):
    docs = [p.doc for txt in brat_units(MACCROBAT) for p in read_brat(txt)]
    path = tmp_path / "documents.prodigy.jsonl"
    report = write_prodigy(docs, path)
    assert (report.documents, report.spans) == (200, sum(len(d.spans) for d in docs))
    back = [p.doc for p in read_prodigy(path, max_bytes=200 * 2**20)]
    assert [(d.id, d.text, d.annotation_set()) for d in back] == [
        (d.id, d.text, d.annotation_set()) for d in docs
    ]
    # Prodigy's own fields alone (the noteloop key dropped, as a tool that ignores it would)
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps({k: v for k, v in t.items() if k != PAYLOAD}) + "\n"
                            for t in tasks(path)), encoding="utf-8")
    only_prodigy = [p.doc for p in read_prodigy(bare, max_bytes=200 * 2**20)]
    assert [carried(d) for d in only_prodigy] == [carried(d) for d in docs]
    for task in tasks(bare):
        assert "".join(t["text"] + " " * t["ws"] for t in task["tokens"]) == task["text"]
