"""The encoder backend: config, candidates, and real MiniLM training, saving and prediction.

The slow tests share one tiny training run (module fixture): eight short synthetic notes,
windows of 48 tokens so that even these notes have seams.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import sys
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noteloop.core.align import containing_window, sliding_windows, token_owners
from noteloop.core.metrics import evaluate
from noteloop.core.model.base import (
    INT8_TOLERANCE,
    DocumentPrediction,
    Extractor,
    Int8Check,
    TrainingCancelled,
)
from noteloop.core.model.config import EncoderConfig
from noteloop.core.model.decode import normalised_entropy, viterbi_bio
from noteloop.core.model.features import (
    EncodedDoc,
    LabelMaps,
    attach_spans,
    attach_tags,
    best_windows,
    candidate_pairs,
    gold_targets,
    label_pairs,
)
from noteloop.core.schema import (
    Document,
    EntityType,
    LabelSchema,
    Relation,
    RelationType,
    Span,
)


def token_log_probs(extractor, docs) -> list:
    """Each note's (tokens, tags) tag log-probabilities as a torch tensor, merged across
    windows as prediction sees them."""
    import torch

    from noteloop.core.model.encoder import PREDICT_BATCH_SIZE

    extractor._require_model()
    out = []
    with torch.inference_mode():
        for chunk in extractor._chunks(docs):
            _, logps = extractor._states_and_logps(extractor._encode(chunk), PREDICT_BATCH_SIZE)
            out.extend(torch.from_numpy(lp) for lp in logps)
    return out


SCHEMA = LabelSchema(
    (EntityType("Drug"), EntityType("Dose"), EntityType("Problem")),
    (
        RelationType("treats", heads=("Drug",), tails=("Problem",)),
        RelationType("dose_of", heads=("Dose",), tails=("Drug",)),
        RelationType("similar", heads=("Problem",), tails=("Problem",), symmetric=True),
    ),
)

# --------------------------------------------------------------------------- config


def test_config_round_trips_exactly():
    config = EncoderConfig(lora_r=8, target_modules=("query", "value"), epochs=3, seed=7)
    data = config.to_dict()
    assert data["target_modules"] == ["query", "value"]
    assert EncoderConfig.from_dict(data) == config
    assert EncoderConfig.from_dict(data).to_dict() == data
    assert EncoderConfig.from_dict({}) == EncoderConfig()
    assert set(EncoderConfig.help()) == set(data)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lora_r": 0}, "`lora_r` must be >= 1, got 0"),
        ({"lora_r": 2.5}, "`lora_r` must be an integer, got 2.5"),
        ({"lora_dropout": 1.0}, r"`lora_dropout` must be in \[0, 1\), got 1.0"),
        ({"lr_adapter": 0.0}, "`lr_adapter` must be > 0, got 0.0"),
        ({"epochs": -1}, "`epochs` must be >= 0, got -1"),
        ({"threads": True}, "`threads` must be an integer, got True"),
        ({"window_overlap": 256}, r"`window_overlap` must be in \[0, window_tokens=256\)"),
        ({"device": "tpu"}, "`device` must be one of auto, cpu, cuda, got 'tpu'"),
        ({"target_modules": ("",)}, "`target_modules` must be non-empty names"),
        ({"relation_negative_ratio": -1.0}, "`relation_negative_ratio` must be >= 0.0"),
        ({"span_head": "crf"}, "`span_head` must be one of enumerate, hybrid, bio, got 'crf'"),
        ({"span_threshold": 1.0}, r"`span_threshold` must be in \(0, 1\), got 1.0"),
        ({"second_type_threshold": 0.0},
         r"`second_type_threshold` must be in \(0, 1\), got 0.0"),
        ({"relation_threshold": 0.0}, r"`relation_threshold` must be in \(0, 1\)"),
        ({"holdout_share": 1.0}, r"`holdout_share` must be in \[0, 1\)"),
        ({"patience": 0}, "`patience` must be >= 1, got 0"),
        ({"relation_features": "markers"},
         "`relation_features` must be one of rich, basic, got 'markers'"),
        ({"relation_on_predicted": 1}, "`relation_on_predicted` must be true or false, got 1"),
        ({"inference": "fp16"}, "`inference` must be one of auto, float, int8, got 'fp16'"),
    ],
)
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EncoderConfig(**kwargs)


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown EncoderConfig key"):
        EncoderConfig.from_dict({"lora_rank": 4})


def test_auto_epochs_shrink_with_more_documents():
    config = EncoderConfig()
    counts = [config.epochs_for(n) for n in (1, 10, 20, 50, 100, 150, 300, 1000, 10**5)]
    assert counts == sorted(counts, reverse=True)
    assert counts == [24, 24, 24, 10, 8, 8, 4, 3, 3]
    assert EncoderConfig(epochs=4).epochs_for(10) == 4


# --------------------------------------------------------------------------- candidates


def _encoded(doc: Document, n_tokens: int, size: int, spans) -> EncodedDoc:
    """A note whose tokens are its characters (offsets i, i+1), for exact control."""
    windows = sliding_windows(n_tokens, size, size // 4)
    enc = EncodedDoc(doc, list(range(n_tokens)), [(i, i + 1) for i in range(n_tokens)],
                     windows, token_owners(windows, n_tokens))
    attach_spans(enc, spans)
    return enc


def test_relation_candidates_follow_schema_direction_and_distance():
    spans = [Span("d", "Drug", 0, 2), Span("p", "Problem", 4, 6), Span("q", "Problem", 8, 9),
             Span("x", "Dose", 10, 11), Span("far", "Problem", 60, 62)]
    doc = Document("n", "x" * 64, tuple(spans))
    enc = _encoded(doc, 64, 32, spans)
    maps = LabelMaps.from_schema(SCHEMA)
    pairs = candidate_pairs(enc, maps, max_distance=10, max_candidates=100)
    allowed = {(enc.spans[h].id, enc.spans[t].id):
               {maps.relations[i - 1] for i, ok in enumerate(mask) if ok and i}
               for h, t, mask in zip(pairs.head, pairs.tail, pairs.mask, strict=True)}
    assert allowed[("d", "p")] == {"treats"}
    assert ("p", "d") not in allowed  # treats is directed: Problem -> Drug is never offered
    assert allowed[("x", "d")] == {"dose_of"}
    assert allowed[("p", "q")] == {"similar"}  # symmetric: offered once, in text order
    assert ("q", "p") not in allowed
    assert ("d", "x") not in allowed and ("d", "q") in allowed
    assert not any("far" in key for key in allowed)  # 49+ tokens away
    assert pairs.mask[:, 0].all()  # "no relation" is always possible


def test_gold_symmetric_relation_given_backwards_is_turned_around():
    spans = [Span("p", "Problem", 0, 2), Span("q", "Problem", 4, 6), Span("d", "Drug", 8, 9)]
    rels = [Relation("r1", "similar", "q", "p"), Relation("r2", "treats", "d", "q")]
    doc = Document("n", "x" * 16, tuple(spans), tuple(rels))
    enc = _encoded(doc, 16, 16, spans)
    maps = LabelMaps.from_schema(SCHEMA)
    targets, lost = gold_targets(enc, maps)
    assert lost == 0
    labelled = label_pairs(candidate_pairs(enc, maps, 10, 100), targets)
    gold = {(enc.spans[h].id, enc.spans[t].id): maps.relations[c - 1]
            for h, t, c in zip(labelled.head, labelled.tail, labelled.target, strict=True) if c}
    assert gold == {("p", "q"): "similar", ("d", "q"): "treats"}


def test_candidates_need_one_window_holding_both_spans():
    spans = [Span("d", "Drug", 0, 2), Span("p", "Problem", 14, 16)]
    doc = Document("n", "x" * 32, tuple(spans))
    enc = _encoded(doc, 32, 8, spans)  # windows of 8 tokens: the pair spans 16
    pairs = candidate_pairs(enc, LabelMaps.from_schema(SCHEMA), 100, 100)
    assert len(pairs) == 0


def test_candidates_per_window_are_capped_closest_first():
    spans = [Span(f"p{i}", "Problem", 3 * i, 3 * i + 1) for i in range(6)]
    doc = Document("n", "x" * 20, tuple(spans))
    enc = _encoded(doc, 20, 20, spans)
    pairs = candidate_pairs(enc, LabelMaps.from_schema(SCHEMA), 100, 4)
    assert len(pairs) == 4 and list(pairs.gap) == sorted(pairs.gap) and max(pairs.gap) <= 2


@given(n=st.integers(1, 120), size=st.integers(1, 30), data=st.data())
def test_vectorised_window_choice_matches_align(n, size, data):
    windows = sliding_windows(n, size, data.draw(st.integers(0, size - 1)))
    ranges = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 40)),
                                min_size=1, max_size=20))
    lo = np.array([a for a, _ in ranges])
    hi = np.minimum(lo + np.array([b for _, b in ranges]), n)
    expected = [containing_window(windows, a, b) for a, b in zip(lo, hi, strict=True)]
    assert [None if w < 0 else w for w in best_windows(windows, lo, hi)] == expected


TAGS = ("O", "B-A", "I-A", "B-B", "I-B")


def _valid_bio(path) -> bool:
    prev = "O"
    for i in path:
        tag = TAGS[i]
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            return False
        prev = tag
    return True


@given(lengths=st.lists(st.integers(0, 5), min_size=1, max_size=4), seed=st.integers(0, 999))
def test_batched_viterbi_finds_the_best_valid_path(lengths, seed):
    rng = np.random.default_rng(seed)
    logps = [np.log(rng.dirichlet(np.ones(len(TAGS)), size=n)).astype(np.float32)
             for n in lengths]
    for logp, path in zip(logps, viterbi_bio(logps, TAGS), strict=True):
        assert len(path) == len(logp) and _valid_bio(path)
        rows = np.arange(len(logp))
        best = max((p for p in itertools.product(range(len(TAGS)), repeat=len(logp))
                    if _valid_bio(p)), key=lambda p: logp[rows, list(p)].sum())
        assert logp[rows, path].sum() == pytest.approx(logp[rows, list(best)].sum(), abs=1e-4)


def test_uncertainty_is_normalised_entropy():
    certain = np.log(np.array([[1.0 - 4e-6, 1e-6, 1e-6, 1e-6, 1e-6]]))
    uniform = np.log(np.full((3, 5), 0.2))
    assert normalised_entropy(certain) < 0.01
    assert normalised_entropy(uniform) == pytest.approx(1.0)
    assert normalised_entropy(np.zeros((0, 5))) == 0.0


def test_training_batches_cover_every_window_once_per_seed():
    from noteloop.core.model.batches import shuffled_batches

    refs = [(d, w) for d in range(7) for w in range(3)]
    lengths = [256 if w < 2 else 40 + d for d, w in refs]
    first = shuffled_batches(refs, lengths, 4, random.Random(1), pool=2)
    again = shuffled_batches(refs, lengths, 4, random.Random(1), pool=2)
    other = shuffled_batches(refs, lengths, 4, random.Random(2), pool=2)
    assert first == again and first != other
    assert sorted(r for batch in first for r in batch) == sorted(refs)
    assert all(1 <= len(batch) <= 4 for batch in first)


@settings(deadline=None)  # the first example imports torch when this test runs alone
@given(st.integers(1, 200_000))
def test_head_rows_are_padded_by_a_quarter_or_63_rows_at_most(n):
    from noteloop.core.model.heads import bucket

    assert n <= bucket(n) <= max(n + 63, math.ceil(1.25 * n))
    assert bucket(bucket(n)) == bucket(n)


def test_few_shapes_reach_the_matmuls():
    from noteloop.core.model.batches import padded_width
    from noteloop.core.model.heads import bucket

    # one distinct shape per bucket: oneDNN compiles and keeps a kernel for each
    assert len({bucket(n) for n in range(1, 20_000)}) < 60
    widths = {padded_width(n, 258) for n in range(1, 259)}
    assert len(widths) == 9 and max(widths) == 258
    assert padded_width(250, 258) == 256 and padded_width(257, 258) == 258


def test_token_batch_pads_to_a_width_step_with_a_mask():
    from noteloop.core.model.batches import token_batch

    ids, mask = token_batch([[5] * 40, [6] * 33], pad=0, limit=258)
    assert ids.shape == (2, 64) and mask is not None
    assert mask.sum(dim=1).tolist() == [40, 33] and int(ids[1, 33:].sum()) == 0
    full, none = token_batch([[5] * 258, [6] * 258], pad=0, limit=258)
    assert full.shape == (2, 258) and none is None


def test_rows_are_gathered_as_indexing_would_and_train_alike_run_after_run():
    import torch

    from noteloop.core.model.heads import _rows

    torch.manual_seed(0)
    part = torch.randn(3, 7, 5, requires_grad=True)
    win = torch.randint(0, 3, (400,))
    pos = torch.randint(0, 7, (400,))  # many repeats: gradients add up on the same rows
    weights = torch.randn(400, 5)
    assert torch.equal(_rows(part, win, pos), part[win, pos])
    grads = []
    for _ in range(5):
        part.grad = None
        (_rows(part, win, pos) * weights).sum().backward()
        grads.append(part.grad.clone())
    assert all(torch.equal(grads[0], g) for g in grads)
    part.grad = None
    (part[win, pos] * weights).sum().backward()
    assert torch.allclose(grads[0], part.grad, atol=1e-5)


def test_padded_rows_leave_each_candidates_scores_unchanged():
    import torch

    from noteloop.core.model.heads import CandidateBatch, EnumerationHead

    torch.manual_seed(0)
    head = EnumerationHead(hidden=16, n_types=3, width=8, max_tokens=6, dropout=0.0).eval()
    states = torch.randn(2, 12, 16)
    lo = torch.tensor([1, 2, 3, 1, 4])
    cands = CandidateBatch(torch.tensor([0, 0, 0, 1, 1]), lo, lo + torch.tensor([1, 2, 3, 1, 4]))
    scores = head(states, cands)
    assert scores.shape == (5, 4)
    for i in range(5):  # each alone: a different padding, the same scores
        one = CandidateBatch(cands.window[i : i + 1], cands.lo[i : i + 1], cands.hi[i : i + 1])
        assert torch.allclose(head(states, one), scores[i : i + 1], atol=1e-5)


def _resident_bytes() -> int:
    import os

    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_memory_is_handed_back_to_the_system():
    import ctypes

    from noteloop.core.model.device import release_freed_memory

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    # 64 MB in blocks small enough for the heap, written so that they are resident; the
    # last one stays, so that freeing the others leaves holes glibc keeps
    blocks = [libc.malloc(16_384) for _ in range(4_096)]
    for block in blocks:
        ctypes.memset(block, 1, 16_384)
    for block in blocks[:-1]:
        libc.free(block)
    held = _resident_bytes()
    release_freed_memory()
    assert held - _resident_bytes() > 32 * 2**20
    libc.free(blocks[-1])


def test_prediction_refuses_bad_uncertainty():
    with pytest.raises(ValueError, match="uncertainty must be in"):
        DocumentPrediction("n", (), (), 1.5, ())


# --------------------------------------------------------------------------- real MiniLM

DRUGS = ["aspirin", "metformin", "lisinopril", "warfarin", "amoxicillin", "omeprazole"]
DOSES = ["100 mg", "500 mg", "10 mg", "5 mg daily", "250 mg", "20 mg"]
PROBLEMS = ["headache", "diabetes", "hypertension", "atrial fibrillation", "otitis media",
            "reflux"]
FILLERS = ["The patient slept well overnight.", "Vital signs were stable.",
           "Family history is noncontributory.", "She ambulates without assistance."]


class _Writer:
    """Builds a note sentence by sentence, recording spans and relations as it goes."""

    def __init__(self) -> None:
        self.text, self.spans, self.relations = "", [], []

    def add(self, piece: str, label: str | None = None) -> str:
        start = len(self.text)
        self.text += piece
        if label is None:
            return ""
        span_id = f"T{len(self.spans) + 1}"
        self.spans.append(Span(span_id, label, start, start + len(piece)))
        return span_id

    def relate(self, label: str, head: str, tail: str) -> None:
        self.relations.append(Relation(f"R{len(self.relations) + 1}", label, head, tail))


def synthetic_note(doc_id: str, rng: random.Random, sentences: int = 4) -> Document:
    w = _Writer()
    for _ in range(sentences):
        i, j = rng.randrange(len(DRUGS)), rng.randrange(len(PROBLEMS))
        w.add("She was started on ")
        drug = w.add(DRUGS[i], "Drug")
        w.add(" ")
        dose = w.add(DOSES[rng.randrange(len(DOSES))], "Dose")
        w.add(" for ")
        problem = w.add(PROBLEMS[j], "Problem")
        w.add(". " + rng.choice(FILLERS) + ("\r\n" if rng.random() < 0.3 else " "))
        w.relate("treats", drug, problem)
        w.relate("dose_of", dose, drug)
    return Document(doc_id, w.text, tuple(w.spans), tuple(w.relations))


def tiny_config(**kwargs) -> EncoderConfig:
    base = dict(epochs=12, window_tokens=48, window_overlap=12, batch_size=8, threads=2,
                lr_adapter=3e-3, lr_heads=5e-3, seed=5, device="cpu")
    return EncoderConfig(**{**base, **kwargs})


@pytest.fixture(scope="module")
def train_docs() -> list[Document]:
    rng = random.Random(0)
    return [synthetic_note(f"n{i}", rng) for i in range(8)]


@pytest.fixture(scope="module")
def trained(train_docs):
    from noteloop.core.model.encoder import EncoderExtractor

    extractor = EncoderExtractor(tiny_config())
    events = []
    extractor.train(train_docs, SCHEMA, on_metric=events.append)
    return extractor, events


def _f1(gold, predictions, **kwargs):
    docs = [p.as_document(g.text) for p, g in zip(predictions, gold, strict=True)]
    return evaluate(gold, docs, n_bootstrap=0, **kwargs)


@pytest.mark.slow
def test_training_learns_the_spans_and_relations(trained, train_docs):
    extractor, events = trained
    losses = [e.value for e in events if e.name == "loss"]
    epoch_losses = [e.value for e in events if e.name == "epoch_loss"]
    assert {"loss", "span_loss", "relation_loss", "epoch_loss"} <= {e.name for e in events}
    assert [e.step for e in events if e.name == "loss"] == list(range(1, len(losses) + 1))
    assert epoch_losses[-1] < epoch_losses[0] / 4  # the loss falls by a clear factor...
    result = _f1(train_docs, extractor.predict(train_docs))
    assert result.entity_strict.f1 > 0.8  # ...and the trained spans are found
    with_gold = _f1(train_docs, extractor.predict(train_docs, given_spans=True))
    assert with_gold.relation.f1 > 0.6
    assert isinstance(extractor, Extractor)
    assert extractor.summary.restarts == 0


@pytest.mark.slow
def test_untrained_heads_find_nothing_useful(train_docs):
    """The learning test's baseline: the same model after zero learning-rate steps."""
    from noteloop.core.model.encoder import EncoderExtractor

    extractor = EncoderExtractor(tiny_config(epochs=1, lr_adapter=1e-12, lr_heads=1e-12))
    extractor.train(train_docs[:2], SCHEMA)
    assert _f1(train_docs, extractor.predict(train_docs)).entity_strict.f1 < 0.2


@pytest.mark.slow
def test_a_collapsed_tagger_is_trained_again_with_the_next_seed(train_docs):
    """A tagger that learnt nothing beyond the tag frequencies predicts no spans: the
    round is trained again from the base model, ``restarts`` times at most."""
    from noteloop.core.model.encoder import EncoderExtractor

    extractor = EncoderExtractor(tiny_config(epochs=3, lr_adapter=1e-12, lr_heads=1e-12))
    events = []
    summary = extractor.train(train_docs[:2], SCHEMA, on_metric=events.append)
    assert summary.restarts == 2  # the config's default
    assert [e.value for e in events if e.name == "restart"] == [1, 2]
    assert sum(e.name == "epoch_loss" for e in events) == 9  # three whole runs


def test_the_predicted_spans_are_refreshed_after_the_epochs_asked():
    from noteloop.core.model.encoder import refresh_epochs

    assert refresh_epochs(10, 0) == set(range(1, 10))  # after every epoch but the last
    assert refresh_epochs(10, 2) == {4, 9}  # spread evenly, the last before the last epoch
    assert refresh_epochs(8, 2) == {4, 7}
    assert refresh_epochs(24, 3) == {8, 15, 23}
    assert refresh_epochs(3, 5) == {1, 2}  # never more than every epoch
    assert refresh_epochs(1, 0) == set()  # one epoch: nothing predicted before it ends


def test_collapse_is_a_tag_loss_near_guessing_the_tag_frequencies():
    from noteloop.core.model.encoder import collapsed, tag_prior_loss

    doc = _encoded(Document("d", "a b c d"), 4, 4, [])
    doc.tags = [0, 0, 1, 2]
    assert tag_prior_loss([doc]) == pytest.approx(-(0.5 * math.log(0.5) + 0.5 * math.log(0.25)))
    assert collapsed(2.4, 2.5, 3) and collapsed(math.nan, 2.5, 3)
    assert not collapsed(1.2, 2.5, 3)
    assert not collapsed(0.3, 0.0, 3)  # no spans in the gold: nothing to collapse from
    assert not collapsed(2.4, 2.5, 2)  # too short a run to tell collapsed from undertrained


@pytest.mark.slow
def test_predictions_are_well_formed(trained, train_docs):
    extractor, _ = trained
    preds = extractor.predict(train_docs, batch_size=3)
    assert [p.doc_id for p in preds] == [d.id for d in train_docs]
    for pred, doc in zip(preds, train_docs, strict=True):
        assert [s.item.id for s in pred.spans] == [f"S{i + 1}" for i in range(len(pred.spans))]
        assert all(0 <= s.score <= 1 for s in (*pred.spans, *pred.relations))
        assert 0 <= pred.uncertainty <= 1 and len(pred.embedding) == 384
        pred.as_document(doc.text)  # relations point at predicted spans; offsets fit


@pytest.mark.slow
def test_empty_and_blank_notes_predict_nothing(trained):
    extractor, _ = trained
    preds = extractor.predict([Document("e", ""), Document("b", " \r\n\t ")])
    for pred in preds:
        assert pred.spans == () and pred.relations == () and pred.uncertainty == 0.0
        assert pred.embedding == (0.0,) * 384


@pytest.mark.slow
def test_given_spans_keep_their_ids(trained, train_docs):
    extractor, _ = trained
    doc = train_docs[0]
    (pred,) = extractor.predict([doc], given_spans=True)
    assert [s.item for s in pred.spans] == list(doc.spans)
    ids = {s.id for s in doc.spans}
    assert all({r.item.head, r.item.tail} <= ids for r in pred.relations)


@pytest.mark.slow
def test_save_load_round_trip_is_identical(trained, train_docs, tmp_path):
    import torch

    from noteloop.core.model.encoder import EncoderExtractor

    extractor, _ = trained
    extractor.save(tmp_path / "m")
    adapter = tmp_path / "m" / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (tmp_path / "m" / "heads.safetensors").is_file()
    loaded = EncoderExtractor.load(tmp_path / "m")
    assert loaded.config == extractor.config and loaded.summary == extractor.summary
    for a, b in zip(token_log_probs(extractor, train_docs), token_log_probs(loaded, train_docs),
                    strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert loaded.predict(train_docs) == extractor.predict(train_docs)


def test_int8_passes_within_the_tolerance_of_float_on_some_notes():
    assert INT8_TOLERANCE == 0.005
    assert Int8Check(10, 0.600, 0.5951).passed
    assert Int8Check(10, 0.600, 0.640).passed  # int8 better: passes
    assert not Int8Check(10, 0.600, 0.594).passed
    assert not Int8Check(0, 0.0, 0.0).passed  # no notes: nothing was checked
    check = Int8Check(7, 0.61, 0.6)
    assert check.to_dict()["passed"] is False
    assert Int8Check.from_dict(json.loads(json.dumps(check.to_dict()))) == check


@pytest.mark.slow
def test_an_int8_scheme_keeps_the_feed_forward_outputs_float(trained):
    import copy

    import torch

    from noteloop.core.model.quantize import int8_encoder, is_int8

    extractor, _ = trained
    floats = {}
    for scheme in ("all", "ffn_output_float"):
        merged = int8_encoder(copy.deepcopy(extractor.model.encoder).merge_and_unload(), scheme)
        assert is_int8(merged)
        floats[scheme] = {n for n, m in merged.named_modules() if type(m) is torch.nn.Linear}
    assert floats["all"] == set()
    assert floats["ffn_output_float"] == {f"encoder.layer.{i}.output.dense" for i in range(6)}
    assert not is_int8(extractor.model.encoder)
    with pytest.raises(ValueError, match="int8 scheme must be one of all, ffn_output_float"):
        int8_encoder(merged, "half")


@pytest.mark.slow
def test_int8_inference_serves_only_where_its_check_passed(trained, train_docs, tmp_path):
    """``check_int8`` predicts the gold with int8 linear layers and records the F1 beside
    float's; 'auto' then predicts with int8 only where the check passed, and the check
    travels with the saved model."""
    from noteloop.core.model.encoder import EncoderExtractor
    from noteloop.core.model.quantize import is_int8
    from noteloop.usecases import modeling

    extractor, _ = trained
    float_preds = extractor.predict(train_docs)
    float_run = _f1(train_docs, float_preds)
    try:
        recorded = modeling._check_int8(extractor, train_docs, float_run)
        check = extractor.int8_check
        assert check is not None and recorded == check.to_dict()
        assert check.notes == 8 and check.float_f1 == float_run.entity_strict.f1
        assert check.int8_f1 > 0.8  # int8 still finds the trained spans
        assert check.scheme in ("all", "ffn_output_float")
        assert not is_int8(extractor.model.encoder)  # the trained weights stay float

        extractor.save(tmp_path / "m")
        loaded = EncoderExtractor.load(tmp_path / "m", precision="fp32")
        assert loaded.int8_check == check
        assert is_int8(loaded._inference_encoder()) == check.passed
        # a CPU that computes bfloat16 natively keeps it: faster than int8 there
        with_bf16 = EncoderExtractor.load(tmp_path / "m", precision="bf16")
        assert not is_int8(with_bf16._inference_encoder())
        int8_docs = _f1(train_docs, EncoderExtractor.load(
            tmp_path / "m", inference="int8").predict(train_docs))
        assert int8_docs.entity_strict.f1 == pytest.approx(check.int8_f1)
        as_float = EncoderExtractor.load(tmp_path / "m", inference="float")
        assert not is_int8(as_float._inference_encoder())
        assert as_float.predict(train_docs) == float_preds

        loaded.int8_check, loaded._merged = Int8Check(8, 0.9, 0.89), None  # lost 0.01
        assert not is_int8(loaded._inference_encoder())
        loaded.int8_check, loaded._merged = Int8Check(8, 0.9, 0.897), None
        assert is_int8(loaded._inference_encoder())
        assert modeling._check_int8(extractor, train_docs, None) is None  # nothing scored
    finally:
        extractor.int8_check, extractor._merged = None, None  # the fixture stays float


@pytest.mark.slow
def test_a_model_saved_before_rich_relation_features_loads_as_basic(train_docs, tmp_path):
    import json

    from noteloop.core.model.encoder import EncoderExtractor

    extractor = EncoderExtractor(tiny_config(epochs=1, relation_features="basic"))
    extractor.train(train_docs[:2], SCHEMA)
    extractor.save(tmp_path / "m")
    meta_file = tmp_path / "m" / "noteloop.json"
    meta = json.loads(meta_file.read_text())
    del meta["config"]["relation_features"]  # as written before the field existed
    meta_file.write_text(json.dumps(meta))
    loaded = EncoderExtractor.load(tmp_path / "m")
    assert loaded.config.relation_features == "basic"
    assert loaded.predict(train_docs[:2]) == extractor.predict(train_docs[:2])


@pytest.mark.slow
def test_long_note_is_predicted_beyond_the_first_window(trained):
    extractor, _ = trained
    rng = random.Random(3)
    parts, words = [], 0
    while words < 5000:
        note = synthetic_note("x", rng, sentences=1).text
        parts.append(note)
        words += len(note.split())
    text = "".join(parts)
    (pred,) = extractor.predict([Document("long", text)])
    window_chars = len(" ".join(text.split()[:40]))  # 48-token windows: ~40 words
    assert any(s.item.start > 100 * window_chars for s in pred.spans)
    assert max(s.item.end for s in pred.spans) > len(text) - 200  # up to the very end
    for s in pred.spans:
        span = s.item
        assert 0 <= span.start < span.end <= len(text)
        assert text[span.start : span.end] == text[span.start : span.end].strip()


@pytest.mark.slow
def test_fixed_seed_on_cpu_repeats_exactly(trained, train_docs):
    import torch

    from noteloop.core.model.encoder import EncoderExtractor

    first, _ = trained
    again = EncoderExtractor(tiny_config())
    again.train(train_docs, SCHEMA)
    state_a, state_b = first.model.state_dict(), again.model.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert again.predict(train_docs) == first.predict(train_docs)
    assert again.summary == replace(first.summary, seconds=again.summary.seconds)


@pytest.mark.slow
def test_should_stop_cancels_between_steps(train_docs):
    from noteloop.core.model.encoder import EncoderExtractor

    extractor = EncoderExtractor(tiny_config(epochs=2))
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 1  # let one step run, then cancel

    events = []
    with pytest.raises(TrainingCancelled, match="cancelled at epoch 1, step 1"):
        extractor.train(train_docs, SCHEMA, on_metric=events.append, should_stop=stop)
    assert [e.step for e in events if e.name == "loss"] == [1]
    assert extractor.model is None  # nothing half-trained is kept



# --------------------------------------------------------------------------- nested spans

NESTED = LabelSchema((EntityType("Body"), EntityType("Problem"), EntityType("Drug"),
                      EntityType("History")), ())
PLACES = ["left knee", "right shoulder", "lower back", "left hip", "right wrist", "neck"]
FEELINGS = ["pain", "swelling", "stiffness", "tenderness"]
PAST = ["asthma", "gout", "migraine", "psoriasis", "epilepsy", "anemia"]


def nested_note(doc_id: str, rng: random.Random, sentences: int = 4) -> Document:
    """Problems that hold a body part ("left knee pain" around "left knee"), and a past
    problem that is both a Problem and History on the same words: spans a flat tagger
    cannot all express."""
    w = _Writer()
    for _ in range(sentences):
        w.add("She reports ")
        start = len(w.text)
        w.add(rng.choice(PLACES), "Body")
        w.add(" " + rng.choice(FEELINGS))
        w.spans.append(Span(f"T{len(w.spans) + 1}", "Problem", start, len(w.text)))
        w.add(" treated with ")
        w.add(rng.choice(DRUGS), "Drug")
        w.add(". " + rng.choice(FILLERS) + " ")
    w.add("She has a history of ")
    w.add(rng.choice(PAST), "Problem")
    past = w.spans[-1]
    w.spans.append(Span(f"T{len(w.spans) + 1}", "History", past.start, past.end))
    w.add(". ")
    return Document(doc_id, w.text, tuple(w.spans), ())


def test_a_flat_tagger_cannot_hold_both_nested_readings():
    doc = nested_note("n", random.Random(1), sentences=2)
    enc = _encoded(doc, len(doc.text), 64, [])  # one token per character
    # one Body per sentence lost, and one type of the past problem
    assert attach_tags(enc, LabelMaps.from_schema(NESTED)) == 3


@pytest.mark.slow
def test_nested_spans_are_learnt_and_suggested_by_enumeration(tmp_path):
    from noteloop.core.model.encoder import EncoderExtractor

    rng = random.Random(1)
    docs = [nested_note(f"n{i}", rng) for i in range(8)]
    extractor = EncoderExtractor(tiny_config(span_head="enumerate"))
    assert extractor.train(docs, NESTED).unexpressed_spans == 0
    # BIO would drop 5 spans of every 13
    assert extractor._training_docs(docs, LabelMaps.from_schema(NESTED))[1] == 40
    preds = extractor.predict(docs)
    found = {(d.id, s.item.label, s.item.start, s.item.end)
             for p, d in zip(preds, docs, strict=True) for s in p.spans}
    for label in ("Body", "Problem", "History"):  # all readings of the same words
        gold = [(d.id, s.label, s.start, s.end) for d in docs for s in d.spans if s.label == label]
        assert sum(g in found for g in gold) >= 0.8 * len(gold)
    assert extractor.span_width >= 4
    extractor.save(tmp_path / "m")
    loaded = EncoderExtractor.load(tmp_path / "m")
    assert loaded.span_width == extractor.span_width
    assert loaded.predict(docs) == preds


# --------------------------------------------------------------------------- held-out gold


@pytest.mark.slow
def test_held_out_notes_choose_the_epoch_and_the_relation_thresholds(train_docs, tmp_path):
    from noteloop.core.model.encoder import EncoderExtractor
    from noteloop.core.model.holdout import held_out_score, split_holdout

    config = tiny_config(epochs=6, holdout_share=0.25, holdout_min_docs=8, patience=2)
    extractor = EncoderExtractor(config)
    events = []
    summary = extractor.train(train_docs, SCHEMA, on_metric=events.append)
    _, held = split_holdout(train_docs, 0.25, 8)
    assert summary.held_out == len(held) == 2 and summary.n_docs == 6
    assert 1 <= summary.epochs <= 6
    ran = max(e.epoch for e in events if e.name == "epoch_loss")
    assert ran == 6 or ran - summary.epochs == 2  # all epochs, or stopped by patience
    assert set(extractor.relation_thresholds) == {"treats", "dose_of", "similar"}
    chosen = dict(extractor.relation_thresholds)
    extractor.save(tmp_path / "m")
    assert EncoderExtractor.load(tmp_path / "m").relation_thresholds == chosen

    extractor.relation_thresholds = {}  # as judged while training: the best epoch's weights
    docs = [p.as_document(d.text) for p, d in zip(extractor.predict(held), held, strict=True)]
    again = held_out_score(evaluate(held, docs, n_bootstrap=0), has_relations=True)
    assert again == pytest.approx(summary.held_out_score)


# --------------------------------------------------------------------------- predicted spans


def test_pairs_with_a_predicted_span_are_taught_no_relation(train_docs):
    from noteloop.core.model.encoder import EncoderExtractor

    extractor = EncoderExtractor(tiny_config())
    maps = LabelMaps.from_schema(SCHEMA)
    enc = extractor._encode(train_docs[:1])[0]
    extractor._label_pairs(enc, maps, [])
    gold = _targets_by_ids(enc)
    drug = next(s for s in enc.doc.spans if s.label == "Drug")
    wider = Span("~predicted0", "Drug", drug.start, drug.end + 4)  # "aspirin 100" and the like
    extractor._label_pairs(enc, maps, [wider])
    assert enc.spans[-1] == wider
    with_extra = _targets_by_ids(enc)
    assert {k: v for k, v in with_extra.items() if wider.id not in k} == gold
    assert any(wider.id in k for k in with_extra)
    assert all(v == 0 for k, v in with_extra.items() if wider.id in k)
    assert sum(v > 0 for v in gold.values()) == len(enc.doc.relations)


def _targets_by_ids(enc) -> dict[tuple[str, str], int]:
    ids = [s.id for s in enc.spans]
    return {(ids[h], ids[t]): int(y) for h, t, y in
            zip(enc.pairs.head.tolist(), enc.pairs.tail.tolist(), enc.pairs.target, strict=True)}


@pytest.mark.slow
def test_the_training_notes_predicted_spans_join_the_relation_pairs(trained, train_docs):
    extractor, _ = trained
    encoded, _ = extractor._training_docs(train_docs, extractor.maps)
    before = [len(e.spans) for e in encoded]
    extractor._add_predicted_pairs(extractor.model, extractor.maps, encoded)
    assert extractor.model is not None and not extractor.model.training  # left as it was
    for enc, n_gold in zip(encoded, before, strict=True):
        assert enc.spans[:n_gold] == list(enc.doc.spans)
        gold = {(s.label, s.start, s.end) for s in enc.doc.spans}
        assert all((s.label, s.start, s.end) not in gold for s in enc.spans[n_gold:])
        positives = int((enc.pairs.target > 0).sum())
        assert positives == len(enc.doc.relations)


def test_the_refresh_predicts_with_the_training_model_unmerged(trained, train_docs):
    import torch

    extractor, _ = trained
    model, maps = extractor.model, extractor.maps
    merged = token_log_probs(extractor, train_docs[:2])  # the merged copy prediction builds
    kept = extractor._merged
    assert kept is not None and kept is not model.encoder
    with extractor._serving(model, maps):
        assert extractor._merged is model.encoder  # no copy of the encoder while training
        unmerged = token_log_probs(extractor, train_docs[:2])
    assert extractor._merged is kept  # prediction gets its merged copy back
    for a, b in zip(merged, unmerged, strict=True):
        assert torch.allclose(a.exp(), b.exp(), atol=0.05)  # the same model, summed apart


def test_the_merged_copy_shares_every_weight_merging_leaves_alone(trained):
    """Only the adapted layers' base weights are copied for the merged encoder: the word
    embeddings (47 MB for MiniLM) and the rest stay the trainable model's own, which
    merging leaves as they were."""
    import torch
    from peft.tuners.lora import LoraLayer

    extractor, _ = trained
    original = extractor.model.encoder
    adapted = [m.get_base_layer().weight for m in original.modules() if isinstance(m, LoraLayer)]
    before = [w.detach().clone() for w in adapted]
    extractor._merged = None
    merged = extractor._inference_encoder()
    ours = {p.data_ptr() for p in original.parameters()}
    theirs = {p.data_ptr() for p in merged.parameters()}
    assert adapted and not {w.data_ptr() for w in adapted} & theirs  # merged into copies
    assert merged.get_input_embeddings().weight.data_ptr() in ours
    assert len(theirs - ours) == len(adapted)  # nothing else was copied
    assert all(torch.equal(w, b) for w, b in zip(adapted, before, strict=True))

# --------------------------------------------------------------------------- warm start


@pytest.mark.slow
def test_a_round_continues_from_a_saved_model(trained, train_docs, tmp_path):
    import torch

    from noteloop.core.model.encoder import EncoderExtractor

    extractor, _ = trained
    extractor.save(tmp_path / "m")
    assert EncoderExtractor.load(tmp_path / "m").trained_on == [d.id for d in train_docs]
    # learning rates near zero: the continued round predicts what it started from
    still = EncoderExtractor(tiny_config(lr_adapter=1e-12, lr_heads=1e-12, warm_epochs=1))
    summary = still.train(train_docs, SCHEMA, start=tmp_path / "m")
    assert summary.warm_from == str(tmp_path / "m") and summary.epochs == 1
    more = [*train_docs, *_more_notes(4)]
    assert still.train(more, SCHEMA, start=tmp_path / "m").warm_from  # 12 notes: continued
    still.save(tmp_path / "still")  # the chain's last round from the base model had 8 notes
    assert EncoderExtractor.load(tmp_path / "still").base_round_docs == 8
    for a, b in zip(token_log_probs(extractor, train_docs), token_log_probs(still, train_docs),
                    strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # ...where the same round from the base model starts from untrained heads
    fresh = EncoderExtractor(tiny_config(lr_adapter=1e-12, lr_heads=1e-12, epochs=1))
    assert fresh.train(train_docs, SCHEMA).warm_from == "" and fresh.base_round_docs == 8
    assert not torch.allclose(token_log_probs(extractor, train_docs[:1])[0],
                              token_log_probs(fresh, train_docs[:1])[0], atol=1e-2)


def _more_notes(n: int) -> list[Document]:
    rng = random.Random(7)
    return [synthetic_note(f"more{i}", rng) for i in range(n)]


@pytest.mark.slow
def test_a_round_starts_from_the_base_model_where_continuing_would_mislead(
    trained, train_docs, tmp_path
):
    from noteloop.core.model.encoder import EncoderExtractor
    from noteloop.core.model.features import LabelMaps

    extractor, _ = trained
    saved = tmp_path / "m"
    extractor.save(saved)
    maps = LabelMaps.from_schema(SCHEMA)

    def why(config=None, schema=SCHEMA, docs=train_docs, held=(), width=None):
        new = EncoderExtractor(config or tiny_config())
        new.span_width = extractor.span_width if width is None else width
        return new._cannot_continue(saved, LabelMaps.from_schema(schema), docs, held)

    assert why() == ""
    assert why(docs=[*train_docs, *_more_notes(7)]) == ""  # under twice its 8 notes: fine
    assert why(docs=[*train_docs, *_more_notes(8)]) == (
        "the gold grew from the 8 notes of the last round from the base model to 16")
    wider = replace(SCHEMA, entity_types=(*SCHEMA.entity_types, EntityType("Route")))
    assert why(schema=wider) == "the schema's labels changed"
    assert why(width=extractor.span_width + 1).startswith("the learnt span width changed")
    meta = json.loads((saved / "noteloop.json").read_text(encoding="utf-8"))
    meta["config"]["base_model"] = "/elsewhere"
    (saved / "noteloop.json").write_text(json.dumps(meta), encoding="utf-8")
    assert why() == "it was trained from another base model"
    extractor.save(saved)
    assert why(tiny_config(warm_epochs=0)) == "warm_epochs is 0"
    assert why(held=train_docs[:1]) == "this round holds out notes it may have trained on"
    assert why(held=_more_notes(1)) == ""  # a held-out note it never saw
    (saved / "heads.safetensors").write_bytes(b"not a tensor file")
    new = EncoderExtractor(tiny_config())
    new.span_width = extractor.span_width
    assert new._warm_state(saved, maps, train_docs, []) is None
    assert why(config=None) == ""  # the metadata still agrees: the weights are what fail
    other = tmp_path / "other"
    other.mkdir()
    assert "not a saved noteloop model" in new._cannot_continue(other, maps, train_docs, [])
