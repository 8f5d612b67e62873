"""Benchmark of the loop: from a note's submission to fresh suggestions on the rest of the pool.

A MACCROBAT2020 project (150 pool notes, the 50 test notes with gold) in a temp SQLite
file; ``K - 1`` pool notes already carry gold and the project trains every ``K`` notes.
The clock starts when the K-th note is submitted (``gold.save_annotation`` committed, as
the Annotate page does) and stops when the worker has trained on the K notes, scored the
test notes, published and registered the version, stored suggestions for the other
``150 - K`` pool notes and re-ranked them. The worker is the real one (``Worker.run``
with ``max_jobs=1``), in this process, with its thread budget; the phases are timed by
wrapping the functions it calls. A running worker polls every 2 s, so a submission waits
1 s on average before the worker sees it: add that to the totals. Example::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_loop.py --gold 10,25,50 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from noteloop import worker as worker_module
from noteloop.core.formats.brat import read_brat
from noteloop.core.schema import Document, Split, schema_from_documents
from noteloop.db import documents, gold, jobs, projects
from noteloop.db.engine import init_db, session_factory
from noteloop.usecases import modeling

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = Path("/work/shared/data/maccrobat2020")
PROJECT = "maccrobat"


def load(data: Path) -> tuple[list[Document], list[Document]]:
    splits = json.loads((data / "splits.json").read_text(encoding="utf-8"))
    read = [read_brat(data / f"{i}.txt")[0].doc for i in splits["train"] + splits["test"]]
    return read[: len(splits["train"])], read[len(splits["train"]) :]


def save_gold(make_session, rows: dict[str, int], docs: list[Document], who: str) -> None:
    for doc in docs:
        with make_session.begin() as session:
            gold.save_annotation(session, rows[doc.id], who, doc.spans, doc.relations,
                                 doc.equivalences, expected_version=0, seconds_spent=600.0)


def project_db(folder: Path, pool: list[Document], test: list[Document], k: int):
    """The project with the test gold and ``k - 1`` pool notes of gold; returns the
    session factory, the document rows and the note whose submission starts the clock."""
    make_session = session_factory(init_db(f"sqlite:///{folder / 'bench.db'}"))
    with make_session.begin() as session:
        project = projects.create_project(session, PROJECT, schema_from_documents(pool + test),
                                      {"train_every": k})
        docs_pool = [d.without_annotations() for d in pool]
        documents.add_documents(session, project, docs_pool, Split.POOL)
        docs_test = [d.without_annotations() for d in test]
        documents.add_documents(session, project, docs_test, Split.TEST)
    with make_session() as session:
        rows = documents.document_ids(session, projects.get_project(session, PROJECT))
    save_gold(make_session, rows, test, "gold")
    save_gold(make_session, rows, pool[: k - 1], "annotator")
    return make_session, rows, pool[k - 1]


def timed(phases: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            phases[name] += time.perf_counter() - start
    return wrapper


def one_run(pool: list[Document], test: list[Document], k: int, threads: int) -> dict[str, float]:
    phases: dict[str, float] = defaultdict(float)
    # The worker predicts the pool in chunks (``Worker._predict_chunks_of``), not through
    # ``modeling.predict_project``: time the method it runs.
    originals = (modeling.evaluate_extractor, worker_module.Worker._predict_chunks_of,
                 worker_module.rank_queue)
    modeling.evaluate_extractor = timed(phases, "evaluate", originals[0])
    worker_module.Worker._predict_chunks_of = timed(  # type: ignore[method-assign]
        phases, "predict pool", originals[1])
    worker_module.rank_queue = timed(phases, "rank", originals[2])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            make_session, rows, last = project_db(folder, pool, test, k)
            config = worker_module.WorkerConfig(
                db_url=f"sqlite:///{folder / 'bench.db'}", models_dir=folder / "models",
                threads=threads, max_jobs=1)
            start = time.perf_counter()
            save_gold(make_session, rows, [last], "annotator")
            worker = worker_module.Worker(config)
            worker.run()
            phases["total"] = time.perf_counter() - start
            with make_session() as session:
                job = jobs.jobs_of(session, projects.get_project(session, PROJECT))[0]
                if job.status != "done":
                    raise RuntimeError(f"the job ended {job.status}: {job.error}")
    finally:
        (modeling.evaluate_extractor, worker_module.Worker._predict_chunks_of,
         worker_module.rank_queue) = originals
    phases["train + publish"] = (phases["total"] - phases["evaluate"] - phases["predict pool"]
                                 - phases["rank"])
    return dict(phases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--gold", type=lambda s: [int(x) for x in s.split(",")], default=[25],
                        help="gold pool notes when the clock starts (comma-separated)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    pool, test = load(args.data)
    order = ["train + publish", "evaluate", "predict pool", "rank", "total"]
    print(f"| gold notes | pool notes suggested | {' | '.join(order)} (s, median) | runs |")
    print("|---|---|" + "---|" * len(order) + "---|")
    for k in args.gold:
        runs = [one_run(pool, test, k, args.threads) for _ in range(args.repeats)]
        medians = [statistics.median(r[name] for r in runs) for name in order]
        totals = ", ".join(f"{r['total']:.0f}" for r in runs)
        print(f"| {k} | {len(pool) - k} | " + " | ".join(f"{m:.1f}" for m in medians)
              + f" | {totals} |", flush=True)


if __name__ == "__main__":
    main()
