"""Import and export of many notes: streamed a batch at a time, still all or nothing per
file, and every format's export read back into another project through the same calls the
CLI and the Data page make."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from noteloop.core.schema import Document, LabelSchema, Split, schema_from_documents
from noteloop.db import gold, projects
from noteloop.usecases import import_export
from noteloop.usecases.import_export import (
    ExportOptions,
    ImportOptions,
    export_project,
    import_path,
)

SAMPLE_NOTES = Path(__file__).resolve().parents[1] / "sample_notes" / "notes"
TEXT = "Aspirin for chest pain, no fever."


def note(i: int, attribute: str = "true") -> dict:
    spans = [
        {"id": "T1", "start": 0, "end": 7, "label": "Drug", "attributes": {"Negated": attribute}},
        {"id": "T2", "start": 12, "end": 22, "label": "Sign"},
    ]
    relations = [{"id": "R1", "label": "treats", "head": "T1", "tail": "T2"}]
    return {"id": f"n{i}", "text": f"{TEXT} ({i})", "spans": spans, "relations": relations}


def write_notes(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture()
def small_batches(monkeypatch):
    """Batches of 3, so ten notes take four of them."""
    monkeypatch.setattr(import_export, "STREAM_BATCH", 3)
    monkeypatch.setattr(gold, "STREAM_BATCH", 3)
    written: list[int] = []
    real = import_export._write_documents

    def counting(session, project, parsed, options, report):
        written.append(len(parsed))
        return real(session, project, parsed, options, report)

    monkeypatch.setattr(import_export, "_write_documents", counting)
    return written


def gold_of(make_session, name: str, shown=lambda doc: doc) -> dict:
    with make_session() as session:
        docs = gold.gold_documents(session, projects.get_project(session, name))
    return {d.id: (d.text, d.annotation_set()) for d in map(shown, docs)}


def within_tsv(doc: Document) -> Document:
    """What WebAnno TSV carries of a note: a discontinuous span as one extent, no notes,
    no equivalences."""
    return replace(
        doc,
        spans=tuple(replace(s, notes=(), fragments=((s.start, s.end),)) for s in doc.spans),
        relations=tuple(replace(r, notes=()) for r in doc.relations),
        equivalences=(),
    )


def test_a_large_file_is_written_a_batch_at_a_time_with_the_schema_every_note_needs(
    make_session, tmp_path, small_batches
):
    # A flag in note 0, a value in note 4, the flag again in note 7: the widened schema
    # must hold both, as extending it with every note would.
    lines = [json.dumps(note(i, "maybe" if i == 4 else "true")) for i in range(10)]
    path = write_notes(tmp_path / "notes.jsonl", lines)
    with make_session.begin() as session:
        projects.create_project(session, "p", LabelSchema())
    seen: list[tuple[int, int | None, str]] = []
    report = import_path(make_session, "p", path, ImportOptions("jsonl", extend_schema=True),
                         progress=lambda done, total, what: seen.append((done, total, what)))
    assert report.ok, report.refused
    assert (report.documents_added, report.annotations_saved) == (10, 10)
    assert small_batches == [3, 3, 3, 1]
    assert [(d, t) for d, t, w in seen if w.startswith("checking")] == [(3, None), (6, None),
                                                                         (9, None)]
    assert [(d, t) for d, t, w in seen if w.startswith("writing")] == [(3, 10), (6, 10),
                                                                        (9, 10), (10, 10)]
    with make_session() as session:
        schema = projects.project_schema(projects.get_project(session, "p"))
    docs = [p.doc for p in import_export.reader("jsonl").read_unit(path)]
    assert schema == schema_from_documents(docs)
    assert schema.attributes[0].values == ("true", "maybe")
    assert len(gold_of(make_session, "p")) == 10


def test_a_bad_line_past_the_first_batches_refuses_the_whole_file(
    make_session, tmp_path, small_batches
):
    lines = [json.dumps(note(i)) for i in range(8)] + ['{"id": "n8", "text": 5}']
    path = write_notes(tmp_path / "notes.jsonl", lines)
    with make_session.begin() as session:
        projects.create_project(session, "p", LabelSchema())
    report = import_path(make_session, "p", path, ImportOptions("jsonl", extend_schema=True))
    assert [(e.line, e.reason) for e in report.refused] == [
        (9, "text: text must be a string, got int")
    ]
    assert small_batches == []  # found by the check, before anything was written
    assert report.documents_added == 0 and gold_of(make_session, "p") == {}


def test_labels_the_schema_lacks_are_all_named_without_extend_schema(
    make_session, tmp_path, small_batches
):
    path = write_notes(tmp_path / "notes.jsonl", [json.dumps(note(i)) for i in range(5)])
    with make_session.begin() as session:
        projects.create_project(session, "p", LabelSchema.from_dict(
            {"entity_types": [{"name": "Drug"}], "relation_types": [{"name": "treats"}],
             "attributes": [{"name": "Negated"}]}
        ))
    report = import_path(make_session, "p", path, ImportOptions("jsonl"))
    assert [e.line for e in report.refused] == [1, 2, 3, 4, 5]
    assert all("'Sign' is not in the schema" in e.reason for e in report.refused)
    assert small_batches == [] and gold_of(make_session, "p") == {}


def test_an_export_reads_the_project_a_batch_at_a_time(make_session, tmp_path, small_batches):
    path = write_notes(tmp_path / "notes.jsonl", [json.dumps(note(i)) for i in range(10)])
    with make_session.begin() as session:
        projects.create_project(session, "p", LabelSchema())
    assert import_path(make_session, "p", path, ImportOptions("jsonl", extend_schema=True)).ok
    seen: list[tuple[int, int]] = []
    with make_session() as session:
        summary = export_project(session, "p", tmp_path / "out", ExportOptions("jsonl"),
                                 progress=lambda done, total: seen.append((done, total)))
    assert summary == f"10 documents to {tmp_path / 'out' / 'documents.jsonl'}"
    assert seen == [(3, 10), (6, 10), (9, 10), (10, 10)]
    out = tmp_path / "out" / "documents.jsonl"
    back = [p.doc for p in import_export.reader("jsonl").read_unit(out)]
    assert {d.id: (d.text, d.annotation_set()) for d in back} == gold_of(make_session, "p")


# Where each format's export is read back from (a file of the export, or its folder).
EXPORTED = {
    "brat": ".",
    "jsonl": "documents.jsonl",
    "bioc": "documents.bioc.xml",
    "spacy": "documents.spacy",
    "prodigy": "documents.prodigy.jsonl",
    "doccano": "documents.doccano.jsonl",
    "label-studio": "tasks.json",
    "webanno": ".",
    "xmi": ".",
    "hf-parquet": ".",
}


@pytest.mark.parametrize("fmt", sorted(EXPORTED))
def test_every_format_carries_a_project_to_another(make_session, tmp_path, fmt):
    if fmt == "spacy":
        pytest.importorskip("spacy")
    with make_session.begin() as session:
        projects.create_project(session, "a", LabelSchema())
        projects.create_project(session, "b", LabelSchema())
    split_file = tmp_path / "splits.json"
    ids = sorted(p.stem for p in SAMPLE_NOTES.glob("*.txt"))
    split_file.write_text(json.dumps({"train": ids[5:], "test": ids[:5]}), encoding="utf-8")
    imported = import_path(make_session, "a", SAMPLE_NOTES, ImportOptions(
        "brat", extend_schema=True, split_of=import_export.load_split_file(split_file)))
    assert imported.ok, imported.refused
    with make_session() as session:
        summary = export_project(session, "a", tmp_path / "out", ExportOptions(fmt))
    assert summary.startswith("25 documents"), summary
    report = import_path(make_session, "b", tmp_path / "out" / EXPORTED[fmt],
                         ImportOptions(fmt, extend_schema=True))
    assert report.ok, report.refused
    original, back = gold_of(make_session, "a"), gold_of(make_session, "b")
    if fmt == "webanno":
        original = gold_of(make_session, "a", within_tsv)
    assert back == original and len(back) == 25
    if fmt == "hf-parquet":  # the split travels with the dataset
        assert gold_in_test(make_session, "b") == gold_in_test(make_session, "a") != set()


def gold_in_test(make_session, name: str) -> set[str]:
    with make_session() as session:
        project = projects.get_project(session, name)
        return {d.id for d in gold.gold_documents(session, project, split=Split.TEST)}


def test_pubtator_exports_the_mentions_a_pubtator_reader_takes_back(make_session, tmp_path):
    with make_session.begin() as session:
        projects.create_project(session, "a", LabelSchema())
    options = ImportOptions("brat", extend_schema=True)
    assert import_path(make_session, "a", SAMPLE_NOTES, options).ok
    with make_session() as session:
        summary = export_project(session, "a", tmp_path, ExportOptions("pubtator"))
    assert summary.startswith(f"25 documents to {tmp_path / 'documents.pubtator'} (PubTator")
    back = {p.doc.id: p.doc for p in import_export.reader("pubtator").read_unit(
        tmp_path / "documents.pubtator")}
    with make_session() as session:
        docs = gold.gold_documents(session, projects.get_project(session, "a"))
    for doc in docs:  # every mention at its extent (PubTator has no fragments)
        assert sorted((s.label, s.start, s.end) for s in back[doc.id].spans) == sorted(
            (s.label, s.start, s.end) for s in doc.spans)
