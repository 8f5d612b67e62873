"""Uploaded files imported through transfer.import_path, and the export as a zip."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from noteloop.core.formats.common import DEFAULT_MAX_BYTES, bytes_of, megabytes
from noteloop.core.schema import LabelSchema
from noteloop.db import documents, gold, projects
from noteloop.usecases import uploads as uploads_module
from noteloop.usecases.import_export import ExportOptions, ImportOptions
from noteloop.usecases.uploads import Upload, export_archive, import_uploads

pytestmark = pytest.mark.both_databases

SCHEMA = LabelSchema.from_dict({"entity_types": ["Drug", "Problem"]})
PAIR = {
    "n1.txt": b"Metformin for diabetes.\n",
    "n1.ann": b"T1\tDrug 0 9\tMetformin\nT2\tProblem 14 22\tdiabetes\n",
}


@pytest.fixture
def project(make_session):
    with make_session.begin() as session:
        projects.create_project(session, "p", SCHEMA)
    return "p"


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def count_documents(make_session) -> int:
    with make_session() as session:
        return len(documents.documents(session, projects.get_project(session, "p")))


def test_loose_brat_files_are_paired(make_session, project):
    uploads = [Upload(name, data) for name, data in PAIR.items()]
    result = import_uploads(make_session, project, uploads, ImportOptions("brat"), by="test")
    assert result.report.ok, result.report.refused
    assert (result.report.documents_added, result.report.annotations_saved) == (1, 1)
    assert result.report.files_imported == ["n1.txt"]


def test_a_brat_upload_without_ann_files_is_refused_with_the_reason(make_session, project):
    result = import_uploads(
        make_session,
        project,
        [Upload("n1.txt", b"x\n")],
        ImportOptions("brat"),
        by="test",
    )
    assert [str(e) for e in result.report.refused] == [
        "n1.txt: no .ann file: brat imports .txt/.ann pairs"
    ]
    assert count_documents(make_session) == 0


def test_a_zip_member_outside_the_archive_refuses_the_whole_zip(make_session, project):
    bad = zipped({**PAIR, "../evil.txt": b"x"})
    result = import_uploads(
        make_session, project, [Upload("up.zip", bad)], ImportOptions("brat"), by="test"
    )
    assert [str(e) for e in result.report.refused] == [
        "up.zip: member '../evil.txt' points outside the archive; nothing was unpacked"
    ]
    assert count_documents(make_session) == 0


def test_a_zip_that_inflates_too_far_is_refused_before_unpacking(make_session, project):
    big = zipped({f"n{i}.txt": b"a" * 99 for i in range(60)} | {"n0.ann": b""})
    options = ImportOptions("brat", max_bytes=100)  # 50 x 100 bytes per archive at most
    result = import_uploads(make_session, project, [Upload("big.zip", big)], options, by="test")
    assert result.report.refused[0].reason == (
        "unpacks to 5940 bytes, over the 5000 bytes limit for one archive; split it"
    )


def test_txt_refuses_uploads_of_another_format_and_imports_the_notes(make_session, project):
    uploads = [Upload("a.ann", PAIR["n1.ann"]), Upload("b.txt", b"Fever."), Upload("c.csv", b"x")]
    result = import_uploads(make_session, project, uploads, ImportOptions("txt"), by="test")
    assert [str(e) for e in result.report.refused] == [
        "a.ann: a BRAT annotation file, not a plain-text note: "
        "import the folder with --format brat",
        "c.csv: a CSV file, not a plain-text note: import it with --format csv",
    ]
    assert result.report.files_imported == ["b.txt"]
    assert count_documents(make_session) == 1


def test_txt_of_a_brat_zip_imports_the_notes_and_lists_the_pairs_ann_as_not_read(
    make_session, project
):
    members = {**{f"notes/{k}": v for k, v in PAIR.items()}, "notes/x.jsonl": b"{}\n"}
    data = zipped({**members, "annotation.conf": b"[entities]\nDrug\n"})
    result = import_uploads(
        make_session, project, [Upload("c.zip", data)], ImportOptions("txt"), by="test"
    )
    assert result.report.files_imported == ["c.zip/notes/n1.txt"]
    assert [str(e) for e in result.report.refused] == [
        "c.zip/notes/x.jsonl: a JSON Lines file, not a plain-text note: "
        "import it with --format jsonl"
    ]
    assert sorted(result.ignored) == ["c.zip/annotation.conf", "c.zip/notes/n1.ann"]


def test_size_limits_are_the_megabytes_the_default_is_set_in():
    assert megabytes(DEFAULT_MAX_BYTES) == 20
    assert bytes_of(20) == DEFAULT_MAX_BYTES


def test_a_file_that_is_not_a_zip_says_so(make_session, project):
    result = import_uploads(
        make_session,
        project,
        [Upload("x.zip", b"not a zip")],
        ImportOptions("jsonl"),
        by="test",
    )
    assert result.report.refused[0].reason.startswith("not a readable zip archive")


def test_errors_and_split_file_name_the_upload(make_session, project):
    lines = [
        {
            "id": "a",
            "text": "Aspirin.",
            "spans": [{"id": "T1", "start": 0, "end": 7, "label": "Drug"}],
        },
        {
            "id": "b",
            "text": "Fever.",
            "spans": [{"id": "T1", "start": 0, "end": 5, "label": "Oops"}],
        },
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    archive = zipped({"docs/all.jsonl": data, "docs/notes.md": b"-"})
    split = Upload("splits.json", json.dumps({"train": [], "test": ["a"]}).encode())
    result = import_uploads(
        make_session,
        project,
        [Upload("c.zip", archive)],
        ImportOptions("jsonl"),
        split,
        by="test",
    )
    assert [str(e) for e in result.report.refused] == [
        "c.zip/docs/all.jsonl:2: b: span T1: entity type 'Oops' is not in the schema "
        "(let the import add it: --extend-schema, or the Data page's \"Add labels\" box)"
    ]
    assert result.ignored == ["c.zip/docs/notes.md"]
    good = zipped({"docs/all.jsonl": data.splitlines(keepends=True)[0]})
    result = import_uploads(
        make_session,
        project,
        [Upload("c.zip", good)],
        ImportOptions("jsonl"),
        split,
        by="test",
    )
    assert result.report.ok and result.report.files_imported == ["c.zip/docs/all.jsonl"]
    with make_session() as session:
        assert [
            d.id
            for d in gold.gold_documents(session, projects.get_project(session, "p"), split="test")
        ] == ["a"]


def test_a_bad_split_file_is_reported_by_its_name(make_session, project):
    uploads = [Upload(name, data) for name, data in PAIR.items()]
    split = Upload("splits.json", b'{"train": ["n1"], "test": ["n1"]}')
    result = import_uploads(make_session, project, uploads, ImportOptions("brat"), split, by="test")
    assert str(result.report.refused[0]) == "splits.json: ids in both train and test: ['n1']"


def test_export_archive_holds_what_export_project_writes(make_session, project):
    uploads = [Upload(name, data) for name, data in PAIR.items()]
    import_uploads(make_session, project, uploads, ImportOptions("brat"), by="test")
    with make_session() as session:
        archive = export_archive(session, "p", ExportOptions("brat"))
    with zipfile.ZipFile(io.BytesIO(archive.data)) as z:
        names = sorted(z.namelist())
        assert z.read("p-brat/n1.txt") == PAIR["n1.txt"]
    assert names == ["p-brat/annotation.conf", "p-brat/n1.ann", "p-brat/n1.txt"]
    assert archive.file_name == "p-brat.zip" and "in p-brat.zip" in archive.summary


@pytest.mark.parametrize("fmt", ["prodigy", "doccano", "label-studio", "webanno", "xmi",
                                 "hf-parquet"])
def test_a_zip_of_another_tools_export_imports_on_the_data_page(make_session, project, fmt):
    """The export archive of each tool's format, uploaded as it comes, gives the notes back
    (the XMI type system beside the notes, the dataset's split files, the tasks' config
    left out)."""
    uploads = [Upload(name, data) for name, data in PAIR.items()]
    import_uploads(make_session, project, uploads, ImportOptions("brat"), by="test")
    with make_session() as session:
        archive = export_archive(session, "p", ExportOptions(fmt))
    with make_session.begin() as session:
        projects.create_project(session, "q", LabelSchema())
    result = import_uploads(make_session, "q", [Upload(archive.file_name, archive.data)],
                            ImportOptions(fmt, extend_schema=True), by="test")
    assert result.report.ok, result.report.refused
    with make_session() as session:
        back = gold.gold_documents(session, projects.get_project(session, "q"))
    assert [(d.id, d.text, len(d.spans)) for d in back] == [
        ("n1", "Metformin for diabetes.\n", 2)
    ]


# --------------------------------------------------------------------------- limits


def test_a_file_over_the_limit_is_refused_naming_it(make_session, project):
    uploads = [Upload("big.txt", b"x" * 11), Upload("small.txt", b"Fever.")]
    options = ImportOptions("txt", max_bytes=10)
    result = import_uploads(make_session, project, uploads, options, by="test")
    assert [str(e) for e in result.report.refused] == [
        "big.txt: holds 11 bytes, over the 10 bytes limit for one file; nothing of it was imported"
    ]
    assert result.report.files_imported == ["small.txt"]


def test_the_servers_limits_hold_whatever_the_form_asks(make_session, project, monkeypatch):
    monkeypatch.setattr(uploads_module, "MAX_FILE_BYTES", 20)
    monkeypatch.setattr(uploads_module, "MAX_ZIP_MEMBERS", 3)
    options = ImportOptions("txt", max_bytes=bytes_of(2000))  # the form's highest
    loose = import_uploads(make_session, project, [Upload("a.txt", b"x" * 25)], options, by="t")
    assert "over the 20 bytes limit for one file" in loose.report.refused[0].reason
    members = {f"n{i}.txt": b"Fever." for i in range(4)}
    many = import_uploads(
        make_session, project, [Upload("m.zip", zipped(members))], options, by="t"
    )
    assert [str(e) for e in many.report.refused] == [
        "m.zip: holds 4 files, over the limit of 3; split it"
    ]
    big = zipped({"n1.txt": b"x" * 25})
    one = import_uploads(make_session, project, [Upload("b.zip", big)], options, by="t")
    assert [str(e) for e in one.report.refused] == [
        "b.zip: member 'n1.txt' unpacks to 25 bytes, over the 20 bytes limit for one file; "
        "nothing was unpacked"
    ]
    assert count_documents(make_session) == 0


def lying(data: bytes, size: int) -> bytes:
    """``data`` (a zip of one stored member) with headers claiming ``size`` bytes."""
    out = bytearray(data)
    local, central = out.index(b"PK\x03\x04"), out.index(b"PK\x01\x02")
    out[local + 22 : local + 26] = size.to_bytes(4, "little")
    out[central + 24 : central + 28] = size.to_bytes(4, "little")
    return bytes(out)


def test_a_zip_whose_headers_lie_about_a_size_is_refused(make_session, project):
    data = lying(zipped({"n1.txt": b"Fever and chills for three days."}), 5)
    result = import_uploads(
        make_session, project, [Upload("l.zip", data)], ImportOptions("txt"), by="t"
    )
    [error] = result.report.refused
    assert error.path == "l.zip" and error.reason.startswith("member 'n1.txt' cannot be unpacked")
    assert error.reason.endswith("nothing was unpacked")
    assert count_documents(make_session) == 0
