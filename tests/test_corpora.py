"""The public corpora go in whole and come back out identical, through the database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from noteloop.core.formats.brat import read_brat
from noteloop.core.schema import LabelSchema, Split
from noteloop.db import documents, gold, projects
from noteloop.usecases.import_export import (
    ExportOptions,
    ImportOptions,
    export_project,
    import_path,
    load_split_file,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MACCROBAT = DATA / "maccrobat2020"
BC5CDR = DATA / "bc5cdr"

pytestmark = pytest.mark.skipif(
    not MACCROBAT.is_dir(), reason="../shared/data is not beside the repo"
)


def fresh_project(make_session, name: str) -> str:
    with make_session.begin() as session:
        projects.create_project(session, name, LabelSchema())
    return name


def annotation_sets(make_session, project: str) -> dict[str, tuple]:
    with make_session() as session:
        docs = gold.gold_documents(session, projects.get_project(session, project))
    return {d.id: (d.text, d.annotation_set()) for d in docs}


def imported_maccrobat(url: str):
    """MACCROBAT imported into the database at ``url`` (200 documents, 25k spans)."""
    from noteloop.db.engine import init_db, session_factory

    make_session = session_factory(init_db(url))
    fresh_project(make_session, "mac")
    options = ImportOptions(
        "brat", extend_schema=True, split_of=load_split_file(MACCROBAT / "splits.json")
    )
    report = import_path(make_session, "mac", MACCROBAT, options)
    assert report.ok, report.refused[:5]
    return make_session, report


@pytest.fixture(scope="module")
def maccrobat_db(tmp_path_factory):
    """MACCROBAT imported once for the module, on SQLite."""
    make_session, report = imported_maccrobat(f"sqlite:///{tmp_path_factory.mktemp('db') / 'm.db'}")
    yield make_session, report
    make_session.kw["bind"].dispose()


@pytest.fixture(scope="module")
def maccrobat_postgres(postgres):
    """MACCROBAT imported once for the module, on PostgreSQL (its column types and limits
    are stricter than SQLite's: a real corpus must fit them)."""
    url = postgres.create()
    make_session, report = imported_maccrobat(url)
    yield make_session, report
    make_session.kw["bind"].dispose()
    postgres.drop(url)


@pytest.mark.parametrize("database", ["maccrobat_db", "maccrobat_postgres"])
def test_maccrobat_imports_every_document_span_relation_and_attribute(database, request):
    make_session, report = request.getfixturevalue(database)
    assert report.documents_added == 200 and report.annotations_saved == 200
    with make_session() as session:
        project = projects.get_project(session, "mac")
        stats = projects.project_stats(session, project)
        stored = {d.id: d for d in gold.gold_documents(session, project)}
        assert len(documents.documents(session, project, split=Split.TEST)) == 50
    files = {p.doc.id: p.doc for txt in sorted(MACCROBAT.glob("*.txt")) for p in read_brat(txt)}
    assert stored.keys() == files.keys()
    for doc_id, doc in files.items():
        assert stored[doc_id].text == doc.text
        assert stored[doc_id].annotation_set() == doc.annotation_set(), doc_id
    spans = [s for d in stored.values() for s in d.spans]
    assert len(spans) == 25_189
    assert sum(s.discontinuous for s in spans) == 44
    assert sum(len(d.relations) for d in stored.values()) == 16_307
    assert sum(len(d.equivalences) for d in stored.values()) == 2_023
    assert sum(len(s.attributes) for s in spans) == 1_416
    assert stats  # the stats of a real project compute


@pytest.mark.parametrize("fmt", ["brat", "jsonl", "bioc"])
def test_maccrobat_export_then_import_gives_the_identical_annotation_set(
    maccrobat_db, fmt, tmp_path
):
    make_session, _ = maccrobat_db
    with make_session() as session:
        export_project(session, "mac", tmp_path / "out", ExportOptions(fmt))
    project = fresh_project(make_session, f"again-{fmt}")
    target = {
        "brat": tmp_path / "out",
        "jsonl": tmp_path / "out" / "documents.jsonl",
        "bioc": tmp_path / "out" / "documents.bioc.xml",
    }[fmt]
    report = import_path(make_session, project, target, ImportOptions(fmt, extend_schema=True))
    assert report.ok, report.refused[:5]
    assert annotation_sets(make_session, project) == annotation_sets(make_session, "mac")
    if fmt == "brat":
        assert (tmp_path / "out" / "annotation.conf").is_file()


def test_export_without_text_leaves_the_notes_out(maccrobat_db, tmp_path):
    make_session, _ = maccrobat_db
    with make_session() as session:
        export_project(session, "mac", tmp_path, ExportOptions("jsonl", with_text=False))
    first = json.loads((tmp_path / "documents.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert "text" not in first and first["spans"] and "text" not in first["spans"][0]


@pytest.mark.both_databases
@pytest.mark.skipif(not BC5CDR.is_dir(), reason="BC5CDR not present")
def test_bc5cdr_pubtator_imports_with_the_published_counts(make_session):
    project = fresh_project(make_session, "cdr")
    totals = {"docs": 0, "Chemical": 0, "Disease": 0, "cid": 0}
    for name in ("Training", "Development", "Test"):
        path = BC5CDR / f"CDR_{name}Set.PubTator.txt"
        report = import_path(
            make_session, project, path, ImportOptions("pubtator", extend_schema=True)
        )
        assert report.ok, report.refused[:5]
        totals["docs"] += report.documents_added
    with make_session() as session:
        for doc in gold.gold_documents(session, projects.get_project(session, project)):
            for span in doc.spans:
                totals[span.label] += 1
            totals["cid"] += len([p for p in doc.metadata.get("cid", "").split(";") if p])
    assert totals == {"docs": 1500, "Chemical": 15_935, "Disease": 12_850, "cid": 3_116}
