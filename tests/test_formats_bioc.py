"""BioC XML reading and writing: BC5CDR, hand-built clinical notes, generated documents."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noteloop.core.errors import ImportFileError, InvalidDocumentError
from noteloop.core.formats.bioc_xml import read_bioc, write_bioc
from noteloop.core.formats.pubtator import read_pubtator
from noteloop.core.schema import Document, Equivalence, Relation, Span

BC5CDR = Path("/work/shared/data/bc5cdr")
needs_bc5cdr = pytest.mark.skipif(not BC5CDR.is_dir(), reason="BC5CDR not present")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


def same(a: Document, b: Document) -> bool:
    return (a.id, a.text, a.annotation_set(), dict(a.metadata)) == (
        b.id,
        b.text,
        b.annotation_set(),
        dict(b.metadata),
    )


def round_trip(docs: list[Document], folder: Path) -> list[Document]:
    write_bioc(docs, folder / "out.xml")
    return [p.doc for p in read_bioc(folder / "out.xml")]


def collection(*documents: str) -> str:
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n<collection>\n"
        + "".join(documents)
        + "</collection>\n"
    )


# --------------------------------------------------------------------------- BC5CDR


@needs_bc5cdr
def test_bc5cdr_test_set_agrees_with_its_pubtator_version() -> None:
    bioc_docs = [p.doc for p in read_bioc(BC5CDR / "CDR_TestSet.BioC.xml")]
    pubtator_docs = [p.doc for p in read_pubtator(BC5CDR / "CDR_TestSet.PubTator.txt")]
    assert len(bioc_docs) == 500
    for b, p in zip(bioc_docs, pubtator_docs, strict=True):
        assert (b.id, b.text, dict(b.metadata)) == (p.id, p.text, dict(p.metadata))
    # BioC adds each composite's individual mentions as (often discontinuous) annotations.
    roles = Counter((s.label, s.attribute("CompositeRole")) for d in bioc_docs for s in d.spans)
    assert roles["Chemical", None] + roles["Chemical", "CompositeMention"] == 5385
    assert roles["Disease", None] + roles["Disease", "CompositeMention"] == 4424
    assert roles["Chemical", "IndividualMention"] + roles["Disease", "IndividualMention"] == 119
    assert sum(len(d.metadata["cid"].split(";")) for d in bioc_docs) == 1066


@needs_bc5cdr
def test_bc5cdr_test_set_round_trips(tmp_path: Path) -> None:
    first = [p.doc for p in read_bioc(BC5CDR / "CDR_TestSet.BioC.xml")]
    again = round_trip(first, tmp_path)
    assert all(same(a, b) for a, b in zip(first, again, strict=True))
    assert sum(d.span(s.id).discontinuous for d in again for s in d.spans) > 0


@needs_bc5cdr
@pytest.mark.parametrize(
    ("name", "lines"),
    [("Training", [11425, 18590, 53449]), ("Development", [9919])],
)
def test_bc5cdr_individual_mentions_with_wrong_locations_are_refused(
    name: str, lines: list[int]
) -> None:
    # Found in the release: e.g. "colorectal cancers" located at 223+7 = " cancer".
    with pytest.raises(ImportFileError) as info:
        read_bioc(BC5CDR / f"CDR_{name}Set.BioC.xml")
    assert [e.line for e in info.value.errors] == lines
    assert all("does not match the document text" in e.reason for e in info.value.errors)


# --------------------------------------------------------------------------- clinical notes

NOTE = "Pt c/o chest pain,\r\nno fever.\r\nHbA1c 7,2 % — metformin 500 mg 🙂\rend"


def clinical_note() -> Document:
    spans = [
        Span("T1", "Sign_symptom", 7, 17, attributes=(("Polarity", "POS"),), notes=("acute\r\n",)),
        Span("T2", "Sign_symptom", 23, 28, attributes=(("Polarity", "NEG"),)),
        Span("T3", "Lab_value", 31, 42, fragments=((31, 36), (37, 42)), concept="C0474680"),
        Span("T4", "Medication", 45, 54, concept="RxNorm:6809", notes=("first", "second")),
        Span("T5", "Dosage", 55, 61, attributes=(("Uncertain", "true"),)),
        Span("T6", "Medication", 45, 54),
    ]
    relations = [
        Relation("R1", "MODIFY", "T5", "T4", notes=("dose of\rmetformin",)),
        Relation("R2", "MODIFY", "T5", "T4"),  # a duplicate survives as a second relation
    ]
    equivalences = [Equivalence("Coref", ("T4", "T6")), Equivalence("Coref", ("T1", "T2", "T3"))]
    metadata = {"source": "ward 3\r\n", "empty": ""}
    return Document("note 1", NOTE, spans, relations, equivalences, metadata)


def test_a_clinical_note_round_trips_with_carriage_returns(tmp_path: Path) -> None:
    doc = clinical_note()
    (back,) = round_trip([doc], tmp_path)
    assert same(doc, back)
    assert back.text.count("\r") == 3
    raw = (tmp_path / "out.xml").read_bytes()
    assert b"\r" not in raw and b"&#13;" in raw  # XML would read a raw \r as \n


def test_written_xml_has_one_passage_and_typed_nodes(tmp_path: Path) -> None:
    write_bioc([clinical_note()], tmp_path / "out.xml")
    xml = (tmp_path / "out.xml").read_text(encoding="utf-8")
    assert xml.count("<passage>") == 1 and "<offset>0</offset>" in xml
    assert '<location offset="31" length="5"/>' in xml and '<infon key="attr:Polarity">' in xml
    assert '<node refid="T5" role="head"/>' in xml and '<node refid="T6" role="member"/>' in xml
    assert '<infon key="equivalence">true</infon>' in xml and '<infon key="note:1">' in xml


def test_characters_xml_cannot_hold_are_refused(tmp_path: Path) -> None:
    doc = Document("n1", "page one\x0cpage two")
    with pytest.raises(InvalidDocumentError, match=r"'n1': text holds U\+000C at offset 8"):
        write_bioc([doc], tmp_path / "out.xml")
    assert not (tmp_path / "out.xml").exists()


XML_SAFE = st.characters(
    codec="utf-8", exclude_categories=("Cs",), exclude_characters="\ufffe\uffff"
).filter(lambda c: c >= " " or c in "\t\n\r")
# Pieces, not characters: "\r\n" must be drawn whole as often as a lone "\r" or "\n".
PIECES = st.one_of(XML_SAFE, st.sampled_from(["\r", "\r\n", "\n", " ", "\x85"]))
TEXT = st.lists(PIECES, max_size=30).map("".join)
LABELS = st.sampled_from(["Problem", "Drug", "Test_1", "Ärztin"])


@st.composite
def spans_for(draw: st.DrawFn, text: str) -> list[Span]:
    spans = []
    for i in range(draw(st.integers(0, 5)) if text else 0):
        cuts = sorted(draw(st.sets(st.integers(0, len(text)), min_size=2, max_size=6)))
        frags = tuple(zip(cuts[::2], cuts[1::2], strict=False))
        names = draw(st.lists(st.sampled_from(["Neg", "Hist", "Temporal"]), unique=True))
        attributes = tuple((n, draw(TEXT)) for n in names)
        concept = draw(st.sampled_from(["", "C0011849", "D001|D002"]))
        notes = tuple(draw(st.lists(TEXT, max_size=3)))
        label = draw(LABELS)
        start, end = frags[0][0], frags[-1][1]
        spans.append(Span(f"T{i}", label, start, end, frags, attributes, notes, concept))
    return spans


@st.composite
def documents(draw: st.DrawFn) -> Document:
    text = draw(TEXT)
    spans = draw(spans_for(text))
    ids = [s.id for s in spans]
    relations = []
    if ids:
        for i in range(draw(st.integers(0, 4))):
            head, tail = draw(st.sampled_from(ids)), draw(st.sampled_from(ids))
            notes = tuple(draw(st.lists(TEXT, max_size=2)))
            relations.append(Relation(f"R{i}", draw(LABELS), head, tail, notes))
    equivalences = []
    if len(ids) >= 2:
        for _ in range(draw(st.integers(0, 2))):
            members = draw(st.lists(st.sampled_from(ids), min_size=2, max_size=4, unique=True))
            equivalences.append(Equivalence(draw(LABELS), tuple(members)))
    metadata = draw(st.dictionaries(st.text("abxyz_:", min_size=1, max_size=5), TEXT, max_size=3))
    doc_id = draw(st.text(XML_SAFE, min_size=1, max_size=8).filter(str.strip))
    return Document(doc_id, text, spans, relations, equivalences, metadata)


@settings(max_examples=80, deadline=None)
@given(docs=st.lists(documents(), min_size=1, max_size=3, unique_by=lambda d: d.id))
def test_generated_documents_round_trip(
    tmp_path_factory: pytest.TempPathFactory, docs: list[Document]
) -> None:
    again = round_trip(docs, tmp_path_factory.mktemp("bioc"))
    assert len(again) == len(docs)
    for a, b in zip(docs, again, strict=True):
        assert same(a, b), (a, b)


# --------------------------------------------------------------------------- reading

GAPPED = collection(
    "<document><id>d1</id>\n",  # line 3
    '<infon key="source">ward</infon>\n',
    "<passage><infon key='type'>title</infon><offset>0</offset><text>Chest pain</text></passage>\n",
    "<passage><offset>12</offset><text>Arg2 after Arg1.</text>\n",  # line 6
    "<annotation id='a1'><infon key='type'>Sign</infon><infon key='CUI'>C1</infon>\n",  # line 7
    "<infon key='note'>one</infon><infon key='note:2'>three</infon>"
    "<infon key='note:1'>two</infon>\n",
    "<location offset='0' length='5'/><location offset='6' length='4'/><text>Chest pain</text>\n",
    "</annotation>\n",
    "<annotation id='a2'><infon key='label'>Sign</infon><infon key='MESH'>-1</infon>\n",  # line 11
    "<location offset='12' length='4'/><text>Arg2</text></annotation>\n",
    "</passage>\n",
    "<relation id='r1'><infon key='type'>Before</infon>\n",  # line 14
    "<node refid='a2' role='Arg2'/><node refid='a1' role='Arg1'/></relation>\n",
    "</document>\n",
)


def test_passages_are_placed_at_their_offsets(tmp_path: Path) -> None:
    (parsed,) = read_bioc(write(tmp_path / "x.xml", GAPPED))
    doc = parsed.doc
    assert doc.text == "Chest pain  Arg2 after Arg1."  # the gap of two characters is spaces
    a1, a2 = doc.span("a1"), doc.span("a2")
    assert a1.fragments == ((0, 5), (6, 10)) and a1.notes == ("one", "two", "three")
    assert a1.attributes == (("CUI", "C1"),)  # an unknown infon is kept, as an attribute
    assert (a2.label, a2.concept) == ("Sign", "")
    assert doc.relations == (Relation("r1", "Before", "a1", "a2"),)  # Arg1 is the head
    assert dict(doc.metadata) == {"source": "ward", "title_length": "10"}
    assert (parsed.line, parsed.lines) == (3, {"a1": 7, "a2": 11, "r1": 14})


def test_a_passage_without_text_is_built_from_its_sentences(tmp_path: Path) -> None:
    content = collection(
        "<document><id>s</id><passage><offset>0</offset>\n",
        "<sentence><offset>0</offset><text>No rash.</text></sentence>\n",
        "<sentence><offset>9</offset><text>Fever.</text>\n",
        "<annotation id='f'><infon key='type'>Sign</infon><location offset='9' length='5'/>",
        "</annotation></sentence></passage></document>\n",
    )
    (parsed,) = read_bioc(write(tmp_path / "x.xml", content))
    assert parsed.doc.text == "No rash. Fever."
    assert parsed.doc.span("f").text_in(parsed.doc.text) == "Fever"
    assert parsed.lines == {"f": 6}


CID_PUBTATOR = (
    "5|t|Drug gives rash\n"
    "5|a|Drug again. Rash again.\n"
    "5\t0\t4\tDrug\tChemical\tC1\n"
    "5\t11\t15\trash\tDisease\tD1\n"
    "5\t16\t20\tDrug\tChemical\tC1\n"
    "5\t28\t32\tRash\tDisease\tD1\n"
    "5\tCID\tC1\tD1\n"
    "5\tCID\tC2\tD1\n"
)


def cid_annotation(i: int, label: str, concept: str, offset: int, text: str) -> str:
    return (
        f"<annotation id='{i}'><infon key='type'>{label}</infon><infon key='MESH'>{concept}"
        f"</infon><location offset='{offset}' length='{len(text)}'/><text>{text}</text>"
        "</annotation>\n"
    )


def cid_relation(i: int, chem: str, dis: str) -> str:
    return (
        f"<relation id='R{i}'><infon key='relation'>CID</infon><infon key='Chemical'>{chem}"
        f"</infon><infon key='Disease'>{dis}</infon></relation>\n"
    )


CID_BIOC = collection(
    "<document><id>5</id>\n",
    "<passage><infon key='type'>title</infon><offset>0</offset><text>Drug gives rash</text>\n",
    cid_annotation(0, "Chemical", "C1", 0, "Drug"),
    cid_annotation(1, "Disease", "D1", 11, "rash"),
    "</passage>\n<passage><offset>16</offset><text>Drug again. Rash again.</text>\n",
    cid_annotation(2, "Chemical", "C1", 16, "Drug"),
    cid_annotation(3, "Disease", "D1", 28, "Rash"),
    "</passage>\n",
    cid_relation(0, "C1", "D1"),  # line 12
    cid_relation(1, "C2", "D1"),
    "</document>\n",
)


@pytest.mark.parametrize("rule", ["sentence-or-closest", "all-pairs"])
def test_document_level_cid_follows_the_pubtator_rule(tmp_path: Path, rule: str) -> None:
    (b,) = read_bioc(write(tmp_path / "x.xml", CID_BIOC), cid_rule=rule)
    (p,) = read_pubtator(write(tmp_path / "x.txt", CID_PUBTATOR), cid_rule=rule)
    assert (b.doc.text, dict(b.doc.metadata)) == (p.doc.text, dict(p.doc.metadata))
    assert b.doc.annotation_set() == p.doc.annotation_set()
    # Only the title holds a chemical and a disease mention in one sentence.
    assert len(b.doc.relations) == (1 if rule == "sentence-or-closest" else 4)
    assert b.doc.metadata["cid_unmapped"] == "1"
    assert {b.line_of(r.id) for r in b.doc.relations} == {12}


# --------------------------------------------------------------------------- errors

TRUNCATED = CID_BIOC[: CID_BIOC.index("<relation")]  # 11 lines, then the end of the data


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("<collection>\n<document>\n<id>1</id>\n</collection>", 4, "Opening and ending tag"),
        (TRUNCATED, 12, "XML: Premature end of data in tag document line 3"),
        ("<?xml version='1.0'?>\n<notbioc/>", 2, "root element is <notbioc>"),
        (
            "<!DOCTYPE c [<!ENTITY a 'aaaa'>]>\n<collection>&a;</collection>",
            1,
            "entity declarations",
        ),
    ],
)
def test_broken_xml_is_refused_with_its_line(
    tmp_path: Path, content: str, line: int, reason: str
) -> None:
    with pytest.raises(ImportFileError) as info:
        read_bioc(write(tmp_path / "x.xml", content))
    (error,) = info.value.errors
    assert (error.line, reason in error.reason) == (line, True), error


BAD = collection(
    "<document><id>1</id>\n",  # 3
    "<passage><offset>0</offset><text>Aspirin for pain.</text>\n",
    "<annotation id='a'><location offset='0' length='7'/></annotation>\n",  # 5 no type
    "<annotation id='b'><infon key='type'>Drug</infon>"
    "<location offset='0' length='7'/><text>Ibuprofen</text></annotation>\n",  # 6 mismatch
    "<annotation id='c'><infon key='type'>Drug</infon>"
    "<location offset='12' length='40'/></annotation>\n",  # 7 beyond the text
    "<annotation id='c'><infon key='type'>Pain</infon>"
    "<location offset='12' length='4'/></annotation>\n",  # 8 duplicate id
    "<annotation id='d'><infon key='type'>Pain</infon><infon key='bad name'>x</infon>"
    "<location offset='12' length='4'/></annotation>\n",  # 9 attribute name
    "<annotation id='e'><infon key='type'>Pain</infon>"
    "<location offset='12' length='4'/></annotation>\n",
    "</passage>\n",
    "<passage><offset>5</offset><text>overlap</text></passage>\n",  # 12 overlap
    "<relation id='r1'><infon key='type'>Treats</infon><node refid='e' role='head'/>"
    "<node refid='zz' role='tail'/></relation>\n",  # 13 unknown node
    "<relation id='r2'><infon key='type'>Treats</infon><node refid='e' role='a'/>"
    "<node refid='e' role='b'/><node refid='e' role='c'/></relation>\n",  # 14 three nodes
    "<relation id='r3'><infon key='type'>Note</infon></relation>\n",  # 15 no nodes, not CID
    "<relation id='e'><infon key='type'>Treats</infon><node refid='e' role='head'/>"
    "<node refid='e' role='tail'/></relation>\n",  # 16 id of an annotation
    "</document>\n",
    "<document><id>1</id><passage><offset>0</offset></passage></document>\n",  # 18 duplicate
)

BAD_LINES = {
    5: "annotation a has no infon type",
    6: "annotation b text 'Ibuprofen' does not match the document text at [(0, 7)]: 'Aspirin'",
    7: "annotation c: location 12-52 is empty or beyond the document text (length 17)",
    8: "duplicate annotation id c in document 1",
    9: "annotation d: attribute name 'bad name' is not valid",
    12: "text at offset 5 starts before the text before it ends (at 17)",
    13: "relation r1 names ['zz'], which are not annotations of this document",
    14: "relation r2 has 3 nodes: a relation links two annotations",
    15: "relation r3 has no nodes: only BC5CDR's document-level CID relations",
    16: "relation id e is already used in document 1",
    18: "duplicate document id 1: also starts at line 3",
}


def test_every_bad_element_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError) as info:
        read_bioc(write(tmp_path / "bad.xml", BAD))
    found = {e.line: e.reason for e in info.value.errors}
    assert sorted(found) == sorted(BAD_LINES)
    for line, start in BAD_LINES.items():
        assert found[line].startswith(start), (line, found[line])


def test_elements_bioc_cannot_decode_are_reported_before_decoding(tmp_path: Path) -> None:
    content = collection(
        "<document>\n",  # 3: no id
        "<passage><offset>x</offset></passage>\n",  # 4
        "<relation id='r'><node refid='a'/></relation>\n",  # 5: node without role
        "</document>\n",
    )
    with pytest.raises(ImportFileError) as info:
        read_bioc(write(tmp_path / "x.xml", content))
    assert [(e.line, e.reason[:12]) for e in info.value.errors] == [
        (3, "<document> h"),
        (4, "<passage> ne"),
        (5, "<node> needs"),
    ]
