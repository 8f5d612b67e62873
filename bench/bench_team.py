"""Benchmark of a team on one database: annotators and workers at once, then a check that
nothing was lost and no note went to two people.

Annotators are processes that call what the Annotate page calls (``noteloop.screen.annotate_flow``:
ask for the next note, open it, save two or three drafts a short think time apart, submit
with a decision on every suggestion shown). Workers are processes that run the real worker
loop (``noteloop.worker.run_worker``: recover stale jobs, queue due projects, claim, a
heartbeat thread, train, publish, register, predict the pool 32 notes per commit, rank the
queue) with a stand-in model that trains in no time and predicts at a set pace, so the
database sees what it sees from a real worker without a network being trained. Each
project trains again after ``--train-every`` new gold notes and serves every new version
(``model_rule`` newest), so the workers keep writing suggestions for the whole run. A
project runs one job at a time, so each worker gets a project of its own (``--projects``)
and the annotators are spread over them.

After the run every submit that succeeded must be in the database as submitted gold with
the spans sent, every last draft of a note not submitted must load as saved, and no note
may have been given to (or submitted by) two annotators: double annotation is off.
Example::

    .venv/bin/python bench/bench_team.py --backend postgresql \\
        --url postgresql://noteloop_test:noteloop_test@127.0.0.1:5432/postgres \\
        --annotators 50 --workers 3 --minutes 5
    .venv/bin/python bench/bench_team.py --backend sqlite --annotators 8 --workers 1 --minutes 5

``--url`` names a role that may create databases; the run makes its own database there
and drops it at the end. SQLite runs on a temp file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing as mp
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE_NOTES = REPO / "sample_notes"
PASSWORD = "bench-password-1"  # ten characters or more: the password policy
# The stand-in model takes the default backend's name in the bench's worker processes: a
# project may only name the backends the app knows.
BACKEND = "encoder"
TARGET_P95_MS = {"postgresql": 300.0, "sqlite": 500.0}
WORD = re.compile(r"[A-Za-z]{5,}")
# An annotator process runs what an app process runs for the Annotate page: none of these.
HEAVY = frozenset({"torch", "transformers", "peft", "small_text", "streamlit"})


# --------------------------------------------------------------------------- stand-in model


@dataclass(frozen=True)
class StandInConfig:
    """The stand-in model: how many suggestions per note and how long a note takes."""

    suggestions: int = 24
    seconds_per_note: float = 0.02
    threads: int = 0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class StandInExtractor:
    """Suggests every third long word (Drug -> Problem pairs linked by ``treats``).

    Trains in no time and predicts at ``seconds_per_note`` (sleeping, so the 2 cores stay
    with the database and the annotators, as a GPU worker's would).
    """

    def __init__(self, config: StandInConfig) -> None:
        self.config = config

    def train(self, docs: Sequence[Any], schema: Any, *, on_metric: Any = None,
              should_stop: Any = None, start: Any = None) -> Any:  # fmt: skip
        from noteloop.core.model.base import MetricEvent, TrainSummary

        if on_metric:
            on_metric(MetricEvent(1, 1, "loss", 0.5, 0.0))
            on_metric(MetricEvent(1, 1, "progress", 1.0, 0.0))
        words = sum(len(d.text.split()) for d in docs)
        return TrainSummary(1, 1, 0.0, 0.5, len(docs), words, "cpu")

    def predict(self, docs: Sequence[Any], *, batch_size: int = 32, on_progress: Any = None,
                given_spans: bool = False) -> list[Any]:  # fmt: skip
        out = []
        for i, doc in enumerate(docs, start=1):
            time.sleep(self.config.seconds_per_note)
            out.append(self._predict(doc))
            if on_progress:
                on_progress(i, len(docs))
        return out

    def _predict(self, doc: Any) -> Any:
        from noteloop.core.model.base import DocumentPrediction
        from noteloop.core.schema import Relation, Span, Suggestion

        words = list(WORD.finditer(doc.text))[::3][: self.config.suggestions]
        labels = ("Drug", "Problem", "Test", "Anatomy")
        spans = [
            Suggestion(Span(f"S{i + 1}", labels[i % 4], m.start(), m.end()), 0.5 + (i % 5) / 10)
            for i, m in enumerate(words)
        ]
        relations = [
            Suggestion(Relation(f"R{k // 4 + 1}", "treats", f"S{k + 1}", f"S{k + 2}"), 0.7)
            for k in range(0, len(spans) - 1, 4)
        ]
        embedding = (float(len(doc.text) % 97), float(len(spans)), 1.0)
        return DocumentPrediction(doc.id, tuple(spans), tuple(relations), 0.5, embedding)

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        meta = {"backend": BACKEND, "config": self.config.to_dict()}
        (path / "noteloop.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> StandInExtractor:
        meta = json.loads((path / "noteloop.json").read_text(encoding="utf-8"))
        return cls(StandInConfig(**meta["config"]))


def register_stand_in() -> None:
    from noteloop.usecases import modeling
    def create(config: Mapping[str, Any]) -> StandInExtractor:
        return StandInExtractor(StandInConfig(**dict(config)))

    modeling.register_backend(BACKEND, modeling.Backend(create, StandInExtractor.load))


# --------------------------------------------------------------------------- the database


@contextlib.contextmanager
def throwaway_database(backend: str, admin_url: str, tmp: Path) -> Iterator[str]:
    """A fresh database for the run (a temp SQLite file, or a PostgreSQL database made on
    the server of ``admin_url`` and dropped afterwards); yields its URL."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'team.db'}"
        return
    from sqlalchemy import create_engine, make_url, text

    url = make_url(admin_url)
    name = f"nlbench_{os.getpid()}"
    # CREATE/DROP DATABASE cannot run inside a transaction.
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def synthetic_notes(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` notes of 6-14 sentences drawn from the sample notes: (id, text)."""
    sentences = []
    for path in sorted((SAMPLE_NOTES / "notes").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        sentences += [s.strip() for s in re.split(r"(?<=\.)\s+|\n+", text) if len(s) > 30]
    rng = random.Random(seed)
    return [
        (f"team_{i:05d}", f"Note {i}.\n" + " ".join(rng.sample(sentences, rng.randint(6, 14))))
        for i in range(n)
    ]


# Where the database functions live: a module per concept since ``db`` was regrouped; the
# revisions before that (the baseline 917086e among them) kept some in ``noteloop.db.repo``,
# the last place looked, so that the bench still measures them.
DB_MODULES = ("noteloop.db.projects", "noteloop.db.documents", "noteloop.db.accounts",
              "noteloop.db.gold", "noteloop.db.model_versions", "noteloop.db.repo")  # fmt: skip


def db_function(name: str) -> Any:
    """The function ``name`` of the first module of :data:`DB_MODULES` that has it."""
    import importlib

    for module in DB_MODULES:
        with contextlib.suppress(ImportError):
            found = getattr(importlib.import_module(module), name, None)
            if found is not None:
                return found
    raise ImportError(f"no module of {', '.join(DB_MODULES)} has {name}")


def project_names(n: int) -> list[str]:
    return [f"team{i + 1}" for i in range(n)]


def add_annotator(session: Any, name: str, project: str) -> None:
    """Create an annotator of ``project`` the way the Users page does."""
    db_function("create_user")(session, name, "annotator", PASSWORD, [project], by="bench")


def set_up(url: str, args: argparse.Namespace, models_dir: Path) -> list[str]:
    """Projects with notes, annotators, a first served model and a predict job each;
    returns the annotators' project names, one per annotator."""
    from noteloop.core.schema import Document, LabelSchema
    from noteloop.db import jobs, serving
    from noteloop.db.engine import init_db, session_factory
    from noteloop.usecases import modeling

    create_project, get_project = db_function("create_project"), db_function("get_project")
    add_documents, register = db_function("add_documents"), db_function("register_model_version")

    schema = LabelSchema.from_dict(json.loads((SAMPLE_NOTES / "schema.json").read_text()))
    settings = {"double_annotation": 0.0, "backend": BACKEND, "model_rule": "newest",
                "train_every": args.train_every,
                "model_config": {"suggestions": args.suggestions,
                                 "seconds_per_note": args.predict_ms / 1000}}  # fmt: skip
    names = project_names(args.projects)
    notes = synthetic_notes(args.notes)
    engine = init_db(url)
    make_session = session_factory(engine)
    for k, name in enumerate(names):
        mine = notes[k :: len(names)]
        with make_session.begin() as session:
            project = create_project(session, name, schema, settings)
            add_documents(session, project, [Document(i, t) for i, t in mine])
        first = StandInExtractor(StandInConfig(**settings["model_config"]))  # type: ignore[arg-type]
        path = modeling.publish(first, models_dir / name, "v0")
        with make_session.begin() as session:
            project = get_project(session, name)
            register(session, project, name="v0", backend=BACKEND, path=str(path))
            serving.use_version(session, project, "v0", "bench", "the first model")
            jobs.enqueue(session, project, kind="predict", reason="the first model")
    assigned = [names[i % len(names)] for i in range(args.annotators)]
    with make_session.begin() as session:
        for i, project_name in enumerate(assigned):
            add_annotator(session, f"ann{i:02d}", project_name)
    engine.dispose()
    return assigned


# --------------------------------------------------------------------------- annotators


@dataclass
class AnnotatorLog:
    """What one annotator process saw; written as JSON for the main process."""

    name: str
    timings: dict[str, list[float]] = field(default_factory=dict)  # operation -> ms
    cpu: dict[str, list[float]] = field(default_factory=dict)  # the process's own CPU ms
    submits: list[dict[str, Any]] = field(default_factory=list)  # row, version, spans
    drafts: dict[str, Any] = field(default_factory=dict)  # row -> last draft not submitted
    claimed: list[int] = field(default_factory=list)
    conflicts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # one-line summaries with the place
    ran_out: int = 0
    heavy: list[str] = field(default_factory=list)  # modules an annotator should not load


def timed(log: AnnotatorLog, what: str, call: Any, *args: Any) -> Any:
    start, cpu = time.perf_counter(), time.process_time()
    result = call(*args)
    log.timings.setdefault(what, []).append((time.perf_counter() - start) * 1000)
    log.cpu.setdefault(what, []).append((time.process_time() - cpu) * 1000)
    return result


def widget_state(note: Any, rng: random.Random, *, final: bool) -> dict[str, Any]:
    """A state as the widget sends it: accept about 60% of the span suggestions, reject
    20% by name (the rest stay open: rejected at submit), draw one span by hand."""
    view, spans, decisions = note.view, [], {}
    taken: list[tuple[int, int]] = []
    for i, s in enumerate(view.span_suggestions):
        sid, roll = view.suggestion_id(s), rng.random()
        if roll < 0.6:
            spans.append(
                {
                    "id": f"T{i + 1}",
                    "label": s.item.label,
                    "start": s.item.start,
                    "end": s.item.end,
                    "source": "accepted",
                    "suggestion_id": sid,
                }
            )
            taken.append((s.item.start, s.item.end))
        elif roll < 0.8 and sid is not None:
            decisions[str(sid)] = "rejected"
    for m in WORD.finditer(view.text):  # a hand-drawn span on a free word
        if all(m.end() <= a or m.start() >= b for a, b in taken):
            spans.append(
                {
                    "id": "T0",
                    "label": "Problem",
                    "start": m.start(),
                    "end": m.end(),
                    "source": "manual",
                    "suggestion_id": None,
                }
            )
            break
    state = {
        "document_id": view.document_id,
        "version": view.version,
        "spans": spans,
        "relations": [],
        "decisions": decisions,
        "seconds": rng.uniform(20, 90),
    }
    if final:
        state |= {"submitted": True, "confirm": {"reject_open": True, "empty": not spans}}
    return state


def annotate(url: str, project: str, name: str, args: dict[str, Any], clock: Any,
             out: str) -> None:  # fmt: skip
    """One annotator until the deadline; writes its log to ``out``."""
    from noteloop.core.errors import ConflictError
    from noteloop.db.claims import ClaimLostError
    from noteloop.db.engine import make_engine, session_factory
    from noteloop.screen import annotate_flow

    engine = make_engine(url)
    make_session = session_factory(engine)
    log, rng = AnnotatorLog(name), random.Random(name)
    clock["ready"].put(name)
    clock["go"].wait()
    deadline = clock["deadline"].value
    try:
        while time.time() < deadline:
            try:
                _one_note(make_session, annotate_flow, project, log, rng, args, deadline)
            except (ClaimLostError, ConflictError) as refused:  # refusals the page shows
                log.conflicts[type(refused).__name__] += 1
            except Exception as exc:  # counted and summarised; the annotator goes on
                where = traceback.extract_tb(exc.__traceback__)[-1]
                log.errors.append(
                    f"{type(exc).__name__}: {str(exc)[:300]} "
                    f"({Path(where.filename).name}:{where.lineno} {where.name})"
                )
                time.sleep(0.5)
    finally:
        engine.dispose()
        log.heavy = sorted(HEAVY & set(sys.modules))
        Path(out).write_text(json.dumps(asdict(log)), encoding="utf-8")


def _one_note(make_session: Any, annotate_flow: Any, project: str, log: AnnotatorLog,
              rng: random.Random, args: dict[str, Any], deadline: float) -> None:  # fmt: skip
    """Ask for a note, save drafts a think time apart, submit; stops at the deadline."""
    row = timed(log, "claim_next", annotate_flow.claim_next, make_session, project, log.name)
    if row is None:
        log.ran_out += 1
        time.sleep(2)
        return
    log.claimed.append(row)
    note = timed(log, "open_note", annotate_flow.open_note, make_session, project, row, log.name)
    for _ in range(rng.randint(args["drafts_min"], args["drafts_max"])):
        time.sleep(rng.uniform(args["think_min"], args["think_max"]))
        if time.time() >= deadline:
            return
        state = widget_state(note, rng, final=False)
        saved = timed(log, "save_draft", annotate_flow.save_draft, make_session, note, log.name,
                      state)  # fmt: skip
        log.drafts[str(row)] = state
        if not saved.holds_claim:
            log.conflicts["draft saved after the claim lapsed"] += 1
    time.sleep(rng.uniform(args["think_min"], args["think_max"]))
    if time.time() >= deadline:
        return
    state = widget_state(note, rng, final=True)
    version = timed(log, "submit", annotate_flow.submit, make_session, note, log.name, state)
    log.drafts.pop(str(row), None)
    sent = sorted((s["label"], s["start"], s["end"]) for s in state["spans"])
    log.submits.append({"row": row, "version": version, "spans": sent})


# --------------------------------------------------------------------------- workers


class _Count(logging.Handler):
    """Keeps the worker's error log lines (a failed job, a failed heartbeat)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record)[:2000])


def work(url: str, models_dir: str, name: str, clock: Any, out: str) -> None:
    """One worker (the real loop with the stand-in model) until the deadline."""
    from noteloop.worker import WorkerConfig, run_worker

    register_stand_in()
    errors = _Count()
    logging.getLogger("noteloop").addHandler(errors)
    config = WorkerConfig(db_url=url, models_dir=Path(models_dir), poll_seconds=1.0,
                          heartbeat_seconds=3.0, worker_id=name)  # fmt: skip
    started: list[Any] = []
    clock["ready"].put(name)
    clock["go"].wait()
    thread = threading.Thread(
        target=run_worker, args=(config,), kwargs={"on_start": started.append}, daemon=True
    )
    thread.start()
    time.sleep(max(0.0, clock["deadline"].value - time.time()))
    if started:
        started[0].stop.set()
    thread.join(timeout=10)  # a job that runs on is cut off with the process
    Path(out).write_text(json.dumps({"name": name, "errors": errors.lines}), encoding="utf-8")


# --------------------------------------------------------------------------- the run


def run(url: str, assigned: list[str], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Start the workers and annotators, release them together, collect their logs."""
    ctx = mp.get_context("spawn")
    manager = ctx.Manager()
    clock = {"ready": manager.Queue(), "go": manager.Event(), "deadline": manager.Value("d", 0)}
    pace = {"think_min": args.think[0], "think_max": args.think[1],
            "drafts_min": args.drafts[0], "drafts_max": args.drafts[1]}  # fmt: skip
    procs = [
        ctx.Process(target=work, args=(url, str(tmp / "models"), f"worker{i}", clock,
                                       str(tmp / f"worker{i}.json")))
        for i in range(args.workers)
    ] + [
        ctx.Process(target=annotate, args=(url, project, f"ann{i:02d}", pace, clock,
                                           str(tmp / f"ann{i:02d}.json")))
        for i, project in enumerate(assigned)
    ]  # fmt: skip
    for p in procs:
        p.start()
    for _ in procs:  # every process has imported and connected before the clock starts
        clock["ready"].get(timeout=600)
    load_before = os.getloadavg()[0]
    clock["deadline"].value = time.time() + args.minutes * 60
    clock["go"].set()
    for p in procs:
        p.join(timeout=args.minutes * 60 + 180)
    load_after = os.getloadavg()[0]
    manager.shutdown()
    logs = [json.loads(path.read_text()) for path in sorted(tmp.glob("ann*.json"))]
    workers = [json.loads(path.read_text()) for path in sorted(tmp.glob("worker*.json"))]
    exits = [p.exitcode for p in procs]
    return {"annotators": logs, "workers": workers, "load": (load_before, load_after),
            "exits": exits}  # fmt: skip


def check(url: str, logs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the database kept: lost submits and drafts, notes given to two people."""
    from sqlalchemy import func, select

    from noteloop.core.schema import AnnotationStatus
    from noteloop.db import drafts, models
    from noteloop.db.engine import make_engine, session_factory

    load_annotation = db_function("load_annotation")

    engine = make_engine(url)
    lost: list[str] = []
    with session_factory(engine)() as session:
        for log in logs:
            for sub in log["submits"]:
                lost += _lost_submit(session, load_annotation, log["name"], sub)
            for row, state in log["drafts"].items():
                kept = drafts.load_draft(session, int(row), log["name"])
                if kept is None or dict(kept.state) != state:
                    lost.append(f"{log['name']}'s last draft of note {row} "
                                f"{'is missing' if kept is None else 'differs'}")  # fmt: skip
        submitted_by_two = session.scalar(
            select(func.count()).select_from(
                select(models.Annotation.document_id)
                .where(models.Annotation.status == AnnotationStatus.SUBMITTED.value)
                .group_by(models.Annotation.document_id)
                .having(func.count(func.distinct(models.Annotation.annotator)) > 1)
                .subquery()
            )
        )
        world = _worker_counts(session, models)
    engine.dispose()
    holders: dict[int, set[str]] = {}
    for log in logs:
        for row in log["claimed"]:
            holders.setdefault(row, set()).add(log["name"])
    given_to_two = sum(1 for who in holders.values() if len(who) > 1)
    checked = {"submits": sum(len(log["submits"]) for log in logs),
               "drafts": sum(len(log["drafts"]) for log in logs)}  # fmt: skip
    return {"lost": lost, "checked": checked, "given_to_two": given_to_two,
            "submitted_by_two": submitted_by_two, **world}  # fmt: skip


def _lost_submit(session: Any, load: Any, name: str, sub: dict[str, Any]) -> list[str]:
    loaded = load(session, sub["row"], name)
    got = sorted((s.label, s.start, s.end) for s in loaded.document.spans)
    status = loaded.status.value if loaded.status else None
    if (
        status == "submitted"
        and loaded.version == sub["version"]
        and got == [tuple(s) for s in sub["spans"]]
    ):
        return []
    return [f"{name}'s submit of note {sub['row']} (version {sub['version']}, "
            f"{len(sub['spans'])} spans): stored {status} version {loaded.version}, "
            f"{len(got)} spans"]  # fmt: skip


def _worker_counts(session: Any, models: Any) -> dict[str, Any]:
    from sqlalchemy import func, select

    jobs = session.execute(
        select(models.TrainingJob.kind, models.TrainingJob.status, func.count())
        .group_by(models.TrainingJob.kind, models.TrainingJob.status)
    ).all()  # fmt: skip
    failed = session.scalars(
        select(models.TrainingJob.error).where(models.TrainingJob.status == "failed")
    ).all()
    return {
        "jobs": {f"{kind} {status}": n for kind, status, n in jobs},
        "failed_jobs": [e.splitlines()[0] if e else "" for e in failed],
        "versions": session.scalar(select(func.count()).select_from(models.ModelVersion)),
        "suggestions": session.scalar(select(func.count()).select_from(models.Suggestion)),
        "decisions": session.scalar(select(func.count()).select_from(models.SuggestionDecision)),
    }


# --------------------------------------------------------------------------- the tables


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: an observed value, no interpolation."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))]


def summarise(args: argparse.Namespace, result: dict[str, Any], checked: dict[str, Any]
              ) -> dict[str, Any]:  # fmt: skip
    logs = result["annotators"]
    timings: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    for log in logs:
        for what, values in log["timings"].items():
            timings.setdefault(what, []).extend(values)
        for what, values in log["cpu"].items():
            cpu.setdefault(what, []).extend(values)
    submits = timings.get("submit", [])
    conflicts: Counter[str] = Counter()
    for log in logs:
        conflicts.update(log["conflicts"])
    errors = [e for log in logs for e in log["errors"]]
    worker_errors = [e for w in result["workers"] for e in w["errors"]]
    return {
        "backend": args.backend, "annotators": args.annotators, "workers": args.workers,
        "projects": args.projects, "minutes": args.minutes, "notes": args.notes,
        "submits": len(submits), "conflicts": dict(conflicts), "errors": errors,
        "worker_errors": worker_errors, "lost": checked["lost"], "checked": checked["checked"],
        "given_to_two": checked["given_to_two"], "submitted_by_two": checked["submitted_by_two"],
        "ran_out": sum(log["ran_out"] for log in logs),
        "heavy": sorted({m for log in logs for m in log["heavy"]}),
        "timings": {k: _stats(v) for k, v in timings.items()},
        "cpu": {k: _stats(v) for k, v in cpu.items()},
        "jobs": checked["jobs"], "failed_jobs": checked["failed_jobs"],
        "versions": checked["versions"], "suggestions": checked["suggestions"],
        "decisions": checked["decisions"], "load": result["load"], "exits": result["exits"],
        "commit": _commit(), "cpus": os.cpu_count(),
    }  # fmt: skip


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "max": max(values)}  # fmt: skip


def _commit() -> str:
    """The commit of the ``noteloop`` package that ran (not necessarily this script's)."""
    import noteloop

    tree = Path(noteloop.__file__).resolve().parents[1]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, text=True,
                          capture_output=True, check=False).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "noteloop"], cwd=tree,
                           text=True, capture_output=True, check=False).stdout  # fmt: skip
    return (head or "unknown") + (" + uncommitted changes in noteloop/" if dirty else "")


def print_tables(s: dict[str, Any]) -> None:
    sub = s["timings"].get("submit", _stats([]))
    target = TARGET_P95_MS[s["backend"]]
    print(f"{s['backend']}: {s['annotators']} annotators, {s['workers']} worker(s), "
          f"{s['projects']} project(s), {s['notes']} notes, {s['minutes']:g} min; commit "
          f"{s['commit']}; {s['cpus']} CPUs, load average {s['load'][0]:.1f} before, "
          f"{s['load'][1]:.1f} after\n")  # fmt: skip
    print(
        "| database | annotators + workers | submits | per minute | conflicts | errors "
        "| lost saves | notes given to two | submit p50 ms | p95 ms | max ms | p95 target |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    two = f"{s['given_to_two']} ({s['submitted_by_two']} submitted by two)"
    print(f"| {s['backend']} | {s['annotators']} + {s['workers']} | {s['submits']} | "
          f"{s['submits'] / s['minutes']:.0f} | {sum(s['conflicts'].values())} | "
          f"{len(s['errors'])} | {len(s['lost'])} | {two} | {sub['p50']:.0f} | "
          f"{sub['p95']:.0f} | {sub['max']:.0f} | "
          f"< {target:.0f}: {'met' if sub['p95'] < target else 'missed'} |")  # fmt: skip
    print("\n| call | n | p50 ms | p95 ms | max ms | own CPU p50 ms | own CPU p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for what in ("claim_next", "open_note", "save_draft", "submit"):
        t, c = s["timings"].get(what, _stats([])), s["cpu"].get(what, _stats([]))
        print(
            f"| {what} | {t['n']} | {t['p50']:.0f} | {t['p95']:.0f} | {t['max']:.0f} | "
            f"{c['p50']:.0f} | {c['p95']:.0f} |"
        )
    jobs = ", ".join(f"{k}: {v}" for k, v in sorted(s["jobs"].items()))
    print(f"\nworkers: jobs {jobs}; {s['versions']} model versions; {s['suggestions']:,} "
          f"suggestions stored; {s['decisions']:,} suggestion decisions; "
          f"{len(s['worker_errors'])} error log lines")  # fmt: skip
    print(f"conflicts: {s['conflicts'] or 'none'}; asks with no note left: {s['ran_out']}; "
          f"checked in the database: {s['checked']['submits']} submits, "
          f"{s['checked']['drafts']} last drafts of notes not submitted")  # fmt: skip
    _print_problems(s)


def _print_problems(s: dict[str, Any]) -> None:
    for title, lines in (
        ("errors", s["errors"]),
        ("worker errors", s["worker_errors"]),
        ("failed jobs", s["failed_jobs"]),
        ("lost saves", s["lost"]),
    ):
        if lines:
            print(f"\n{title} ({len(lines)}, by kind):")
            for line, n in Counter(lines).most_common(8):
                print(f"  {n} x {line[:600]}")
    if s["heavy"]:
        print(f"\nannotator processes loaded {', '.join(s['heavy'])}")
    if any(code != 0 for code in s["exits"]):
        print(f"\nprocess exit codes: {Counter(s['exits'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--url",
        default=os.environ.get("NOTELOOP_TEST_POSTGRES", ""),
        help="PostgreSQL URL of a role that may create databases",
    )
    parser.add_argument("--annotators", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--projects", type=int, default=0, help="default: one per worker")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument(
        "--notes", type=int, default=0, help="pool notes in all (default: 150 per annotator)"
    )
    parser.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=(0.2, 1.0),
        metavar=("MIN", "MAX"),
        help="seconds between two saves, drawn uniformly",
    )
    parser.add_argument(
        "--drafts",
        type=int,
        nargs=2,
        default=(2, 3),
        metavar=("MIN", "MAX"),
        help="drafts saved per note before the submit",
    )
    parser.add_argument("--suggestions", type=int, default=24, help="span suggestions per note")
    parser.add_argument(
        "--predict-ms",
        type=float,
        default=20.0,
        help="the stand-in model's time per note (a GPU's pace)",
    )
    parser.add_argument(
        "--train-every",
        type=int,
        default=25,
        help="new gold notes per project between two training rounds",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.projects = args.projects or max(1, args.workers)
    args.notes = args.notes or 150 * args.annotators
    if args.backend == "postgresql" and not args.url:
        parser.error("--backend postgresql needs --url (or NOTELOOP_TEST_POSTGRES)")
    register_stand_in()
    tmp = Path(tempfile.mkdtemp(prefix="noteloop-team-"))
    try:
        with throwaway_database(args.backend, args.url, tmp) as url:
            assigned = set_up(url, args, tmp / "models")
            result = run(url, assigned, args, tmp)
            summary = summarise(args, result, check(url, result["annotators"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_tables(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
