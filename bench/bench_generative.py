"""Benchmark of the generative backend: a LoRA round and prediction, and transfer tables.

Prints markdown tables. Examples::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_generative.py round \\
        --train-notes 50 --predict-notes 150 --threads 2
    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_generative.py round --device cuda \\
        --base-model /models/Llama-3.1-8B-Instruct --train-notes 50 --predict-notes 150
    .venv/bin/python bench/bench_generative.py table /tmp/xp/*.json
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/bench_generative.py constrained \\
        --target sample=sample_notes --train-notes 5 --test-notes 6 --max-words 80 \\
        --top-types 6 --definitions bench/type_definitions.json --threads 1

``round`` trains one LoRA round on the first ``--train-notes`` notes of MACCROBAT2020's
training split (both tasks) and predicts ``--predict-notes`` notes (their text only),
reporting the measured seconds, the tokens trained on and generated, and throughput.
``--max-words`` clips the notes (a reduced run on a slow machine: the table says so).
``table`` prints the leave-one-dataset-out results of ``noteloop transfer`` as the table
of bench/README.md. ``constrained`` trains one model (on ``--train-notes`` of the target,
or zero-shot from a multi-task start on ``--source`` corpora) and predicts the same test
notes twice, with constrained and with free greedy decoding: answers/s, the parse report's
problem counts and entity F1, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noteloop.core.fewshot import Corpus, clip_document, sample
from noteloop.usecases.corpora import load_corpus as load_all
from noteloop.usecases.corpora import reading_lines

if TYPE_CHECKING:
    from noteloop.core.model.generative import GenerativeExtractor

os.environ.setdefault("HF_HUB_OFFLINE", "1")
DATA = Path("/work/shared/data/maccrobat2020")


def load_corpus(spec: str) -> Corpus:
    """The corpus, with every file its reading left out printed (a bench takes what reads)."""
    corpus = load_all(spec)
    for line in reading_lines(corpus.name, corpus.refused, corpus.notes):
        print(line, file=sys.stderr)
    return corpus


def round_bench(args: argparse.Namespace) -> None:
    from noteloop.core.model.config import GenerativeConfig
    from noteloop.core.model.generative import GenerativeExtractor

    corpus = load_corpus(f"maccrobat={args.data}")
    train = sample(corpus.train, args.train_notes, 0)
    predict = sample(corpus.train, args.predict_notes, 1)
    if args.max_words:
        train = [clip_document(d, args.max_words) for d in train]
        predict = [clip_document(d, args.max_words) for d in predict]
    config = GenerativeConfig(
        base_model=args.base_model,
        threads=args.threads,
        device=args.device,
        epochs=args.epochs,
        max_new_tokens=args.max_new_tokens,
        dtype=args.dtype,
        cache_dir=os.environ.get("NOTELOOP_CACHE", ""),
    )
    began = time.perf_counter()
    extractor = GenerativeExtractor(config)
    load_seconds = time.perf_counter() - began
    summary = extractor.train(train, corpus.schema)
    began = time.perf_counter()
    preds = extractor.predict([d.without_annotations() for d in predict])
    predict_seconds = time.perf_counter() - began
    report = extractor.parse_report
    words = sum(len(d.text.split()) for d in predict)
    print(
        f"device {extractor.device}, precision {summary.precision}, threads {args.threads}, "
        f"model {extractor.folder.name}, "
        f"notes clipped to {args.max_words or 'no'} words\n"
    )
    print("| phase | notes | size | seconds | throughput |")
    print("|---|---|---|---|---|")
    print(f"| load | - | - | {load_seconds:.1f} | - |")
    print(
        f"| LoRA round ({summary.epochs} epochs, {summary.steps} steps) | {len(train)} | "
        f"{summary.n_tokens} tokens/epoch | {summary.seconds:.1f} | "
        f"{summary.n_tokens * summary.epochs / summary.seconds:.0f} tokens/s |"
    )
    print(
        f"| predict (CE + RE) | {len(predict)} | {report['answers']} answers, "
        f"{words} words | {predict_seconds:.1f} | {len(predict) / predict_seconds:.2f} notes/s |"
    )
    print(
        f"\nparse report: {dict(report)}; spans suggested: "
        f"{sum(len(p.spans) for p in preds)}, relations: {sum(len(p.relations) for p in preds)}"
    )


PROBLEMS = (
    "invented",
    "wrong_type",
    "broken_json",
    "repeated",
    "cut_off",
    "not_a_list",
    "unknown_entity",
    "relation_not_allowed",
    "other",
)


def constrained_bench(args: argparse.Namespace) -> None:
    """One trained model, the same test notes, constrained against free decoding."""
    from dataclasses import replace

    from noteloop.core.fewshot import prepare
    from noteloop.core.metrics import evaluate

    definitions = json.loads(args.definitions.read_text("utf-8")) if args.definitions else {}
    target = prepare(
        load_corpus(args.target),
        max_words=args.max_words,
        n_types=args.top_types,
        definitions=definitions,
    )
    test = sample(target.test, args.test_notes, 0)
    began = time.perf_counter()
    extractor = _bench_model(args, target, definitions)
    train_seconds = time.perf_counter() - began
    print(
        f"target {target.name}: {len(test)} test notes ({sum(len(d.spans) for d in test)} "
        f"gold spans), {args.train_notes} training notes, sources "
        f"{args.source or 'none'}, threads {args.threads}, max_new_tokens "
        f"{args.max_new_tokens}; model trained in {train_seconds:.0f} s\n"
    )
    print(
        "| decoding | answers | tokens | seconds | answers/s | tokens/s | mask ms/token | "
        + " | ".join(PROBLEMS)
        + " | items | entity strict F1 | lenient F1 | relation F1 |"
    )
    print("|---|" + "---|" * (len(PROBLEMS) + 10))
    for constrained in (True, False):
        extractor.config = replace(extractor.config, constrained=constrained)
        with _counting(extractor) as counts:
            began = time.perf_counter()
            preds = extractor.predict([d.without_annotations() for d in test])
            seconds = time.perf_counter() - began
        docs = [p.as_document(d.text) for p, d in zip(preds, test, strict=True)]
        ev = evaluate(test, docs, n_bootstrap=0)
        report = extractor.parse_report
        problems = " | ".join(str(report.get(k, 0)) for k in PROBLEMS)
        tokens = counts["tokens"]
        mask = f"{1000 * counts['mask_seconds'] / tokens:.2f}" if constrained and tokens else "-"
        print(
            f"| {'constrained' if constrained else 'free'} | {report['answers']} | {tokens} | "
            f"{seconds:.0f} | {report['answers'] / seconds:.2f} | {tokens / seconds:.1f} | "
            f"{mask} | {problems} | {report['items']} | {ev.entity_strict.f1:.3f} | "
            f"{ev.entity_lenient.f1:.3f} | {ev.relation.f1:.3f} |"
        )


@contextmanager
def _counting(extractor: GenerativeExtractor) -> Iterator[dict[str, float]]:
    """Counts the tokens generated and the seconds spent finding the allowed ones."""
    from noteloop.core.token_trie import TokenTrie

    counts = {"tokens": 0, "mask_seconds": 0.0}
    generate, allowed = extractor.generate, TokenTrie.allowed

    def counted_generate(*args: Any, **kwargs: Any) -> Any:
        out = generate(*args, **kwargs)
        counts["tokens"] += sum(len(g.trace.logprobs) for g in out)
        return out

    def timed_allowed(self: TokenTrie, *args: Any) -> list[int]:
        began = time.perf_counter()
        try:
            return allowed(self, *args)
        finally:
            counts["mask_seconds"] += time.perf_counter() - began

    extractor.generate = counted_generate  # type: ignore[method-assign]
    TokenTrie.allowed = timed_allowed  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        del extractor.generate
        TokenTrie.allowed = allowed  # type: ignore[method-assign]


def _bench_model(
    args: argparse.Namespace, target: Corpus, definitions: dict[str, str]
) -> GenerativeExtractor:
    """The model both decodings share: trained on the target's first training notes, or
    zero-shot on the target's schema from a multi-task start trained on ``--source``."""
    import tempfile
    from dataclasses import replace

    from noteloop.core.fewshot import prepare
    from noteloop.core.model.config import GenerativeConfig
    from noteloop.core.model.generative import GenerativeExtractor

    config = GenerativeConfig(
        threads=args.threads,
        device=args.device,
        epochs=args.epochs,
        max_new_tokens=args.max_new_tokens,
        cache_dir=os.environ.get("NOTELOOP_CACHE", ""),
    )
    if args.source:
        sources = [
            prepare(
                load_corpus(spec),
                max_words=args.max_words,
                n_types=args.top_types,
                definitions=definitions,
            )
            for spec in args.source.split(",")
        ]
        start = GenerativeExtractor(config)
        start.train_multitask([(sample(c.train, args.source_notes, 0), c.schema) for c in sources])
        folder = Path(tempfile.mkdtemp(prefix="nl-constrained-")) / "start"
        start.save(folder)
        config = replace(config, init_adapter=str(folder))
    extractor = GenerativeExtractor(config)
    # sample() takes every note when asked for 0: zero-shot must train on none
    shots = sample(target.train, args.train_notes, 0) if args.train_notes else []
    extractor.train(shots, target.schema)
    return extractor


TASKS = {
    "strict": "entity strict",
    "lenient": "entity lenient",
    "relation": "relation",
    "relation_gold_entities": "relation on gold entities",
}


def _f1(point: dict, task: str) -> float | None:
    if task in ("strict", "lenient"):
        return point["entity"][task]["f1"]
    scores = point.get(task)  # relation_gold_entities: absent from older results, or None
    return None if scores is None else scores["f1"]


def table(paths: list[Path]) -> None:
    """One table per results file: a row per (start, metric), a column per shot count."""
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        shots = data["shots"]
        print(
            f"\ntarget {data['target']} (sources: {', '.join(data['sources'])}; "
            f"{data['n_test']} test notes; backend {data['backend']})\n"
        )
        print("| start | F1 | " + " | ".join(f"{k} shots" for k in shots) + " |")
        print("|---|---|" + "---|" * len(shots))
        for start in ("multitask", "base"):
            points = {p["shots"]: p for p in data["points"] if p["start"] == start}
            if not points:
                continue
            for task, name in TASKS.items():
                values = [_f1(points[k], task) if k in points else None for k in shots]
                if all(v is None for v in values):
                    continue
                cells = ["-" if v is None else f"{v:.3f}" for v in values]
                print(f"| {start} | {name} | " + " | ".join(cells) + " |")
        seconds = [
            f"{p['start']} {p['shots']}: {p['train_seconds']:.0f}+{p['predict_seconds']:.0f}"
            for p in data["points"]
        ]
        extra = data["multitask"]
        print(
            f"\nseconds (train+predict): {'; '.join(seconds)}"
            + (
                f"; multi-task training {extra['train_seconds']:.0f} s on {extra['n_docs']} notes"
                if extra
                else ""
            )
        )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rnd = sub.add_parser("round", help="time a LoRA round and prediction")
    rnd.add_argument("--data", type=Path, default=DATA)
    rnd.add_argument("--train-notes", type=int, default=50)
    rnd.add_argument("--predict-notes", type=int, default=150)
    rnd.add_argument("--max-words", type=int, default=0)
    rnd.add_argument("--epochs", type=int, default=1)
    rnd.add_argument("--max-new-tokens", type=int, default=256)
    rnd.add_argument("--threads", type=int, default=2)
    rnd.add_argument("--device", default="auto")
    rnd.add_argument("--base-model", default="")
    rnd.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16"],
        help="auto: bfloat16 on a GPU, bfloat16 autocast on a CPU with AMX",
    )
    con = sub.add_parser("constrained", help="constrained against free decoding")
    con.add_argument("--target", default="sample=sample_notes")
    con.add_argument("--source", default="", help="corpora of a multi-task start, comma-separated")
    con.add_argument("--source-notes", type=int, default=6)
    con.add_argument("--train-notes", type=int, default=5)
    con.add_argument("--test-notes", type=int, default=6)
    con.add_argument("--max-words", type=int, default=80)
    con.add_argument("--top-types", type=int, default=6)
    con.add_argument("--definitions", type=Path, default=None)
    con.add_argument("--epochs", type=int, default=3)
    con.add_argument("--max-new-tokens", type=int, default=128)
    con.add_argument("--threads", type=int, default=1)
    con.add_argument("--device", default="auto")
    tab = sub.add_parser("table", help="print transfer results as markdown")
    tab.add_argument("results", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "round":
        round_bench(args)
    elif args.command == "constrained":
        constrained_bench(args)
    else:
        table(args.results)


if __name__ == "__main__":
    main(sys.argv[1:])
