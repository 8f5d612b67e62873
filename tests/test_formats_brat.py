"""BRAT standoff: every line type read, every bad line named, and a lossless write/read."""

from __future__ import annotations

from pathlib import Path

import pytest

from noteloop.core.errors import ImportFileError, InvalidDocumentError
from noteloop.core.formats.brat import (
    annotation_conf,
    brat_units,
    read_annotation_conf,
    read_brat,
    write_brat,
)
from noteloop.core.schema import (
    AttributeType,
    Document,
    EntityType,
    Equivalence,
    LabelSchema,
    Relation,
    RelationType,
    Span,
    SpanSource,
)

MACCROBAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "maccrobat2020"
needs_maccrobat = pytest.mark.skipif(
    not MACCROBAT.is_dir(), reason="MACCROBAT2020 (../shared/data) is not beside the repo"
)

TEXT = "Aspirin was given.\r\nNo left or right arm pain.\n"
# Aspirin 0-7, given 12-17, No 20-22, left 23-27, right 31-36, arm 37-40, pain 41-45; 47 chars


def pair(folder: Path, ann: str, text: str = TEXT, name: str = "n1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_text(text, encoding="utf-8", newline="")
    (folder / f"{name}.ann").write_text(ann, encoding="utf-8", newline="")
    return folder / f"{name}.txt"


def refused(txt: Path) -> list[tuple[int, str]]:
    with pytest.raises(ImportFileError) as info:
        read_brat(txt)
    return [(e.line, e.reason) for e in info.value.errors]


# --------------------------------------------------------------------------- reading


def test_every_line_type_is_read(tmp_path):
    ann = (
        "T1\tDrug 0 7\tAspirin\n"
        "T2\tFinding 23 27;37 40\tleft arm\n"  # discontinuous: "left ... arm"
        "T3\tSign 41 45\tpain\n"
        "R1\tlocated Arg1:T3 Arg2:T2\n"
        "*\tOVERLAP T1 T3\n"
        "A1\tNegated T3\n"
        "M2\tPolarity T1 POS\n"
        "N1\tReference T1 MeSH:D001241\tAspirin\n"
        "#1\tAnnotatorNotes T2\tspans the word 'or right'\n"
        "#2\tAnnotatorNotes R1\tchecked\n"
        "\n"
    )
    [parsed] = read_brat(pair(tmp_path, ann))
    doc = parsed.doc
    assert doc.id == "n1" and doc.text == TEXT
    t1, t2, t3 = doc.spans
    assert t1 == Span("T1", "Drug", 0, 7, attributes=(("Polarity", "POS"),),
                      concept="MeSH:D001241", source=SpanSource.IMPORTED)  # fmt: skip
    assert t2.fragments == ((23, 27), (37, 40)) and t2.text_in(TEXT) == "left arm"
    assert t2.notes == ("spans the word 'or right'",)
    assert t3.attributes == (("Negated", "true"),)
    assert doc.relations == (Relation("R1", "located", "T3", "T2", notes=("checked",)),)
    assert doc.equivalences == (Equivalence("OVERLAP", ("T1", "T3")),)
    assert parsed.lines == {"T1": 1, "T2": 2, "T3": 3, "R1": 4}
    assert parsed.line == 0


def test_offsets_count_carriage_returns(tmp_path):
    # "No" starts after "\r\n": 20 when \r counts, 19 if the file were read with newline=None.
    [parsed] = read_brat(pair(tmp_path, "T1\tNeg 20 22\tNo\n"))
    assert parsed.doc.spans[0].text_in(parsed.doc.text) == "No"


def test_events_resolve_to_their_trigger_and_arguments_become_relations(tmp_path):
    ann = (
        "T1\tDrug 0 7\tAspirin\n"
        "T2\tGive 12 17\tgiven\n"
        "T3\tSign 41 45\tpain\n"
        "E1\tGive:T2 Theme:T1 Theme2:E2 \n"
        "E2\tSign:T3\n"
        "R1\tcauses Arg1:E1 Arg2:E2\n"
        "*\tOVERLAP E1 E2\n"
        "A1\tPolarity E2 NEG\n"
        "#1\tAnnotatorNotes E1\tthe event\n"
    )
    [parsed] = read_brat(pair(tmp_path, ann))
    doc = parsed.doc
    assert [s.id for s in doc.spans] == ["T1", "T2", "T3"]
    assert doc.span("T3").attributes == (("Polarity", "NEG"),)
    assert doc.span("T2").notes == ("the event",)
    rels = {(r.label, r.head, r.tail) for r in doc.relations}
    assert rels == {("Theme", "T2", "T1"), ("Theme", "T2", "T3"), ("causes", "T2", "T3")}
    assert doc.equivalences == (Equivalence("OVERLAP", ("T2", "T3")),)
    assert parsed.line_of("E1-Theme2") == 4


def test_missing_ann_means_no_annotations(tmp_path):
    txt = tmp_path / "n1.txt"
    txt.write_text(TEXT, encoding="utf-8", newline="")
    [parsed] = read_brat(txt)
    assert parsed.doc.spans == () and parsed.doc.text == TEXT


def test_every_bad_line_is_reported_with_its_number(tmp_path):
    ann = (
        "T1\tDrug 0 7\tAspirin\n"  # 1 fine
        "T2\tDrug zero 7\tAspirin\n"  # 2 not an integer
        "T3\tDrug 0 700\tAspirin\n"  # 3 beyond the text
        "T4\tDrug 7 7\t\n"  # 4 start >= end
        "T5\tDrug 0 7\tIbuprofen\n"  # 5 text mismatch
        "T1\tDrug 0 7\tAspirin\n"  # 6 duplicate id
        "Q1\twhat is this\n"  # 7 unknown line type
        "R1\ttreats Arg1:T1 Arg2:T9\n"  # 8 unknown id
        "R2\ttreats Arg1:T1\n"  # 9 malformed
        "A1\tNegated T8\n"  # 10 unknown id
        "*\tOVERLAP T1\n"  # 11 one member
        "E1\tGive:T7\n"  # 12 trigger unknown
        "T6\tDrug 0 7;5 9\tAspirin in\n"  # 13 fragments overlap
        "N1\tReference T1\n"  # 14 malformed
        "#1\tAnnotatorNotes T42\tnote\n"  # 15 unknown id
        "T7\tBad:label 0 7\tAspirin\n"  # 16 label with ':'
    )
    problems = refused(pair(tmp_path, ann))
    by_line = dict(problems)
    assert sorted(by_line) == list(range(2, 17))
    assert "'zero 7' must be two non-negative integers" in by_line[2]
    assert "beyond the text (47 characters)" in by_line[3]
    assert "start must be less than end" in by_line[4]
    assert "'Ibuprofen' does not match the offsets, which cover 'Aspirin'" in by_line[5]
    assert "duplicate id T1 (first on line 1)" in by_line[6]
    assert "unknown line type 'Q1'" in by_line[7]
    assert "T9 is not a T or E id" in by_line[8]
    assert "expected 'Label Arg1:ID Arg2:ID'" in by_line[9]
    assert "T8 is not a T or E id" in by_line[10]
    assert "two ids or more" in by_line[11]
    assert "trigger T7 was refused on line 16 (see there)" in by_line[12]
    assert "fragments '0 7;5 9' overlap" in by_line[13]
    assert "expected 'Reference ID db:id'" in by_line[14]
    assert "T42 is not a T or E id" in by_line[15]
    assert "entity type name 'Bad:label' is not valid" in by_line[16]


def test_fragments_listed_out_of_text_order_are_stored_in_text_order(tmp_path):
    ann = (
        "T1\tPain 41 45;23 27\tpain left\n"  # listed backwards, text as listed
        "T2\tPain 37 40;31 36\tright arm\n"  # listed backwards, text in text order
        "R1\tsame Arg1:T1 Arg2:T2\n"
    )
    [parsed] = read_brat(pair(tmp_path, ann))
    t1, t2 = parsed.doc.spans
    assert t1.fragments == ((23, 27), (41, 45)) and (t1.start, t1.end) == (23, 45)
    assert t2.fragments == ((31, 36), (37, 40))
    out = tmp_path / "out"
    write_brat([parsed.doc], LabelSchema(), out)
    assert "T1\tPain 23 27;41 45\tleft pain" in (out / "n1.ann").read_text(encoding="utf-8")


def test_a_relation_to_a_refused_span_points_at_that_line(tmp_path):
    ann = "T1\tDrug 0 7\tAspirin\nT2\tDrug 12 17\tgiven \nR1\tdose Arg1:T1 Arg2:T2\n"
    by_line = dict(refused(pair(tmp_path, ann)))
    assert "does not match the offsets" in by_line[2]
    assert by_line[3].endswith("T2 was refused on line 2 (see there)")


def test_refusal_names_the_ann_file(tmp_path):
    txt = pair(tmp_path, "T1\tDrug 0 7\tibuprofen\n")
    with pytest.raises(ImportFileError, match=r"n1\.ann:1: T1: text 'ibuprofen'"):
        read_brat(txt)


def test_a_stray_field_after_the_text_is_tolerated_and_tabs_count_as_spaces(tmp_path):
    text = "dose 8\u2005mg\tdaily"
    ann = "T1\tDosage 5 9\t8\u2005mg\t\u2005\nT2\tDosage 5 15\t8\u2005mg daily\n"
    [parsed] = read_brat(pair(tmp_path, ann, text))
    assert [s.end for s in parsed.doc.spans] == [9, 15]


# --------------------------------------------------------------------------- units


def test_units_of_a_folder_are_its_sorted_pairs(tmp_path):
    for name in ("b", "a"):
        pair(tmp_path, "", name=name)
    (tmp_path / "README.txt").write_text("not a note", encoding="utf-8")
    assert brat_units(tmp_path) == [tmp_path / "a.txt", tmp_path / "b.txt"]
    assert brat_units(tmp_path / "b.ann") == [tmp_path / "b.txt"]
    assert brat_units(tmp_path / "README.txt") == [tmp_path / "README.txt"]


def test_units_refuse_orphan_ann_files_and_empty_folders(tmp_path):
    pair(tmp_path, "", name="a")
    (tmp_path / "x.ann").write_text("", encoding="utf-8")
    (tmp_path / "y.ann").write_text("", encoding="utf-8")
    with pytest.raises(ImportFileError) as info:
        brat_units(tmp_path)
    assert [Path(e.path).name for e in info.value.errors] == ["x.ann", "y.ann"]
    assert "no x.txt beside it" in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImportFileError, match=r"no \.txt/\.ann pairs"):
        brat_units(empty)
    with pytest.raises(ImportFileError, match="no such file"):
        brat_units(tmp_path / "missing")


# --------------------------------------------------------------------------- writing

SCHEMA = LabelSchema(
    (EntityType("Drug"), EntityType("Sign")),
    (
        RelationType("treats", heads=("Drug",), tails=("Sign",)),
        RelationType("near", symmetric=True),
    ),
    (AttributeType("Negated"), AttributeType("Polarity", ("NEG", "POS"))),
)


def sample_doc(doc_id: str = "n1") -> Document:
    spans = (
        Span("a", "Drug", 0, 7, attributes=(("Negated", "true"), ("Polarity", "POS")),
             notes=("first\tnote",), concept="MeSH:D001241"),
        Span("b", "Sign", 23, 45, fragments=((23, 27), (41, 45))),
    )  # fmt: skip
    rels = (Relation("r", "treats", "a", "b", notes=("why",)),)
    return Document(doc_id, TEXT, spans, rels, (Equivalence("OVERLAP", ("a", "b")),))


def test_write_brat_writes_exact_text_every_line_type_and_the_conf(tmp_path):
    write_brat([sample_doc()], SCHEMA, tmp_path)
    assert (tmp_path / "n1.txt").read_bytes() == TEXT.encode()
    assert (tmp_path / "n1.ann").read_text(encoding="utf-8") == (
        "T1\tDrug 0 7\tAspirin\n"
        "T2\tSign 23 27;41 45\tleft pain\n"
        "R1\ttreats Arg1:T1 Arg2:T2\n"
        "*\tOVERLAP T1 T2\n"
        "A1\tNegated T1\n"
        "A2\tPolarity T1 POS\n"
        "N1\tReference T1 MeSH:D001241\tMeSH:D001241\n"
        "#1\tAnnotatorNotes T1\tfirst note\n"
        "#2\tAnnotatorNotes R1\twhy\n"
    )
    assert (tmp_path / "annotation.conf").read_text(encoding="utf-8") == (
        "[entities]\nDrug\nSign\n\n"
        "[relations]\n"
        "treats\tArg1:Drug, Arg2:Sign\n"
        "near\tArg1:<ENTITY>, Arg2:<ENTITY>, <REL-TYPE>:symmetric\n"
        "OVERLAP\tArg1:<ENTITY>, Arg2:<ENTITY>, <REL-TYPE>:symmetric-transitive\n\n"
        "[events]\n\n"
        "[attributes]\nNegated\tArg:<ENTITY>\nPolarity\tArg:<ENTITY>, Value:NEG|POS\n"
    )
    [back] = read_brat(tmp_path / "n1.txt")
    # a tab in a note is the one thing BRAT's line format cannot carry
    assert back.doc.span("T1").notes == ("first note",)
    assert back.doc.span("T2").key() == sample_doc().spans[1].key()
    assert back.doc.relations[0].notes == ("why",)


def test_write_without_text_leaves_the_notes_out(tmp_path):
    write_brat([sample_doc()], SCHEMA, tmp_path, with_text=False)
    assert not (tmp_path / "n1.txt").exists()
    assert "Aspirin" not in (tmp_path / "n1.ann").read_text(encoding="utf-8")


@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", "nul\x00id", "back\\slash"])
def test_unsafe_document_ids_are_refused_before_anything_is_written(tmp_path, bad):
    docs = [sample_doc("fine"), Document(bad, "text")]
    with pytest.raises(InvalidDocumentError, match="cannot be used as a file name"):
        write_brat(docs, SCHEMA, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_attribute_values_with_spaces_cannot_be_written(tmp_path):
    doc = Document("n1", TEXT, (Span("T1", "Drug", 0, 7, attributes=(("Note", "a b"),)),))
    with pytest.raises(InvalidDocumentError, match=r"span T1 attribute value 'a b'"):
        write_brat([doc], SCHEMA, tmp_path)


# --------------------------------------------------------------------------- annotation.conf


def test_annotation_conf_round_trips(tmp_path):
    conf = tmp_path / "annotation.conf"
    conf.write_text(annotation_conf(SCHEMA), encoding="utf-8")
    assert read_annotation_conf(conf) == SCHEMA


def test_real_brat_configurations_are_understood(tmp_path):
    conf = tmp_path / "annotation.conf"
    conf.write_text(
        "# GENIA-like configuration\n"
        "[entities]\n"
        "Protein\n"
        "!Anatomy\n"
        "\tCell\n"
        "\t\tOrgan\n"
        "\n"
        "[relations]\n"
        "<PART>=Cell|Organ\n"
        "Equiv\tArg1:Protein, Arg2:Protein, <REL-TYPE>:symmetric-transitive\n"
        "Part-of\tArg1:<PART>, Arg2:Organ\n"
        "Part-of\tArg1:Protein, Arg2:Organ\n"
        "Located\tArg1:<ENTITY>, Arg2:Cell|<EVENT>\n"
        "<OVERLAP>\tArg1:<ENTITY>, Arg2:<ENTITY>, <OVL-TYPE>:<ANY>\n"
        "\n"
        "[events]\n"
        "Binding\tTheme+:Protein\n"
        "!Regulation\n"
        "\tPositive_regulation\tTheme:Protein|<EVENT>, Cause?:Protein\n"
        "\n"
        "[attributes]\n"
        "Negation\tArg:<EVENT>\n"
        "Confidence\tArg:<EVENT>, Value:L1|L2|L3\n",
        encoding="utf-8",
    )
    schema = read_annotation_conf(conf)
    assert schema.entity_names == ["Protein", "Cell", "Organ", "Binding", "Positive_regulation"]
    assert schema.relation("Equiv").symmetric
    assert schema.relation("Part-of").heads == ("Cell", "Organ", "Protein")
    assert schema.relation("Located").heads == () and schema.relation("Located").tails == ()
    assert schema.attributes == (
        AttributeType("Negation"),
        AttributeType("Confidence", ("L1", "L2", "L3")),
    )


def test_conf_errors_name_their_lines(tmp_path):
    conf = tmp_path / "annotation.conf"
    conf.write_text(
        "Loose\n[entities]\nDrug\nDrug\n[relations]\ntreats\tArg1:Drug, Arg2:Gene\n[colours]\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportFileError) as info:
        read_annotation_conf(conf)
    assert [(e.line, e.reason) for e in info.value.errors] == [
        (1, "'Loose' comes before any [section]"),
        (4, "entity type Drug is defined twice (first on line 3)"),
        (7, "unknown section [colours]: expected one of entities, relations, events, attributes"),
        (6, "relation treats names unknown type(s): Gene"),
    ]


# --------------------------------------------------------------------------- MACCROBAT


@pytest.fixture(scope="module")
def maccrobat() -> list[Document]:
    return [p.doc for txt in brat_units(MACCROBAT) for p in read_brat(txt)]


@needs_maccrobat
def test_maccrobat_reads_whole(maccrobat):
    spans = [s for d in maccrobat for s in d.spans]
    assert len(maccrobat) == 200
    assert len(spans) == 25_189
    assert sum(s.discontinuous for s in spans) == 44
    assert sum(len(d.relations) for d in maccrobat) == 16_307
    assert sum(len(d.equivalences) for d in maccrobat) == 2_023
    assert sum(len(s.attributes) for s in spans) == 1_416
    notes = sum(len(s.notes) for s in spans) + sum(
        len(r.notes) for d in maccrobat for r in d.relations
    )
    assert notes == 335


@needs_maccrobat
def test_maccrobat_write_then_read_is_identical(maccrobat, tmp_path):
    write_brat(maccrobat, LabelSchema(), tmp_path)
    back = {p.doc.id: p.doc for txt in brat_units(tmp_path) for p in read_brat(txt)}
    assert back.keys() == {d.id for d in maccrobat}
    for doc in maccrobat:
        assert back[doc.id].text == doc.text
        assert back[doc.id].annotation_set() == doc.annotation_set(), doc.id
        assert (tmp_path / f"{doc.id}.txt").read_bytes() == (
            MACCROBAT / f"{doc.id}.txt"
        ).read_bytes()
    schema = read_annotation_conf(tmp_path / "annotation.conf")
    assert len(schema.entity_types) == 41 and schema.relation("OVERLAP").symmetric


def test_a_corpus_reads_what_it_can_and_lists_the_rest(tmp_path):
    from noteloop.core.formats.registry import read_corpus

    pair(tmp_path, "T1\tProblem 12 20;0 4\tleft arm Pain\n", "Pain in the left arm.\n", "order")
    pair(tmp_path, "T1\tProblem 0 11\tChest pain\nT2\tTest 21 25\texam\n"
         "R1\treveals Arg1:T2 Arg2:T1\n", "Chest pain\r\nnoted on exam.\n", "repair")
    pair(tmp_path, "", "", "empty")
    pair(tmp_path, "T1\tProblem 0 60\tFever.\n", "Fever.\n", "broken")
    plain = read_corpus(tmp_path, "brat")
    assert [d.id for d in plain.docs] == ["order"]
    assert plain.docs[0].spans[0].fragments == ((0, 4), (12, 20))
    assert sorted(Path(f).stem for f in plain.refused_files) == ["broken", "repair"]
    assert [str(n).rsplit("/", 1)[-1] for n in plain.notes] == [
        "empty.txt: skipped: the text is empty"]
    mended = read_corpus(tmp_path, "brat", repair=True)
    repaired = next(d for d in mended.docs if d.id == "repair")
    assert (repaired.spans[0].start, repaired.spans[0].end) == (0, 11)  # the offsets kept
    assert [r.label for r in repaired.relations] == ["reveals"]
    assert [n.line for n in mended.notes if "repaired" in n.reason] == [1]
    with pytest.raises(ImportFileError, match=r"1 problem\(s\)") as refused_all:
        read_corpus(tmp_path, "brat", repair=True, strict=True)
    assert "broken.ann:1" in str(refused_all.value)
