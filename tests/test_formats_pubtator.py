"""PubTator reading and writing, the CID rule, and BC5CDR's published counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noteloop.core.errors import ImportFileError, InvalidDocumentError
from noteloop.core.formats.pubtator import (
    cid_links,
    read_pubtator,
    sentence_starts,
    write_pubtator,
)
from noteloop.core.schema import Document, Relation, Span, SpanSource

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


def relation_texts(doc: Document) -> set[tuple[str, int, str, int]]:
    """Each relation as (head text, head start, tail text, tail start): readable pins."""
    spans = {s.id: s for s in doc.spans}
    out = set()
    for r in doc.relations:
        head, tail = spans[r.head], spans[r.tail]
        out.add((head.text_in(doc.text), head.start, tail.text_in(doc.text), tail.start))
    return out


# --------------------------------------------------------------------------- BC5CDR


@needs_bc5cdr
def test_bc5cdr_has_the_published_counts() -> None:
    docs = [
        p.doc
        for name in ("Training", "Development", "Test")
        for p in read_pubtator(BC5CDR / f"CDR_{name}Set.PubTator.txt")
    ]
    labels = Counter(s.label for d in docs for s in d.spans)
    pairs = [p for d in docs for p in d.metadata.get("cid", "").split(";") if p]
    assert len(docs) == len({d.id for d in docs}) == 1500
    assert labels == {"Chemical": 15_935, "Disease": 12_850}
    assert len(pairs) == 3_116
    # Observed: every BC5CDR CID pair has at least one mention of each of its ids.
    assert sum(int(d.metadata["cid_unmapped"]) for d in docs if "cid" in d.metadata) == 0


@needs_bc5cdr
def test_bc5cdr_quirks_are_kept() -> None:
    docs = {p.doc.id: p.doc for p in read_pubtator(BC5CDR / "CDR_DevelopmentSet.PubTator.txt")}
    composite = next(s for s in docs["3115150"].spans if s.start == 1584)
    assert composite.concept == "D002318|D012131"
    assert composite.notes == ("cardiovascular depression|respiratory depression",)
    no_id = next(s for s in docs["15579441"].spans if s.start == 1134)
    assert (no_id.text_in(docs["15579441"].text), no_id.concept) == (
        "tubulointerstitial injury",
        "",
    )


@needs_bc5cdr
def test_bc5cdr_test_set_round_trips(tmp_path: Path) -> None:
    first = read_pubtator(BC5CDR / "CDR_TestSet.PubTator.txt")
    write_pubtator([p.doc for p in first], tmp_path / "out.txt")
    again = read_pubtator(tmp_path / "out.txt")
    assert len(again) == len(first) == 500
    assert all(same(a.doc, b.doc) for a, b in zip(first, again, strict=True))
    assert sum(len(p.doc.relations) for p in again) == 2191  # sentence-or-closest, observed


# --------------------------------------------------------------------------- the CID rule

RULE_FILE = (
    "7|t|Aspirin and rash\n"
    "7|a|Rash was seen. Later aspirin was stopped. Aspirin gave no fever. "
    "Heparin was given. Bleeding followed.\n"
    "7\t0\t7\tAspirin\tChemical\tC1\n"
    "7\t12\t16\trash\tDisease\tD1\n"
    "7\t17\t21\tRash\tDisease\tD1\n"
    "7\t38\t45\taspirin\tChemical\tC1\n"
    "7\t59\t66\tAspirin\tChemical\tC1\n"
    "7\t75\t80\tfever\tDisease\tD2|D3\n"
    "7\t82\t89\tHeparin\tChemical\tC2\n"
    "7\t101\t109\tBleeding\tDisease\tD4\n"
    "7\tCID\tC1\tD1\n"
    "7\tCID\tC1\tD2\n"
    "7\tCID\tC2\tD4\n"
    "7\tCID\tC9\tD1\n"
)


def test_sentence_or_closest_links_mentions_of_one_sentence(tmp_path: Path) -> None:
    (parsed,) = read_pubtator(write(tmp_path / "rule.txt", RULE_FILE))
    doc = parsed.doc
    assert relation_texts(doc) == {
        ("Aspirin", 0, "rash", 12),  # the title is a sentence even without a full stop
        ("Aspirin", 59, "fever", 75),  # composite D2|D3 contains D2
        ("Heparin", 82, "Bleeding", 101),  # no shared sentence: the closest pair
    }
    assert {r.label for r in doc.relations} == {"CID"}
    assert doc.metadata == {
        "title_length": "16",
        "cid": "C1>D1;C1>D2;C2>D4;C9>D1",
        "cid_unmapped": "1",  # C9 has no mention, but the pair is kept in "cid"
        "cid_rule": "sentence-or-closest",
    }


def test_all_pairs_links_every_matching_mention_pair(tmp_path: Path) -> None:
    (parsed,) = read_pubtator(write(tmp_path / "rule.txt", RULE_FILE), cid_rule="all-pairs")
    assert len(parsed.doc.relations) == 3 * 2 + 3 + 1
    assert parsed.doc.metadata["cid_rule"] == "all-pairs"


def test_closest_pair_ties_go_to_the_earliest_candidate() -> None:
    text = "x. Drug. Pain. Drug."
    spans = [
        Span("c1", "Chemical", 3, 7, concept="C"),
        Span("d1", "Disease", 9, 13, concept="D"),
        Span("c2", "Chemical", 15, 19, concept="C"),
    ]
    links, unmapped = cid_links(spans, [("C", "D")], text=text)
    assert links == [(("C", "D"), "c1", "d1")]  # three sentences; both chemicals 2 away
    links, _ = cid_links(spans[::-1], [("C", "D")], text=text)
    assert links == [(("C", "D"), "c2", "d1")]  # the tie follows span order
    assert unmapped == []


def test_sentences_start_after_end_marks_before_capitals_and_after_line_breaks() -> None:
    text = "Dose 5 mg. given i.v. Then rash! 2 cases? yes\nNext"
    assert sentence_starts(text, [3]) == [0, 3, 22, 33, 46]


def test_an_unknown_rule_is_refused_before_reading(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cid_rule must be one of sentence-or-closest, all-pairs"):
        read_pubtator(tmp_path / "absent.txt", cid_rule="nearest")


def test_lines_point_at_the_defining_lines(tmp_path: Path) -> None:
    (parsed,) = read_pubtator(write(tmp_path / "x.txt", "\n\n" + RULE_FILE))
    assert parsed.line == 3
    assert parsed.lines["T1"] == 5 and parsed.lines["T8"] == 12
    heparin = next(r for r in parsed.doc.relations if parsed.doc.span(r.head).concept == "C2")
    assert parsed.line_of(heparin.id) == 15


# --------------------------------------------------------------------------- errors

BAD_FILE = "\n".join(
    [
        "1|t|Aspirin for pain",  # 1
        "1|a|Aspirin was given.",  # 2
        "1\t0\t7\tAspirin\tChemical\tD001",  # 3 fine
        "1\t0\t7\tAspirin\tChemical",  # 4 fine: no concept column
        "1\t0\t7\tAspirin",  # 5 too few fields
        "1\tzero\t7\tAspirin\tChemical\tD001",  # 6 offsets not integers
        "1\t12\t99\tpain\tDisease\tD002",  # 7 beyond the text
        "1\t7\t7\t\tDisease\tD002",  # 8 start >= end
        "2\t12\t16\tpain\tDisease\tD002",  # 9 PMID differs
        "1\t12\t16\tache\tDisease\tD002",  # 10 text mismatch
        "1\tCID\tD001",  # 11 CID with 3 fields
        "1\tAssociation\tD001\tD002",  # 12 unsupported relation
        "what is this",  # 13 unknown shape
        "",
        "1|t|Again",  # 15 duplicate id
        "1|a|Again.",
        "",
        "3|x|Broken",  # 18 malformed title line
        "4|t|No abstract",  # 19 document without abstract line
        "",
        "5\t0\t1\ta\tChemical\tD1",  # 21 outside a document
        "",
    ]
)

BAD_LINES = {
    5: "mention line has 4 tab-separated fields, expected at least 5",
    6: "mention offsets must be integers, got start 'zero' and end '7'",
    7: "mention ends at 99, beyond the document text (length 35)",
    8: "mention offsets 7-7: start must be >= 0 and less than end",
    9: "PMID 2 differs from its document's PMID 1 (line 1)",
    10: "mention text 'ache' does not match the document text at 12-16: 'pain'",
    11: "CID line has 3 tab-separated fields, expected 4",
    12: "relation line of type 'Association' is not supported",
    13: "unknown line shape 'what is this'",
    15: "duplicate document id 1: a document with this PMID starts at line 1",
    18: "malformed title/abstract line '3|x|Broken'",
    19: "document 4 has no abstract line (4|a|...) after its title",
    21: "annotation line outside a document",
}


def test_every_bad_line_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", BAD_FILE)
    with pytest.raises(ImportFileError) as info:
        read_pubtator(path)
    found = {e.line: e.reason for e in info.value.errors}
    assert sorted(found) == sorted(BAD_LINES)
    for line, start in BAD_LINES.items():
        assert found[line].startswith(start), (line, found[line])
    assert all(e.path == str(path) for e in info.value.errors)


def test_an_abstract_line_must_follow_its_title(tmp_path: Path) -> None:
    text = "1|t|A\n1\t0\t1\tA\tChemical\tD1\n1|a|B\n"
    with pytest.raises(ImportFileError, match=r"x.txt:3: abstract line .* right after"):
        read_pubtator(write(tmp_path / "x.txt", text))


def test_an_empty_file_is_refused_by_the_shared_reader(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="file is empty"):
        read_pubtator(write(tmp_path / "x.txt", "\n\n"))


def test_crlf_line_ends_read_like_lf(tmp_path: Path) -> None:
    (lf,) = read_pubtator(write(tmp_path / "lf.txt", RULE_FILE))
    (crlf,) = read_pubtator(write(tmp_path / "crlf.txt", RULE_FILE.replace("\n", "\r\n")))
    assert same(lf.doc, crlf.doc)


# --------------------------------------------------------------------------- writing


def test_a_document_without_title_length_splits_at_its_first_line_break(tmp_path: Path) -> None:
    doc = Document("n1", "Title line\nBody\twith a tab", [Span("a", "Problem", 11, 15)])
    write_pubtator([doc], tmp_path / "x.txt")
    assert (tmp_path / "x.txt").read_text(encoding="utf-8").splitlines()[:3] == [
        "n1|t|Title line",
        "n1|a|Body with a tab",
        "n1\t11\t15\tBody\tProblem\t-1",
    ]
    (back,) = read_pubtator(tmp_path / "x.txt")
    assert back.doc.text == "Title line Body with a tab"  # same length: offsets still hold
    assert back.doc.metadata["title_length"] == "10"


def test_cid_lines_come_from_cid_relations_without_metadata(tmp_path: Path) -> None:
    spans = [
        Span("c", "Chemical", 0, 4, concept="C1", source=SpanSource.MANUAL),
        Span("d", "Disease", 5, 9, concept="D1|D2"),
        Span("e", "Disease", 10, 13, concept="-1"),
    ]
    relations = [Relation("r1", "CID", "c", "d"), Relation("r2", "CID", "c", "e")]
    write_pubtator([Document("9", "Drug pain ach", spans, relations)], tmp_path / "x.txt")
    lines = (tmp_path / "x.txt").read_text(encoding="utf-8").splitlines()
    assert [x for x in lines if "\tCID\t" in x] == ["9\tCID\tC1\tD1", "9\tCID\tC1\tD2"]


def test_ids_pubtator_cannot_hold_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidDocumentError, match=r"document 'a\|b': a PubTator id cannot"):
        write_pubtator([Document("a|b", "text")], tmp_path / "x.txt")
    assert not (tmp_path / "x.txt").exists()


def test_a_malformed_cid_metadata_is_refused(tmp_path: Path) -> None:
    doc = Document("1", "a b", metadata={"cid": "D1>D2;D3"})
    with pytest.raises(InvalidDocumentError, match="metadata cid entry 'D3' is not"):
        write_pubtator([doc], tmp_path / "x.txt")


WORDS = st.sampled_from(["Aspirin", "rash", "fever", "é", "𝛼-b", "U+2028\u2028x", "|t|", "."])


@st.composite
def pubtator_docs(draw: st.DrawFn) -> str:
    """A PubTator file with random words, mentions on word boundaries and CID pairs."""
    blocks = []
    for n in range(draw(st.integers(1, 3))):
        title = " ".join(draw(st.lists(WORDS, min_size=1, max_size=4)))
        abstract = " ".join(draw(st.lists(WORDS, max_size=8)))
        text = f"{title} {abstract}"
        lines = [f"{n}|t|{title}", f"{n}|a|{abstract}"]
        cuts = draw(st.lists(st.integers(0, len(text) - 1), max_size=6))
        for start in cuts:
            end = draw(st.integers(start + 1, len(text)))
            ids = draw(st.sampled_from(["C1", "D1", "C1|D1", "-1", "D2"]))
            label = draw(st.sampled_from(["Chemical", "Disease"]))
            lines.append(f"{n}\t{start}\t{end}\t{text[start:end]}\t{label}\t{ids}")
        pairs = draw(st.sets(st.sampled_from([("C1", "D1"), ("C1", "D2"), ("C3", "D1")])))
        lines += [f"{n}\tCID\t{c}\t{d}" for c, d in sorted(pairs)]
        blocks.append("\n".join(lines) + "\n\n")
    return "".join(blocks)


@settings(max_examples=60, deadline=None)
@given(content=pubtator_docs())
def test_read_write_read_is_lossless(
    tmp_path_factory: pytest.TempPathFactory, content: str
) -> None:
    folder = tmp_path_factory.mktemp("pt")
    first = read_pubtator(write(folder / "in.txt", content))
    write_pubtator([p.doc for p in first], folder / "out.txt")
    again = read_pubtator(folder / "out.txt")
    assert all(same(a.doc, b.doc) for a, b in zip(first, again, strict=True))
