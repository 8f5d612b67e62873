"""UIMA CAS XMI: noteloop's export as dkpro-cassis (INCEpTION's Python peer) reads it, and
XMI that cassis writes read back."""

from __future__ import annotations

from pathlib import Path

import pytest

from noteloop.core.errors import ImportFileError
from noteloop.core.formats.brat import brat_units, read_brat
from noteloop.core.formats.uima_xmi import (
    DOCUMENT_METADATA,
    RELATION_TYPE,
    SPAN_TYPE,
    TYPESYSTEM_FILE,
    read_xmi,
    write_xmi,
    xmi_units,
)
from noteloop.core.schema import Document, Equivalence, Relation, Span

cassis = pytest.importorskip("cassis")  # a dev dependency: `make test` installs it

MACCROBAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "maccrobat2020"
TEXT = "Aspirin 81mg for chest pain and left arm pain.\r\n\x0c😊 here\tok\x01.\r\n"
NER = "de.tudarmstadt.ukp.dkpro.core.api.ner.type.NamedEntity"
SENTENCE = "de.tudarmstadt.ukp.dkpro.core.api.segmentation.type.Sentence"
TOKEN = "de.tudarmstadt.ukp.dkpro.core.api.segmentation.type.Token"


def sample() -> Document:
    emoji = TEXT.index("😊")
    spans = (
        Span("T1", "Drug", 0, 7, attributes=(("Negated", "true"), ("Dose", "a=b")),
             concept="MeSH:D001241"),
        Span("T2", "Dosage", 8, 11),  # cuts the token "81mg"
        Span("T3", "Sign_symptom", 17, 27, notes=("check\r\nthis", "second")),
        Span("T4", "Anatomy", 23, 27),  # inside T3
        Span("T5", "Sign", 32, 45, fragments=((32, 40), (41, 45))),  # discontinuous
        Span("T6", "Other", emoji, emoji + 1),  # two UTF-16 units
        Span("T7", "Tail", emoji + 2, emoji + 7),  # "here\t"
    )
    relations = (Relation("R1", "treats", "T1", "T3", notes=("why",)),
                 Relation("R2", "at", "T4", "T2"))
    return Document("n1", TEXT, spans, relations, (Equivalence("Overlap", ("T3", "T4")),),
                    {"ward": "ICU", "age": "54"})


def read_one(path: Path) -> Document:
    (parsed,) = read_xmi(path)
    return parsed.doc


def same(a: Document, b: Document) -> bool:
    return (a.id, a.text, a.annotation_set(), dict(a.metadata)) == (
        b.id, b.text, b.annotation_set(), dict(b.metadata))


# --------------------------------------------------------------------------- round trips


def test_a_note_comes_back_exactly(tmp_path):
    report = write_xmi([sample()], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [TYPESYSTEM_FILE, "n1.xmi"]
    assert same(read_one(tmp_path / "n1.xmi"), sample())
    assert (report.documents, report.spans, report.relations) == (1, 7, 2)
    assert (report.control_characters, report.replaced) == (2, 0)


def test_cassis_reads_the_export_as_inception_would(tmp_path):
    write_xmi([sample()], tmp_path)
    ts = cassis.load_typesystem(tmp_path / TYPESYSTEM_FILE)
    cas = cassis.load_cas_from_xmi((tmp_path / "n1.xmi").read_text(encoding="utf-8"),
                                   typesystem=ts)  # strict: every type is declared
    concepts = {c.label: c for c in cas.select(SPAN_TYPE)}
    assert [(c.begin, c.end, c.get_covered_text()) for c in concepts.values()][:3] == [
        (0, 7, "Aspirin"), (8, 11, "81m"), (17, 27, "chest pain")]
    assert concepts["Other"].get_covered_text() == "😊"
    assert concepts["Drug"].identifier == "MeSH:D001241"
    assert sorted(concepts["Drug"].attributes.elements) == ["Dose=a=b", "Negated=true"]
    assert concepts["Sign_symptom"].notes.elements == ["check\r\nthis", "second"]
    pieces = [p.get_covered_text() for p in concepts["Sign"].fragments.elements]
    assert pieces == ["left arm", "pain"]
    rel = next(r for r in cas.select(RELATION_TYPE) if r.label == "treats")
    assert (rel.Governor.label, rel.Dependent.label) == ("Drug", "Sign_symptom")
    assert (rel.begin, rel.end) == (rel.Dependent.begin, rel.Dependent.end)  # DKPro's rule
    (meta,) = cas.select(DOCUMENT_METADATA)
    assert meta.documentId == "n1"
    # XML 1.0 holds no form feed: a space in the XMI, its code beside it
    assert cas.sofa_string == TEXT.replace("\x0c", " ").replace("\x01", " ")


def test_xml_illegal_characters_in_values_are_replaced_and_counted(tmp_path):
    doc = Document("d", "Pain.\n", (Span("T1", "Sign", 0, 4, notes=("bell\x07",)),),
                   metadata={"k": "v\x00"})
    report = write_xmi([doc], tmp_path)
    back = read_one(tmp_path / "d.xmi")
    assert back.spans[0].notes == ("bell\ufffd",) and back.metadata["k"] == "v\ufffd"
    assert report.replaced == 2


def test_without_a_type_system_noteloop_types_are_used(tmp_path):
    write_xmi([sample()], tmp_path)
    (tmp_path / TYPESYSTEM_FILE).unlink()
    assert same(read_one(tmp_path / "n1.xmi"), sample())


@pytest.mark.skipif(not MACCROBAT.is_dir(), reason="MACCROBAT2020 (../shared/data) is absent")
def test_maccrobat_round_trips_exactly(tmp_path):
    docs = [p.doc for txt in brat_units(MACCROBAT) for p in read_brat(txt)]
    report = write_xmi(docs, tmp_path)
    back = {d.id: d for d in (read_one(u) for u in xmi_units(tmp_path))}
    assert len(back) == report.documents == 200
    assert all(same(back[d.id], d) for d in docs)
    assert sum(s.discontinuous for d in back.values() for s in d.spans) > 0
    assert sum(len(d.equivalences) for d in back.values()) > 0


# --------------------------------------------------------------------------- the peer's XMI


def inception_like_typesystem():
    """Types as an INCEpTION project defines them: a custom span layer with ``value``, a
    custom relation layer on it, DKPro Core's named entities, sentences and tokens."""
    ts = cassis.TypeSystem()
    span = ts.create_type("webanno.custom.Span", supertypeName="uima.tcas.Annotation")
    ts.create_feature(span, "value", "uima.cas.String")
    ts.create_feature(span, "negated", "uima.cas.Boolean")
    link = ts.create_type("webanno.custom.Link", supertypeName="uima.tcas.Annotation")
    ts.create_feature(link, "Governor", span)
    ts.create_feature(link, "Dependent", span)
    ts.create_feature(link, "role", "uima.cas.String")
    ner = ts.create_type(NER, supertypeName="uima.tcas.Annotation")
    ts.create_feature(ner, "value", "uima.cas.String")
    ts.create_feature(ner, "identifier", "uima.cas.String")
    ts.create_type(SENTENCE, supertypeName="uima.tcas.Annotation")
    ts.create_type(TOKEN, supertypeName="uima.tcas.Annotation")
    return ts


def write_peer(folder: Path, name: str, build) -> Path:  # type: ignore[no-untyped-def]
    ts = inception_like_typesystem()
    cas = cassis.Cas(typesystem=ts)
    cas.sofa_string = "Metformin 500 mg for type 2 diabetes.\n"
    build(ts, cas)
    folder.mkdir(parents=True, exist_ok=True)
    ts.to_xml(folder / "typesystem.xml")
    cas.to_xmi(folder / name)
    return folder / name


def test_xmi_that_cassis_writes_gives_its_spans_and_relations(tmp_path):
    def build(ts, cas):  # type: ignore[no-untyped-def]
        span, link, ner = (ts.get_type(n) for n in ("webanno.custom.Span",
                                                    "webanno.custom.Link", NER))
        cas.add(ts.get_type(SENTENCE)(begin=0, end=37))
        cas.add_all(ts.get_type(TOKEN)(begin=b, end=e) for b, e in ((0, 9), (10, 13)))
        drug = span(begin=0, end=9, value="Drug")
        problem = span(begin=21, end=36, negated=False)  # no value
        cas.add_all([drug, problem])
        cas.add(link(begin=21, end=36, Governor=drug, Dependent=problem, role="treats"))
        cas.add(ner(begin=26, end=36, value="Disease", identifier="MeSH:D003924"))

    doc = read_one(write_peer(tmp_path, "note7.xmi", build))
    assert (doc.id, doc.text) == ("note7", "Metformin 500 mg for type 2 diabetes.\n")
    got = [(s.label, s.start, s.end, s.concept, s.attributes) for s in doc.spans]
    assert got == [("Drug", 0, 9, "", ()), ("Span", 21, 36, "", (("negated", "false"),)),
                   ("Disease", 26, 36, "MeSH:D003924", ())]  # sentences, tokens read past
    (rel,) = doc.relations
    assert (rel.label, doc.span(rel.head).label, doc.span(rel.tail).label) == (
        "treats", "Drug", "Span")


def test_a_zero_width_annotation_is_refused_with_its_line_and_id(tmp_path):
    def build(ts, cas):  # type: ignore[no-untyped-def]
        span = ts.get_type("webanno.custom.Span")
        cas.add_all([span(begin=0, end=9, value="Drug"), span(begin=4, end=4, value="Gap")])

    path = write_peer(tmp_path, "zero.xmi", build)
    with pytest.raises(ImportFileError) as info:
        read_xmi(path)
    (error,) = info.value.errors
    assert error.line > 1
    assert "webanno.custom.Span xmi:id" in error.reason and "zero-width" in error.reason


# --------------------------------------------------------------------------- bad files


def test_files_that_are_not_xmi_are_refused_with_their_line(tmp_path):
    bad = tmp_path / "bad.xmi"
    bad.write_text("<?xml version='1.0'?>\n<xmi:XMI>\n<unclosed>\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"bad\.xmi:2: not a UIMA CAS XMI file"):
        read_xmi(bad)
    write_xmi([sample()], tmp_path / "ts")
    (tmp_path / "ts" / TYPESYSTEM_FILE).write_text("no xml", encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"TypeSystem\.xml.*not a UIMA type system"):
        read_xmi(tmp_path / "ts" / "n1.xmi")
    with pytest.raises(ImportFileError, match="no such file"):
        read_xmi(tmp_path / "missing.xmi")


def test_a_broken_attribute_is_named(tmp_path):
    write_xmi([sample()], tmp_path)
    path = tmp_path / "n1.xmi"
    path.write_text(path.read_text(encoding="utf-8").replace("Negated=true", "Negated"),
                    encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"n1\.xmi:\d+: .*attribute 'Negated' is not"):
        read_xmi(path)


def test_a_folder_reads_every_xmi_file(tmp_path):
    write_xmi([sample(), Document("n2", "Other note.\n")], tmp_path / "out")
    assert [u.name for u in xmi_units(tmp_path / "out")] == ["n1.xmi", "n2.xmi"]
    assert [read_one(u).id for u in xmi_units(tmp_path / "out")] == ["n1", "n2"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFileError, match=r"folder holds no \.xmi files"):
        xmi_units(tmp_path / "empty")
