"""JSONL: lossless round trips (generated and real documents) and every bad line named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noteloop.core.errors import ImportFileError
from noteloop.core.formats.brat import brat_units, read_brat
from noteloop.core.formats.jsonl import read_jsonl, write_jsonl
from noteloop.core.schema import Document, Equivalence, Relation, Span, SpanSource

MACCROBAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "maccrobat2020"
TEXT = "aspirin for headache"


def write_lines(tmp_path: Path, *lines: str, end: str = "\n") -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + end, encoding="utf-8", newline="")
    return path


def line(doc_id: str = "n1", **fields: object) -> str:
    return json.dumps({"id": doc_id, "text": TEXT, **fields}, ensure_ascii=False)


def problems(path: Path) -> list[tuple[int, str]]:
    with pytest.raises(ImportFileError) as info:
        read_jsonl(path)
    return [(e.line, e.reason) for e in info.value.errors]


# --------------------------------------------------------------------------- round trips

PIECES = ["a", "Ab ", "\r\n", "\n", "\t", "😀", "e\u0301", "👩\u200d💻", "\u2028", "ü", " ", "."]
LABELS = st.sampled_from(["Drug", "Problem", "Test_result", "Ärztin"])


@st.composite
def documents(draw: st.DrawFn) -> Document:
    chunks = st.one_of(
        st.sampled_from(PIECES), st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
    )
    text = "".join(draw(st.lists(chunks, min_size=1, max_size=12)))
    spans = tuple(draw(_span(f"T{i}", len(text))) for i in range(draw(st.integers(0, 5))))
    spans = tuple(s for s in spans if s is not None)
    return Document(
        draw(st.text(min_size=1, max_size=8).filter(str.strip)),
        text,
        spans,
        draw(_relations([s.id for s in spans])),
        draw(_equivalences([s.id for s in spans])),
        draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)),
    )


@st.composite
def _span(draw: st.DrawFn, span_id: str, length: int) -> Span | None:
    pieces = draw(st.integers(1, 3))
    if length < 2 * pieces:
        return None
    cuts = sorted(draw(st.sets(st.integers(0, length), min_size=2 * pieces, max_size=2 * pieces)))
    frags = tuple(zip(cuts[::2], cuts[1::2], strict=True))
    attributes = draw(st.lists(st.tuples(st.sampled_from(["Negated", "Polarity"]), st.text()),
                               max_size=2))  # fmt: skip
    return Span(
        span_id, draw(LABELS), frags[0][0], frags[-1][1], frags, tuple(attributes),
        tuple(draw(st.lists(st.text(), max_size=2))), draw(st.sampled_from(["", "C0004057"])),
    )  # fmt: skip


@st.composite
def _relations(draw: st.DrawFn, ids: list[str]) -> tuple[Relation, ...]:
    if not ids:
        return ()
    ends = st.sampled_from(ids)
    count = draw(st.integers(0, 3))
    notes = st.lists(st.text(), max_size=1).map(tuple)
    return tuple(
        Relation(f"R{i}", draw(LABELS), draw(ends), draw(ends), draw(notes)) for i in range(count)
    )


@st.composite
def _equivalences(draw: st.DrawFn, ids: list[str]) -> tuple[Equivalence, ...]:
    if len(ids) < 2:
        return ()
    members = draw(st.lists(st.sampled_from(ids), min_size=2, max_size=4, unique=True))
    return (Equivalence("OVERLAP", tuple(members)),)


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(documents(), min_size=1, max_size=3, unique_by=lambda d: d.id))
def test_generated_documents_survive_write_then_read(docs, tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(docs, path)
    back = [p.doc for p in read_jsonl(path)]
    assert [(d.id, d.text, dict(d.metadata)) for d in back] == [
        (d.id, d.text, dict(d.metadata)) for d in docs
    ]
    assert [d.annotation_set() for d in back] == [d.annotation_set() for d in docs]


@pytest.mark.skipif(not MACCROBAT.is_dir(), reason="MACCROBAT2020 (../shared/data) is absent")
def test_maccrobat_via_brat_survives_jsonl(tmp_path):
    docs = [p.doc for txt in brat_units(MACCROBAT) for p in read_brat(txt)]
    write_jsonl(docs, tmp_path / "m.jsonl")
    back = [p.doc for p in read_jsonl(tmp_path / "m.jsonl")]
    assert [(d.id, d.text, d.annotation_set()) for d in back] == [
        (d.id, d.text, d.annotation_set()) for d in docs
    ]


# --------------------------------------------------------------------------- what is written


def sample() -> Document:
    spans = (
        Span("T1", "Drug", 0, 7, attributes=(("Negated", "true"),), concept="MeSH:D001241"),
        Span("T2", "Problem", 12, 20, notes=("check",)),
        Span("T3", "Problem", 0, 20, fragments=((0, 3), (12, 20))),
    )
    return Document("n1", TEXT, spans, (Relation("R1", "treats", "T1", "T2"),),
                    metadata={"ward": "ICU"})  # fmt: skip


def test_written_lines_hold_only_what_is_set(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl([sample()], path, scores={("n1", "T2"): 0.0, ("n1", "R1"): 0.75})
    [obj] = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert obj == {
        "id": "n1",
        "text": TEXT,
        "metadata": {"ward": "ICU"},
        "spans": [
            {"id": "T1", "start": 0, "end": 7, "label": "Drug", "text": "aspirin",
             "attributes": {"Negated": "true"}, "concept": "MeSH:D001241"},
            {"id": "T2", "start": 12, "end": 20, "label": "Problem", "text": "headache",
             "notes": ["check"], "score": 0.0},
            {"id": "T3", "start": 0, "end": 20, "label": "Problem", "text": "asp headache",
             "fragments": [[0, 3], [12, 20]]},
        ],
        "relations": [{"id": "R1", "label": "treats", "head": "T1", "tail": "T2", "score": 0.75}],
    }  # fmt: skip
    [parsed] = read_jsonl(path)
    assert parsed.scores == {"T2": 0.0, "R1": 0.75}
    assert parsed.lines == {"T1": 1, "T2": 1, "T3": 1, "R1": 1} and parsed.line == 1
    assert all(s.source == SpanSource.IMPORTED for s in parsed.doc.spans)


def test_without_text_leaves_note_and_span_text_out(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl([sample()], path, with_text=False)
    content = path.read_text(encoding="utf-8")
    assert "aspirin" not in content and "headache" not in content
    assert '"start": 12' in content


def test_unicode_is_written_unescaped(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl([Document("n1", "Ärztin 😀\r\n")], path)
    assert (
        path.read_text(encoding="utf-8")
        == '{"id": "n1", "text": "Ärztin 😀\\r\\n", "spans": [], "relations": []}\n'
    )


# --------------------------------------------------------------------------- errors


def test_every_bad_line_is_reported(tmp_path):
    span = {"id": "T1", "start": 0, "end": 7, "label": "Drug"}
    path = write_lines(
        tmp_path,
        line("a", spans=[span]),  # 1 fine
        "",  # 2 blank: skipped
        "[1, 2]",  # 3 not an object
        json.dumps({"text": TEXT}),  # 4 no id
        line("b", spans=[{**span, "end": 99}]),  # 5 beyond the text
        line("c", spans=[{**span, "text": "ibuprofen"}]),  # 6 text disagrees
        line("d", spans=[span, span]),  # 7 duplicate span ids
        line("e", spans=[span], relations=[{"id": "R1", "label": "x", "head": "T1", "tail": "T9"}]),
        line("a", spans=[{**span, "end": 50}]),  # 9 duplicate document id (and bad end)
        line("f", spans=[{**span, "score": 1.5}]),  # 10 score outside [0, 1]
        line("g", spans=[{**span, "start": "0"}]),  # 11 offset not an integer
        line("h", span=[span]),  # 12 unknown field
        line("i", spans=[{"id": "T1", "start": 0, "label": "Drug"}]),  # 13 no end
        line("j", metadata={"k": [1]}),  # 14 metadata not scalar
        '{"id": "k", "text": "trunc',  # 15 truncated
    )
    found = problems(path)
    assert found == [
        (3, "expected a JSON object, got list"),
        (4, "id: missing field id"),
        (5, "spans[0] (id T1): end 99 is beyond the text (20 characters)"),
        (6, "spans[0] (id T1): text 'ibuprofen' does not match the offsets, which cover 'aspirin'"),
        (7, "duplicate span id T1"),
        (8, "relation R1: T9 is not a span id of this line"),
        (9, "spans[0] (id T1): end 50 is beyond the text (20 characters)"),
        (9, "duplicate document id 'a' (first on line 1)"),
        (10, "spans[0] (id T1): score must be a number in [0, 1], got 1.5"),
        (11, "spans[0] (id T1): start must be an integer, got '0'"),
        (12, "document: unknown field(s) span (allowed: equivalences, id, metadata, "
             "relations, spans, text)"),
        (13, "spans[0] (id T1): missing field(s) end"),
        (14, "metadata: must be an object of strings, numbers or booleans, got {'k': [1]}"),
        (15, "invalid JSON: Unterminated string starting at: column 21"),
    ]  # fmt: skip


def test_a_truncated_last_line_is_called_so(tmp_path):
    path = write_lines(tmp_path, line("a"), line("b")[:-5], end="")
    [(no, reason)] = problems(path)
    assert (
        no == 2
        and reason.startswith("invalid JSON")
        and reason.endswith("(the file looks truncated)")
    )


def test_relations_and_equivalences_must_name_spans(tmp_path):
    span = {"id": "T1", "start": 0, "end": 7, "label": "Drug"}
    rel = {"id": "T1", "label": "x", "head": "T1", "tail": "T1"}
    path = write_lines(
        tmp_path,
        line(
            "a",
            spans=[span],
            relations=[rel],
            equivalences=[{"label": "S", "members": ["T1", "T4"]}],
        ),
    )
    assert problems(path) == [
        (1, "duplicate relation id T1"),
        (1, "equivalence S: unknown span ids ['T4']"),
    ]


def test_metadata_numbers_become_text(tmp_path):
    [parsed] = read_jsonl(write_lines(tmp_path, line("a", metadata={"age": 54, "icu": True})))
    assert parsed.doc.metadata == {"age": "54", "icu": "true"}
