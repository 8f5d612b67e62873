"""Leave-one-dataset-out transfer: corpora, reductions, the curves and `noteloop transfer`.

The fast tests use the memorising fake extractor behind the experiment's factories; one
slow test runs the real generative backend end to end on tiny corpora.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import MemoryExtractor
from typer.testing import CliRunner

from noteloop.cli import app
from noteloop.core import fewshot
from noteloop.core.errors import NoteloopError
from noteloop.core.model.base import DocumentPrediction
from noteloop.core.schema import (
    Document,
    EntityType,
    LabelSchema,
    Relation,
    RelationType,
    Span,
    Suggestion,
)
from noteloop.usecases import corpora, modeling

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[1] / "sample_notes"


def write_corpus(folder: Path, label: str, words: list[str], n_test: int = 1) -> Path:
    """A BRAT corpus of one-sentence notes, each mentioning one word as ``label``."""
    folder.mkdir(parents=True)
    ids = []
    for i, word in enumerate(words):
        text = f"The note mentions {word} today."
        start = text.index(word)
        (folder / f"d{i}.txt").write_text(text, encoding="utf-8")
        (folder / f"d{i}.ann").write_text(
            f"T1\t{label} {start} {start + len(word)}\t{word}\n", encoding="utf-8"
        )
        ids.append(f"d{i}")
    split = {"train": ids[n_test:], "test": ids[:n_test]}
    (folder / "splits.json").write_text(json.dumps(split), encoding="utf-8")
    return folder


def corpus(name: str, label: str, words: list[str]) -> fewshot.Corpus:
    docs = []
    for i, word in enumerate(words):
        text = f"The note mentions {word} today."
        start = text.index(word)
        docs.append(Document(f"{name}{i}", text, (Span("T1", label, start, start + len(word)),)))
    return fewshot.Corpus(name, LabelSchema((EntityType(label),)), docs[1:], docs[:1])


# --------------------------------------------------------------------------- reductions


def test_clip_keeps_whole_sentences_and_the_spans_inside():
    text = "Aspirin given. Pain gone now. Later fever came back again."
    doc = Document("d", text, (Span("a", "Drug", 0, 7), Span("f", "Problem", 36, 41)),
                   (Relation("r", "treats", "a", "f"),))
    clipped = fewshot.clip_document(doc, 6)
    assert clipped.text == "Aspirin given. Pain gone now."
    assert [s.id for s in clipped.spans] == ["a"] and clipped.relations == ()
    assert fewshot.clip_document(doc, 100) is doc


def test_definitions_fill_only_missing_descriptions():
    schema = LabelSchema(
        (EntityType("Drug"), EntityType("Problem", description="own")),
        (RelationType("treats"),),
    )
    out = fewshot.with_definitions(schema, {"Drug": "a medication", "Problem": "x",
                                            "treats": "given for"})
    assert [e.description for e in out.entity_types] == ["a medication", "own"]
    assert out.relation_types[0].description == "given for"


def test_shots_are_nested_samples_and_bad_counts_are_refused():
    docs = corpus("c", "Drug", [f"w{i}" for i in range(12)]).train
    five, ten = fewshot.sample(docs, 5, 0), fewshot.sample(docs, 10, 0)
    assert ten[:5] == five
    assert fewshot.sample(list(reversed(docs)), 5, 0) == five  # input order does not matter
    assert fewshot.check_shots([10, 0, 5, 5], 11) == (0, 5, 10)
    with pytest.raises(ValueError, match=r"`shots` \[20\] exceed the target's 11 training"):
        fewshot.check_shots([5, 20], 11)
    with pytest.raises(ValueError, match=r"`shots` must be integers >= 0, got \[-1\]"):
        fewshot.check_shots([-1], 11)


def test_corpora_load_with_their_split_and_schema():
    sample = corpora.load_corpus(f"sample={SAMPLE}")
    assert (sample.name, len(sample.train), len(sample.test)) == ("sample", 19, 6)
    assert sample.schema.entity("Problem").description  # from schema.json
    with pytest.raises(NoteloopError, match="corpus nowhere: no such file or folder"):
        corpora.load_corpus("nowhere=/no/such/place")


# --------------------------------------------------------------------------- the curves


def memory_factories(calls: list):
    start: dict[str, str] = {}

    def pretrain(datasets):
        calls.append([len(docs) for docs, _ in datasets])
        for docs, _ in datasets:
            for doc in docs:
                for span in doc.spans:
                    start[span.text_in(doc.text)] = span.label
        return 0.5

    def fresh(multitask: bool):
        extractor = MemoryExtractor()
        if multitask:
            extractor.lexicon.update(start)
        return extractor

    return fresh, pretrain


def test_curves_measure_both_arms_on_the_same_target_documents():
    words = ["aspirin", "heparin", "insulin", "digoxin", "morphine", "codeine"]
    sources = [corpus("a", "Drug", words), corpus("b", "Drug", words[::-1])]
    target = corpus("t", "Drug", ["aspirin", *words])
    calls: list = []
    fresh, pretrain = memory_factories(calls)
    result = fewshot.transfer_curves(sources, target, [0, 2, 4], fresh, pretrain,
                                     backend="memory", seed=1)
    assert calls == [[5, 5]]
    assert [(p.start, p.shots) for p in result.points] == [
        ("multitask", 0), ("multitask", 2), ("multitask", 4), ("base", 0), ("base", 2),
        ("base", 4),
    ]
    by = {(p.start, p.shots): p for p in result.points}
    assert by["multitask", 0].entity_strict.f1 == 1.0  # the sources taught "aspirin"
    assert by["base", 0].entity_strict.f1 == 0.0
    data = result.to_dict()
    assert data["multitask"] == {"n_docs": 10, "train_seconds": 0.5}
    assert data["sources"] == ["a", "b"] and data["n_test"] == 1


class RelatesGivenPairs(MemoryExtractor):
    """Finds no entity on its own; handed the entities, relates the first to the second."""

    def predict(self, docs, *, batch_size=32, on_progress=None, given_spans=False):
        out = []
        for doc in docs:
            spans = tuple(Suggestion(s, 1.0) for s in doc.spans) if given_spans else ()
            pair = doc.spans[:2] if given_spans else ()
            rels = (Suggestion(Relation("R1", "dose_of", pair[0].id, pair[1].id), 0.9),) if len(
                pair) == 2 else ()
            out.append(DocumentPrediction(doc.id, spans, rels, 0.5, (0.0,)))
        return out


def test_points_score_relations_on_gold_entities_apart_from_end_to_end():
    text = "Gave aspirin 81 mg today."
    doc = Document("d", text, (Span("T1", "Drug", 5, 12), Span("T2", "Dose", 13, 18)),
                   (Relation("R1", "dose_of", "T2", "T1"),))
    schema = LabelSchema((EntityType("Drug"), EntityType("Dose")),
                         (RelationType("dose_of", ("Dose",), ("Drug",)),))
    target = fewshot.Corpus("t", schema, [doc], [doc])
    result = fewshot.transfer_curves([], target, [0], lambda _m: RelatesGivenPairs(), None,
                                     backend="m")
    point = result.points[0]
    assert point.relation.f1 == 0.0  # no entity found, so no relation end to end
    # handed T1 and T2 it answers dose_of(T1 -> T2): the wrong direction scores 0 ...
    assert point.relation_gold_entities is not None
    assert point.relation_gold_entities.f1 == 0.0
    flipped = fewshot.Corpus("t", schema, [doc], [doc.with_annotations(
        spans=doc.spans[::-1], relations=doc.relations)])
    result = fewshot.transfer_curves([], flipped, [0], lambda _m: RelatesGivenPairs(), None,
                                     backend="m")
    assert result.points[0].relation_gold_entities.f1 == 1.0  # ... the right one scores 1
    assert result.to_dict()["points"][0]["relation_gold_entities"]["f1"] == 1.0
    concepts_only = fewshot.transfer_curves([], target, [0], lambda _m: RelatesGivenPairs(),
                                            None, backend="m", relations=False)
    assert concepts_only.points[0].relation_gold_entities is None


def test_curves_refuse_a_target_among_the_sources_and_no_test_documents():
    target = corpus("t", "Drug", ["a1", "a2", "a3"])
    fresh, pretrain = memory_factories([])
    with pytest.raises(ValueError, match="the target 't' is also a source"):
        fewshot.transfer_curves([target], target, [0], fresh, pretrain, backend="m")
    empty = fewshot.Corpus("e", target.schema, target.train, ())
    with pytest.raises(ValueError, match="target 'e' has no test documents"):
        fewshot.transfer_curves([], empty, [0], fresh, None, backend="m")


def test_transfer_command_writes_every_point(tmp_path, monkeypatch):
    a = write_corpus(tmp_path / "a", "Drug", ["aspirin", "heparin", "insulin"])
    b = write_corpus(tmp_path / "b", "Drug", ["digoxin", "morphine", "aspirin"])
    t = write_corpus(tmp_path / "t", "Drug", ["aspirin", "codeine", "heparin", "insulin"])
    calls: list = []

    def factories(backend, config, workdir, reuse=None):
        assert backend == "generative" and config["seed"] == 0 and reuse is None
        return (*memory_factories(calls), True)

    monkeypatch.setattr(modeling, "transfer_factories", factories)
    out = tmp_path / "results.json"
    result = runner.invoke(app, [
        "transfer", "--train", f"{a},{b}", "--target", f"target={t}", "--shots", "0,1,3",
        "--out", str(out),
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert set(data) == {"target", "sources", "backend", "seed", "shots", "n_test",
                         "multitask", "points"}
    assert (data["target"], data["sources"], data["shots"]) == ("target", ["a", "b"], [0, 1, 3])
    assert [(p["start"], p["shots"]) for p in data["points"]] == [
        (s, k) for s in ("multitask", "base") for k in (0, 1, 3)
    ]
    for point in data["points"]:
        assert set(point["entity"]) == {"strict", "lenient"}
        assert set(point["relation"]) == {"p", "r", "f1"}
    assert data["points"][0]["entity"]["strict"]["f1"] == 1.0  # "aspirin" from the sources


def _with_a_broken_file(folder: Path) -> Path:
    """The corpus with a train note whose span runs past its text, named in the split."""
    (folder / "bad.txt").write_text("Short.", encoding="utf-8")
    (folder / "bad.ann").write_text("T1\tDrug 0 40\tShort.\n", encoding="utf-8")
    split = json.loads((folder / "splits.json").read_text())
    split["train"].append("bad")
    (folder / "splits.json").write_text(json.dumps(split), encoding="utf-8")
    return folder


def test_transfer_leaves_a_refused_file_out_lists_it_and_records_it(tmp_path, monkeypatch):
    a = _with_a_broken_file(write_corpus(tmp_path / "a", "Drug", ["aspirin", "heparin"]))
    t = write_corpus(tmp_path / "t", "Drug", ["aspirin", "codeine", "heparin"])
    loaded = corpora.load_corpus(f"a={a}")
    assert [d.id for d in loaded.train] == ["d1"] and len(loaded.refused) == 1
    assert "bad.ann:1: T1: offsets end at 40, beyond the text" in str(loaded.refused[0])
    with pytest.raises(NoteloopError, match="1 problem"):
        corpora.load_corpus(f"a={a}", strict=True)
    monkeypatch.setattr(modeling, "transfer_factories",
                        lambda *args, **kw: (*memory_factories([]), True))
    out = tmp_path / "results.json"
    result = runner.invoke(app, ["transfer", "--train", str(a), "--target", f"target={t}",
                                 "--shots", "0,1", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "1 file(s) refused" in result.output
    read = json.loads(out.read_text())["corpus_read"]
    assert list(read) == ["a"] and read["a"]["refused_files"] == [str(a / "bad.ann")]
    strict = runner.invoke(app, ["transfer", "--train", str(a), "--target", str(t),
                                 "--strict", "--out", str(tmp_path / "s.json")])
    assert strict.exit_code == 1 and "bad.ann:1" in "".join(strict.output.split())


def test_transfer_command_reports_bad_input(tmp_path):
    t = write_corpus(tmp_path / "t", "Drug", ["aspirin", "codeine"])
    result = runner.invoke(app, ["transfer", "--train", str(tmp_path / "missing"),
                                 "--target", str(t), "--out", str(tmp_path / "o.json")])
    assert result.exit_code == 1 and "no such file or folder" in result.output
    result = runner.invoke(app, ["transfer", "--train", str(t), "--target", str(t),
                                 "--shots", "0,x", "--out", str(tmp_path / "o.json")])
    assert result.exit_code != 0


@pytest.mark.slow
def test_transfer_command_with_the_real_generative_model(tmp_path):
    a = write_corpus(tmp_path / "a", "Drug", ["aspirin", "heparin"])
    t = write_corpus(tmp_path / "t", "Medication", ["insulin", "codeine"])
    out = tmp_path / "results.json"
    result = runner.invoke(app, [
        "transfer", "--train", str(a), "--target", str(t), "--shots", "0,1",
        "--epochs", "1", "--max-new-tokens", "12", "--no-relations", "--threads", "2",
        "--out", str(out),
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [(p["start"], p["shots"]) for p in data["points"]] == [
        ("multitask", 0), ("multitask", 1), ("base", 0), ("base", 1)
    ]
    assert all(p["trained"] and p["parse"]["answers"] == 1 for p in data["points"])
    assert data["multitask"]["n_docs"] == 1
