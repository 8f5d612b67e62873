"""The spaCy side of ``bench_peer_spacy.py``: runs in spaCy's own virtual environment.

Imports spaCy and the standard library only (never noteloop, never torch), and talks to
the noteloop side through JSON files:

* ``train``: notes with their spans (character offsets; each span a list of fragments, in
  the order in which a flat tagging keeps them) -> ``Doc`` objects with ``doc.ents`` ->
  a ``DocBin`` next to the model -> a blank-English ``tok2vec`` + ``ner`` pipeline
  trained for a fixed number of epochs -> the model on disk and a result file.
* ``predict``: the saved model, the test notes -> predicted entities by character offsets,
  prediction timed over ``--repeats`` passes after a warm-up, and a result file.

Offsets become tokens with ``doc.char_span(..., alignment_mode="expand")``: a span that
cuts a spaCy token is widened to the whole token, because "contract" would drop the spans
that lie inside one token; whitespace tokens at a span's edges are then left out, since
spaCy's ner refuses them. A span whose edges moved either way is counted as *moved*.
A span whose tokens another, earlier span already holds is dropped (``token collision``).
The training loop is spaCy's own (``spacy.training.loop``) cut to what a fixed budget
needs: the ``spacy init config --lang en --pipeline ner --optimize efficiency`` config
(CPU), its batcher, optimizer and dropout, a seed, a fixed number of epochs, no dev set
and so no best-checkpoint choice (which would have to look at the test notes).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import time
from pathlib import Path

import spacy
from spacy.cli.init_config import init_config
from spacy.schemas import ConfigSchemaTraining
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import fix_random_seed, load_model_from_config, registry


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def blank_pipeline(seed: int) -> spacy.Language:
    """The CPU/efficiency config of ``spacy init config --pipeline ner``, seeded."""
    config = init_config(lang="en", pipeline=["ner"], optimize="efficiency", gpu=False)
    config["system"]["seed"] = seed
    return load_model_from_config(config, auto_fill=True, validate=True)


def on_tokens(doc: Doc, label: str, start: int, end: int) -> Span | None:
    """The fragment widened to whole tokens, less whitespace tokens at its edges.

    spaCy's ner cannot learn an entity that begins or ends with a whitespace token (E024);
    MACCROBAT has a few spans that begin with a hair space.
    """
    span = doc.char_span(start, end, label=label, alignment_mode="expand")
    if span is None:
        return None
    lo, hi = span.start, span.end
    while lo < hi and doc[lo].is_space:
        lo += 1
    while hi > lo and doc[hi - 1].is_space:
        hi -= 1
    return Span(doc, lo, hi, label=label) if lo < hi else None


def token_parts(doc: Doc, span: dict) -> list[Span] | None:
    """The span's fragments on token edges; None when one of them covers no token."""
    parts = [on_tokens(doc, span["label"], a, b) for a, b in span["fragments"]]
    return None if any(p is None for p in parts) else parts


def to_token_spans(doc: Doc, spans: list[dict], counts: dict[str, int]) -> list[Span]:
    """The fragments spaCy can tag, taken in the given order; what it cannot is counted."""
    taken = [False] * len(doc)
    kept: list[Span] = []
    for span in spans:
        parts = token_parts(doc, span)
        if parts is None:
            counts["no_token"] += 1
            continue
        if any(taken[i] for p in parts for i in range(p.start, p.end)):
            counts["token_collision"] += 1
            continue
        counts["moved"] += any((p.start_char, p.end_char) != (a, b)
                               for p, (a, b) in zip(parts, span["fragments"], strict=True))
        for p in parts:
            taken[p.start:p.end] = [True] * len(p)
        kept.extend(parts)
    return sorted(kept, key=lambda p: p.start)


def reference_docs(nlp: spacy.Language, notes: list[dict]) -> tuple[list[Doc], dict[str, int]]:
    counts = {"spans": 0, "no_token": 0, "token_collision": 0, "moved": 0}
    docs = []
    for note in notes:
        doc = nlp.make_doc(note["text"])
        doc.ents = to_token_spans(doc, note["spans"], counts)
        counts["spans"] += len(note["spans"])
        docs.append(doc)
    return docs, counts


def exact_hits(nlp: spacy.Language, notes: list[dict]) -> dict[str, int]:
    """How many gold spans of the notes spaCy's tokens can express exactly (a ceiling)."""
    total = exact = 0
    for note in notes:
        doc = nlp.make_doc(note["text"])
        for span in note["gold"]:
            total += 1
            exact += all(doc.char_span(a, b) is not None for a, b in span["fragments"])
    return {"gold_spans": total, "exact_token_spans": exact}


def batches(examples: list[Example], batcher, epochs: int):
    # spaCy's create_train_batches with max_epochs > 0: shuffle, then batch, per epoch.
    for _ in range(epochs):
        random.shuffle(examples)
        yield from batcher(examples)


def train(nlp: spacy.Language, docs: list[Doc], epochs: int) -> dict[str, float]:
    config = nlp.config.interpolate()
    fix_random_seed(config["training"]["seed"])
    settings = registry.resolve(config["training"], schema=ConfigSchemaTraining)
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    start, cpu_start = time.perf_counter(), time.process_time()
    optimizer = nlp.initialize(lambda: examples, sgd=settings["optimizer"])
    losses: dict[str, float] = {}
    for batch in batches(examples, settings["batcher"], epochs):
        nlp.update(batch, drop=settings["dropout"], sgd=optimizer, losses=losses)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
            "ner_loss": float(losses.get("ner", 0.0))}


def cmd_train(args: argparse.Namespace) -> None:
    notes = json.loads(args.notes.read_text(encoding="utf-8"))
    nlp = blank_pipeline(args.seed)
    docs, counts = reference_docs(nlp, notes)
    DocBin(docs=docs).to_disk(args.model.with_suffix(".spacy"))
    result = train(nlp, docs, args.epochs)
    nlp.to_disk(args.model)
    words = sum(len(doc) for doc in docs)
    write(args.result, {**result, "alignment": counts, "epochs": args.epochs,
                        "train_tokens": words, "spacy": spacy.__version__,
                        "peak_rss_mb": peak_rss_mb()})


def entities(doc: Doc) -> list[dict]:
    return [{"label": e.label_, "start": e.start_char, "end": e.end_char} for e in doc.ents]


def cmd_predict(args: argparse.Namespace) -> None:
    notes = json.loads(args.notes.read_text(encoding="utf-8"))
    nlp = spacy.load(args.model)
    texts = [note["text"] for note in notes]
    list(nlp.pipe(texts[:2]))  # warm-up: the first call allocates
    seconds, cpu_seconds = [], []
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        docs = list(nlp.pipe(texts))
        seconds.append(time.perf_counter() - start)
        # CPU time as well: on a shared machine the wall clock also counts the waits for a core.
        cpu_seconds.append(time.process_time() - cpu_start)
    predictions = [{"id": note["id"], "spans": entities(doc)}
                   for note, doc in zip(notes, docs, strict=True)]
    write(args.predictions, predictions)
    write(args.result, {"seconds": seconds, "median_seconds": statistics.median(seconds),
                        "median_cpu_seconds": statistics.median(cpu_seconds),
                        "tokens": sum(len(doc) for doc in docs), "notes": len(docs),
                        **exact_hits(nlp, notes), "peak_rss_mb": peak_rss_mb()})


def write(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["train", "predict"])
    parser.add_argument("--notes", type=Path, required=True, help="the exchange JSON to read")
    parser.add_argument("--model", type=Path, required=True, help="the model folder")
    parser.add_argument("--result", type=Path, required=True, help="where the result goes")
    parser.add_argument("--predictions", type=Path, help="predict: where predictions go")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    {"train": cmd_train, "predict": cmd_predict}[args.what](args)


if __name__ == "__main__":
    main()
