"""doccano JSONL: noteloop gold as doccano's importer takes it, and doccano's exports back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_formats_prodigy import carried

from noteloop.core.errors import ImportFileError
from noteloop.core.formats.brat import brat_units, read_brat
from noteloop.core.formats.doccano import read_doccano, write_doccano
from noteloop.core.formats.peer_json import PAYLOAD
from noteloop.core.schema import Document, Equivalence, Relation, Span

MACCROBAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "maccrobat2020"
TEXT = "Aspirin 81mg for chest pain and left arm pain."
#       0123456789012345678901234567890123456789012345


def sample() -> Document:
    spans = (
        Span("T1", "Drug", 0, 7, attributes=(("Negated", "true"),), concept="MeSH:D001241"),
        Span("T2", "Dosage", 8, 11),
        Span("T3", "Sign", 17, 27, notes=("check",)),  # chest pain
        Span("T4", "Anatomy", 23, 27),  # "pain" inside T3: overlapping
        Span("T5", "Sign", 32, 45, fragments=((32, 40), (41, 45))),  # left arm pain, split
    )
    relations = (
        Relation("R1", "treats", "T1", "T3", notes=("first line",)),
        Relation("R2", "site", "T3", "T4"),
    )
    equivalences = (Equivalence("Same", ("T3", "T5")),)
    return Document("n1", TEXT, spans, relations, equivalences, {"ward": "ICU", "label": "x"})


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_rows(path: Path, items: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items),
                    encoding="utf-8")
    return path


def through_doccano(items: list[dict]) -> list[dict]:
    """What doccano does to a "JSONL(Relation)" import when the project is exported again
    (backend/data_import datasets.py RelationExtractionDataset: every key but text, entities
    and relations becomes the example's meta; backend/data_export models.py
    ExportedExample.to_dict: {"id": example id, "text": ..., **meta}, entities and relations
    by their new database ids, an empty "Comments" list; pandas writes null where a row
    lacks a column another row has)."""
    columns = {k for row in items for k in row} - {"text", "entities", "relations"}
    out, span_ids = [], iter(range(900, 10**6))
    for example_id, row in enumerate(items, start=41):
        meta = {k: row.get(k) for k in sorted(columns)}
        new = {e["id"]: next(span_ids) for e in row["entities"]}
        entities = [{"id": new[e["id"]], "label": e["label"], "start_offset": e["start_offset"],
                     "end_offset": e["end_offset"]} for e in row["entities"]]
        relations = [{"id": 70 + i, "from_id": new[r["from_id"]], "to_id": new[r["to_id"]],
                      "type": r["type"]} for i, r in enumerate(row["relations"])]
        out.append({"id": example_id, "text": row["text"], **meta, "entities": entities,
                    "relations": relations, "Comments": []})
    return out


def test_the_note_comes_back_whole_and_doccano_sees_what_it_can_hold(tmp_path):
    path = tmp_path / "documents.doccano.jsonl"
    other = Document("n2", "Cough.", (Span("T1", "Sign", 0, 5),), (), (), {"ward": "A&E"})
    report = write_doccano([sample(), other], path)
    first, second = (p.doc for p in read_doccano(path))
    assert (first.id, first.text, dict(first.metadata)) == ("n1", TEXT, {"ward": "ICU",
                                                                          "label": "x"})
    assert first.annotation_set() == sample().annotation_set()
    assert (second.id, dict(second.metadata)) == ("n2", {"ward": "A&E"})
    assert second.annotation_set() == other.annotation_set()
    assert (report.documents, report.spans, report.relations) == (2, 6, 2)
    assert (report.discontinuous, report.overlapping, report.kept_aside) == (1, 2, 4)
    # doccano's own fields: the relation shape, ids unique over the file
    row, row2 = rows(path)
    assert list(row)[:3] == ["id", "text", "ward"] and "label" not in row
    assert row["entities"][4] == {"id": 4, "label": "Sign", "start_offset": 32,
                                  "end_offset": 45}  # T5 as one extent
    assert row["relations"][0] == {"id": 0, "from_id": 0, "to_id": 2, "type": "treats"}
    assert (row2["entities"][0]["id"], PAYLOAD in row2) == (5, False)


def test_a_note_goes_through_doccano_and_comes_back_with_its_extras(tmp_path):
    path = tmp_path / "documents.doccano.jsonl"
    write_doccano([sample(), Document("n2", "Cough.", (Span("T1", "Sign", 0, 5),))], path)
    exported = through_doccano(rows(path))
    assert exported[0]["id"] == "n1"  # the metadata id wins over the example's number
    exported[0]["entities"].pop(1)  # the annotator deletes "81m" in doccano
    back = [p.doc for p in read_doccano(write_rows(tmp_path / "admin.jsonl", exported))]
    assert [d.id for d in back] == ["n1", "n2"]
    expected = sample().with_annotations(
        [s for s in sample().spans if s.id != "T2"], sample().relations,
        sample().equivalences)
    assert back[0].annotation_set() == expected.annotation_set()
    assert dict(back[1].metadata) == {}  # null columns and the empty Comments left out


# doccano's own files, verbatim: backend/data_import/tests/data/relation_extraction/
# example.jsonl (line 1) and backend/data_export/pipeline/examples/sequence_labeling/
# example.jsonl (lines 2-4), then a sequence-labeling export as ExportedExample.to_dict and
# TupledSpanFormatter write it (database id, meta keys, "label" triples, "Comments").
DOCCANO_FILE = """\
{"text": "Google was founded on September 4, 1998, by Larry Page and Sergey Brin.", \
"entities": [{"id": 0, "start_offset": 0, "end_offset": 6, "label": "ORG"}, \
{"id": 1, "start_offset": 22, "end_offset": 39, "label": "DATE"}, \
{"id": 2, "start_offset": 44, "end_offset": 54, "label": "PERSON"}, \
{"id": 3, "start_offset": 59, "end_offset": 70, "label": "PERSON"}], "relations": \
[{"from_id": 0, "to_id": 1, "type": "foundedAt"}, {"from_id": 0, "to_id": 2, "type": \
"foundedBy"}, {"from_id": 0, "to_id": 3, "type": "foundedBy"}]}
{"text": "EU rejects German call to boycott British lamb.", "label": [ [0, 2, "ORG"], \
[11, 17, "MISC"] ]}
{"text": "Peter Blackburn", "label": [ [0, 15, "PERSON"] ]}
{"text": "President Obama", "label": [ [10, 15, "PERSON"] ]}
{"id": 7, "text": "Fever and cough.", "ward": "ICU", "age": 54, "label": [[0, 5, "SIGN"], \
[10, 15, "SIGN"]], "Comments": ["check the second"]}
"""


def test_doccano_files_of_both_shapes_import(tmp_path):
    path = tmp_path / "all.jsonl"
    path.write_text(DOCCANO_FILE, encoding="utf-8")
    google, eu, peter, obama, fever = read_doccano(path)
    assert google.doc.id == "all-1"
    names = {s.id: google.doc.text[s.start:s.end] for s in google.doc.spans}
    assert [(r.label, names[r.head], names[r.tail]) for r in google.doc.relations] == [
        ("foundedAt", "Google", "September 4, 1998"), ("foundedBy", "Google", "Larry Page"),
        ("foundedBy", "Google", "Sergey Brin")]
    assert [(s.start, s.end, s.label) for s in eu.doc.spans] == [(0, 2, "ORG"),
                                                                 (11, 17, "MISC")]
    assert (peter.doc.id, obama.doc.spans[0].start, obama.line) == ("all-3", 10, 4)
    assert fever.doc.id == "7"
    assert dict(fever.doc.metadata) == {"ward": "ICU", "age": "54",
                                        "Comments": '["check the second"]'}
    assert fever.line_of(fever.doc.spans[1].id) == 5


def test_a_bad_file_is_refused_with_every_problem_on_its_line(tmp_path):
    lines = [
        {"id": "a", "text": "Fever.", "label": [[0, 60, "SIGN"], [3, 3, "SIGN"], [0, 2]]},
        {"id": "b", "entities": []},
        {"id": "c", "text": "Pain in arm.",
         "entities": [{"id": 1, "start_offset": 0, "end_offset": 4, "label": "SIGN"},
                      {"id": 1, "start_offset": 8, "end_offset": 11, "label": "SITE"}],
         "relations": [{"from_id": 1, "to_id": 9, "type": "AT"}]},
        {"id": "a", "text": "Fever again.", "label": [], "entities": []},
    ]
    path = write_rows(tmp_path / "bad.jsonl", lines)
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "e", "text": "cut off\n')
    with pytest.raises(ImportFileError) as caught:
        read_doccano(path)
    assert [(e.line, e.reason) for e in caught.value.errors] == [
        (1, "label[0]: end 60 is beyond the text (6 characters)"),
        (1, "label[1]: span T2: start must be less than end, got 3 >= 3"),
        (1, "label[2]: expected [start_offset, end_offset, label], got [0, 2]"),
        (2, "text: missing field text"),
        (3, "entities[1]: entity id 1 is used twice in this line"),
        (3, "relations[0]: to_id 9 is not the id of an entity of this line"),
        (4, "spans: both entities and label are present; keep the one that holds them"),
        (4, "document id 'a' again (first on line 1)"),
        (5, "invalid JSON: Unterminated string starting at: column 21"),
    ]


@pytest.mark.skipif(not MACCROBAT.is_dir(), reason="MACCROBAT2020 (../shared/data) is absent")
def test_maccrobat_survives_doccano_whole_and_doccano_holds_every_span_and_relation(tmp_path):
    docs = [p.doc for txt in brat_units(MACCROBAT) for p in read_brat(txt)]
    path = tmp_path / "documents.doccano.jsonl"
    report = write_doccano(docs, path)
    assert (report.documents, report.relations) == (200, sum(len(d.relations) for d in docs))
    back = [p.doc for p in read_doccano(path, max_bytes=200 * 2**20)]
    assert [(d.id, d.text, d.annotation_set()) for d in back] == [
        (d.id, d.text, d.annotation_set()) for d in docs
    ]
    # doccano's own fields alone, through doccano's import and export
    exported = through_doccano([{k: v for k, v in r.items() if k != PAYLOAD}
                                for r in rows(path)])
    bare = write_rows(tmp_path / "admin.jsonl", exported)
    only_doccano = [p.doc for p in read_doccano(bare, max_bytes=200 * 2**20)]
    assert [d.id for d in only_doccano] == [d.id for d in docs]
    assert [carried(d) for d in only_doccano] == [carried(d) for d in docs]
