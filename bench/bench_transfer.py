"""Import and export of a large project: notes per second and peak memory, per format.

MACCROBAT2020's 200 notes are repeated to ``--notes`` (10,000 by default; each copy's
text gains a line ``(copy K)`` after the note, so no copy is a duplicate of another and
every offset stays valid) and written as one JSONL file. Each phase then runs as a user
runs it, ``noteloop import`` or ``noteloop export`` in a fresh process on a fresh SQLite
file, and is timed with its peak resident memory (the process's own ``ru_maxrss``)::

    .venv/bin/python bench/bench_transfer.py --work-dir /tmp/noteloop-transfer
    .venv/bin/python bench/bench_transfer.py --work-dir /tmp/noteloop-transfer --reuse \\
        --formats jsonl,hf-parquet   # exports again from the imported database

A format whose writer holds every note at once (a BioC collection, a spaCy DocBin) shows
it as memory that grows with the project; the database side streams in every export.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from noteloop.core.formats.jsonl import write_jsonl
from noteloop.core.formats.registry import WRITERS, read_corpus

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "maccrobat2020"
NOTELOOP = Path(sys.executable).parent / "noteloop"
PROJECT = "bench"


@dataclass(frozen=True)
class Phase:
    name: str
    notes: int
    seconds: float
    peak_mb: float
    summary: str

    @property
    def notes_per_s(self) -> float:
        return self.notes / self.seconds if self.seconds else 0.0


def corpus_file(work: Path, notes: int) -> Path:
    """MACCROBAT2020 repeated to ``notes`` notes, as one JSONL file."""
    docs = read_corpus(DATA, "brat").docs  # what reads; a broken file is left out
    copies = (
        replace(doc, id=f"{doc.id}-{i // len(docs)}", text=f"{doc.text}\n(copy {i // len(docs)})")
        for i, doc in ((i, docs[i % len(docs)]) for i in range(notes))
    )
    path = work / f"maccrobat-{notes}.jsonl"
    write_jsonl(copies, path)
    return path


def run_phase(name: str, notes: int, args: list[str], db: Path) -> Phase:
    """One CLI command in a fresh process: its wall time and its own peak memory."""
    env = {**os.environ, "NOTELOOP_DB": str(db), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen([str(NOTELOOP), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed:\n{out}\n{err}")
    # ru_maxrss is in kilobytes on Linux.
    return Phase(name, notes, seconds, usage.ru_maxrss / 1024, out.strip().splitlines()[0])


def import_phase(work: Path, corpus: Path, notes: int) -> Phase:
    db = work / "bench.db"
    db.unlink(missing_ok=True)
    run_phase("init", 0, ["init"], db)
    run_phase("project", 0, ["project", "create", PROJECT], db)
    size_mb = corpus.stat().st_size / 2**20
    return run_phase(
        "import jsonl", notes,
        ["import", str(corpus), "--project", PROJECT, "--format", "jsonl", "--extend-schema",
         "--max-mb", f"{size_mb + 1:.0f}"],
        db,
    )


def export_phase(work: Path, fmt: str, notes: int) -> Phase:
    out = work / f"export-{fmt}"
    shutil.rmtree(out, ignore_errors=True)
    return run_phase(f"export {fmt}", notes,
                     ["export", "--project", PROJECT, "--format", fmt, "--out", str(out)],
                     work / "bench.db")


def table(phases: list[Phase]) -> str:
    lines = ["| phase | notes | seconds | notes/s | peak MB |", "|---|---:|---:|---:|---:|"]
    lines += [
        f"| {p.name} | {p.notes:,} | {p.seconds:.1f} | {p.notes_per_s:.0f} | {p.peak_mb:.0f} |"
        for p in phases
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=10_000)
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--formats", default=",".join(WRITERS),
                        help="export formats, comma-separated (default: every one)")
    parser.add_argument("--reuse", action="store_true",
                        help="export from the database a previous run imported")
    parser.add_argument("--out", type=Path, help="results JSON")
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    phases = []
    if not args.reuse:
        corpus = corpus_file(args.work_dir, args.notes)
        phases.append(import_phase(args.work_dir, corpus, args.notes))
        print(phases[-1].summary, file=sys.stderr)
    for fmt in args.formats.split(","):
        phases.append(export_phase(args.work_dir, fmt, args.notes))
        print(f"{phases[-1].name}: {phases[-1].seconds:.1f} s", file=sys.stderr)
    print(table(phases))
    if args.out:
        args.out.write_text(json.dumps([p.__dict__ for p in phases], indent=2) + "\n")


if __name__ == "__main__":
    main()
