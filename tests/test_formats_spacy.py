"""spaCy DocBin: noteloop gold as spaCy's own code reads and trains on it, and back."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from noteloop.core.errors import ImportFileError
from noteloop.core.formats.brat import brat_units, read_brat
from noteloop.core.formats.registry import reader, writer
from noteloop.core.formats.spacy_docbin import SPAN_GROUP, read_docbin, write_docbin
from noteloop.core.schema import Document, LabelSchema, Relation, Span

spacy = pytest.importorskip("spacy")  # a dev dependency: `make test` installs it
from spacy.tokens import DocBin  # noqa: E402
from spacy.training import Example  # noqa: E402

MACCROBAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "maccrobat2020"
TEXT = "Aspirin 81mg for chest pain and left arm pain."
#       0123456789012345678901234567890123456789012345


def sample() -> Document:
    spans = (
        Span("T1", "Drug", 0, 7, attributes=(("Negated", "true"),), concept="MeSH:D001241"),
        Span("T2", "Dosage", 8, 11),  # "81m" cuts the token "mg"
        Span("T3", "Sign", 17, 27, notes=("check",)),  # chest pain
        Span("T4", "Anatomy", 23, 27),  # "pain" inside T3: overlapping
        Span("T5", "Sign", 32, 45, fragments=((32, 40), (41, 45))),  # left arm pain, split
    )
    relations = (Relation("R1", "treats", "T1", "T3"),)
    return Document("n1", TEXT, spans, relations, metadata={"ward": "ICU"})


def test_the_exact_note_comes_back_and_spacy_sees_what_it_can_hold(tmp_path):
    path = tmp_path / "docs.spacy"
    report = write_docbin([sample()], path)
    (back,) = [p.doc for p in read_docbin(path)]
    assert (back.id, back.text, dict(back.metadata)) == ("n1", TEXT, {"ward": "ICU"})
    assert back.annotation_set() == sample().annotation_set()
    # spaCy's own reader
    nlp = spacy.blank("en")
    (doc,) = DocBin().from_disk(path).get_docs(nlp.vocab)
    group = [(s.start_char, s.end_char, s.label_) for s in doc.spans[SPAN_GROUP]]
    assert group == [(0, 7, "Drug"), (8, 12, "Dosage"), (17, 27, "Sign"), (23, 27, "Anatomy"),
                     (32, 45, "Sign")]  # "81" widened to its token, T5 as one extent
    ents = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
    assert ents == [(0, 7, "Drug"), (8, 12, "Dosage"), (17, 27, "Sign")]
    assert (report.spans, report.not_in_ents, report.widened, report.discontinuous) == (5, 2, 1, 1)


def test_spacy_trains_on_the_export(tmp_path):
    path = tmp_path / "docs.spacy"
    write_docbin([sample()], path)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("ner")
    docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    for ent in docs[0].ents:
        ner.add_label(ent.label_)
    examples = [Example(nlp.make_doc(d.text), d) for d in docs]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(40):  # one note, learnt by heart: the annotations reached spaCy intact
        nlp.update(examples, sgd=optimizer)
    gold = [(e.start_char, e.end_char, e.label_) for e in docs[0].ents]
    assert len(gold) == 3
    assert [(e.start_char, e.end_char, e.label_) for e in nlp(TEXT).ents] == gold


def test_a_docbin_from_elsewhere_gives_its_spans(tmp_path):
    nlp = spacy.blank("en")
    with_ents = nlp.make_doc("Metformin for diabetes.")
    with_ents.ents = [with_ents.char_span(0, 9, "Drug"), with_ents.char_span(14, 22, "Problem")]
    with_groups = nlp.make_doc("Chest pain in the left arm.")
    with_groups.spans["sc"] = [with_groups.char_span(0, 10, "Sign")]
    with_groups.spans["other"] = [with_groups.char_span(0, 10, "Sign"),
                                  with_groups.char_span(18, 26, "Anatomy")]
    with_groups.user_data["id"] = "arm"
    out = DocBin(store_user_data=True)
    out.add(with_ents)
    out.add(with_groups)
    out.to_disk(tmp_path / "foreign.spacy")
    first, second = [p.doc for p in read_docbin(tmp_path / "foreign.spacy")]
    assert first.id == "foreign-1"
    assert [(s.start, s.end, s.label) for s in first.spans] == [(0, 9, "Drug"), (14, 22, "Problem")]
    assert second.id == "arm"  # the same span in two groups is one annotation
    assert [(s.start, s.end, s.label) for s in second.spans] == [(0, 10, "Sign"),
                                                                 (18, 26, "Anatomy")]


def test_a_file_that_is_not_a_docbin_is_refused_clearly(tmp_path):
    bad = tmp_path / "notes.spacy"
    bad.write_text("not msgpack at all", encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"notes\.spacy: not a spaCy DocBin file"):
        read_docbin(bad)
    with pytest.raises(ImportFileError, match="no such file"):
        read_docbin(tmp_path / "missing.spacy")


@pytest.mark.skipif(not MACCROBAT.is_dir(), reason="MACCROBAT2020 (../shared/data) is absent")
def test_maccrobat_survives_the_spacy_format_through_the_registry(tmp_path):
    docs = [p.doc for txt in brat_units(MACCROBAT) for p in read_brat(txt)]
    summary = writer("spacy").write(docs, LabelSchema(), tmp_path, False, {})
    assert summary.startswith(f"200 documents to {tmp_path / 'documents.spacy'}")
    back = [p.doc for p in reader("spacy").read_unit(tmp_path / "documents.spacy",
                                                     max_bytes=200 * 2**20)]
    assert [(d.id, d.text, d.annotation_set()) for d in back] == [
        (d.id, d.text, d.annotation_set()) for d in docs
    ]
    # spaCy's layers hold every span that is not discontinuous, token-aligned
    nlp = spacy.blank("en")
    spacy_docs = list(DocBin().from_disk(tmp_path / "documents.spacy").get_docs(nlp.vocab))
    doc, spacy_doc = random.Random(0).choice(list(zip(docs, spacy_docs, strict=True)))
    assert len(spacy_doc.spans[SPAN_GROUP]) == len(doc.spans)


def test_a_project_exports_to_spacy_and_another_imports_it_identically(make_session, tmp_path):
    from noteloop.db import gold, projects
    from noteloop.usecases.import_export import (
        ExportOptions,
        ImportOptions,
        export_project,
        import_path,
    )

    sample_notes = Path(__file__).resolve().parents[1] / "sample_notes" / "notes"
    with make_session.begin() as session:
        projects.create_project(session, "a", LabelSchema())
        projects.create_project(session, "b", LabelSchema())
    assert import_path(make_session, "a", sample_notes,
                       ImportOptions("brat", extend_schema=True)).ok
    with make_session() as session:
        summary = export_project(session, "a", tmp_path, ExportOptions("spacy"))
    assert "documents to" in summary and "spaCy DocBin" in summary
    report = import_path(make_session, "b", tmp_path / "documents.spacy",
                         ImportOptions("spacy", extend_schema=True))
    assert report.ok, report.refused

    def gold_of(name: str) -> dict:
        with make_session() as session:
            docs = gold.gold_documents(session, projects.get_project(session, name))
        return {d.id: (d.text, d.annotation_set()) for d in docs}

    assert gold_of("b") == gold_of("a") and len(gold_of("a")) == 25


def test_a_large_export_is_written_in_docbins_spacy_reads_as_one_corpus(tmp_path, monkeypatch):
    from spacy.training import Corpus

    from noteloop.core.formats import spacy_docbin

    monkeypatch.setattr(spacy_docbin, "SHARD_NOTES", 2)
    docs = [replace(sample(), id=f"n{i}") for i in range(5)]
    summary = writer("spacy").write(docs, LabelSchema(), tmp_path, False, {})
    assert summary.startswith(f"5 documents to 3 files in {tmp_path} (spaCy DocBin)")
    assert sorted(p.name for p in tmp_path.glob("*.spacy")) == [
        "documents-0001.spacy", "documents-0002.spacy", "documents-0003.spacy"]
    nlp = spacy.blank("en")
    examples = list(Corpus(tmp_path)(nlp))  # spacy train's reader, given the folder
    assert len(examples) == 5
    units = reader("spacy").units(tmp_path)
    back = [p.doc for unit in units for p in reader("spacy").read_unit(unit)]
    assert [(d.id, d.annotation_set()) for d in back] == [
        (d.id, d.annotation_set()) for d in docs
    ]
