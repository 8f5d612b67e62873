"""Files a browser uploads, imported through :mod:`.import_export`; exports as a zip.

The Data page hands over the uploaded files' names and bytes; they are written to a
temporary folder (a ``.zip`` unpacked, its member names checked) and imported with
:func:`noteloop.usecases.import_export.import_path`, the function ``noteloop import`` calls, so the
app and the command line refuse and report exactly the same lines. Reported paths name
the upload (``notes.zip/dc_001.ann``), never the temporary folder.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from sqlalchemy.orm import Session, sessionmaker

from noteloop.core.errors import ImportFileError, LineError
from noteloop.core.formats.common import MB, megabytes
from noteloop.core.formats.plaintext import OTHER_FORMATS, brat_companion
from noteloop.db import audit
from noteloop.db.projects import get_project
from noteloop.usecases.import_export import (
    ExportOptions,
    ImportOptions,
    ImportReport,
    export_project,
    import_path,
    load_split_file,
)

# Which members of a zip each format reads; brat reads folders of .txt/.ann pairs.
SUFFIXES: dict[str, tuple[str, ...]] = {
    "brat": (".txt", ".ann"),
    "jsonl": (".jsonl", ".json"),
    "pubtator": (".txt", ".pubtator", ".pubtator3"),
    "bioc": (".xml",),
    "txt": (".txt",),
    "csv": (".csv",),
    "spacy": (".spacy",),
    "prodigy": (".jsonl",),
    "doccano": (".jsonl",),
    "label-studio": (".json",),
    "webanno": (".tsv",),
    "xmi": (".xmi", ".xml"),  # TypeSystem.xml beside the notes
    "hf-parquet": (".parquet",),
}
# A zip may hold many files, but not more text than this many times the per-file limit:
# a small archive that inflates to gigabytes is refused before anything is written.
ZIP_FILES_FACTOR = 50
# Hard limits that hold whatever the form asked for (its limit may be raised to 2,000 MB
# per file, which would let one zip unpack to 100 GB on the server's disk):
MAX_FILE_BYTES = 200 * MB  # one file, loose or in a zip; `noteloop serve` tells Streamlit
MAX_UNPACKED_BYTES = 2048 * MB  # everything one zip unpacks to
MAX_ZIP_MEMBERS = 20_000  # files in one zip
_CHUNK = MB  # unpacked in pieces, counting what really comes out


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes


@dataclass
class UploadReport:
    """The import's report, plus the zip members no reader of the format takes."""

    report: ImportReport
    ignored: list[str] = field(default_factory=list)


def import_uploads(
    make_session: sessionmaker[Session],
    project_name: str,
    uploads: Sequence[Upload],
    options: ImportOptions,
    split_file: Upload | None = None,
    *,
    by: str,
) -> UploadReport:
    """Import uploaded files (each all or nothing) into the project; ``by`` (who uploaded
    them) is named by the import's audit row.

    Raises:
        NotFoundError: no such project.
    """
    result = UploadReport(ImportReport())
    with _workspace() as root:
        names: dict[str, str] = {}  # folder on disk -> what the person uploaded
        files = _unpack_all(uploads, root, options, names, result)
        if options.fmt == "txt":
            files = _notes_only(files, names, result)
        if split_file is not None:
            options = _with_split(options, root, split_file, names, result)
        targets = _targets(files, options.fmt)
        if files and not targets:
            result.report.refused.append(
                LineError(uploads[0].name, 0, "no .ann file: brat imports .txt/.ann pairs")
            )
        for target in targets:
            _merge(result.report, import_path(make_session, project_name, target, options))
        result.report = _renamed(result.report, names)
    audit_import(make_session, project_name, result.report, options, by, [u.name for u in uploads])
    return result


def audit_import(
    make_session: sessionmaker[Session],
    project_name: str,
    report: ImportReport,
    options: ImportOptions,
    by: str,
    sources: Sequence[str],
) -> None:
    """The audit row of one import (the Data page's, ``noteloop import``'s, the demo
    seed's): who imported what into which project, and what came of it. An import that
    changed nothing leaves none."""
    wrote = report.documents_added + report.annotations_saved + report.suggestions_added
    if not (wrote or report.labels_added):
        return
    after = {
        "format": options.fmt,
        "as": options.as_.value,
        "sources": list(sources),
        "files": len(report.files_imported),
        "documents": report.documents_added,
        "annotations": report.annotations_saved,
        "suggestions": report.suggestions_added,
        "duplicates": len(report.duplicates),
        "refused_files": report.refused_files(),
        "labels_added": list(report.labels_added),
    }
    with make_session.begin() as session:
        project = get_project(session, project_name)
        audit.record_audit(session, by, "import", "projects", project.id, after=after)


@contextmanager
def _workspace() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="noteloop-upload-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _unpack_all(
    uploads: Sequence[Upload],
    root: Path,
    options: ImportOptions,
    names: dict[str, str],
    result: UploadReport,
) -> list[Path]:
    """Write the uploads under ``root``: loose files side by side (a .txt beside its
    .ann), each zip in a folder of its own."""
    loose = root / "files"
    loose.mkdir()
    names[str(loose)] = ""
    files: list[Path] = []
    for i, upload in enumerate(uploads):
        name = PurePosixPath(upload.name).name or f"upload-{i}"
        if name.lower().endswith(".zip"):  # its headers and its unpacking are checked
            folder = root / f"zip{i}"
            folder.mkdir()
            names[str(folder)] = name
            files += _unzip(upload.data, name, folder, options, result)
        elif len(upload.data) > _file_limit(options):
            result.report.refused.append(LineError(name, 0, _too_big(upload, options)))
        elif (loose / name).exists():
            result.ignored.append(f"{name} (uploaded twice: the first one is imported)")
        else:
            (loose / name).write_bytes(upload.data)
            files.append(loose / name)
    return files


def _file_limit(options: ImportOptions) -> int:
    """The most bytes one file may hold: the form's limit, never over the hard one."""
    return min(options.max_bytes, MAX_FILE_BYTES)


def _archive_limit(name: str, options: ImportOptions) -> int:
    if name.lower().endswith(".zip"):
        return min(ZIP_FILES_FACTOR * _file_limit(options), MAX_UNPACKED_BYTES)
    return _file_limit(options)


def _size(n_bytes: int) -> str:
    # Megabytes, as limits are typed; a limit under a tenth of one would read "0.0 MB".
    return f"{megabytes(n_bytes):.1f} MB" if n_bytes >= MB // 10 else f"{n_bytes} bytes"


def _too_big(upload: Upload, options: ImportOptions) -> str:
    return (
        f"holds {_size(len(upload.data))}, over the {_size(_file_limit(options))} limit "
        "for one file; nothing of it was imported"
    )


class _ZipRefused(Exception):
    """A zip member that did not unpack as its header said: the archive is refused."""


def _unzip(
    data: bytes, name: str, folder: Path, options: ImportOptions, result: UploadReport
) -> list[Path]:
    """The zip's members that the format reads, written under ``folder``; nothing at all
    when the archive is unreadable, unsafe or over a limit."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        result.report.refused.append(LineError(name, 0, f"not a readable zip archive ({exc})"))
        return []
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        problem = _zip_problem(members, _file_limit(options), _archive_limit(name, options))
        if problem:
            result.report.refused.append(LineError(name, 0, problem))
            return []
        try:
            return _extract(archive, members, name, folder, options, result)
        except _ZipRefused as exc:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            result.report.refused.append(LineError(name, 0, str(exc)))
            return []


def _extract(
    archive: zipfile.ZipFile,
    members: list[zipfile.ZipInfo],
    name: str,
    folder: Path,
    options: ImportOptions,
    result: UploadReport,
) -> list[Path]:
    # Headers can lie: the bytes that really come out are counted against the limits.
    budget = _archive_limit(name, options)
    out = []
    for member in members:
        path = PurePosixPath(member.filename)
        if _hidden(path) or path.suffix.lower() not in _taken(options.fmt):
            result.ignored.append(f"{name}/{member.filename}")
            continue
        target = folder.joinpath(*path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        budget -= _copy_member(archive, member, target, _file_limit(options), budget)
        out.append(target)
    return out


def _copy_member(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, limit: int, budget: int
) -> int:
    """Unpack ``member`` to ``target``, refusing it past ``limit`` bytes, past the
    archive's remaining ``budget`` or past its own declared size; the bytes written."""
    written = 0
    try:
        with archive.open(member) as source, target.open("wb") as sink:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > member.file_size:
                    raise _ZipRefused(
                        f"member {member.filename!r} unpacks to more than the "
                        f"{member.file_size} bytes its header says; nothing was unpacked"
                    )
                if written > min(limit, budget):
                    raise _ZipRefused(
                        f"member {member.filename!r} unpacks past the limits "
                        f"({_size(limit)} per file, {_size(budget)} left for the archive); "
                        "nothing was unpacked"
                    )
                sink.write(chunk)
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError) as exc:
        raise _ZipRefused(
            f"member {member.filename!r} cannot be unpacked ({exc}); nothing was unpacked"
        ) from None
    return written


def _taken(fmt: str) -> tuple[str, ...]:
    """The zip members to unpack: the format's own, and for ``txt`` also the files that
    are plainly another format, so each is refused with the format to use, as in a folder."""
    return SUFFIXES[fmt] + (tuple(OTHER_FORMATS) if fmt == "txt" else ())


def _notes_only(files: list[Path], names: dict[str, str], result: UploadReport) -> list[Path]:
    """Leave out a BRAT pair's ``.ann`` (and ``.conf``): its ``.txt`` is a note, and the
    command line's ``txt`` import of such a folder leaves them alone too."""
    kept = []
    for path in files:
        if brat_companion(path):
            result.ignored.append(_shown(str(path), names))
        else:
            kept.append(path)
    return kept


def _zip_problem(members: list[zipfile.ZipInfo], file_limit: int, total_limit: int) -> str:
    """Why the archive is refused before anything is unpacked, from its headers ("" if
    they pass)."""
    if len(members) > MAX_ZIP_MEMBERS:
        return f"holds {len(members)} files, over the limit of {MAX_ZIP_MEMBERS}; split it"
    for m in members:
        path = PurePosixPath(m.filename)
        if path.is_absolute() or ".." in path.parts or "\\" in m.filename:
            return f"member {m.filename!r} points outside the archive; nothing was unpacked"
        if m.file_size > file_limit:
            return (
                f"member {m.filename!r} unpacks to {_size(m.file_size)}, over the "
                f"{_size(file_limit)} limit for one file; nothing was unpacked"
            )
    total = sum(m.file_size for m in members)
    if total > total_limit:
        return (
            f"unpacks to {_size(total)}, over the {_size(total_limit)} limit for one archive; "
            "split it"
        )
    return ""


def _hidden(path: PurePosixPath) -> bool:
    # Archives made on a Mac carry __MACOSX/ and ._ resource files beside the real ones.
    return any(part.startswith((".", "__MACOSX")) for part in path.parts)


def _targets(files: list[Path], fmt: str) -> list[Path]:
    """What to hand to ``import_path``: brat folders of pairs, folders of ``.xmi`` notes
    (their ``TypeSystem.xml`` lies beside them, not a note itself), else every file."""
    if fmt == "brat":
        return sorted({f.parent for f in files if f.suffix == ".ann"})
    if fmt == "xmi":
        return sorted({f.parent for f in files if f.suffix == ".xmi"})
    return files


def _with_split(
    options: ImportOptions, root: Path, upload: Upload, names: dict[str, str], result: UploadReport
) -> ImportOptions:
    folder = root / "split"
    folder.mkdir()
    names[str(folder)] = ""
    path = folder / (PurePosixPath(upload.name).name or "splits.json")
    path.write_bytes(upload.data)
    try:
        return replace(options, split_of=load_split_file(path))
    except ImportFileError as exc:
        result.report.refused.extend(exc.errors)
        return options


def _merge(into: ImportReport, report: ImportReport) -> None:
    into.files_imported += report.files_imported
    into.documents_added += report.documents_added
    into.annotations_saved += report.annotations_saved
    into.suggestions_added += report.suggestions_added
    into.duplicates += report.duplicates
    into.refused += report.refused
    into.notes += report.notes
    into.labels_added += [label for label in report.labels_added if label not in into.labels_added]


def _renamed(report: ImportReport, names: dict[str, str]) -> ImportReport:
    """The report with temporary paths replaced by the names the person uploaded."""
    report.files_imported = [_shown(f, names) for f in report.files_imported]
    report.refused = [
        LineError(_shown(e.path, names), e.line, _shown(e.reason, names)) for e in report.refused
    ]
    report.notes = [
        LineError(_shown(e.path, names), e.line, _shown(e.reason, names)) for e in report.notes
    ]
    return report


def _shown(text: str, names: dict[str, str]) -> str:
    """``text`` with each temporary folder replaced by the upload it holds."""
    for folder, upload in sorted(names.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(folder + "/", f"{upload}/" if upload else "")
        text = text.replace(folder, upload or ".")
    return text


@dataclass(frozen=True)
class Archive:
    file_name: str
    data: bytes
    summary: str


def export_archive(session: Session, project_name: str, options: ExportOptions) -> Archive:
    """The project's gold in ``options.fmt``, written as ``noteloop export`` does, zipped.

    Raises:
        NoteloopError: nothing to export, or the format cannot leave the text out.
    """
    base = f"{project_name}-{options.fmt}"
    with _workspace() as root:
        out = root / base
        summary = export_project(session, project_name, out, options)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in out.rglob("*") if p.is_file()):
                archive.write(path, str(path.relative_to(root)))
        summary = summary.replace(str(out), f"{base}.zip")
    return Archive(f"{base}.zip", buffer.getvalue(), summary)
