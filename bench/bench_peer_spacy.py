"""The spaCy peer on MACCROBAT2020: a blank-English tok2vec + ner pipeline, noteloop's scorer.

What a team would otherwise pick (spaCy is the engine behind Prodigy's ``ner.correct`` and
``train``), trained on the first N notes of the fixed train split and scored on the 50 test
notes by ``noteloop.core.metrics.evaluate``: the same split and scorer as
``bench_encoder.py quality``. Entities only: spaCy's ``ner`` predicts no relations.
Examples::

    nice -n 10 .venv/bin/python bench/bench_peer_spacy.py --sizes 10,20,50,100,150 \
        --work-dir /tmp/noteloop-spacy
    .venv/bin/python bench/bench_peer_spacy.py --work-dir /tmp/noteloop-spacy --reuse \
        --repeats 5   # prediction timed again on the saved models, e.g. when the CPU is quiet

spaCy never enters noteloop's environment: the first run creates ``bench/.venv-spacy``
(ignored by git) and installs the pinned spaCy into it with pip; ``--spacy-python`` names
another interpreter that has spaCy. This side reads the corpus, writes the notes as JSON,
reads the predictions back into ``Document`` objects and scores them; the spaCy side
(``peer_spacy_child.py``, one process to train and a fresh one to predict, per size) turns
offsets into tokens, trains, predicts and times itself on one thread.

What a flat tagger cannot hold is settled here by the rule the encoder's BIO tagger follows
(``resolve_overlaps``: the longest of overlapping spans is kept; a discontinuous span is
tagged as its fragments); what spaCy's tokens cannot hold is counted on the spaCy side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench_encoder import DATA, load_corpus

from noteloop.core.metrics import Evaluation, evaluate, resolve_overlaps, unrepresentable
from noteloop.core.schema import Document, Span

SPACY_VERSION = "3.8.18"  # what pip installed on 2026-12-05; the table was measured with it
HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-spacy"
CHILD = HERE / "peer_spacy_child.py"
# One thread for every math library spaCy's numpy and thinc might use.
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "MKL_NUM_THREADS", "BLIS_NUM_THREADS")}


# --------------------------------------------------------------------------- exchange


def _priority(span: Span) -> tuple[int, int, str, str]:
    # resolve_overlaps' order (most characters, earliest, label, id): the spaCy side takes
    # spans in this order, so a token collision drops the same span the BIO tagger drops.
    return (-sum(b - a for a, b in span.fragments), span.start, span.label, span.id)


def _fragments(span: Span) -> list[list[int]]:
    return [[a, b] for a, b in span.fragments]


def training_note(doc: Document) -> dict:
    """A gold note as the spaCy side reads it: the spans a flat tagging keeps, by priority."""
    kept, _ = resolve_overlaps(doc.spans)
    spans = [{"label": s.label, "fragments": _fragments(s)} for s in sorted(kept, key=_priority)]
    return {"id": doc.id, "text": doc.text, "spans": spans}


def test_note(doc: Document) -> dict:
    """A test note: its text, and the gold spans a flat tagger could match strictly.

    Those (kept by ``resolve_overlaps`` and contiguous) only let the spaCy side count how
    many its tokens can express exactly; training never sees them.
    """
    kept, _ = resolve_overlaps(doc.spans)
    gold = [{"label": s.label, "fragments": _fragments(s)} for s in kept if not s.discontinuous]
    return {"id": doc.id, "text": doc.text, "gold": gold}


def predicted_document(doc: Document, spans: Sequence[dict]) -> Document:
    """The spaCy side's entities of ``doc`` as a predicted ``Document`` (ids ``P1``...)."""
    return doc.with_annotations(
        Span(id=f"P{k}", label=s["label"], start=s["start"], end=s["end"])
        for k, s in enumerate(spans, 1)
    )


def predicted_documents(test: Sequence[Document], predictions: Sequence[dict]) -> list[Document]:
    by_id = {p["id"]: p["spans"] for p in predictions}
    missing = [doc.id for doc in test if doc.id not in by_id]
    if missing:
        raise ValueError(f"the spaCy side returned no prediction for {', '.join(missing)}")
    return [predicted_document(doc, by_id[doc.id]) for doc in test]


def dump(path: Path, payload: object) -> Path:
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- spaCy's venv


def installed_spacy(python: Path) -> str | None:
    if not python.exists():
        return None
    probe = [str(python), "-c", "import importlib.metadata as m; print(m.version('spacy'))"]
    out = subprocess.run(probe, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_spacy(python: Path | None) -> Path:
    """The interpreter of spaCy's own environment; creates ``bench/.venv-spacy`` if needed."""
    if python is not None:
        return python
    python = VENV / "bin" / "python"
    if installed_spacy(python) != SPACY_VERSION:
        print(f"installing spacy=={SPACY_VERSION} into {VENV}", file=sys.stderr, flush=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        f"spacy=={SPACY_VERSION}"], check=True)
    return python


def run_child(python: Path, what: str, *options: str) -> dict:
    result = Path(options[options.index("--result") + 1])
    env = {**os.environ, **ONE_THREAD}
    subprocess.run([str(python), str(CHILD), what, *options], check=True, env=env)
    return json.loads(result.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- one size


@dataclass(frozen=True)
class Row:
    n: int
    train: dict
    predict: dict
    scores: Evaluation


def train_size(args: argparse.Namespace, python: Path, work: Path, n: int,
               train: list[Document]) -> dict:
    """Trains the size's model, or with ``--reuse`` takes the one ``--work-dir`` holds."""
    result = work / f"train-{n}.result.json"
    if args.reuse and result.exists():
        return json.loads(result.read_text(encoding="utf-8"))
    notes = dump(work / f"train-{n}.json", [training_note(d) for d in train[:n]])
    return run_child(python, "train", "--notes", str(notes), "--model", str(work / f"spacy-{n}"),
                     "--epochs", str(args.epochs), "--seed", str(args.seed),
                     "--result", str(result))


def run_size(args: argparse.Namespace, python: Path, work: Path, n: int,
             train: list[Document], test: list[Document]) -> Row:
    model = work / f"spacy-{n}"
    trained = train_size(args, python, work, n, train)
    preds = work / f"predictions-{n}.json"
    predicted = run_child(python, "predict", "--notes", str(work / "test.json"),
                          "--model", str(model), "--repeats", str(args.repeats),
                          "--predictions", str(preds),
                          "--result", str(work / f"predict-{n}.result.json"))
    docs = predicted_documents(test, json.loads(preds.read_text(encoding="utf-8")))
    scores = evaluate(test, docs, n_bootstrap=args.bootstrap, seed=args.seed)
    return Row(n, trained, predicted, scores)


# --------------------------------------------------------------------------- tables


HEADER = ("| train notes | epochs | train s (CPU s) | train peak MB | entity strict F1 [95% CI] "
          "| entity lenient F1 [95% CI] | predict notes/s (per CPU s) | predict tokens/s "
          "| predict peak MB | train spans not taught: overlap / token collision / no token "
          "| moved to token edges |\n|---|---|---|---|---|---|---|---|---|---|---|")


def _f1(scores: Evaluation, task: str) -> str:
    prf = getattr(scores, task)
    low, high = scores.ci.get(task, (float("nan"), float("nan")))
    return f"{prf.f1:.3f} [{low:.3f}, {high:.3f}]"


def row_line(row: Row, lost_overlap: int) -> str:
    t, p = row.train, row.predict
    a = t["alignment"]
    rate = p["notes"] / p["median_seconds"]
    cpu_rate = p["notes"] / p["median_cpu_seconds"]
    tokens = p["tokens"] / p["median_seconds"]
    return (f"| {row.n} | {t['epochs']} | {t['seconds']:.0f} ({t['cpu_seconds']:.0f}) "
            f"| {t['peak_rss_mb']:.0f} "
            f"| {_f1(row.scores, 'entity_strict')} | {_f1(row.scores, 'entity_lenient')} "
            f"| {rate:.1f} ({cpu_rate:.1f}) | {tokens:,.0f} | {p['peak_rss_mb']:.0f} "
            f"| {lost_overlap} / {a['token_collision']} / {a['no_token']} "
            f"| {a['moved']} of {a['spans']} |")


def print_preamble(train: list[Document], test: list[Document], work: Path) -> None:
    lost = unrepresentable(train)
    print(f"A flat tagging cannot express {lost.affected} of {lost.total} gold training spans "
          f"({lost.fraction:.1%}: {lost.lost_overlap} overlaps, {lost.discontinuous} "
          "discontinuous, tagged as their fragments)")
    print(f"Test notes: {len(test)}, {sum(len(d.spans) for d in test)} gold spans; "
          f"files in {work}\n", flush=True)


def print_ceiling(row: Row, test: list[Document]) -> None:
    p = row.predict
    total = sum(len(d.spans) for d in test)
    print(f"\nOf the {total} test gold spans, {p['exact_token_spans']} are contiguous, kept by "
          f"the overlap rule and fall on spaCy token edges ({p['exact_token_spans'] / total:.1%}"
          "): the most a strict match can reach. Entities only: spaCy's ner has no relations. "
          f"Tokens are spaCy's ({p['tokens']:,} in the test notes); spaCy {row.train['spacy']},"
          " one thread.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[10, 20, 50, 100, 150])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0, help="spaCy's seed and the bootstrap's")
    parser.add_argument("--repeats", type=int, default=3, help="timed prediction passes")
    parser.add_argument("--bootstrap", type=int, default=1000, help="document resamples")
    parser.add_argument("--work-dir", type=Path,
                        help="keep the exchange files, DocBins and models here (else a temp dir)")
    parser.add_argument("--reuse", action="store_true",
                        help="take the models already in --work-dir: prediction and scores only")
    parser.add_argument("--spacy-python", type=Path,
                        help=f"an interpreter with spacy (default: {VENV}, created if missing)")
    args = parser.parse_args()
    python = ensure_spacy(args.spacy_python)
    train, test, _ = load_corpus(args.data)
    with tempfile.TemporaryDirectory(prefix="noteloop-spacy-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        dump(work / "test.json", [test_note(d) for d in test])
        print_preamble(train, test, work)
        print(HEADER, flush=True)
        for n in args.sizes:
            row = run_size(args, python, work, n, train, test)
            print(row_line(row, unrepresentable(train[:n]).lost_overlap), flush=True)
        print_ceiling(row, test)


if __name__ == "__main__":
    main()
