"""WebAnno TSV 3.3: noteloop's export read back, and INCEpTION's own files read as INCEpTION
reads them."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noteloop.core.errors import ImportFileError
from noteloop.core.formats.brat import brat_units, read_brat
from noteloop.core.formats.webanno_tsv import (
    document_tsv,
    escape_text,
    escape_value,
    read_webanno_tsv,
    unescape_text,
    unescape_value,
    webanno_units,
    write_webanno_tsv,
)
from noteloop.core.schema import Document, Equivalence, Relation, Span

MACCROBAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "maccrobat2020"
TEXT = "Aspirin 81mg for chest pain and left arm pain.\r\n\r\n\tNext line 😊 here\tok.\r\n"


def sample() -> Document:
    emoji = TEXT.index("😊")
    spans = (
        Span("T1", "Drug", 0, 7, attributes=(("Negated", "true"),), concept="MeSH:D001241"),
        Span("T2", "Dosage", 8, 11),  # "81m" cuts the token "81mg": a sub-token
        Span("T3", "Sign_symptom", 17, 27, notes=("check",)),  # chest pain, two tokens
        Span("T4", "Anatomy", 23, 27),  # "pain" inside T3: stacked
        Span("T5", "Sign", 32, 45, fragments=((32, 40), (41, 45))),  # discontinuous
        Span("T6", "Other", emoji, emoji + 1),  # two UTF-16 units
        Span("T7", "Tail", emoji + 3, emoji + 8),  # "here" and the tab after it
    )
    relations = (Relation("R1", "treats", "T1", "T3"), Relation("R2", "at", "T4", "T2"),
                 Relation("R3", "same", "T6", "T6", notes=("self",)))
    equivalences = (Equivalence("Overlap", ("T3", "T4")),)
    return Document("n1", TEXT, spans, relations, equivalences)


def as_carried(doc: Document) -> Document:
    """``doc`` as WebAnno TSV carries it: discontinuous spans as one extent, no notes,
    no equivalences."""
    spans = [replace(s, fragments=(), notes=()) for s in doc.spans]
    relations = [replace(r, notes=()) for r in doc.relations]
    return doc.with_annotations(spans, relations)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def read_one(path: Path) -> Document:
    (parsed,) = read_webanno_tsv(path)
    return parsed.doc


# --------------------------------------------------------------------------- round trips


def test_a_note_comes_back_with_its_exact_text_and_what_tsv_carries(tmp_path):
    report = write_webanno_tsv([sample()], tmp_path)
    back = read_one(tmp_path / "n1.tsv")
    assert (back.id, back.text) == ("n1", TEXT)
    assert back.annotation_set() == as_carried(sample()).annotation_set()
    assert (report.documents, report.spans, report.relations) == (1, 7, 3)
    assert (report.discontinuous, report.notes, report.equivalences) == (1, 2, 1)
    assert (report.line_break_added, report.attributes_dropped) == (0, 0)


def test_the_file_is_what_inception_writes(tmp_path):
    text = "Aspirin 81mg for chest pain\n"
    spans = (Span("T1", "Drug", 0, 7), Span("T2", "Dose", 8, 10), Span("T3", "Sign", 17, 27))
    doc = Document("d", text, spans, (Relation("R1", "treats", "T1", "T3"),))
    assert document_tsv(doc).split("\n") == [
        "#FORMAT=WebAnno TSV 3.3",
        "#T_SP=webanno.custom.Concept|label",
        "#T_RL=webanno.custom.Relation|label|BT_webanno.custom.Concept",
        "",
        "",
        "#Text=Aspirin 81mg for chest pain",
        "1-1\t0-7\tAspirin\tDrug\t_\t_\t",
        "1-2\t8-12\t81mg\t_\t_\t_\t",
        "1-2.1\t8-10\t81\tDose\t_\t_\t",
        "1-3\t13-16\tfor\t_\t_\t_\t",
        "1-4\t17-22\tchest\tSign[1]\ttreats\t1-1[0_1]\t",
        "1-5\t23-27\tpain\tSign[1]\t_\t_\t",
        "",
    ]


def test_a_text_without_a_final_line_break_gains_one_and_nothing_else_moves(tmp_path):
    doc = Document("d", "No break at the end.", (Span("T1", "X", 3, 8),))
    report = write_webanno_tsv([doc], tmp_path)
    back = read_one(tmp_path / "d.tsv")
    assert back.text == doc.text + "\n"
    assert [(s.start, s.end) for s in back.spans] == [(3, 8)]
    assert report.line_break_added == 1


@pytest.mark.parametrize(
    "text",
    [
        "\n\n\tIndented by a tab after blank lines\n",
        "   Indented by spaces\n    and again\n\n\n",
        "Windows\r\nline ends\r\n\r\n",
        "Tabs\tand\x0bvertical\x0ctabs, a \\ backslash and \x01 control\n",
        "Trailing spaces   \n  \t \nend\n",
        "😊😊 astral 😊\n😊\n",
        " \n",
    ],
)
def test_whitespace_and_line_ends_are_kept_exactly(tmp_path, text):
    write_webanno_tsv([Document("d", text)], tmp_path)
    assert read_one(tmp_path / "d.tsv").text == text


_CHARS = st.sampled_from(list("ab1 .,\n\r\t-😊"))


@st.composite
def documents(draw: st.DrawFn) -> Document:
    text = draw(st.text(_CHARS, min_size=1, max_size=40)) + "\n"
    spans = []
    for k in range(draw(st.integers(0, 6))):
        start = draw(st.integers(0, len(text) - 1))
        end = draw(st.integers(start + 1, len(text)))
        spans.append(Span(f"T{k}", draw(st.sampled_from(["A", "B_c"])), start, end))
    relations = []
    if len(spans) >= 2:
        relations.append(Relation("R1", "rel", spans[0].id, spans[-1].id))
    return Document("d", text, tuple(spans), tuple(relations))


@settings(max_examples=150, deadline=None)
@given(documents())
def test_any_text_and_spans_come_back_exactly(doc):
    with tempfile.TemporaryDirectory() as folder:
        write_webanno_tsv([doc], Path(folder))
        back = read_one(Path(folder) / "d.tsv")
    assert back.text == doc.text
    assert back.annotation_set() == doc.annotation_set()


def test_attribute_names_that_cannot_be_features_are_counted(tmp_path):
    doc = Document("d", "Pain here\n", (Span("T1", "Sign", 0, 4,
                                               attributes=(("Neg-ated", "true"), ("Kind", "x"))),))
    report = write_webanno_tsv([doc], tmp_path)
    assert report.attributes_dropped == 1
    (span,) = read_one(tmp_path / "d.tsv").spans
    assert span.attributes == (("Kind", "x"),)


def test_escaping_matches_inception():
    # The value of INCEpTION's test testTokenBoundedSpanWithSpecialSymbolsValue, and the
    # column its writer made of it (reference.tsv, below).
    value = "#*'\"`´\t:;{}|[ ]()\\§$%?=&_\n"
    column = "#\\*'\"`´\\t:\\;{}\\|\\[ \\]()\\\\§$%?=&\\_\\n"
    assert escape_value(value) == column
    assert unescape_value(column) == value
    assert escape_value("a->b") == "a\\->b"
    assert unescape_text(escape_text("a\tb\\c\rd\x01e\x0bf")) == "a\tb\\c\rd\x01e\x0bf"
    assert escape_text("a\tb\\c\r\x01") == "a\\tb\\\\c\\r\\\x01"


# --------------------------------------------------------------------------- INCEpTION's files
# Reference files of INCEpTION's own TSV writer, from inception-project/inception,
# inception/inception-io-webanno-tsv/src/test/resources/tsv3-suite/<test>/reference.tsv


INCEPTION = {
    "testSingleNonMultiTokenRelationWithoutFeatureValue": (
        "#FORMAT=WebAnno TSV 3.3\n"
        "#T_SP=webanno.custom.Span|value\n"
        "#T_RL=webanno.custom.Relation|value|BT_webanno.custom.Span\n\n\n"
        "#Text=This is a test .\n"
        "1-1\t0-4\tThis\t*[1]\t_\t_\t\n"
        "1-2\t5-7\tis\t*[1]\t_\t_\t\n"
        "1-3\t8-9\ta\t*[2]\t*\t1-1[1_2]\t\n"
        "1-4\t10-14\ttest\t*[2]\t_\t_\t\n"
        "1-5\t15-16\t.\t_\t_\t_\t\n"
    ),
    "testMultiTokenStackedSpanWithFeatureValue": (
        "#FORMAT=WebAnno TSV 3.3\n"
        "#T_SP=webanno.custom.Span|value\n\n\n"
        "#Text=This is a test .\n"
        "1-1\t0-4\tThis\tPERSON[1]|LOCATION[2]\t\n"
        "1-2\t5-7\tis\tPERSON[1]|LOCATION[2]\t\n"
        "1-3\t8-9\ta\tPERSON[1]|LOCATION[2]\t\n"
        "1-4\t10-14\ttest\tPERSON[1]|LOCATION[2]\t\n"
        "1-5\t15-16\t.\tPERSON[1]|LOCATION[2]\t\n"
    ),
    "testSubMultiTokenSpanWithoutFeatureValue3": (
        "#FORMAT=WebAnno TSV 3.3\n"
        "#T_SP=webanno.custom.Span|value\n\n\n"
        "#Text=This is a test .\n"
        "1-1\t0-4\tThis\t_\t\n"
        "1-1.1\t1-4\this\t*[1]\t\n"
        "1-2\t5-7\tis\t_\t\n"
        "1-2.1\t5-6\ti\t*[1]\t\n"
        "1-2.2\t6-7\ts\t*[2]\t\n"
        "1-3\t8-9\ta\t*[2]\t\n"
        "1-4\t10-14\ttest\t_\t\n"
        "1-4.1\t10-12\tte\t*[2]\t\n"
        "1-5\t15-16\t.\t_\t\n"
    ),
    "testSubTokenRelation2": (
        "#FORMAT=WebAnno TSV 3.3\n"
        "#T_SP=webanno.custom.Span|value\n"
        "#T_RL=webanno.custom.Relation|value|BT_webanno.custom.Span\n\n\n"
        "#Text=Test again\n"
        "1-1\t0-4\tTest\t_\t_\t_\t\n"
        "1-1.1\t0-1\tT\tOTH\t_\t_\t\n"
        "1-2\t5-10\tagain\tOTH\t*\t1-1.1\t\n"
    ),
    "testSingleStackedNonTokenOverlappingRelationWithoutFeatureValue": (
        "#FORMAT=WebAnno TSV 3.3\n"
        "#T_SP=webanno.custom.Span|value\n"
        "#T_RL=webanno.custom.Relation|value|BT_webanno.custom.Span\n\n\n"
        "#Text=This is a test .\n"
        "1-1\t0-4\tThis\t*[1]|*[2]\t_\t_\t\n"
        "1-2\t5-7\tis\t*[1]|*[2]\t_\t_\t\n"
        "1-3\t8-9\ta\t*[1]|*[2]\t_\t_\t\n"
        "1-4\t10-14\ttest\t*[1]|*[2]\t_\t_\t\n"
        "1-5\t15-16\t.\t*[1]|*[2]|*[3]|*[4]\t*\t1-1[1_3]\t\n"
    ),
    "testCrossSentenceSpanWithoutFeatureValue": (
        "#FORMAT=WebAnno TSV 3.3\n"
        "#T_SP=webanno.custom.Span|value\n\n\n"
        "#Text=He loves her .\n"
        "1-1\t0-2\tHe\t*[1]\t\n1-2\t3-8\tloves\t*[1]\t\n1-3\t9-12\ther\t*[1]\t\n"
        "1-4\t13-14\t.\t*[1]\t\n\n"
        "#Text=She loves him not .\n"
        "2-1\t15-18\tShe\t*[1]\t\n2-2\t19-24\tloves\t*[1]\t\n2-3\t25-28\thim\t*[1]\t\n"
        "2-4\t29-32\tnot\t*[1]\t\n2-5\t33-34\t.\t*[1]\t\n"
    ),
    "testSentenceId": (
        "#FORMAT=WebAnno TSV 3.3\n\n\n"
        "#Sentence.id=sent-1\n#Text=He loves her .\n"
        "1-1\t0-2\tHe\t\n1-2\t3-8\tloves\t\n1-3\t9-12\ther\t\n1-4\t13-14\t.\t\n\n"
        "#Sentence.id=sent-2\n#Text=She loves him not .\n"
        "2-1\t15-18\tShe\t\n2-2\t19-24\tloves\t\n2-3\t25-28\thim\t\n2-4\t29-32\tnot\t\n"
        "2-5\t33-34\t.\t\n"
    ),
}


def spans_of(doc: Document) -> list[tuple[str, int, int]]:
    return [(s.label, s.start, s.end) for s in doc.spans]


def test_inception_relation_between_multi_token_spans(tmp_path):
    name = "testSingleNonMultiTokenRelationWithoutFeatureValue"
    doc = read_one(write(tmp_path, f"{name}.tsv", INCEPTION[name]))
    assert doc.text == "This is a test .\n"
    assert spans_of(doc) == [("Span", 0, 7), ("Span", 8, 14)]  # no value: the layer's name
    (rel,) = doc.relations
    assert (rel.label, doc.span(rel.head).start, doc.span(rel.tail).start) == ("Relation", 0, 8)


def test_inception_stacked_spans(tmp_path):
    name = "testMultiTokenStackedSpanWithFeatureValue"
    doc = read_one(write(tmp_path, f"{name}.tsv", INCEPTION[name]))
    assert spans_of(doc) == [("PERSON", 0, 16), ("LOCATION", 0, 16)]


def test_inception_sub_tokens(tmp_path):
    # The test made Span(1, 6) and Span(6, 12) on "This is a test ."
    name = "testSubMultiTokenSpanWithoutFeatureValue3"
    doc = read_one(write(tmp_path, f"{name}.tsv", INCEPTION[name]))
    assert spans_of(doc) == [("Span", 1, 6), ("Span", 6, 12)]


def test_inception_relation_from_a_sub_token(tmp_path):
    name = "testSubTokenRelation2"
    doc = read_one(write(tmp_path, f"{name}.tsv", INCEPTION[name]))
    assert spans_of(doc) == [("OTH", 0, 1), ("OTH", 5, 10)]
    (rel,) = doc.relations
    assert (doc.span(rel.head).start, doc.span(rel.tail).start) == (0, 5)


def test_inception_stacked_relation_ends_by_disambiguation_id(tmp_path):
    name = "testSingleStackedNonTokenOverlappingRelationWithoutFeatureValue"
    doc = read_one(write(tmp_path, f"{name}.tsv", INCEPTION[name]))
    assert [(s.start, s.end) for s in doc.spans] == [(0, 16), (0, 16), (15, 16), (15, 16)]
    (rel,) = doc.relations
    assert (rel.head, rel.tail) == ("T1", "T3")  # [1_3]: governor 1, dependent 3


def test_inception_sentences_rebuild_the_text(tmp_path):
    for name in ("testCrossSentenceSpanWithoutFeatureValue", "testSentenceId"):
        doc = read_one(write(tmp_path, f"{name}.tsv", INCEPTION[name]))
        assert doc.text == "He loves her .\nShe loves him not .\n"
    assert spans_of(doc) == []
    assert spans_of(read_one(tmp_path / "testCrossSentenceSpanWithoutFeatureValue.tsv")) == [
        ("Span", 0, 34)
    ]


def test_inception_documentation_example_with_named_entities(tmp_path):
    # "Disambiguation IDs in relations", INCEpTION's user guide (webannotsv.adoc)
    text = (
        "#FORMAT=WebAnno TSV 3.3\n"
        "#T_SP=de.tudarmstadt.ukp.dkpro.core.api.ner.type.NamedEntity|value\n"
        "#T_RL=webanno.custom.Relation|value|BT_de.tudarmstadt.ukp.dkpro.core.api.ner.type"
        ".NamedEntity\n\n\n"
        "#Text=This is a test .\n"
        "1-1\t0-4\tThis\t*\t_\t_\n1-2\t5-7\tis\t_\t_\t_\n1-3\t8-9\ta\t_\t_\t_\n"
        "1-4\t10-14\ttest\t_\t_\t_\n1-5\t15-16\t.\t*[1]|*[2]\t*\t1-1[0_1]\n"
    )
    doc = read_one(write(tmp_path, "ne.tsv", text))
    assert spans_of(doc) == [("NamedEntity", 0, 4), ("NamedEntity", 15, 16),
                             ("NamedEntity", 15, 16)]
    (rel,) = doc.relations
    assert (rel.head, rel.tail) == ("T1", "T2")


def test_linguistic_layers_are_read_past(tmp_path):
    # The start of inception/inception-io-webanno-tsv/src/test/resources/tsv3/example2.tsv
    text = (
        "#FORMAT=WebAnno TSV 3.3\n"
        "#T_SP=de.tudarmstadt.ukp.dkpro.core.api.lexmorph.type.pos.POS|PosValue\n"
        "#T_SP=de.tudarmstadt.ukp.dkpro.core.api.ner.type.NamedEntity|value\n"
        "#T_RL=de.tudarmstadt.ukp.dkpro.core.api.syntax.type.dependency.Dependency"
        "|DependencyType|BT_de.tudarmstadt.ukp.dkpro.core.api.lexmorph.type.pos.POS\n\n\n"
        "#Text=Ms. Haag plays Elianti .\n"
        "1-1\t0-3\tMs.\tNNP\tPER[2]\tSUBJ\t1-3\t\n"
        "1-2\t4-8\tHaag\tNNP\tPER[2]\tSBJ\t1-3\t\n"
        "1-3\t9-14\tplays\tVBD\t_\tP|ROOT\t1-5|1-3\t\n"
        "1-4\t15-22\tElianti\tNNP\tOTH\tOBJ\t1-3\t\n"
        "1-5\t23-24\t.\t.\t_\t_\t_\t\n"
    )
    doc = read_one(write(tmp_path, "example2.tsv", text))
    assert spans_of(doc) == [("PER", 0, 8), ("OTH", 15, 22)]
    assert doc.relations == ()


# --------------------------------------------------------------------------- bad files


def test_a_value_that_cannot_be_a_label_is_refused_on_every_line(tmp_path):
    # testTokenBoundedSpanWithSpecialSymbolsValue/reference.tsv: a value with spaces
    column = "#\\*'\"`´\\t:\\;{}\\|\\[ \\]()\\\\§$%?=&\\_\\n"
    rows = "".join(f"1-{i}\t{b}-{e}\t{t}\t{column}\t\n" for i, (b, e, t) in enumerate(
        [(0, 4, "This"), (5, 7, "is"), (8, 9, "a"), (10, 14, "test"), (15, 16, ".")], start=1))
    path = write(tmp_path, "special.tsv", "#FORMAT=WebAnno TSV 3.3\n#T_SP=webanno.custom.Span"
                 f"|value\n\n\n#Text=This is a test .\n{rows}")
    with pytest.raises(ImportFileError) as info:
        read_webanno_tsv(path)
    assert [e.line for e in info.value.errors] == [6, 7, 8, 9, 10]
    assert "entity type name" in str(info.value.errors[0])


def test_every_problem_of_a_file_is_named(tmp_path):
    path = write(tmp_path, "bad.tsv", (
        "#FORMAT=WebAnno TSV 3.3\n"
        "#T_SP=webanno.custom.Concept|label\n"
        "#T_RL=webanno.custom.Relation|label|BT_webanno.custom.Concept\n"
        "#T_XX=nonsense\n\n\n"
        "#Text=Aspirin for pain\n"
        "1-1\t0-7\tAspirin\tDrug\t_\t_\t\n"
        "1-2\tx-y\tfor\t_\t_\t_\t\n"
        "1-3\t12-16\tpain\tSign[x]\ttreats\t1-9\t\n"
        "1-4\t17-18\n"
        "#Text=no blank line before\n"
    ))
    with pytest.raises(ImportFileError) as info:
        read_webanno_tsv(path)
    messages = [str(e) for e in info.value.errors]
    assert [e.line for e in info.value.errors] == [4, 9, 10, 11, 12]
    assert "expected a layer line" in messages[0]
    assert "'<begin>-<end>'" in messages[1]
    assert "disambiguation id [x] is not a number" in messages[2]
    assert "expected 6 tab-separated fields" in messages[3]
    assert "blank line before the next sentence" in messages[4]


def test_dangling_references_and_offsets_are_refused(tmp_path):
    path = write(tmp_path, "refs.tsv", (
        "#FORMAT=WebAnno TSV 3.3\n"
        "#T_SP=webanno.custom.Concept|label\n"
        "#T_RL=webanno.custom.Relation|label|BT_webanno.custom.Concept\n\n\n"
        "#Text=Aspirin for pain\n"
        "1-1\t0-7\tAspirin\tDrug\t_\t_\t\n"
        "1-2\t8-11\tfor\t_\ttreats\t1-1\t\n"
        "1-3\t12-99\tpain\tSign\ttreats\t1-7\t\n"
    ))
    with pytest.raises(ImportFileError) as info:
        read_webanno_tsv(path)
    assert [str(e) for e in info.value.errors] == [
        f"{path}:9: offset 99 is beyond the text (the text has 17 UTF-16 units)",
        f"{path}:8: relation names unit 1-2, which has no webanno.custom.Concept annotation",
        f"{path}:9: relation names unit '1-7', which is not in the file",
    ]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("#FORMAT=WebAnno TSV 2\n", "expected '#FORMAT=WebAnno TSV 3.3'"),
        ("1-1\t0-3\tabc\n", "expected '#FORMAT=WebAnno TSV 3.3'"),
        ("#FORMAT=WebAnno TSV 3.3\n\n\n", "no sentences"),
        ("#FORMAT=WebAnno TSV 3.3\n\n\n#Text=abc\n", "has #Text= lines but no tokens"),
    ],
)
def test_files_that_are_not_webanno_tsv_are_refused(tmp_path, content, reason):
    with pytest.raises(ImportFileError, match=reason):
        read_webanno_tsv(write(tmp_path, "x.tsv", content))


def test_a_zero_width_annotation_is_refused_by_name(tmp_path):
    path = write(tmp_path, "zero.tsv", (
        "#FORMAT=WebAnno TSV 3.3\n#T_SP=webanno.custom.Span|value\n\n\n"
        "#Text=Test\n1-1\t0-4\tTest\t_\t\n1-1.1\t2-2\t\tX\t\n"
    ))
    with pytest.raises(ImportFileError, match=r"zero\.tsv:7: zero-width Span annotation at 2"):
        read_webanno_tsv(path)


# --------------------------------------------------------------------------- folders, corpora


def test_a_folder_reads_every_tsv_file(tmp_path):
    write_webanno_tsv([sample(), Document("n2", "Other note.\n")], tmp_path / "out")
    write(tmp_path / "out" / "sub", "n3.tsv", INCEPTION["testSentenceId"])
    write(tmp_path / "out", "readme.txt", "not a tsv")
    units = webanno_units(tmp_path / "out")
    assert [u.name for u in units] == ["n1.tsv", "n2.tsv", "n3.tsv"]
    assert [read_one(u).id for u in units] == ["n1", "n2", "n3"]
    with pytest.raises(ImportFileError, match=r"folder holds no \.tsv files"):
        webanno_units(write(tmp_path / "empty", "a.txt", "x").parent)
    with pytest.raises(ImportFileError, match="no such file"):
        webanno_units(tmp_path / "missing")


@pytest.mark.skipif(not MACCROBAT.is_dir(), reason="MACCROBAT2020 (../shared/data) is absent")
def test_maccrobat_round_trips_what_tsv_carries(tmp_path):
    docs = [p.doc for txt in brat_units(MACCROBAT) for p in read_brat(txt)]
    report = write_webanno_tsv(docs, tmp_path)
    back = {d.id: d for u in webanno_units(tmp_path) for d in [read_one(u)]}
    assert len(back) == report.documents == 200
    for doc in docs:
        assert back[doc.id].text == doc.text
        assert back[doc.id].annotation_set() == as_carried(
            doc.with_annotations(doc.spans, doc.relations)).annotation_set()
    assert report.discontinuous == sum(s.discontinuous for d in docs for s in d.spans) > 0
    assert report.equivalences == sum(len(d.equivalences) for d in docs)
    assert report.line_break_added == 0
