"""Benchmark of the encoder backend on MACCROBAT2020: speed, memory, training time, F1.

Prints markdown tables. Timings are medians over ``--repeats`` runs (the machine is
shared: single runs are noise). Examples::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_encoder.py speed --repeats 5
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_encoder.py train --repeats 3
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_encoder.py quality --sizes 10,20,50,100,150 \
        --save-dir /tmp/noteloop-bench
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_encoder.py speed --model \
        /tmp/noteloop-bench/maccrobat-50
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_encoder.py rounds --sizes 10,20,30,40,50

``speed`` measures prediction of a model saved by ``quality --save-dir`` (``--model``),
or else of one it trains on 20 notes first, in a fresh process (peak memory = that
process's max RSS: imports, model and predicting). ``train`` times one
LoRA round on 50 training notes, 3 epochs. ``quality`` trains on the first N notes of the
fixed train split with the default config (epochs chosen by N) and scores the 50 test
notes: entity strict/lenient F1 end to end, relation F1 end to end and with gold entities,
each size in a fresh process (its peak memory: imports, training and scoring);
``--full-finetune`` trains every encoder weight instead, for the comparison with LoRA.
``rounds`` trains the sizes one after another as the worker does: the first from the base
model (or from ``--start``), each next one continuing from the model before
(``EncoderConfig.warm_epochs``).
``spans`` trains once under span enumeration on the first N notes (``--sizes N``), or
reads a saved model (``--model``), and scores each way of choosing spans and relations
from that one model (tagger, enumeration, hybrid, thresholds), with the share of the test
notes' overlapping gold spans each one finds.
``speed --inference int8`` first makes the check publishing makes (float and int8 strict
F1 on the test notes; the first int8 scheme that keeps it within 0.005) in a process of
its own, then times prediction with that scheme's int8 linear layers in a fresh one, as
the worker predicts with a published version; ``--inference float`` (the default here)
times float whatever the model's own check says. Both print the F1 of what they timed.
``relations`` decodes a saved model's relations two other ways (type pairs the training
gold has; spans under the threshold kept for a confident relation) and scores each.
``compare`` times one saved model (``--model``) with float32, bfloat16 (where the CPU
has it natively) and int8 weights, and a saved spaCy model (``--spacy-model``, from
``bench_peer_spacy.py --work-dir``) on the same notes, each in a fresh process, in turn
for ``--rounds`` rounds, and prints one table::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_encoder.py compare --model M \
        --spacy-model /tmp/noteloop-spacy/spacy-150 --rounds 3 --repeats 3

``thresholds`` scores a saved model's relations at each threshold on the training notes it
did not train on (where a default is chosen) and on the test notes (reported only).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from noteloop.core.metrics import evaluate, unrepresentable
from noteloop.core.schema import Document, LabelSchema, schema_from_documents
from noteloop.usecases.corpora import load_corpus as load_split_corpus
from noteloop.usecases.corpora import reading_lines

# Read by huggingface_hub when transformers is first imported (inside the commands).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path("/work/shared/data/maccrobat2020")
# The floor of DESIGN.md: a plain, briefly trained BIO tagger (MiniLM, LoRA r16, 256 tokens).
FLOOR = {
    10: (0.27, 0.56, None), 20: (0.27, 0.55, 0.42), 50: (0.35, 0.61, None),
    100: (0.40, 0.65, None), 150: (0.45, 0.68, 0.67),
}


def load_corpus(data: Path) -> tuple[list[Document], list[Document], LabelSchema]:
    """The fixed split's train and test notes, each in ``splits.json``'s order (the first
    N train notes are a size's training set). A file that does not read is left out and
    listed on stderr, as ``noteloop simulate`` does, rather than stopping the bench."""
    corpus = load_split_corpus(f"maccrobat={data}")
    for line in reading_lines(corpus.name, corpus.refused, corpus.notes):
        print(line, file=sys.stderr)
    splits = json.loads((data / "splits.json").read_text(encoding="utf-8"))
    by_id = {d.id: d for d in (*corpus.train, *corpus.test)}
    train = [by_id[i] for i in splits["train"] if i in by_id]
    test = [by_id[i] for i in splits["test"] if i in by_id]
    return train, test, schema_from_documents(train + test)


def extractor(threads: int, **overrides):
    from noteloop.core.model.config import EncoderConfig
    from noteloop.core.model.encoder import EncoderExtractor

    return EncoderExtractor(EncoderConfig(threads=threads, **overrides))


def scores(ext, test: list[Document], schema: LabelSchema) -> dict[str, float]:
    symmetric = {r.name for r in schema.relation_types if r.symmetric}
    preds = ext.predict(test)
    end = evaluate(test, [p.as_document(d.text) for p, d in zip(preds, test, strict=True)],
                   symmetric=symmetric, n_bootstrap=0)
    given = ext.predict(test, given_spans=True)
    gold = evaluate(test, [p.as_document(d.text) for p, d in zip(given, test, strict=True)],
                    symmetric=symmetric, n_bootstrap=0)
    return {"strict": end.entity_strict.f1, "lenient": end.entity_lenient.f1,
            "rel_end": end.relation.f1, "rel_gold": gold.relation.f1}


def config_overrides(pairs: list[str]) -> dict[str, object]:
    """``--set name=value`` options as EncoderConfig fields (values read as JSON where
    they parse: numbers, true/false; else as strings)."""
    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set {pair!r}: expected name=value")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def cmd_quality(args: argparse.Namespace) -> None:
    """One child process per size, so each row's peak memory is that run's alone."""
    train, _, _ = load_corpus(args.data)
    lost = unrepresentable(train)
    print(f"BIO cannot express {lost.affected} of {lost.total} gold training spans "
          f"({lost.fraction:.1%}: {lost.lost_overlap} overlaps, {lost.discontinuous} "
          "discontinuous)\n")
    mode = ("full fine-tuning" if args.full_finetune else "LoRA") + f", {args.precision}"
    if args.set or args.seed != 13:
        mode += f", seed {args.seed}" + "".join(f", {kv}" for kv in args.set)
    print("| train docs | mode | epochs | train s | peak MB | strict F1 (floor) "
          "| lenient F1 (floor) | relation F1 gold ents (floor) | relation F1 end to end |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        s = quality_run(args, n)
        fs, fl, fr = FLOOR.get(n, (None, None, None))
        print(f"| {n} | {mode} | {s['epochs']} | {s['seconds']:.0f} | {s['max_rss_mb']:.0f} "
              f"| {s['strict']:.3f} ({fs}) | {s['lenient']:.3f} ({fl}) "
              f"| {s['rel_gold']:.3f} ({fr}) | {s['rel_end']:.3f} |", flush=True)


def quality_run(args: argparse.Namespace, n: int, start: Path | None = None) -> dict:
    """One size trained and scored in a child process (its own peak memory)."""
    child = [sys.executable, __file__, "quality-child", "--sizes", str(n),
             "--threads", str(args.threads), "--data", str(args.data)]
    if args.full_finetune:
        child.append("--full-finetune")
    child += ["--precision", args.precision, "--seed", str(args.seed)]
    child += [x for kv in args.set for x in ("--set", kv)]
    if args.save_dir:
        child += ["--save-dir", str(args.save_dir)]
    if start is not None:
        child += ["--start", str(start)]
    out = subprocess.run(child, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cmd_rounds(args: argparse.Namespace) -> None:
    """Rounds as the worker trains them: the first size from the base model, each next
    one continuing from the model of the one before (``train(start=...)``)."""
    args.save_dir = args.save_dir or Path(tempfile.mkdtemp(prefix="noteloop-rounds-"))
    print("| train notes | continued from | epochs | train s | peak MB | strict F1 "
          "| lenient F1 | relation F1 end to end |")
    print("|---|---|---|---|---|---|---|---|")
    start: Path | None = args.start
    for n in args.sizes:
        s = quality_run(args, n, start)
        began = f"{start.name.split('-')[-1]} notes" if s["warm_from"] else "base model"
        print(f"| {n} | {began} | {s['epochs']} | {s['seconds']:.0f} | {s['max_rss_mb']:.0f} "
              f"| {s['strict']:.3f} | {s['lenient']:.3f} | {s['rel_end']:.3f} |", flush=True)
        start = args.save_dir / f"maccrobat-{n}"


def cmd_quality_child(args: argparse.Namespace) -> None:
    train, test, schema = load_corpus(args.data)
    n = args.sizes[0]
    ext = extractor(args.threads, full_finetune=args.full_finetune, precision=args.precision,
                    seed=args.seed, **config_overrides(args.set))
    summary = ext.train(train[:n], schema, start=args.start)
    if args.save_dir:
        suffix = "-full" if args.full_finetune else ""
        ext.save(args.save_dir / f"maccrobat-{n}{suffix}")
    result = scores(ext, test, schema)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({**result, "epochs": summary.epochs, "seconds": summary.seconds,
                      "max_rss_mb": rss, "warm_from": summary.warm_from}))


def cmd_train(args: argparse.Namespace) -> None:
    train, _, schema = load_corpus(args.data)
    times = []
    for _ in range(args.repeats):
        ext = extractor(args.threads, epochs=3, precision=args.precision)
        start = time.perf_counter()
        summary = ext.train(train[:50], schema)
        times.append(time.perf_counter() - start)
        print(f"run: {times[-1]:.1f} s, {summary.steps} steps, {summary.n_tokens} tokens",
              file=sys.stderr, flush=True)
    rate = 3 * summary.n_tokens / statistics.median(times)
    print("| what | median | runs |\n|---|---|---|")
    print(f"| LoRA round, 50 notes x 3 epochs (target < 90 s) | {statistics.median(times):.1f} s "
          f"| {', '.join(f'{t:.0f}' for t in times)} |")
    print(f"| training throughput | {rate:.0f} tokens/s | |")


def cmd_speed(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or trained_model(args, Path(tmp))
        check = int8_check(args, model) if args.inference != "float" else None
        result = predict_run(args, model, args.precision, args.inference, check)
    print("| what | median | runs |\n|---|---|---|")
    runs = ", ".join(f"{r:.0f}" for r in result["rates"])
    rate = statistics.median(result["rates"])
    print(f"| prediction, 50 test notes, end to end (target >= 4,000) "
          f"| {rate:.0f} tokens/s | {runs} |")
    print(f"| prediction, notes per second | {rate * 50 / result['tokens']:.1f} notes/s | |")
    print(f"| peak memory of the predicting process (target < 700 MB) "
          f"| {result['max_rss_mb']:.0f} MB | |")
    if check:
        print(f"| int8 check on the test notes (a process of its own) | {check} | |")
    f1 = result["scores"]
    print(f"| its F1: strict / lenient / relation end to end | {f1['strict']:.4f} / "
          f"{f1['lenient']:.4f} / {f1['rel_end']:.4f} | |")


def trained_model(args: argparse.Namespace, folder: Path) -> Path:
    """A model trained on the first 20 notes, where ``speed`` was given none."""
    train, _, schema = load_corpus(args.data)
    ext = extractor(args.threads)
    ext.train(train[:20], schema)
    ext.save(folder / "model")
    return folder / "model"


def int8_check(args: argparse.Namespace, model: Path) -> dict:
    """The check publishing makes (float and int8 strict F1 on the test notes), in a
    process of its own: the predicting process then starts as a worker does, from a
    version whose check is stored."""
    child = [sys.executable, __file__, "check-child", "--model", str(model),
             "--threads", str(args.threads), "--data", str(args.data),
             "--precision", args.precision]
    out = subprocess.run(child, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def predict_run(args: argparse.Namespace, model: Path, precision: str, inference: str,
                check: dict | None) -> dict:
    """Prediction timed in a fresh process (its peak memory is its own)."""
    child = [sys.executable, __file__, "predict-child", "--model", str(model),
             "--repeats", str(args.repeats), "--threads", str(args.threads),
             "--data", str(args.data), "--precision", precision, "--inference", inference]
    if check is not None:
        child += ["--int8-check", json.dumps(check)]
    out = subprocess.run(child, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cmd_check_child(args: argparse.Namespace) -> None:
    from noteloop.core.model.encoder import EncoderExtractor

    _, test, schema = load_corpus(args.data)
    ext = EncoderExtractor.load(args.model, threads=args.threads, precision=args.precision,
                                inference="float")
    print(json.dumps(ext.check_int8(test, scores(ext, test, schema)["strict"]).to_dict()))


def cmd_predict_child(args: argparse.Namespace) -> None:
    from noteloop.core.model.base import Int8Check
    from noteloop.core.model.encoder import EncoderExtractor

    _, test, schema = load_corpus(args.data)
    ext = EncoderExtractor.load(args.model, threads=args.threads, precision=args.precision,
                                inference=args.inference)
    if args.int8_check:  # as a published version carries it
        ext.int8_check = Int8Check.from_dict(json.loads(args.int8_check))
    n_tokens = sum(len(ids) for ids in ext.tokenizer(
        [d.text for d in test], add_special_tokens=False)["input_ids"])
    ext.predict(test[:2])  # warm-up: first calls allocate and pick kernels
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ext.predict(test)
        rates.append(n_tokens / (time.perf_counter() - start))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before scoring's copies
    print(json.dumps({"rates": rates, "max_rss_mb": rss, "tokens": n_tokens,
                      "scores": scores(ext, test, schema)}))


def cmd_compare(args: argparse.Namespace) -> None:
    """float32, bfloat16 (where the CPU has it natively), int8 and spaCy, each in fresh
    processes, in turn for ``--rounds`` rounds: one machine state for all rows."""
    from noteloop.core.model.device import cpu_has_native_bf16

    if args.model is None:
        raise SystemExit("compare: --model names the saved model to time")
    check = int8_check(args, args.model)
    ways = [("float32", "fp32", "float"), ("int8, " + check["scheme"], "fp32", "int8")]
    if cpu_has_native_bf16():
        ways.insert(1, ("bfloat16 autocast (native)", "bf16", "float"))
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in ways}
    peer = SpacyPeer(args) if args.spacy_model else None
    for _ in range(args.rounds):
        for name, precision, inference in ways:
            runs[name].append(predict_run(args, args.model, precision, inference, check))
            print(f"{name}: {statistics.median(runs[name][-1]['rates']):.0f} tokens/s",
                  file=sys.stderr, flush=True)
        if peer is not None:
            runs.setdefault("spaCy tok2vec + ner", []).append(peer.run())
    tokens = runs["float32"][0]["tokens"]
    print(f"int8 check: {check}\n")
    print("| weights | threads | notes/s (median of rounds) | wordpieces/s | rounds (notes/s) "
          "| peak MB | strict F1 | lenient F1 | relation F1 end to end |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, done in runs.items():
        rates = [statistics.median(r["rates"]) * 50 / tokens if "rates" in r
                 else r["notes_per_s"] for r in done]
        f1 = done[-1]["scores"]
        rel = f"{f1['rel_end']:.4f}" if "rel_end" in f1 else "(no relations)"
        print(f"| {name} | {1 if 'spaCy' in name else args.threads} "
              f"| {statistics.median(rates):.1f} | {statistics.median(rates) * tokens / 50:,.0f} "
              f"| {', '.join(f'{r:.1f}' for r in rates)} "
              f"| {max(r['max_rss_mb'] for r in done):.0f} | {f1['strict']:.4f} "
              f"| {f1['lenient']:.4f} | {rel} |")


class SpacyPeer:
    """The spaCy pipeline of ``bench_peer_spacy.py`` (``--spacy-model``: one it saved),
    predicting the same test notes in a fresh process on one thread."""

    def __init__(self, args: argparse.Namespace) -> None:
        from bench_peer_spacy import dump, ensure_spacy, test_note

        self.args = args
        self.python = ensure_spacy(None)
        self.test = load_corpus(args.data)[1]
        self.work = Path(tempfile.mkdtemp(prefix="noteloop-compare-"))
        dump(self.work / "test.json", [test_note(d) for d in self.test])

    def run(self) -> dict:
        from bench_peer_spacy import predicted_documents, run_child

        preds = self.work / "predictions.json"
        p = run_child(self.python, "predict", "--notes", str(self.work / "test.json"),
                      "--model", str(self.args.spacy_model), "--repeats", str(self.args.repeats),
                      "--predictions", str(preds), "--result", str(self.work / "result.json"))
        docs = predicted_documents(self.test, json.loads(preds.read_text(encoding="utf-8")))
        ev = evaluate(self.test, docs, n_bootstrap=0)
        return {"notes_per_s": p["notes"] / p["median_seconds"], "max_rss_mb": p["peak_rss_mb"],
                "scores": {"strict": ev.entity_strict.f1, "lenient": ev.entity_lenient.f1}}


# The decoders ``spans`` compares on one model trained under span enumeration.
DECODERS = (
    ("tagger (bio)", {"span_head": "bio"}),
    ("enumeration", {"span_head": "enumerate"}),
    ("enumeration, one type per range", {"span_head": "enumerate", "second_type_threshold": 0.5}),
    ("enumeration, second type at 0.25", {"span_head": "enumerate",
                                          "second_type_threshold": 0.25}),
    ("enumeration, threshold 0.3", {"span_head": "enumerate", "span_threshold": 0.3}),
    *((f"enumeration, relations at {t}", {"span_head": "enumerate", "relation_threshold": t})
      for t in (0.3, 0.5, 0.8, 0.9)),
    ("hybrid", {"span_head": "hybrid"}),
    ("hybrid, relations at 0.8", {"span_head": "hybrid", "relation_threshold": 0.8}),
)


def overlapping(doc: Document) -> set[tuple[str, int, int]]:
    """The note's gold spans that overlap another of its spans (nested or crossing)."""
    spans = doc.spans
    return {(a.label, a.start, a.end) for a in spans for b in spans
            if a is not b and a.start < b.end and b.start < a.end}


def overlap_recall(test: list[Document], predicted: list[Document]) -> float:
    found = total = 0
    for gold, pred in zip(test, predicted, strict=True):
        wanted = overlapping(gold)
        found += len(wanted & {(s.label, s.start, s.end) for s in pred.spans})
        total += len(wanted)
    return found / max(total, 1)


def cmd_spans(args: argparse.Namespace) -> None:
    """Trains once under span enumeration on the first N notes (or takes ``--model``), then
    scores every decoder of ``DECODERS`` on the test notes: the heads share the encoder, so
    the rows differ only in how spans and relations are chosen."""
    from noteloop.core.model.encoder import EncoderExtractor

    train, test, schema = load_corpus(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            _train_for_spans(args, train, schema, Path(tmp))
        saved = args.model or Path(tmp)
        print("| decoder | strict F1 | P | R | lenient F1 | relation F1 end to end "
              "| overlapping gold found |\n|---|---|---|---|---|---|---|")
        symmetric = {r.name for r in schema.relation_types if r.symmetric}
        for name, overrides in DECODERS:
            model = EncoderExtractor.load(saved, threads=args.threads, **overrides)
            docs = [p.as_document(d.text) for p, d in zip(model.predict(test), test, strict=True)]
            r = evaluate(test, docs, symmetric=symmetric, n_bootstrap=0)
            s = r.entity_strict
            print(f"| {name} | {s.f1:.3f} | {s.precision:.3f} | {s.recall:.3f} "
                  f"| {r.entity_lenient.f1:.3f} | {r.relation.f1:.3f} "
                  f"| {overlap_recall(test, docs):.3f} |", flush=True)


RELATION_GRID = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)


def cmd_thresholds(args: argparse.Namespace) -> None:
    """End-to-end relation F1 of ``--model`` at each threshold of ``RELATION_GRID``, on the
    training notes it did not train on (where a default may be chosen) and on the test
    notes (reported, never chosen on)."""
    import dataclasses

    from noteloop.core.model.encoder import EncoderExtractor

    train, test, schema = load_corpus(args.data)
    model = EncoderExtractor.load(args.model, threads=args.threads, relation_threshold=0.5)
    unseen = [d for d in train if d.id not in set(model.trained_on)]
    symmetric = {r.name for r in schema.relation_types if r.symmetric}
    results = {}
    for name, notes in (("unseen training notes", unseen), ("test notes", test)):
        predicted = model.predict(notes)
        for t in RELATION_GRID:  # from 0.5 on, the likeliest class is the only one above t
            docs = [dataclasses.replace(p, relations=tuple(
                r for r in p.relations if r.score >= t)).as_document(d.text)
                for p, d in zip(predicted, notes, strict=True)]
            results[name, t] = evaluate(notes, docs, symmetric=symmetric, n_bootstrap=0).relation
    print(f"{len(model.trained_on)} training notes; {len(unseen)} unseen training notes, "
          f"{len(test)} test notes\n\n| threshold | unseen: relation F1 | P | R "
          "| test: relation F1 | P | R |\n|---|---|---|---|---|---|---|")
    for t in RELATION_GRID:
        a, b = results["unseen training notes", t], results["test notes", t]
        print(f"| {t} | {a.f1:.3f} | {a.precision:.3f} | {a.recall:.3f} | {b.f1:.3f} "
              f"| {b.precision:.3f} | {b.recall:.3f} |")


def _gold_type_pairs(docs: list[Document]) -> dict[str, Counter]:
    """Per relation type, how often each (head type, tail type) appears in ``docs``' gold."""
    pairs: dict[str, Counter] = defaultdict(Counter)
    for doc in docs:
        by_id = {s.id: s for s in doc.spans}
        for r in doc.relations:
            pairs[r.label][by_id[r.head].label, by_id[r.tail].label] += 1
    return pairs


def cmd_relations(args: argparse.Namespace) -> None:
    """Two decodings of ``--model``'s relations, read on the test notes: (a) relations kept
    only where the training gold has their (head type, tail type) pair at least N times;
    (b) spans decoded from ``span_threshold`` 0.3 and those under 0.5 kept only where a
    relation of at least S needs them as an argument."""
    import dataclasses

    from noteloop.core.model.encoder import EncoderExtractor

    train, test, schema = load_corpus(args.data)
    symmetric = {r.name for r in schema.relation_types if r.symmetric}
    model = EncoderExtractor.load(args.model, threads=args.threads, relation_threshold=0.5)
    seen = _gold_type_pairs([d for d in train if d.id in set(model.trained_on)])

    def scored(preds, keep_span, keep_relation):
        docs = []
        for p, d in zip(preds, test, strict=True):
            by_id = {s.item.id: s for s in p.spans}
            spans = tuple(s for s in p.spans if keep_span(s, p))
            kept = {s.item.id for s in spans}
            rels = tuple(r for r in p.relations if r.item.head in kept and r.item.tail in kept
                         and keep_relation(r, by_id))
            docs.append(dataclasses.replace(p, spans=spans, relations=rels).as_document(d.text))
        e = evaluate(test, docs, symmetric=symmetric, n_bootstrap=0)
        return (f"{e.entity_strict.f1:.3f} | {e.entity_lenient.f1:.3f} | {e.relation.f1:.3f} "
                f"({e.relation.precision:.2f} / {e.relation.recall:.2f}) "
                f"| {overlap_recall(test, docs):.3f}")

    def pair_seen(r, by_id, t, n):
        head, tail = by_id[r.item.head].item.label, by_id[r.item.tail].item.label
        counts = seen[r.item.label]
        turned = counts[tail, head] if r.item.label in symmetric else 0
        return r.score >= t and max(counts[head, tail], turned) >= n

    print("| decoding | relation threshold | strict F1 | lenient F1 | relation F1 (P / R) "
          "| overlapping gold found |\n|---|---|---|---|---|---|")
    preds = model.predict(test)
    for n in (0, 1, 3):
        for t in (0.7, 0.8):
            row = scored(preds, lambda s, p: True,
                         lambda r, by_id, t=t, n=n: pair_seen(r, by_id, t, n))
            what = "as saved" if n == 0 else f"type pair seen {n}+ times in the training gold"
            print(f"| {what} | {t} | {row} |", flush=True)
    low = EncoderExtractor.load(args.model, threads=args.threads, relation_threshold=0.5,
                                span_threshold=0.3).predict(test)
    for support in (2.0, 0.9, 0.8):
        for t in (0.7, 0.8):
            def keep(s, p, support=support):
                needed = {x for r in p.relations if r.score >= support
                          for x in (r.item.head, r.item.tail)}
                return s.score >= 0.5 or s.item.id in needed
            row = scored(low, keep, lambda r, by_id, t=t: r.score >= t)
            what = ("spans from 0.3, kept from 0.5" if support > 1 else
                    f"spans from 0.3, kept from 0.5 or for a relation of {support}+")
            print(f"| {what} | {t} | {row} |", flush=True)


def _train_for_spans(args: argparse.Namespace, train: list[Document], schema: LabelSchema,
                     folder: Path) -> None:
    """Trains the ``spans`` model on the first ``--sizes`` notes and saves it in ``folder``."""
    n = args.sizes[0]
    ext = extractor(args.threads, **{"precision": args.precision,
                                     "holdout_share": args.holdout, "seed": args.seed,
                                     **config_overrides(args.set)})
    summary = ext.train(train[:n], schema)
    ext.save(folder)
    print(f"{n} notes ({summary.held_out} of them held out), best epoch {summary.epochs}, "
          f"{summary.seconds:.0f} s, candidates up to {ext.span_width} tokens, relation "
          f"thresholds {ext.relation_thresholds or 'none'}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["speed", "compare", "train", "quality", "quality-child",
                                         "predict-child", "check-child", "spans", "rounds",
                                         "thresholds", "relations"])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[10, 20, 50, 100, 150])
    parser.add_argument("--model", type=Path,
                        help="a saved model (speed, spans, predict-child, thresholds, relations)")
    parser.add_argument("--save-dir", type=Path, help="quality, rounds: save each model here")
    parser.add_argument("--start", type=Path,
                        help="quality-child, rounds: the saved model to continue")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                        help="quality, train, speed: EncoderConfig.precision")
    parser.add_argument("--holdout", type=float, default=0.0,
                        help="spans: EncoderConfig.holdout_share (held-out gold, from 40 notes)")
    parser.add_argument("--seed", type=int, default=13, help="quality, spans: EncoderConfig.seed")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="quality, spans: any other EncoderConfig field, e.g. epochs=8")
    parser.add_argument("--inference", choices=["auto", "float", "int8"], default="float",
                        help="speed: EncoderConfig.inference (int8 linear layers on CPU)")
    parser.add_argument("--int8-check", help="predict-child: the stored check, as JSON")
    parser.add_argument("--rounds", type=int, default=3, help="compare: rounds of all ways")
    parser.add_argument("--spacy-model", type=Path,
                        help="compare: a spaCy model saved by bench_peer_spacy.py --work-dir")
    parser.add_argument("--full-finetune", action="store_true",
                        help="quality: train every encoder weight instead of LoRA")
    args = parser.parse_args()
    commands = {"speed": cmd_speed, "compare": cmd_compare, "train": cmd_train,
                "quality": cmd_quality, "quality-child": cmd_quality_child,
                "predict-child": cmd_predict_child, "check-child": cmd_check_child,
                "spans": cmd_spans, "rounds": cmd_rounds, "thresholds": cmd_thresholds,
                "relations": cmd_relations}
    commands[args.what](args)


if __name__ == "__main__":
    main()
