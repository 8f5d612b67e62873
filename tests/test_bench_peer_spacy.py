"""The noteloop side of bench/bench_peer_spacy.py: notes to the exchange JSON and back.

spaCy itself is never needed: its side (bench/peer_spacy_child.py) is bench code in its
own environment. These tests pin what the comparison depends on: the spaCy side is taught
the spans the encoder's BIO tagger keeps, in the tagger's order, and its entities come back
as predicted Documents that noteloop's scorer reads.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from noteloop.core.metrics import evaluate
from noteloop.core.schema import Document, Span

BENCH = Path(__file__).resolve().parents[1] / "bench"
TEXT = "Chest pain and left arm pain since 2 days; no fever."


@pytest.fixture(scope="module")
def peer():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        mp.setenv("HF_HUB_OFFLINE", "1")  # bench_encoder sets it when imported
        yield importlib.import_module("bench_peer_spacy")


def gold() -> Document:
    return Document("n1", TEXT, (
        Span("T1", "Sign_symptom", 0, 10),                        # Chest pain
        Span("T2", "Biological_structure", 0, 5),                 # Chest: nested, lost
        Span("T3", "Sign_symptom", 15, 28),                       # left arm pain
        Span("T4", "Duration", 29, 41, ((29, 34), (37, 41))),     # since ... days
        Span("T5", "Sign_symptom", 46, 51),                       # fever
        Span("T6", "Biological_structure", 15, 23),               # left arm: nested, lost
    ))


def test_training_note_keeps_what_bio_keeps_longest_first(peer):
    note = peer.training_note(gold())
    # The nested T2 and T6 are lost to the longer spans holding them, as in the BIO
    # tagger; the discontinuous T4 goes as its fragments; the longest span comes first.
    assert note == {"id": "n1", "text": TEXT, "spans": [
        {"label": "Sign_symptom", "fragments": [[15, 28]]},
        {"label": "Sign_symptom", "fragments": [[0, 10]]},
        {"label": "Duration", "fragments": [[29, 34], [37, 41]]},
        {"label": "Sign_symptom", "fragments": [[46, 51]]},
    ]}


def test_training_note_orders_by_characters_covered_then_start(peer):
    doc = Document("n2", TEXT, (
        Span("A", "Sign_symptom", 46, 51), Span("B", "Sign_symptom", 15, 28),
        Span("C", "Sign_symptom", 0, 10), Span("D", "Date", 35, 41),
        Span("E", "Date", 29, 34),
    ))
    spans = peer.training_note(doc)["spans"]
    assert [s["fragments"] for s in spans] == [
        [[15, 28]], [[0, 10]], [[35, 41]], [[29, 34]], [[46, 51]]]


def test_test_note_offers_only_spans_a_flat_tagger_can_match(peer):
    note = peer.test_note(gold())
    # Kept by the overlap rule and contiguous: the discontinuous T4 cannot match strictly.
    assert [g["fragments"] for g in note["gold"]] == [[[0, 10]], [[15, 28]], [[46, 51]]]
    assert "spans" not in note  # the spaCy side never trains on the test notes


def test_predictions_come_back_as_documents_the_scorer_reads(peer):
    test = [gold(), Document("n2", "Nothing here.")]
    predictions = [
        {"id": "n2", "spans": []},
        {"id": "n1", "spans": [{"label": "Sign_symptom", "start": 0, "end": 10},
                               {"label": "Sign_symptom", "start": 46, "end": 51}]},
    ]
    docs = peer.predicted_documents(test, predictions)
    assert [d.id for d in docs] == ["n1", "n2"]
    assert [(s.id, s.label, s.start, s.end) for s in docs[0].spans] == [
        ("P1", "Sign_symptom", 0, 10), ("P2", "Sign_symptom", 46, 51)]
    assert docs[0].text == TEXT and docs[0].relations == ()
    scores = evaluate(test, docs, n_bootstrap=0)
    assert (scores.entity_strict.tp, scores.entity_strict.fp, scores.entity_strict.fn) == (2, 0, 4)


def test_a_note_without_prediction_is_refused_by_name(peer):
    with pytest.raises(ValueError, match="returned no prediction for n2"):
        peer.predicted_documents([gold(), Document("n2", "x")], [{"id": "n1", "spans": []}])


def test_the_noteloop_side_never_imports_spacy():
    code = ("import sys; sys.path.insert(0, 'bench'); import bench_peer_spacy; "
            "print('spacy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=BENCH.parent)
    assert out.stdout.strip() == "False"
