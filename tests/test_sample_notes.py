"""Checks on the shipped demo corpus in sample_notes/ (synthetic notes + BRAT gold).

Uses its own tiny BRAT parser on purpose: the corpus must stay valid whatever the
project's reader does, and this test must not depend on it.
"""

from __future__ import annotations

import hashlib
import json
import os
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "sample_notes"
NOTES = CORPUS / "notes"
# Corpora that live beside the repository and must never be copied into it.
SHARED_DATA = ROOT.parent / "shared" / "data"


def read_exact(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def load_schema() -> dict:
    return json.loads(read_exact(CORPUS / "schema.json"))


def parse_ann(path: Path) -> tuple[dict, list, list]:
    """Return (spans, relations, attributes) from a BRAT .ann file.

    spans: {id: (label, [(start, end), ...], text)}
    relations: [(id, label, head, tail)]
    attributes: [(id, name, target)]
    """
    spans: dict[str, tuple[str, list[tuple[int, int]], str]] = {}
    relations: list[tuple[str, str, str, str]] = []
    attributes: list[tuple[str, str, str]] = []
    for lineno, line in enumerate(read_exact(path).split("\n"), 1):
        if not line.strip():
            continue
        where = f"{path.name}:{lineno}"
        kind = line[0]
        if kind == "T":
            ident, middle, text = line.split("\t")
            label, offsets = middle.split(" ", 1)
            frags = []
            for frag in offsets.split(";"):
                start, end = frag.split(" ")
                frags.append((int(start), int(end)))
            assert ident not in spans, f"{where}: duplicate id {ident}"
            spans[ident] = (label, frags, text)
        elif kind == "R":
            ident, middle = line.split("\t")
            label, arg1, arg2 = middle.split(" ")
            assert arg1.startswith("Arg1:") and arg2.startswith("Arg2:"), where
            relations.append((ident, label, arg1[5:], arg2[5:]))
        elif kind == "A":
            ident, middle = line.split("\t")
            parts = middle.split(" ")
            assert len(parts) == 2, f"{where}: attributes are binary flags"
            attributes.append((ident, parts[0], parts[1]))
        else:
            pytest.fail(f"{where}: unexpected line {line!r}")
    return spans, relations, attributes


def note_ids() -> list[str]:
    return sorted(p.stem for p in NOTES.glob("*.txt"))


def annotated_ids() -> list[str]:
    return sorted(p.stem for p in NOTES.glob("*.ann"))


def test_layout_and_counts():
    ids = note_ids()
    assert len(ids) >= 60
    annotated = annotated_ids()
    assert len(annotated) >= 20
    assert set(annotated) <= set(ids), "every .ann needs its .txt"
    words = {i: len(read_exact(NOTES / f"{i}.txt").split()) for i in ids}
    assert sum(1 for w in words.values() if w > 2000) >= 4
    assert all(w > 0 for w in words.values())
    # nothing else in notes/
    assert {p.suffix for p in NOTES.iterdir()} <= {".txt", ".ann"}


def test_some_notes_use_windows_line_endings():
    crlf = [i for i in note_ids() if "\r\n" in read_exact(NOTES / f"{i}.txt")]
    assert len(crlf) >= 2
    for i in crlf:
        text = read_exact(NOTES / f"{i}.txt")
        assert text.count("\n") == text.count("\r\n"), f"{i}: mixed line endings"
    assert any(i in annotated_ids() for i in crlf), "offsets must be exercised on \\r\\n"


@pytest.mark.parametrize("note_id", annotated_ids())
def test_annotations_match_text_and_schema(note_id):
    schema = load_schema()
    entity_types = {e["name"] for e in schema["entity_types"]}
    relation_types = {r["name"]: r for r in schema["relation_types"]}
    attribute_types = {a["name"] for a in schema["attributes"]}
    text = read_exact(NOTES / f"{note_id}.txt")
    spans, relations, attributes = parse_ann(NOTES / f"{note_id}.ann")
    assert spans, f"{note_id}: annotated note without spans"

    for ident, (label, frags, surface) in spans.items():
        assert label in entity_types, f"{note_id} {ident}: unknown label {label}"
        for start, end in frags:
            assert 0 <= start < end <= len(text), f"{note_id} {ident}: bad offsets"
        for (_, b), (c, _) in pairwise(frags):
            assert b <= c, f"{note_id} {ident}: fragments out of order"
        expected = " ".join(text[a:b] for a, b in frags)
        assert surface == expected, f"{note_id} {ident}: {surface!r} != {expected!r}"
        assert surface == surface.strip(), f"{note_id} {ident}: outer whitespace"

    seen_ids = set(spans)
    for ident, label, head, tail in relations:
        assert ident not in seen_ids, f"{note_id}: duplicate id {ident}"
        seen_ids.add(ident)
        assert label in relation_types, f"{note_id} {ident}: unknown relation {label}"
        assert head in spans and tail in spans, f"{note_id} {ident}: unknown argument"
        rt = relation_types[label]
        assert spans[head][0] in rt["heads"], f"{note_id} {ident}: head {spans[head][0]}"
        assert spans[tail][0] in rt["tails"], f"{note_id} {ident}: tail {spans[tail][0]}"

    for ident, name, target in attributes:
        assert name in attribute_types, f"{note_id} {ident}: unknown attribute {name}"
        assert target in spans, f"{note_id} {ident}: attribute on unknown span"


def test_gold_spans_do_not_overlap():
    for note_id in annotated_ids():
        spans, _, _ = parse_ann(NOTES / f"{note_id}.ann")
        frags = sorted(f for _, fs, _ in spans.values() for f in fs)
        for (a1, b1), (a2, _) in pairwise(frags):
            assert a2 >= b1, f"{note_id}: overlapping spans at {a1}-{b1} and {a2}"


def test_schema_fully_used():
    schema = load_schema()
    labels, rels, attrs = set(), set(), set()
    discontinuous = 0
    for note_id in annotated_ids():
        spans, relations, attributes = parse_ann(NOTES / f"{note_id}.ann")
        labels |= {label for label, _, _ in spans.values()}
        discontinuous += sum(1 for _, frags, _ in spans.values() if len(frags) > 1)
        rels |= {label for _, label, _, _ in relations}
        attrs |= {name for _, name, _ in attributes}
    assert labels == {e["name"] for e in schema["entity_types"]}
    assert rels == {r["name"] for r in schema["relation_types"]}
    assert attrs == {a["name"] for a in schema["attributes"]}
    assert discontinuous <= 3


def test_schema_shape():
    schema = load_schema()
    hotkeys = [e["hotkey"] for e in schema["entity_types"]]
    assert len(hotkeys) == len(set(hotkeys))
    names = {e["name"] for e in schema["entity_types"]}
    for rt in schema["relation_types"]:
        assert set(rt["heads"]) <= names and set(rt["tails"]) <= names


def test_splits():
    splits = json.loads(read_exact(CORPUS / "splits.json"))
    test, train = splits["test"], splits["train"]
    assert len(test) == 6
    assert not set(test) & set(train)
    assert len(set(test)) == len(test) and len(set(train)) == len(train)
    annotated = set(annotated_ids())
    assert set(test) | set(train) == annotated
    for note_id in test + train:
        assert (NOTES / f"{note_id}.txt").is_file()


def test_readme_present():
    readme = read_exact(CORPUS / "README.md")
    assert "CC0-1.0" in readme
    assert "synthetic" in readme.lower()


def _digests(folder: Path) -> set[str]:
    out = set()
    for dirpath, _, files in os.walk(folder):
        for name in files:
            out.add(hashlib.sha256(Path(dirpath, name).read_bytes()).hexdigest())
    return out


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="no shared/data beside the repository")
def test_nothing_copied_from_shared_data():
    shared = _digests(SHARED_DATA)
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert digest not in shared, f"{path} is a copy of a file in shared/data"
