"""The generative backend with the real packaged model (SmolLM2-135M-Instruct).

One module fixture trains once on three one-sentence notes, with short answers, so the
whole file stays within a couple of minutes on two CPU threads. The packaged model's
float copy is converted once into the cache the first time (about half a minute).
"""

from __future__ import annotations

import os
from itertools import pairwise

import pytest

from noteloop.core.model.base import Extractor
from noteloop.core.schema import Document, EntityType, LabelSchema, Relation, RelationType, Span

pytestmark = pytest.mark.slow

SCHEMA = LabelSchema(
    (
        EntityType("Drug", description="a medication"),
        EntityType("Problem", description="a disease or symptom"),
    ),
    (RelationType("treats", ("Drug",), ("Problem",), description="the drug is given for it"),),
)
SENTENCES = [("aspirin", "headache"), ("metformin", "diabetes"), ("warfarin", "stroke")]


def answer_loss(extractor, docs, schema) -> float:
    """Mean cross-entropy of the gold answers of ``docs`` under the extractor's model."""
    import torch

    from noteloop.core.model.generative import IGNORE

    model = extractor._require_model()
    encoded = [extractor._encode_example(e) for e in extractor.examples([(docs, schema)])]
    total, count = 0.0, 0
    size = extractor.config.batch_size
    with torch.inference_mode():
        for i in range(0, len(encoded), size):
            batch = extractor._training_batch(encoded[i : i + size])
            n = int((batch[2][:, 1:] != IGNORE).sum())
            total += float(extractor._loss(model, batch)) * n
            count += n
    return total / max(count, 1)


def note(i: int, drug: str, problem: str) -> Document:
    text = f"Started {drug} for {problem}."
    a, b = text.index(drug), text.index(problem)
    spans = (Span("T1", "Drug", a, a + len(drug)), Span("T2", "Problem", b, b + len(problem)))
    return Document(f"n{i}", text, spans, (Relation("R1", "treats", "T1", "T2"),))


DOCS = [note(i, d, p) for i, (d, p) in enumerate(SENTENCES)]


@pytest.fixture(scope="module")
def config():
    from noteloop.core.model.config import GenerativeConfig

    # The converted model is cached across runs (NOTELOOP_CACHE, else ~/.cache/noteloop).
    cache = os.environ.get("NOTELOOP_CACHE", "")
    return GenerativeConfig(
        cache_dir=cache,
        epochs=4,
        lr=3e-3,
        batch_size=3,
        max_new_tokens=40,
        threads=2,
        device="cpu",
        seed=3,
    )


@pytest.fixture(scope="module")
def untrained(config):
    from noteloop.core.model.generative import GenerativeExtractor

    extractor = GenerativeExtractor(config)
    extractor.train([], SCHEMA)  # no steps: the base model prompted as it is
    return extractor


@pytest.fixture(scope="module")
def trained(config):
    from noteloop.core.model.generative import GenerativeExtractor

    extractor = GenerativeExtractor(config)
    events = []
    extractor.train(DOCS, SCHEMA, on_metric=events.append)
    return extractor, events


def test_zero_steps_without_documents(untrained):
    assert untrained.summary.steps == 0 and isinstance(untrained, Extractor)


def test_training_lowers_the_loss_and_changes_the_generations(untrained, trained):
    extractor, events = trained
    epoch_losses = [e.value for e in events if e.name == "epoch_loss"]
    assert len(epoch_losses) == 4 and epoch_losses[-1] < epoch_losses[0]
    assert answer_loss(extractor, DOCS, SCHEMA) < answer_loss(untrained, DOCS, SCHEMA) * 0.7
    prompts = _prompts(extractor)
    before = [g.text for g in untrained.generate(prompts)]
    after = [g.text for g in extractor.generate(prompts)]
    assert before != after


def test_predictions_are_well_formed(trained):
    extractor, _ = trained
    preds = extractor.predict(DOCS)
    assert [p.doc_id for p in preds] == [d.id for d in DOCS]
    for pred, doc in zip(preds, DOCS, strict=True):
        pred.as_document(doc.text)  # offsets fit the text, relations point at spans
        assert all(0 <= s.score <= 1 for s in (*pred.spans, *pred.relations))
        assert 0 <= pred.uncertainty <= 1 and len(pred.embedding) == 576
    assert extractor.parse_report["answers"] >= len(DOCS)
    found = {
        (doc.text[s.item.start : s.item.end], s.item.label)
        for pred, doc in zip(preds, DOCS, strict=True)
        for s in pred.spans
    }
    assert found & {("aspirin", "Drug"), ("metformin", "Drug"), ("warfarin", "Drug")}


def test_given_the_gold_entities_it_asks_only_for_relations(trained):
    extractor, _ = trained
    preds = extractor.predict(list(DOCS), given_spans=True)
    # one relation prompt per note (each is one chunk holding two entities), no concept one
    assert extractor.parse_report["answers"] == len(DOCS)
    for pred, doc in zip(preds, DOCS, strict=True):
        assert [(s.item, s.score) for s in pred.spans] == [(s, 1.0) for s in doc.spans]
        pred.as_document(doc.text)  # every relation joins two of the given spans
    found = {(r.item.label, r.item.head, r.item.tail) for p in preds for r in p.relations}
    assert ("treats", "T1", "T2") in found  # learnt from the three training notes


def test_adapter_saves_and_reloads_to_identical_outputs(trained, tmp_path):
    from noteloop.core.model.generative import GenerativeExtractor

    extractor, _ = trained
    extractor.save(tmp_path / "m")
    assert (tmp_path / "m" / "adapter" / "adapter_model.safetensors").is_file()
    loaded = GenerativeExtractor.load(tmp_path / "m")
    assert loaded.config == extractor.config and loaded.schema == extractor.schema
    prompts = _prompts(extractor)
    first, again = extractor.generate(prompts), loaded.generate(prompts)
    assert [g.text for g in first] == [g.text for g in again]
    for a, b in zip(first, again, strict=True):
        assert a.trace.ends == b.trace.ends
        assert a.trace.logprobs == pytest.approx(b.trace.logprobs, abs=1e-5)
    assert loaded.predict(DOCS[:1]) == extractor.predict(DOCS[:1])


def test_multitask_adapter_is_a_starting_point(config, trained, tmp_path):
    from dataclasses import replace

    from noteloop.core.model.generative import GenerativeExtractor

    extractor, _ = trained
    extractor.save(tmp_path / "start")
    follower = GenerativeExtractor(replace(config, init_adapter=str(tmp_path / "start")))
    follower.train([], SCHEMA)  # zero-shot from the starting point: its outputs as they were
    prompts = _prompts(extractor)
    assert [g.text for g in follower.generate(prompts)] == [
        g.text for g in extractor.generate(prompts)
    ]


def test_long_note_is_read_in_chunks_with_offsets_into_the_whole_note(trained):
    extractor, _ = trained
    text = " ".join(f"Started aspirin for headache on day {i}." for i in range(40))
    chunks = extractor.chunks(Document("long", text))
    assert len(chunks) > 1 and chunks[-1].end == len(text)
    assert all(b.start >= a.end for a, b in pairwise(chunks))


def _prompts(extractor):
    from noteloop.core.model.prompts import concept_prompt

    return [concept_prompt(doc, extractor.chunks(doc)[0], SCHEMA) for doc in DOCS]


def test_constrained_answers_of_the_untrained_model_have_no_problem(untrained):
    import copy
    from dataclasses import replace

    notes = [
        Document("q", 'Pt given "aspirin" 100 mg for chest pain;\nheadache resolved.'),
        DOCS[0],
    ]
    free = copy.copy(untrained)  # the same model, decoding unconstrained
    free.config = replace(untrained.config, constrained=False)
    free.predict(notes)
    assert set(free.parse_report) - {"answers", "items"}  # free, its answers go wrong
    assert untrained.config.constrained
    preds = untrained.predict(notes)
    assert set(untrained.parse_report) <= {"answers", "items"}, untrained.parse_report
    assert untrained.parse_report["answers"] >= len(notes)
    for pred, doc in zip(preds, notes, strict=True):
        pred.as_document(doc.text)
    # relation answers on the gold entities: listed entities, allowed types, in order
    untrained.predict(DOCS[:2], given_spans=True)
    assert untrained.parse_report["answers"] == 2
    assert set(untrained.parse_report) <= {"answers", "items"}, untrained.parse_report
