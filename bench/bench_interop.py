"""Round trips through the peers' real servers: what Label Studio and doccano give back.

Each peer runs on 127.0.0.1 from its own environment with a throwaway data folder and a user
made without prompts. noteloop's export of MACCROBAT2020 notes is imported through the peer's
REST API, exported back through it, read with noteloop's reader and compared with the source:
documents, spans (every fragment's offsets and the label) and relations (both ends and the
label). Two readings of the same export file:

- *peer fields*: the ``noteloop`` key (Label Studio's ``meta.noteloop``, doccano's metadata
  column) is removed first, so only what the peer's own fields hold comes back;
- *with noteloop key*: the file as exported, the key restoring what the peer cannot hold.

Examples::

    .venv/bin/python bench/bench_interop.py --notes 50 --out /tmp/interop.json
    .venv/bin/python bench/bench_interop.py --notes 200 --peers doccano --keep /tmp/interop
    .venv/bin/python bench/bench_interop.py --notes 5 --peers doccano --doccano-no-overlap \
        --repeats 1   # doccano's "Allow overlapping entity" off: its import fails

The peers never enter noteloop's environment: the first run creates
``bench/.venv-interop/<peer>`` (ignored by git) with ``/usr/bin/python3.11`` and installs that
peer's pins from ``bench/interop-requirements.txt`` with pip; after that nothing is
downloaded. Label Studio 1.23 needs Django 5 and doccano 1.8 Django 4, hence one
environment each.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from noteloop.core.formats.doccano import read_doccano, write_doccano
from noteloop.core.formats.label_studio import (
    CONFIG_FILE,
    TASKS_FILE,
    read_label_studio,
    write_label_studio,
)
from noteloop.core.formats.peer_json import PAYLOAD
from noteloop.core.formats.registry import read_corpus
from noteloop.core.schema import Document, Span, schema_from_documents

HERE = Path(__file__).resolve().parent
DATA = Path("/work/shared/data/maccrobat2020")
VENVS = HERE / ".venv-interop"
PINS = HERE / "interop-requirements.txt"
BASE_PYTHON = Path("/usr/bin/python3.11")
PEERS = ("label-studio", "doccano")
USER, PASSWORD = "bench", "bench-interop-pass-1"
# Label Studio takes a fixed API token at start; it must be longer than 5 characters.
LS_TOKEN = "noteloopbenchtoken0123456789"
# The servers are on loopback: a proxy named in the environment must not carry the requests.
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# Nothing leaves the machine: no error reports, version checks or usage analytics.
LS_QUIET = {"SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false"}


# --------------------------------------------------------------------------- environments


def pinned(peer: str, pins: Path = PINS) -> list[str]:
    """The requirement lines of ``peer``'s section (``[peer]``) of the pins file."""
    out: list[str] = []
    section = None
    for line in pins.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith("#") and section == peer:
            out.append(line)
    if not out:
        raise ValueError(f"{pins} has no pins for {peer}")
    return out


def ensure_peer(peer: str, base_python: Path) -> Path:
    """The ``bin`` folder of ``peer``'s environment, created and installed if its pins changed.

    A ``.pins`` file in the environment holds the digest of the pins it was installed with.
    """
    venv = VENVS / peer
    lines = pinned(peer)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    stamp = venv / ".pins"
    if stamp.exists() and stamp.read_text(encoding="utf-8") == digest:
        return venv / "bin"
    print(f"installing {peer}'s {len(lines)} pins into {venv}", file=sys.stderr, flush=True)
    if not (venv / "bin" / "python").exists():
        subprocess.run([str(base_python), "-m", "venv", str(venv)], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
        req.write("\n".join(lines) + "\n")
    try:
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "-r", req.name], check=True)
    finally:
        os.unlink(req.name)
    stamp.write_text(digest, encoding="utf-8")
    return venv / "bin"


def package_version(bin_dir: Path, package: str) -> str:
    probe = f"import importlib.metadata as m; print(m.version({package!r}))"
    out = subprocess.run([str(bin_dir / "python"), "-c", probe], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Processes:
    """A peer's server processes, each the leader of its own process group."""

    folder: Path
    running: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        with (self.folder / f"{name}.log").open("wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen(argv, cwd=self.folder, env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.running.append((name, proc))

    def dead(self) -> str | None:
        for name, proc in self.running:
            if proc.poll() is not None:
                return f"{name} exited with {proc.returncode}"
        return None

    def stop(self) -> None:
        # The whole group: gunicorn's and celery's workers, Label Studio's children.
        for _, proc in self.running:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, proc in self.running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()

    def log_tails(self, lines: int = 40) -> str:
        out = []
        for name, _ in self.running:
            text = (self.folder / f"{name}.log").read_text(encoding="utf-8", errors="replace")
            out.append(f"--- {name}.log (last {lines} lines)\n"
                       + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with suppress(ProcessLookupError):  # the group has already gone
        os.killpg(proc.pid, sig)


def wait_for(url: str, procs: Processes, timeout: float) -> float:
    """Seconds until ``url`` answers 200; raises if a process dies or ``timeout`` passes."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if (why := procs.dead()) is not None:
            raise RuntimeError(f"the server did not start: {why}")
        try:
            with LOOPBACK.open(url, timeout=5) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"no answer from {url} within {timeout:.0f} s")


@contextmanager
def serving(folder: Path, start: Callable[[Processes], float]) -> Iterator[float]:
    """Runs ``start`` (which launches the processes and waits for them: its seconds are
    yielded), and stops every process on the way out, error or not; a failure to start
    prints the logs' tails."""
    procs = Processes(folder)
    try:
        try:
            seconds = start(procs)
        except Exception:
            print(procs.log_tails(), file=sys.stderr)
            raise
        yield seconds
    finally:
        procs.stop()


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class Api:
    base: str
    headers: dict[str, str]

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             content_type: str = "application/json", timeout: float = 600) -> bytes:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=headers)
        try:
            with LOOPBACK.open(request, timeout=timeout) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read()[:2000].decode("utf-8", errors="replace")
            raise RuntimeError(f"{method} {path}: HTTP {error.code}: {detail}") from None

    def json(self, method: str, path: str, body: Any = None) -> Any:
        return json.loads(self.call(method, path, body))


def multipart(field_name: str, filename: str, payload: bytes) -> tuple[bytes, str]:
    """One file as a multipart/form-data body, and its content type."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n')
    body = head.encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# --------------------------------------------------------------------------- peers


@dataclass
class Trip:
    """One peer's round trips: its version, the export file it gave, and its timings (one
    per round, each into a fresh project on the same server)."""

    peer: str
    version: str
    python: str
    start_s: float = 0.0
    import_s: list[float] = field(default_factory=list)
    export_s: list[float] = field(default_factory=list)
    exported: Path | None = None
    import_errors: list[Any] = field(default_factory=list)

    def rounds(self, repeats: int, one: Callable[[], tuple[float, float, bytes]]) -> bytes:
        """Runs ``one`` (import seconds, export seconds, exported bytes) ``repeats`` times;
        returns the first round's export, the one compared (later rounds only time)."""
        exports = []
        for _ in range(repeats):
            import_s, export_s, body = one()
            self.import_s.append(import_s)
            self.export_s.append(export_s)
            exports.append(body)
        return exports[0]


def new_trip(peer: str, bin_dir: Path) -> Trip:
    python = subprocess.run([str(bin_dir / "python"), "--version"], capture_output=True,
                            text=True, check=True).stdout.split()[-1]
    return Trip(peer, package_version(bin_dir, peer), python)


def label_studio_trip(bin_dir: Path, docs: list[Document], work: Path,
                      args: argparse.Namespace) -> Trip:
    """Label Studio: project with noteloop's labeling config, tasks imported, JSON exported."""
    trip = new_trip("label-studio", bin_dir)
    sent = work / "label-studio-sent"
    sent.mkdir()
    write_label_studio(docs, schema_from_documents(docs), sent)
    data = work / "label-studio-data"
    data.mkdir()
    port = free_port()
    # XDG_CONFIG_HOME: Label Studio also keeps a server id in the user's config folder.
    env = {**os.environ, **LS_QUIET, "LABEL_STUDIO_BASE_DATA_DIR": str(data),
           "XDG_CONFIG_HOME": str(data / "config")}
    argv = [str(bin_dir / "label-studio"), "start", "--no-browser", "--internal-host",
            "127.0.0.1", "--port", str(port), "--username", f"{USER}@example.org",
            "--password", PASSWORD, "--user-token", LS_TOKEN, "--enable-legacy-api-token"]

    def start(procs: Processes) -> float:
        procs.start("label-studio", argv, env)
        return wait_for(f"http://127.0.0.1:{port}/health", procs, args.timeout)

    with serving(data, start) as trip.start_s:
        api = Api(f"http://127.0.0.1:{port}", {"Authorization": f"Token {LS_TOKEN}"})
        body = trip.rounds(args.repeats, lambda: label_studio_round(api, sent))
    trip.exported = work / "label-studio-export.json"
    trip.exported.write_bytes(body)
    return trip


def label_studio_round(api: Api, sent: Path) -> tuple[float, float, bytes]:
    config = (sent / CONFIG_FILE).read_text(encoding="utf-8")
    project = api.json("POST", "/api/projects",
                       {"title": "noteloop interop", "label_config": config})["id"]
    t0 = time.perf_counter()
    api.call("POST", f"/api/projects/{project}/import", raw=(sent / TASKS_FILE).read_bytes())
    t1 = time.perf_counter()
    body = api.call("GET", f"/api/projects/{project}/export?exportType=JSON")
    return t1 - t0, time.perf_counter() - t1, body


def doccano_settings(folder: Path) -> None:
    """A settings module that keeps doccano's upload scratch folder in ``folder`` (its own
    settings put it inside the installed package)."""
    (folder / "bench_doccano_settings.py").write_text(
        "from config.settings.production import *  # noqa: F401,F403\n"
        f"DJANGO_DRF_FILEPOND_UPLOAD_TMP = {str(folder / 'filepond-tmp')!r}\n"
        "DJANGO_DRF_FILEPOND_ALLOW_EXTERNAL_UPLOAD_DIR = True\n",
        encoding="utf-8")


def doccano_env(bin_dir: Path, folder: Path) -> dict[str, str]:
    backend = next((bin_dir.parent / "lib").glob("python3*/site-packages/backend"))
    return {**os.environ, "DOCCANO_HOME": str(folder),
            "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
            "MEDIA_ROOT": str(folder / "media"), "STANDALONE": "True", "DEBUG": "False",
            "DJANGO_SETTINGS_MODULE": "bench_doccano_settings",
            "PYTHONPATH": os.pathsep.join([str(folder), str(backend)])}


def doccano_start(bin_dir: Path, folder: Path, port: int, timeout: float
                  ) -> Callable[[Processes], float]:
    """Database, user, web server (gunicorn on loopback) and the celery worker that runs
    doccano's imports and exports (its broker is the same SQLite file)."""
    env = doccano_env(bin_dir, folder)
    backend = env["PYTHONPATH"].split(os.pathsep)[1]

    def start(procs: Processes) -> float:
        t0 = time.monotonic()
        for step in (["init"], ["createuser", "--username", USER, "--password", PASSWORD]):
            done = subprocess.run([str(bin_dir / "doccano"), *step], cwd=folder, env=env,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"doccano {step[0]} failed:\n{done.stdout}{done.stderr}")
        procs.start("web", [str(bin_dir / "gunicorn"), "--bind", f"127.0.0.1:{port}",
                            "--workers", "2", "--chdir", backend, "config.wsgi"], env)
        procs.start("task", [str(bin_dir / "doccano"), "task", "--concurrency", "1"], env)
        wait_for(f"http://127.0.0.1:{port}/v1/health/", procs, timeout)
        return time.monotonic() - t0

    return start


class PeerRefused(Exception):
    """The peer's server failed the import: what it said, and what it kept of the file."""


def doccano_task(api: Api, task_id: str, timeout: float) -> Any:
    """The result of one of doccano's celery tasks, polled until it is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = api.json("GET", f"/v1/tasks/status/{task_id}")
        if status["ready"]:
            if status["error"]:
                raise PeerRefused(f"doccano's task failed: {status['error']['text']}")
            return status["result"]
        time.sleep(0.2)
    raise RuntimeError(f"doccano task {task_id} not ready within {timeout:.0f} s")


def doccano_trip(bin_dir: Path, docs: list[Document], work: Path,
                 args: argparse.Namespace) -> Trip:
    """doccano: a sequence-labeling project with relations and overlapping spans allowed,
    JSONL (Relation) uploaded and imported, JSONL exported (a zip made by a celery task)."""
    trip = new_trip("doccano", bin_dir)
    sent = work / "doccano-sent.jsonl"
    write_doccano(docs, sent)
    folder = work / "doccano-data"
    folder.mkdir()
    doccano_settings(folder)
    port = free_port()
    start = doccano_start(bin_dir, folder, port, args.timeout)
    with serving(folder, start) as trip.start_s:
        base = f"http://127.0.0.1:{port}"
        login = Api(base, {}).json("POST", "/v1/auth/login/",
                                   {"username": USER, "password": PASSWORD})
        api = Api(base, {"Authorization": f"Token {login['key']}"})
        body = trip.rounds(args.repeats,
                           lambda: doccano_round(api, sent, trip, work, args))
    trip.exported = work / "doccano-export.jsonl"
    trip.exported.write_bytes(body)
    return trip


def doccano_round(api: Api, sent: Path, trip: Trip, work: Path, args: argparse.Namespace
                  ) -> tuple[float, float, bytes]:
    timeout = args.timeout
    project = api.json("POST", "/v1/projects", {
        "name": "noteloop interop", "description": "round trip", "guideline": "",
        "project_type": "SequenceLabeling", "resourcetype": "SequenceLabelingProject",
        "use_relation": True, "allow_overlapping": not args.doccano_no_overlap,
        "collaborative_annotation": True,
    })["id"]
    t0 = time.perf_counter()
    body, content_type = multipart("filepond", sent.name, sent.read_bytes())
    upload = api.call("POST", "/v1/fp/process/", raw=body, content_type=content_type)
    task = api.json("POST", f"/v1/projects/{project}/upload", {
        "uploadIds": [upload.decode()], "format": "JSONL", "task": "RelationExtraction"})
    try:
        trip.import_errors += doccano_task(api, task["task_id"], timeout)["error"]
    except PeerRefused as refused:
        # celery retries a failed import, and each try keeps the examples it had saved
        kept = api.json("GET", f"/v1/projects/{project}/examples?limit=1")["count"]
        raise PeerRefused(f"{refused}; the project kept {kept} examples") from None
    t1 = time.perf_counter()
    task = api.json("POST", f"/v1/projects/{project}/download",
                    {"format": "JSONL", "exportApproved": False})
    doccano_task(api, task["task_id"], timeout)
    archive = api.call("GET", f"/v1/projects/{project}/download?taskId={task['task_id']}")
    exported = only_member(archive, work / "doccano-export.zip")
    return t1 - t0, time.perf_counter() - t1, exported


def only_member(archive: bytes, path: Path) -> bytes:
    """The one file of doccano's export zip (``all.jsonl`` in a collaborative project)."""
    path.write_bytes(archive)
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if len(names) != 1:
            raise RuntimeError(f"doccano's export holds {names}, expected one file")
        return z.read(names[0])


# --------------------------------------------------------------------------- reading back


def without_payload_ls(exported: Path, out: Path) -> Path:
    tasks = json.loads(exported.read_text(encoding="utf-8"))
    for task in tasks:
        (task.get("meta") or {}).pop(PAYLOAD, None)
    out.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    return out


def without_payload_doccano(exported: Path, out: Path) -> Path:
    rows = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()
            if line.strip()]
    for row in rows:
        row.pop(PAYLOAD, None)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    return out


READ_BACK = {
    "label-studio": (lambda p: read_label_studio(p, notes=[]), without_payload_ls),
    "doccano": (read_doccano, without_payload_doccano),
}


def read_back(trip: Trip, stripped: bool) -> list[Document]:
    assert trip.exported is not None
    read, strip = READ_BACK[trip.peer]
    path = trip.exported
    if stripped:
        path = strip(path, path.with_name(f"{path.stem}-peer-fields{path.suffix}"))
    return [parsed.doc for parsed in read(path)]


# --------------------------------------------------------------------------- comparison


SpanKey = tuple[tuple[tuple[int, int], ...], str]


def span_key(span: Span) -> SpanKey:
    return (span.fragments, span.label)


def full_key(span: Span) -> tuple[Any, ...]:
    """Everything a span holds but its id and provenance."""
    return (span.fragments, span.label, tuple(sorted(span.attributes)), span.notes,
            span.concept)


def relation_keys(doc: Document) -> Counter[tuple[SpanKey, SpanKey, str]]:
    by_id = {s.id: span_key(s) for s in doc.spans}
    return Counter((by_id[r.head], by_id[r.tail], r.label) for r in doc.relations)


def _overlapping(doc: Document) -> set[str]:
    spans = sorted(doc.spans, key=lambda s: s.start)
    out: set[str] = set()
    for i, a in enumerate(spans):
        for b in spans[i + 1:]:
            if b.start >= a.end:
                break
            if a.overlaps(b):
                out |= {a.id, b.id}
    return out


def span_loss_reason(span: Span, overlapping: set[str]) -> str:
    if span.discontinuous:
        return "discontinuous"
    if span.id in overlapping:
        return "overlapping"
    return "other"


@dataclass
class Tally:
    """What came back of what was sent, over all documents."""

    documents_sent: int = 0
    documents_back: int = 0
    documents_same_id: int = 0  # matched by id, not only by text
    spans_sent: int = 0
    spans_back: int = 0
    spans_exact: int = 0
    spans_all_fields: int = 0  # exact, with attributes, notes and concept too
    spans_lost: Counter[str] = field(default_factory=Counter)
    relations_sent: int = 0
    relations_back: int = 0
    relations_exact: int = 0
    relations_lost: Counter[str] = field(default_factory=Counter)
    equivalences_sent: int = 0
    equivalences_back: int = 0


def match_documents(sent: Sequence[Document], back: Sequence[Document]
                    ) -> list[tuple[Document, Document | None]]:
    """Each sent document with the one that came back: by id, else by identical text (a
    peer that keeps no id of ours numbers the documents itself)."""
    by_id = {d.id: d for d in back}
    by_text = {d.text: d for d in back}
    return [(d, by_id.get(d.id) or by_text.get(d.text)) for d in sent]


def compare(sent: Sequence[Document], back: Sequence[Document]) -> Tally:
    tally = Tally(documents_sent=len(sent), documents_back=len(back))
    for source, returned in match_documents(sent, back):
        compare_document(tally, source, returned)
    return tally


def compare_document(tally: Tally, source: Document, returned: Document | None) -> None:
    tally.spans_sent += len(source.spans)
    tally.relations_sent += len(source.relations)
    tally.equivalences_sent += len(source.equivalences)
    if returned is None:
        tally.spans_lost["document lost"] += len(source.spans)
        tally.relations_lost["document lost"] += len(source.relations)
        return
    tally.documents_same_id += returned.id == source.id
    tally.spans_back += len(returned.spans)
    tally.relations_back += len(returned.relations)
    tally.equivalences_back += len(returned.equivalences)
    came = Counter(span_key(s) for s in returned.spans)
    tally.spans_exact += sum((Counter(span_key(s) for s in source.spans) & came).values())
    tally.spans_all_fields += sum(
        (Counter(full_key(s) for s in source.spans)
         & Counter(full_key(s) for s in returned.spans)).values())
    overlapping = _overlapping(source)
    left = Counter(came)
    lost_keys: set[SpanKey] = set()
    for span in source.spans:
        if left[span_key(span)] > 0:
            left[span_key(span)] -= 1
        else:
            tally.spans_lost[span_loss_reason(span, overlapping)] += 1
            lost_keys.add(span_key(span))
    compare_relations(tally, source, returned, lost_keys)


def compare_relations(tally: Tally, source: Document, returned: Document,
                      lost_spans: set[SpanKey]) -> None:
    came = relation_keys(returned)
    tally.relations_exact += sum((relation_keys(source) & came).values())
    for key, n in (relation_keys(source) - came).items():
        head, tail, _ = key
        reason = "an end span lost" if {head, tail} & lost_spans else "other"
        tally.relations_lost[reason] += n


# What each peer's own fields hold by its documentation, with noteloop's writer: Label
# Studio's labels regions, relations, per-region choices and region notes (a discontinuous
# span as fragment regions joined by a relation); doccano's JSONL (Relation) entities with
# one start and end offset each, and relations. Neither has a place for equivalences.
HOLDS: dict[str, tuple[Callable[[Span], bool], str]] = {
    "label-studio": (lambda span: True, "all: a discontinuous span as joined fragment regions"),
    "doccano": (lambda span: not span.discontinuous, "the contiguous ones"),
}


def documented(peer: str, docs: Sequence[Document]) -> tuple[int, int]:
    """The spans and relations of ``docs`` that ``peer``'s own fields hold, by its docs."""
    holds = HOLDS[peer][0]
    spans = relations = 0
    for doc in docs:
        kept = {s.id for s in doc.spans if holds(s)}
        spans += len(kept)
        relations += sum(r.head in kept and r.tail in kept for r in doc.relations)
    return spans, relations


# --------------------------------------------------------------------------- corpus


def load_notes(data: Path, n: int) -> list[Document]:
    """The first ``n`` notes: the 50 of the fixed test split, then the training split (a
    file that does not read is left out, as ``noteloop simulate`` leaves it out)."""
    splits = json.loads((data / "splits.json").read_text(encoding="utf-8"))
    read = {d.id: d for d in read_corpus(data, "brat").docs}
    return [read[i] for i in [*splits["test"], *splits["train"]] if i in read][:n]


# --------------------------------------------------------------------------- tables


def _lost(counts: Counter[str]) -> str:
    total = sum(counts.values())
    if not total:
        return "0"
    return f"{total} ({', '.join(f'{why} {k}' for why, k in counts.most_common())})"


HEADER = ("| reading | documents sent / back (same id) | spans sent / back / exact "
          "| spans exact with attributes, notes, concept | spans lost (why) "
          "| relations sent / back / exact "
          "| relations lost (why) | equivalences sent / back |\n"
          "|---|---|---|---|---|---|---|---|")


def tally_line(reading: str, t: Tally) -> str:
    return (f"| {reading} | {t.documents_sent} / {t.documents_back} ({t.documents_same_id}) "
            f"| {t.spans_sent} / {t.spans_back} / {t.spans_exact} | {t.spans_all_fields} "
            f"| {_lost(t.spans_lost)} | {t.relations_sent} / {t.relations_back} / "
            f"{t.relations_exact} | {_lost(t.relations_lost)} "
            f"| {t.equivalences_sent} / {t.equivalences_back} |")


def _seconds(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f} s"
    return f"{median(values):.2f} s (median of {len(values)}, {min(values):.2f}-{max(values):.2f})"


def print_trip(trip: Trip, readings: dict[str, Tally], held: tuple[int, int]) -> None:
    print(f"\n### {trip.peer} {trip.version} (Python {trip.python})\n")
    print(f"server ready in {trip.start_s:.1f} s; import {_seconds(trip.import_s)}; "
          f"export {_seconds(trip.export_s)}; import errors reported: "
          f"{len(trip.import_errors)}\n")
    print(HEADER)
    for reading, tally in readings.items():
        print(tally_line(reading, tally))
    print(f"\nDocumented, {trip.peer}'s own fields hold {held[0]} of the spans "
          f"({HOLDS[trip.peer][1]}) and {held[1]} of the relations (those between them).")
    sys.stdout.flush()


def as_json(trip: Trip, readings: dict[str, Tally]) -> dict[str, Any]:
    out = {k: v for k, v in asdict(trip).items() if k != "exported"}
    # asdict would rebuild a Counter from its (key, count) pairs, counting the pairs.
    out["readings"] = {name: {k: dict(v) if isinstance(v, Counter) else v
                              for k, v in vars(t).items()}
                       for name, t in readings.items()}
    return out


# --------------------------------------------------------------------------- main


TRIPS = {"label-studio": label_studio_trip, "doccano": doccano_trip}


def run_peer(peer: str, args: argparse.Namespace, docs: list[Document], work: Path
             ) -> dict[str, Any]:
    bin_dir = ensure_peer(peer, args.base_python)
    try:
        trip = TRIPS[peer](bin_dir, docs, work, args)
    except PeerRefused as refused:
        print(f"\n### {peer}\n\nimport of {len(docs)} notes failed: {refused}", flush=True)
        return {"peer": peer, "failed": str(refused)}
    readings = {"peer fields": compare(docs, read_back(trip, stripped=True)),
                "with noteloop key": compare(docs, read_back(trip, stripped=False))}
    held = documented(peer, docs)
    print_trip(trip, readings, held)
    return {**as_json(trip, readings), "documented_spans": held[0],
            "documented_relations": held[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--notes", type=int, default=50,
                        help="the first N notes: the 50 test notes, then training notes")
    parser.add_argument("--peers", type=lambda s: s.split(","), default=list(PEERS),
                        help=f"comma-separated, of {', '.join(PEERS)}")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--keep", type=Path,
                        help="keep the sent and exported files and the servers' data here")
    parser.add_argument("--repeats", type=int, default=3,
                        help="import/export rounds per server, each into a fresh project")
    parser.add_argument("--doccano-no-overlap", action="store_true",
                        help="doccano's project setting 'Allow overlapping entity' off")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds a server may take to start, and a task to finish")
    parser.add_argument("--base-python", type=Path, default=BASE_PYTHON,
                        help="the Python 3.11 the peers' environments are created with")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if unknown := set(args.peers) - set(PEERS):
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}")
    docs = load_notes(args.data, args.notes)
    print(f"{len(docs)} MACCROBAT2020 notes: {sum(len(d.spans) for d in docs)} spans "
          f"({sum(s.discontinuous for d in docs for s in d.spans)} discontinuous), "
          f"{sum(len(d.relations) for d in docs)} relations, "
          f"{sum(len(d.equivalences) for d in docs)} equivalences", flush=True)
    results: dict[str, Any] = {"notes": len(docs), "peers": {}}
    with tempfile.TemporaryDirectory(prefix="noteloop-interop-") as tmp:
        work = args.keep or Path(tmp)
        for peer in args.peers:
            folder = work / peer
            folder.mkdir(parents=True, exist_ok=False)
            results["peers"][peer] = run_peer(peer, args, docs, folder)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
