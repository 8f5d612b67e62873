"""Bad input is refused whole, with every bad line named, and the database is untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from noteloop.core.schema import AttributeType, EntityType, LabelSchema, RelationType
from noteloop.db import models, projects, suggestions
from noteloop.usecases.import_export import ImportAs, ImportOptions, import_path

pytestmark = pytest.mark.both_databases

SCHEMA = LabelSchema(
    (EntityType("Drug"), EntityType("Problem")),
    (RelationType("treats", heads=("Drug",), tails=("Problem",)),),
    (AttributeType("negated"), AttributeType("Polarity", ("NEG", "POS"))),
)
TEXT = "aspirin for headache"
GOOD_SPANS = [
    {"id": "T1", "start": 0, "end": 7, "label": "Drug"},
    {"id": "T2", "start": 12, "end": 20, "label": "Problem"},
]


def line(doc_id: str = "n1", text: str = TEXT, spans=None, relations=None, **extra) -> str:
    body = {"id": doc_id, "text": text, "spans": GOOD_SPANS if spans is None else spans}
    body["relations"] = relations or []
    return json.dumps({**body, **extra})


@pytest.fixture
def project(make_session):
    with make_session.begin() as session:
        projects.create_project(session, "p", SCHEMA)
    return "p"


def counts(make_session) -> tuple[int, ...]:
    with make_session() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(table))
            for table in (
                models.Document,
                models.Annotation,
                models.Span,
                models.Relation,
                models.Suggestion,
            )
        )


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def jsonl(tmp_path: Path, *lines: str) -> Path:
    return write(tmp_path, "in.jsonl", "\n".join(lines) + "\n")


def brat(tmp_path: Path, ann: str, text: str = TEXT) -> Path:
    write(tmp_path / "brat", "n1.txt", text)
    write(tmp_path / "brat", "n1.ann", ann)
    return tmp_path / "brat"


BAD_INPUTS = {
    "non-utf8": (
        lambda t: write(t, "in.jsonl", b'{"id": "n1", "text": "caf\xe9"}\n'),
        "jsonl",
        r"not valid UTF-8",
    ),
    "binary": (
        lambda t: write(t, "in.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        "jsonl",
        r"binary",
    ),
    "empty": (lambda t: write(t, "in.jsonl", ""), "jsonl", r"empty"),
    "whitespace-only": (lambda t: write(t, "in.jsonl", "\n\n  \n"), "jsonl", r"empty"),
    "offsets-beyond-text": (
        lambda t: jsonl(t, line(spans=[{"id": "T1", "start": 12, "end": 99, "label": "Problem"}])),
        "jsonl",
        r"99.*beyond|beyond.*99",
    ),
    "text-disagrees": (
        lambda t: jsonl(
            t,
            line(spans=[{"id": "T1", "start": 0, "end": 7, "label": "Drug", "text": "ibuprofen"}]),
        ),
        "jsonl",
        r"ibuprofen",
    ),
    "relation-unknown-id": (
        lambda t: jsonl(
            t, line(relations=[{"id": "R1", "label": "treats", "head": "T1", "tail": "T7"}])
        ),
        "jsonl",
        r"T7",
    ),
    "relation-forbidden": (
        lambda t: jsonl(
            t, line(relations=[{"id": "R1", "label": "treats", "head": "T2", "tail": "T1"}])
        ),
        "jsonl",
        r"treats is not allowed from Problem to Drug",
    ),
    "duplicate-span-ids": (
        lambda t: jsonl(t, line(spans=[GOOD_SPANS[0], {**GOOD_SPANS[1], "id": "T1"}])),
        "jsonl",
        r"[Dd]uplicate.*T1|T1.*duplicate",
    ),
    "duplicate-doc-ids": (
        lambda t: jsonl(t, line("n1"), line("n1", text="other text")),
        "jsonl",
        r"n1",
    ),
    "truncated-line": (
        lambda t: jsonl(t, line("n1"), line("n2", text="second note")[:-9]),
        "jsonl",
        r"JSON",
    ),
    "not-an-object": (lambda t: jsonl(t, "[1, 2, 3]"), "jsonl", r"object"),
    "missing-text": (lambda t: jsonl(t, json.dumps({"id": "n1"})), "jsonl", r"text"),
    "negative-offset": (
        lambda t: jsonl(t, line(spans=[{"id": "T1", "start": -3, "end": 7, "label": "Drug"}])),
        "jsonl",
        r"-3",
    ),
    "start-after-end": (
        lambda t: jsonl(t, line(spans=[{"id": "T1", "start": 7, "end": 2, "label": "Drug"}])),
        "jsonl",
        r"start",
    ),
    "offset-not-integer": (
        lambda t: jsonl(t, line(spans=[{"id": "T1", "start": "zero", "end": 7, "label": "Drug"}])),
        "jsonl",
        r"start",
    ),
    "label-outside-schema": (
        lambda t: jsonl(t, line(spans=[{"id": "T1", "start": 0, "end": 7, "label": "Gene"}])),
        "jsonl",
        r"'Gene' is not in the schema.*--extend-schema",
    ),
    "attribute-value-refused": (
        lambda t: jsonl(t, line(spans=[{**GOOD_SPANS[0], "attributes": {"Polarity": "MAYBE"}}])),
        "jsonl",
        r"Polarity does not accept value 'MAYBE'",
    ),
    "huge-file": (
        lambda t: write(t, "in.jsonl", line() + "\n" + " " * (50 * 1024 * 1024)),
        "jsonl",
        r"file is 50.0 MB, over the 20 MB limit",
    ),
    "missing-path": (lambda t: t / "nowhere.jsonl", "jsonl", r"no such file"),
    "brat-malformed-t-line": (lambda t: brat(t, "T1\tDrug zero 7\taspirin\n"), "brat", r"n1.ann:1"),
    "brat-unknown-line": (
        lambda t: brat(t, "T1\tDrug 0 7\taspirin\nQ9\twhat\n"),
        "brat",
        r"n1.ann:2",
    ),
    "brat-text-mismatch": (lambda t: brat(t, "T1\tDrug 0 7\tibuprofen\n"), "brat", r"ibuprofen"),
    "brat-ann-without-txt": (
        lambda t: write(t / "orphan", "n9.ann", "T1\tDrug 0 7\taspirin\n").parent,
        "brat",
        r"n9",
    ),
    "csv-missing-column": (lambda t: write(t, "in.csv", "id,body\nn1,hello\n"), "csv", r"text"),
    "csv-duplicate-ids": (
        lambda t: write(t, "in.csv", "id,text\nn1,hello\nn1,again\n"),
        "csv",
        r"n1",
    ),
    "pubtator-bad-offsets": (
        lambda t: write(
            t, "in.pubtator", "1|t|Aspirin\n1|a|for headache\n1\tx\t7\tAspirin\tChemical\tD001\n"
        ),
        "pubtator",
        r"in.pubtator:3",
    ),
    "bioc-malformed-xml": (
        lambda t: write(t, "in.xml", "<?xml version='1.0'?><collection><document><id>1</id>"),
        "bioc",
        r"in.xml",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_refused_and_changes_nothing(case, tmp_path, make_session, project):
    make_file, fmt, pattern = BAD_INPUTS[case]
    # A good file already imported must survive every refused one.
    import_path(make_session, project, jsonl(tmp_path / "ok", line("kept")), ImportOptions("jsonl"))
    before = counts(make_session)
    report = import_path(make_session, project, make_file(tmp_path), ImportOptions(fmt))
    assert not report.ok, f"{case} was accepted"
    assert report.documents_added == 0
    assert any(__import__("re").search(pattern, str(e)) for e in report.refused), report.refused
    assert counts(make_session) == before


def test_every_bad_line_is_reported_and_good_lines_of_the_file_are_not_imported(
    tmp_path, make_session, project
):
    path = jsonl(
        tmp_path,
        line("a"),
        line("b", spans=[{"id": "T1", "start": 0, "end": 50, "label": "Drug"}]),
        line("c"),
        "{broken",
        line("e", spans=[{"id": "T1", "start": 0, "end": 7, "label": "Gene"}]),
    )
    report = import_path(make_session, project, path, ImportOptions("jsonl"))
    assert sorted(e.line for e in report.refused) == [2, 4, 5]
    assert all(e.path == str(path) for e in report.refused)
    assert counts(make_session) == (0, 0, 0, 0, 0)


def test_other_files_of_a_folder_import_while_the_bad_one_is_refused(
    tmp_path, make_session, project
):
    folder = tmp_path / "brat"
    write(folder, "good.txt", TEXT)
    write(
        folder,
        "good.ann",
        "T1\tDrug 0 7\taspirin\nT2\tProblem 12 20\theadache\nR1\ttreats Arg1:T1 Arg2:T2\n",
    )
    write(folder, "bad.txt", TEXT)
    write(folder, "bad.ann", "T1\tDrug 0 7\taspirin\nR1\ttreats Arg1:T1 Arg2:T5\n")
    report = import_path(make_session, project, folder, ImportOptions("brat"))
    assert report.refused_files() == [str(folder / "bad.ann")] or report.refused_files() == [
        str(folder / "bad.txt")
    ]
    assert report.files_imported == [str(folder / "good.txt")]
    assert counts(make_session)[:4] == (1, 1, 2, 1)


def test_repair_keeps_offsets_that_differ_only_in_whitespace_and_an_empty_note_is_skipped(
    tmp_path, make_session, project
):
    folder = tmp_path / "brat"
    write(folder, "cr.txt", "aspirin\r\nfor headache")
    write(folder, "cr.ann", "T1\tDrug 0 8\taspirin\nT2\tProblem 13 21\theadache\n"
                            "R1\ttreats Arg1:T1 Arg2:T2\n")
    write(folder, "empty.txt", "")
    write(folder, "empty.ann", "")
    plain = import_path(make_session, project, folder, ImportOptions("brat"))
    assert plain.refused_files() == [str(folder / "cr.ann")]
    assert [str(n) for n in plain.notes] == [f"{folder / 'empty.txt'}: skipped: the text is empty"]
    assert counts(make_session)[:4] == (0, 0, 0, 0)
    mended = import_path(make_session, project, folder, ImportOptions("brat", repair=True))
    assert mended.ok and counts(make_session)[:4] == (1, 1, 2, 1)
    (note,) = [n for n in mended.notes if "repaired" in n.reason]
    assert (note.path, note.line) == (str(folder / "cr.ann"), 1)
    assert "text 'aspirin' differs from the 'aspirin\\r' its offsets cover" in note.reason
    with make_session() as session:
        starts = sorted(session.scalars(select(models.Span.end)))
    assert starts == [8, 21]  # the offsets as the file gave them


def test_txt_refuses_each_file_of_another_format_and_imports_the_notes(
    tmp_path, make_session, project
):
    folder = tmp_path / "notes"
    write(folder, "a.txt", TEXT)
    write(folder, "b.ann", "T1\tDrug 0 7\taspirin\n")
    write(folder, "c.jsonl", line("c") + "\n")
    write(folder, "d.xml", "<collection/>")
    report = import_path(make_session, project, folder, ImportOptions("txt"))
    assert [str(e) for e in report.refused] == [
        f"{folder}/b.ann: a BRAT annotation file, not a plain-text note: "
        "import the folder with --format brat",
        f"{folder}/c.jsonl: a JSON Lines file, not a plain-text note: "
        "import it with --format jsonl",
        f"{folder}/d.xml: an XML file, not a plain-text note: import it with --format bioc",
    ]
    assert report.files_imported == [str(folder / "a.txt")]
    assert counts(make_session)[0] == 1


def test_txt_of_a_brat_folder_takes_the_notes_and_leaves_the_pairs_ann(
    tmp_path, make_session, project
):
    folder = brat(tmp_path, "T1\tDrug 0 7\taspirin\n")
    write(folder, "unannotated.txt", "headache again")
    report = import_path(make_session, project, folder, ImportOptions("txt"))
    assert report.ok, report.refused
    assert report.files_imported == [str(folder / "n1.txt"), str(folder / "unannotated.txt")]
    assert counts(make_session)[:2] == (2, 0)


def test_duplicates_by_hash_are_skipped_and_extend_schema_adds_labels(
    tmp_path, make_session, project
):
    first = import_path(make_session, project, jsonl(tmp_path, line("a")), ImportOptions("jsonl"))
    assert first.documents_added == 1
    again = import_path(
        make_session, project, jsonl(tmp_path / "2", line("renamed")), ImportOptions("jsonl")
    )
    assert again.ok and again.documents_added == 0 and again.duplicates[0][0] == "renamed"
    gene = line(
        "g", text="BRCA1 mutation", spans=[{"id": "T1", "start": 0, "end": 5, "label": "Gene"}]
    )
    extended = import_path(
        make_session,
        project,
        jsonl(tmp_path / "3", gene),
        ImportOptions("jsonl", extend_schema=True),
    )
    assert extended.ok and extended.labels_added == ["Gene"]
    with make_session() as session:
        schema = projects.project_schema(projects.get_project(session, project))
        assert "Gene" in schema.entity_names


def test_suggestions_import_apart_from_gold(tmp_path, make_session, project):
    spans = [{**GOOD_SPANS[0], "score": 0.25}, GOOD_SPANS[1]]
    rel = [{"id": "R1", "label": "treats", "head": "T1", "tail": "T2", "score": 0.5}]
    path = jsonl(tmp_path, line(spans=spans, relations=rel))
    report = import_path(
        make_session, project, path, ImportOptions("jsonl", as_=ImportAs.SUGGESTIONS)
    )
    assert report.ok and report.suggestions_added == 3
    assert counts(make_session) == (1, 0, 0, 0, 3)
    with make_session() as session:
        doc_id = session.scalar(select(models.Document.id))
        scores = sorted(s.score for s in suggestions.suggestions_for(session, doc_id))
    assert scores == [0.25, 0.5, 1.0]
