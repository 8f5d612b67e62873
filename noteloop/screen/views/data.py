"""Data: import files and export the gold, through the functions ``noteloop import`` and
``noteloop export`` use. A refused file lists every bad line as ``file:line: reason``."""

from __future__ import annotations

import re

import streamlit as st

from noteloop.core.errors import NoteloopError
from noteloop.core.formats.common import DEFAULT_MAX_BYTES, bytes_of, megabytes
from noteloop.core.formats.registry import READERS, WRITERS
from noteloop.core.schema import Split
from noteloop.db import audit, projects
from noteloop.screen.access import page_context
from noteloop.screen.forms import md
from noteloop.usecases.import_export import ExportOptions, ImportAs, ImportOptions
from noteloop.usecases.uploads import (
    SUFFIXES,
    Upload,
    UploadReport,
    export_archive,
    import_uploads,
)

page = page_context(__file__)
make_session, project_name = page.make_session, page.project

# Per project: a report or an archive must not follow the person to another project.
REPORT, ARCHIVE = f"import-report-{project_name}", f"export-archive-{project_name}"
# Streamlit keeps uploaded files across runs; a new key after each import gives empty
# uploaders, so pressing Import again (say, after changing the format) imports nothing twice.
UPLOADS_ROUND = "import-uploads-round"

st.title("Data")
import_tab, export_tab = st.tabs(["Import", "Export"])


# Lines past this many scroll inside their box: a file refused for one missing label can
# name it on hundreds of lines.
BOX_HEIGHT = 400
MISSING_LABEL = re.compile(r"'([^']+)' is not in the schema")


def likely_formats(names: list[str], chosen: str) -> list[str]:
    """The other formats that read files of these names (a wrong choice of format)."""
    return [fmt for fmt, suffixes in SUFFIXES.items()
            if fmt != chosen and any(n.lower().endswith(suffixes) for n in names)]


def show_report(result: UploadReport, fmt: str) -> None:
    """Success only for what went in, a refusal as an error: a mixed import shows both."""
    report = result.report
    summary = report.summary()
    if report.files_imported:
        st.success(md(summary[0].upper() + summary[1:] + "."))
    elif not report.refused:
        others = likely_formats(result.ignored, fmt)
        hint = f" These files are read by: {', '.join(others)}." if others else ""
        st.warning(md(f"Nothing imported: no file among the uploads is of the {fmt} format.{hint}"))
    if report.labels_added:
        st.info(f"Schema extended with: {md(', '.join(report.labels_added))}")
    if report.duplicates:
        st.warning(f"Skipped {len(report.duplicates)} note(s) already in the project:")
        st.dataframe(
            [{"note": doc_id, "why": why} for doc_id, why in report.duplicates], hide_index=True
        )
    if report.refused:
        st.error(
            f"Refused {len(report.refused_files())} file(s), nothing of them imported; "
            "what is wrong, where:"
        )
        missing = sorted({m for e in report.refused for m in MISSING_LABEL.findall(e.reason)})
        if missing:
            st.info(md(f"Labels the schema lacks: {', '.join(missing)}. Tick \"Add labels the "
                       "files use that the schema lacks\" to add them, or add them on the "
                       "Schema page."))
        lines = "\n".join(str(e) for e in report.refused)
        st.code(lines, language=None, wrap_lines=True, height=min_height(report.refused))
    if report.notes:
        st.info(f"{len(report.notes)} note(s) on what was repaired or skipped:")
        st.code("\n".join(str(n) for n in report.notes), language=None, wrap_lines=True,
                height=min_height(report.notes))
    if result.ignored:
        st.caption("Not read (not a file of this format): " + md(", ".join(result.ignored)))


def min_height(lines: list) -> int | str:
    """The box's height: its content, up to :data:`BOX_HEIGHT` pixels (then it scrolls)."""
    return BOX_HEIGHT if len(lines) > 15 else "content"


def show_last_import() -> None:
    """The project's last import that changed something, from the audit trail: what a
    reload would otherwise lose."""
    with make_session() as session:
        row = audit.latest(session, "import", "projects",
                           projects.get_project(session, project_name).id)
        if row is None:
            return
        after, user, at = dict(row.after or {}), row.user, row.at
    refused = after.get("refused_files") or []
    st.caption(md(
        f"Last import: {at:%Y-%m-%d %H:%M} UTC by {user}, {after.get('format')}: "
        f"{after.get('files', 0)} file(s), {after.get('documents', 0)} new notes, "
        f"{after.get('annotations', 0)} gold annotations, {after.get('suggestions', 0)} "
        f"suggestions" + (f"; refused: {', '.join(refused)}" if refused else "")
    ))


with import_tab, st.form("import"):
    fmt = st.selectbox(
        "Format",
        list(READERS),
        help="brat: .txt/.ann pairs (upload them, or a .zip); txt and csv: text only; "
        "another tool's export (prodigy, doccano, label-studio, webanno, xmi, hf-parquet, "
        "spacy) as it comes, its .zip included.",
    )
    upload_round = st.session_state.get(UPLOADS_ROUND, 0)
    files = st.file_uploader(
        "Files, or a .zip of them", accept_multiple_files=True, key=f"import-files-{upload_round}"
    )
    left, right = st.columns(2)
    as_ = left.radio("Annotations become", [a.value for a in ImportAs], horizontal=True)
    annotator = left.text_input("Annotator", "import", help="Whose gold the annotations become")
    split = right.radio(
        "Split",
        [s.value for s in Split],
        horizontal=True,
        help="pool notes may be trained on; test notes only ever measure the model",
    )
    extend = right.checkbox(
        "Add labels the files use that the schema lacks", help="Otherwise such files are refused"
    )
    repair = right.checkbox(
        "Repair spans whose text differs from their offsets only in whitespace",
        help="BRAT: keep the offsets (a trailing \\r, a line break) and say so; otherwise "
        "such a file is refused",
    )
    split_file = st.file_uploader(
        'Split file (optional): {"train": [ids], "test": [ids]}',
        type=["json"],
        key=f"split-file-{upload_round}",
    )
    max_mb = st.number_input(
        "Refuse files larger than (MB)", 1, 2000, round(megabytes(DEFAULT_MAX_BYTES))
    )
    if st.form_submit_button("Import", type="primary"):
        st.session_state.pop(REPORT, None)
        if not files:
            st.error(f"Choose the files to import first ({', '.join(SUFFIXES[fmt])} or .zip).")
        else:
            options = ImportOptions(
                fmt, ImportAs(as_), annotator.strip() or "import", Split(split),
                extend_schema=extend, max_bytes=bytes_of(max_mb), repair=repair,
            )  # fmt: skip
            uploads = [Upload(f.name, f.getvalue()) for f in files]
            split_upload = Upload(split_file.name, split_file.getvalue()) if split_file else None
            try:
                result = import_uploads(
                    make_session, project_name, uploads, options, split_upload, by=page.user
                )
            except NoteloopError as exc:
                st.error(f"Nothing imported: {md(exc)}")
            else:
                st.session_state[REPORT] = (result, fmt)
                st.session_state[UPLOADS_ROUND] = upload_round + 1
                st.rerun()  # draw the emptied uploaders now, with the report below them
with import_tab:
    if REPORT in st.session_state:
        show_report(*st.session_state[REPORT])
    else:
        show_last_import()

with export_tab:
    out_fmt = st.selectbox("Format", list(WRITERS), key="export-format")
    who = st.text_input("Only this annotator's gold", help="Empty: each note's newest gold")
    out_split = st.selectbox("Notes", ["all", *[s.value for s in Split]])
    without_text = st.checkbox("Annotations only, without the note text (brat, jsonl)")
    if st.button("Prepare the export"):
        st.session_state.pop(ARCHIVE, None)
        export_options = ExportOptions(
            out_fmt,
            who.strip() or None,
            not without_text,
            None if out_split == "all" else Split(out_split),
        )
        try:
            with make_session() as session:
                st.session_state[ARCHIVE] = export_archive(session, project_name, export_options)
        except NoteloopError as exc:
            st.error(f"Nothing exported: {md(exc)}")
    archive = st.session_state.get(ARCHIVE)
    if archive is not None:
        st.caption(archive.summary)
        st.download_button(
            f"Download {archive.file_name}", archive.data, archive.file_name, "application/zip"
        )
