"""Hugging Face datasets Parquet: noteloop gold as `datasets` loads it, and back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from noteloop.core.errors import ImportFileError
from noteloop.core.formats.brat import brat_units, read_brat
from noteloop.core.formats.hf_parquet import (
    arrow_schema,
    concept_links,
    concept_of,
    document_row,
    hub_split,
    noteloop_split,
    read_parquet,
    splits_of,
    units,
    write_parquet,
    yaml_features,
)
from noteloop.core.schema import Document, Equivalence, LabelSchema, Relation, Span, Split

datasets = pytest.importorskip("datasets")  # a dev dependency: the peer's own reader
pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

MACCROBAT = Path(__file__).resolve().parents[2] / "shared" / "data" / "maccrobat2020"
TEXT = "Aspirin 81mg for chest pain\r\nand left arm pain."
#       0123456789012345678901234567 8 9012345678901234567
TRAIN_FILE = "data/train-00000-of-00001.parquet"
TEST_FILE = "data/test-00000-of-00001.parquet"

# BigBio's kb schema as its loaders declare it (bigbio/utils/schemas/kb.py).
_S = datasets.Value("string")
_OFFSETS = datasets.Sequence([datasets.Value("int32")])
_LINKS = [{"db_name": _S, "db_id": _S}]
KB_FEATURES = datasets.Features({
    "id": _S,
    "document_id": _S,
    "passages": [{"id": _S, "type": _S, "text": datasets.Sequence(_S), "offsets": _OFFSETS}],
    "entities": [{"id": _S, "type": _S, "text": datasets.Sequence(_S), "offsets": _OFFSETS,
                  "normalized": _LINKS}],
    "events": [{"id": _S, "type": _S,
                "trigger": {"text": datasets.Sequence(_S), "offsets": _OFFSETS},
                "arguments": [{"role": _S, "ref_id": _S}]}],
    "coreferences": [{"id": _S, "entity_ids": datasets.Sequence(_S)}],
    "relations": [{"id": _S, "type": _S, "arg1_id": _S, "arg2_id": _S, "normalized": _LINKS}],
})


@pytest.fixture
def hf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """`datasets` offline, caching under the test's folder (nothing in $HOME); its cache."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-cache"
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("HF_HOME", str(cache))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    # datasets read those variables when first imported: set what it kept from them too
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache / "datasets")
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", cache / "modules")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def load(folder: Path, cache: Path, *args: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return datasets.load_dataset(*(args or (str(folder),)), cache_dir=str(cache), **kwargs)


def sample() -> Document:
    spans = (
        Span("T1", "Drug", 0, 7, attributes=(("Negated", "true"), ("Temporal", "past")),
             concept="MeSH:D001241", notes=("brand unknown",)),
        Span("T2", "Dosage", 8, 12, concept="UMLS:C1|C2"),
        Span("T3", "Sign", 17, 27),  # chest pain
        Span("T4", "Anatomy", 17, 22),  # chest, inside T3: overlapping
        Span("T5", "Sign", 33, 46, fragments=((33, 41), (42, 46))),  # left arm / pain
    )
    relations = (Relation("R1", "treats", "T1", "T3", notes=("checked",)),
                 Relation("R2", "dose_of", "T2", "T1"))
    return Document("note 1", TEXT, spans, relations, (Equivalence("Equiv", ("T3", "T5")),),
                    {"ward": "ICU", "year": "2020"})


def bare(doc_id: str, text: str = "No findings.") -> Document:
    return Document(doc_id, text)


def same(a: Document, b: Document) -> bool:
    return (a.id, a.text, dict(a.metadata), a.annotation_set(), [s.id for s in a.spans]) == (
        b.id, b.text, dict(b.metadata), b.annotation_set(), [s.id for s in b.spans])


# --------------------------------------------------------------------------- the peer reads


def test_datasets_loads_the_export_with_its_splits_and_bigbio_features(tmp_path, hf):
    out = tmp_path / "export"
    report = write_parquet([sample(), bare("n2"), bare("n3")], out, {"n2": "test", "x": "test"})
    assert report.splits == (("train", 2), ("test", 1))
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "README.md", TEST_FILE, TRAIN_FILE]
    for loaded in (load(out, hf), load(out, hf, "parquet", data_dir=str(out))):
        assert {s: ds.num_rows for s, ds in loaded.items()} == {"train": 2, "test": 1}
        features = loaded["train"].features
        assert {k: features[k] for k in KB_FEATURES} == dict(KB_FEATURES)
    row = load(out, hf)["train"][0]
    assert row["id"] == row["document_id"] == "note 1" and row["text"] == TEXT
    t5 = row["entities"][4]
    assert (t5["id"], t5["type"], t5["text"], t5["offsets"]) == (
        "note 1_T5", "Sign", ["left arm", "pain"], [[33, 41], [42, 46]])
    assert row["entities"][1]["normalized"] == [{"db_name": "UMLS", "db_id": "C1"},
                                                {"db_name": "", "db_id": "C2"}]
    assert row["relations"][0] == {"id": "note 1_R1", "type": "treats", "arg1_id": "note 1_T1",
                                   "arg2_id": "note 1_T3", "normalized": []}
    assert row["coreferences"] == [{"id": "note 1_*1", "entity_ids": ["note 1_T3", "note 1_T5"]}]
    # what kb cannot hold is in its own typed columns, even when empty
    assert row["attributes"][0] == {"ref_id": "note 1_T1", "type": "Negated", "value": "true"}
    assert load(out, hf)["test"][0]["entities"] == []


def test_the_card_declares_what_datasets_would_infer_and_names_the_labels(tmp_path, hf):
    out = tmp_path / "export"
    schema = LabelSchema.from_dict({"entity_types": ["Drug", "Unused"]})
    write_parquet([sample()], out, schema=schema)
    features = datasets.Features.from_arrow_schema(arrow_schema())
    assert yaml_features(arrow_schema()) == features._to_yaml_list()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "path: data/train-00000-of-00001.parquet" in card and "num_examples: 1" in card
    assert "| `Unused` | 0 |" in card and "| `Sign` | 2 |" in card and "| `treats` | 1 |" in card
    # the card's split sizes are checked by datasets when it loads the folder
    assert load(out, hf, verification_mode="basic_checks")["train"].num_rows == 1


def test_the_export_streams_in_bounded_row_groups(tmp_path):
    made = 0

    def notes() -> Iterator[Document]:
        nonlocal made
        for i in range(25):
            made += 1
            yield bare(f"n{i}", f"note {i}")

    report = write_parquet(notes(), tmp_path, {"n3": "validation"}, rows_per_group=10)
    meta = pq.ParquetFile(tmp_path / TRAIN_FILE).metadata
    assert (made, meta.num_rows, meta.num_row_groups) == (25, 24, 3)
    assert report.splits == (("train", 24), ("validation", 1)) and report.documents == 25
    assert report.summary().startswith(f"25 documents to {tmp_path} as a Hugging Face dataset")


def test_bad_split_names_are_refused_and_leave_no_half_dataset(tmp_path):
    with pytest.raises(ValueError, match="split name 'my split' is not valid"):
        write_parquet([bare("a"), bare("b")], tmp_path, {"b": "my split"})
    assert not list(tmp_path.rglob("*.parquet"))


def test_an_empty_export_is_an_empty_typed_file(tmp_path):
    # datasets cannot load a split without rows; pyarrow, pandas and noteloop can
    report = write_parquet([], tmp_path)
    assert report.splits == (("train", 0),)
    assert pq.read_schema(tmp_path / TRAIN_FILE).remove_metadata() == arrow_schema()
    assert read_parquet(tmp_path / TRAIN_FILE) == []


# --------------------------------------------------------------------------- round trips


def test_a_hand_made_note_comes_back_exactly(tmp_path):
    write_parquet([sample(), bare("n2")], tmp_path)
    back = [p.doc for p in read_parquet(tmp_path / TRAIN_FILE)]
    assert same(back[0], sample()) and same(back[1], bare("n2"))
    assert back[0].text.count("\r") == 1
    t1 = back[0].span("T1")
    assert (t1.attributes, t1.notes, t1.concept) == (
        (("Negated", "true"), ("Temporal", "past")), ("brand unknown",), "MeSH:D001241")
    assert back[0].relations[0].notes == ("checked",)
    assert back[0].equivalences == (Equivalence("Equiv", ("T3", "T5")),)


@pytest.mark.parametrize("concept", ["", "MeSH:D1", "C0004057", ":x", "x:", "a:b:c", "a||b:c"])
def test_concepts_survive_bigbio_normalized(concept):
    assert concept_of(concept_links(concept)) == concept


def test_a_file_that_datasets_wrote_imports(tmp_path):
    features = datasets.Features.from_arrow_schema(arrow_schema())
    rows = [document_row(sample()), document_row(bare("n2"))]
    columns = {name: [row[name] for row in rows] for name in features}
    path = tmp_path / "mine.parquet"
    datasets.Dataset.from_dict(columns, features=features).to_parquet(str(path))
    back = [p.doc for p in read_parquet(path)]
    assert same(back[0], sample()) and back[1].id == "n2"


def test_a_bigbio_kb_file_from_elsewhere_imports(tmp_path):
    # BigBio's own conversion: kb columns only, ids "<doc>_<id>", the note in two passages
    title, abstract = "Naloxone and clonidine.", "Clonidine lowers pressure."
    row = {
        "id": "0", "document_id": "227508",
        "passages": [{"id": "227508_1", "type": "title", "text": [title], "offsets": [[0, 23]]},
                     {"id": "227508_2", "type": "abstract", "text": [abstract],
                      "offsets": [[24, 50]]}],
        "entities": [
            {"id": "227508_T1", "type": "Chemical", "text": ["Naloxone"], "offsets": [[0, 8]],
             "normalized": [{"db_name": "MESH", "db_id": "D009270"},
                            {"db_name": "MESH", "db_id": "D0001"}]},
            {"id": "227508_T2", "type": "Chemical", "text": ["Clonidine"],
             "offsets": [[24, 33]], "normalized": []},
        ],
        "events": [], "coreferences": [{"id": "227508_C1", "entity_ids": ["227508_T1",
                                                                          "227508_T2"]}],
        "relations": [{"id": "227508_R1", "type": "CID", "arg1_id": "227508_T1",
                       "arg2_id": "227508_T2", "normalized": []}],
    }
    path = tmp_path / "test.parquet"
    datasets.Dataset.from_list([row], features=KB_FEATURES).to_parquet(str(path))
    (doc,) = [p.doc for p in read_parquet(path)]
    assert (doc.id, doc.text) == ("227508", f"{title} {abstract}")
    assert [(s.id, s.label, s.start, s.end, s.concept) for s in doc.spans] == [
        ("T1", "Chemical", 0, 8, "MESH:D009270|MESH:D0001"), ("T2", "Chemical", 24, 33, "")]
    assert [(r.head, r.tail) for r in doc.relations] == [("T1", "T2")]
    assert doc.equivalences == (Equivalence("Coreference", ("T1", "T2")),)
    assert hub_split(path) == "test"


# --------------------------------------------------------------------------- refusals


def write_rows(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema()), path)
    return path


def row_of(doc_id: str) -> dict:
    return document_row(replace(sample(), id=doc_id))


def test_bad_rows_are_refused_with_file_row_and_reason(tmp_path):
    good, outside, wrong_text, dangling, events = (row_of(f"note {i}") for i in range(1, 6))
    outside["entities"][0]["offsets"] = [[0, 900]]
    wrong_text["entities"][0]["text"] = ["Tylenol"]
    dangling["relations"][0]["arg2_id"] = "note 4_T9"
    events["events"] = [{"id": "E1", "type": "Give", "arguments": [],
                         "trigger": {"text": ["x"], "offsets": [[0, 1]]}}]
    path = write_rows(tmp_path / "bad.parquet", [good, outside, wrong_text, dangling, events,
                                                 document_row(sample())])
    with pytest.raises(ImportFileError) as caught:
        read_parquet(path)
    message = str(caught.value)
    assert f"{path}:2: row 2 (document note 2): entities[0] (id note 2_T1): offsets " \
           "[[0, 900]] fall outside the text (47 characters)" in message
    assert f"{path}:3: row 3 (document note 3): entities[0] (id note 3_T1): text ['Tylenol'] " \
           "does not match the offsets, which cover ['Aspirin']" in message
    assert "row 4 (document note 4): relation R1: T9 is not an entity of this row" in message
    assert "row 5 (document note 5): holds events, which noteloop cannot hold" in message
    assert "row 6 (document note 1): duplicate document id (first in row 1)" in message
    assert len(caught.value.errors) == 5 and [p.doc.id for p in caught.value.parsed] == ["note 1"]


def test_files_that_are_not_noteloop_parquet_are_refused_clearly(tmp_path):
    bad = tmp_path / "notes.parquet"
    bad.write_text("not parquet at all", encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"notes\.parquet: not a Parquet file"):
        read_parquet(bad)
    with pytest.raises(ImportFileError, match="no such file"):
        read_parquet(tmp_path / "missing.parquet")
    tokens = tmp_path / "tokens.parquet"
    pq.write_table(pa.table({"tokens": [["a"]], "ner_tags": [[0]]}), tokens)
    with pytest.raises(ImportFileError) as caught:
        read_parquet(tokens)
    reasons = [e.reason for e in caught.value.errors]
    assert reasons[:2] == ["missing column id (or document_id)",
                           "missing column text (or passages)"]
    assert reasons[2].startswith("unknown column(s) tokens, ner_tags (known: BigBio kb's")
    with pytest.raises(ImportFileError, match=r"big\.parquet: file is .* MB limit"):
        read_parquet(write_rows(tmp_path / "big.parquet", [document_row(sample())]),
                     max_bytes=100)


def test_attributes_and_notes_must_name_an_entity(tmp_path):
    row = document_row(sample())
    row["attributes"].append({"ref_id": "note 1_T42", "type": "Negated", "value": "true"})
    unknown = r"a\.parquet:1: row 1 .*attributes of unknown id T42"
    with pytest.raises(ImportFileError, match=unknown):
        read_parquet(write_rows(tmp_path / "a.parquet", [row]))


# --------------------------------------------------------------------------- the splits


def test_units_and_splits_of_a_dataset_folder(tmp_path):
    write_parquet([bare("a"), bare("b"), bare("c")], tmp_path, {"b": "test", "c": "validation"})
    (tmp_path / ".cache").mkdir()
    write_rows(tmp_path / ".cache" / "stale.parquet", [document_row(bare("z"))])
    assert [p.relative_to(tmp_path).as_posix() for p in units(tmp_path)] == [
        TEST_FILE, TRAIN_FILE, "data/validation-00000-of-00001.parquet"]
    assert splits_of(tmp_path) == {"a": "train", "b": "test", "c": "validation"}
    assert {d: noteloop_split(s) for d, s in splits_of(tmp_path).items()} == {
        "a": Split.POOL, "b": Split.TEST, "c": Split.POOL}
    assert [hub_split(Path(p)) for p in ("x/dev.parquet", "test/0.parquet", "notes.parquet")] == [
        "validation", "test", "train"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFileError, match=r"empty: folder holds no \.parquet files"):
        units(tmp_path / "empty")


@pytest.mark.skipif(not MACCROBAT.is_dir(), reason="MACCROBAT2020 (../shared/data) is absent")
def test_maccrobat_keeps_its_annotations_and_its_fixed_split(tmp_path, hf):
    docs = [p.doc for txt in brat_units(MACCROBAT) for p in read_brat(txt)]
    fixed = json.loads((MACCROBAT / "splits.json").read_text(encoding="utf-8"))
    split_of = {doc_id: split for split in ("train", "test") for doc_id in fixed[split]}
    out = tmp_path / "maccrobat"
    report = write_parquet(iter(docs), out, split_of, rows_per_group=64)
    assert report.splits == (("train", 150), ("test", 50))
    loaded = load(out, hf)
    assert sorted(loaded["test"]["document_id"]) == sorted(fixed["test"])
    assert sum(len(e) for e in loaded["train"]["entities"]) + sum(
        len(e) for e in loaded["test"]["entities"]) == report.spans
    back = {p.doc.id: p.doc for unit in units(out) for p in read_parquet(unit, max_bytes=2**28)}
    assert len(back) == 200 and all(same(back[d.id], d) for d in docs)
    assert splits_of(out) == split_of
