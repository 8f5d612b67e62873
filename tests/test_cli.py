"""The noteloop command end to end: exit codes, messages, and what lands in the database."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from noteloop.cli import app
from noteloop.db import accounts, model_versions, models, projects
from noteloop.db.engine import init_db, session_factory

pytestmark = pytest.mark.both_databases

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_notes"
runner = CliRunner()


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "cli.db")


def invoke(db: str, *args: str):
    return runner.invoke(app, [*args, "--db", db], catch_exceptions=False)


def test_project_import_stats_export(db, tmp_path):
    assert invoke(db, "init").exit_code == 0
    created = invoke(db, "project", "create", "demo", "--schema", str(SAMPLE / "schema.json"))
    assert created.exit_code == 0, created.output
    assert "7 entity types, 5 relation types" in created.output
    imported = invoke(
        db,
        "import",
        str(SAMPLE / "notes"),
        "--project",
        "demo",
        "--format",
        "brat",
        "--split-file",
        str(SAMPLE / "splits.json"),
        "--annotator",
        "gold",
    )
    assert imported.exit_code == 0, imported.output
    stats = invoke(db, "stats", "--project", "demo")
    assert stats.exit_code == 0 and "Drug" in stats.output
    out = tmp_path / "export"
    exported = invoke(db, "export", "--project", "demo", "--format", "conll", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert (out / "documents.conll").read_text(encoding="utf-8").count("B-Drug") > 20


def test_a_setting_out_of_range_is_a_one_line_error(db):
    assert invoke(db, "init").exit_code == 0
    assert invoke(db, "project", "create", "p").exit_code == 0
    notes = ["import", str(SAMPLE / "notes"), "--project", "p", "--format", "brat",
             "--extend-schema"]
    assert invoke(db, *notes).exit_code == 0
    result = invoke(db, "train", "--project", "p", "--lora-r", "-2")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == "error: `lora_r` must be >= 1, got -2"


def test_demo_seeds_from_any_folder_or_says_where_to_point_it(db, tmp_path, monkeypatch):
    from noteloop.usecases import demo

    monkeypatch.chdir(tmp_path)  # no sample_notes/ here: the checkout's are found
    seeded = invoke(db, "demo")
    assert seeded.exit_code == 0 and "25 annotated notes" in seeded.output
    monkeypatch.setattr(demo, "CHECKOUT", tmp_path / "installed")  # no checkout either
    refused = runner.invoke(app, ["demo", "--db", db, "--name", "other"])
    assert refused.exit_code == 1
    assert "pass --sample-notes PATH/TO/noteloop/sample_notes" in " ".join(refused.output.split())


def test_bad_file_exits_nonzero_with_every_line(db, tmp_path):
    invoke(db, "project", "create", "p")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{oops\n{"id": "c"}\n', encoding="utf-8")
    result = invoke(db, "import", str(bad), "-p", "p", "-f", "jsonl")
    assert result.exit_code == 1
    assert "bad.jsonl:2" in result.output and "bad.jsonl:3" in result.output
    assert "nothing of them imported" in result.output


def test_unknown_project_format_and_schema_are_clear_errors(db, tmp_path):
    unknown_format = invoke(db, "import", str(tmp_path), "-p", "p", "-f", "docx")
    assert unknown_format.exit_code == 2 and "unknown format 'docx'" in unknown_format.output
    invoke(db, "project", "create", "known")
    missing = invoke(db, "export", "-p", "nope", "-f", "jsonl", "--out", str(tmp_path))
    assert missing.exit_code == 1 and "nope" in missing.output and "known" in missing.output
    bad_schema = tmp_path / "schema.json"
    bad_schema.write_text(
        json.dumps({"entity_types": [{"name": "A", "hotkey": "x"}, {"name": "B", "hotkey": "x"}]})
    )
    refused = invoke(db, "project", "create", "q", "--schema", str(bad_schema))
    assert refused.exit_code == 1 and "hotkey" in refused.output
    no_text = invoke(
        db, "export", "-p", "known", "-f", "conll", "--out", str(tmp_path), "--without-text"
    )
    assert no_text.exit_code == 1 and "--without-text" in no_text.output


def test_schema_from_brat_annotation_conf(db, tmp_path):
    conf = tmp_path / "annotation.conf"
    conf.write_text(
        "[entities]\nDrug\nProblem\n[relations]\ntreats Arg1:Drug, Arg2:Problem\n"
        "[events]\n[attributes]\nNegated Arg:<ENTITY>\n",
        encoding="utf-8",
    )
    assert invoke(db, "project", "create", "b", "--schema", str(conf)).exit_code == 0
    with session_factory(init_db(f"sqlite:///{db}"))() as session:
        schema = projects.project_schema(projects.get_project(session, "b"))
    assert schema.entity_names == ["Drug", "Problem"]
    assert schema.relation("treats").allows("Drug", "Problem")
    assert not schema.relation("treats").allows("Problem", "Drug")


def test_users_and_demo_seed_are_idempotent(db):
    added = invoke(db, "user", "add", "ann", "--role", "annotator", "--password", "s3cret-horse!")
    assert added.exit_code == 0
    assert invoke(db, "user", "add", "ann", "--role", "lead").exit_code == 1
    first = invoke(db, "demo", "--sample-notes", str(SAMPLE))
    assert first.exit_code == 0, first.output
    assert "password" in first.output
    second = invoke(db, "demo", "--sample-notes", str(SAMPLE))
    assert second.exit_code == 0 and "already seeded" in second.output
    with session_factory(init_db(f"sqlite:///{db}"))() as session:
        stats = projects.project_stats(session, projects.get_project(session, "demo"))
        assert accounts.authenticate(session, "ann", "s3cret-horse!") is not None
        assert accounts.authenticate(session, "ann", "wrong") is None
    assert sum(stats["documents"].values()) == 68
    assert stats["documents"]["test"] == 6 and stats["submitted"] == 25


def audit_rows(db: str) -> list[tuple[str, str, str]]:
    with session_factory(init_db(f"sqlite:///{db}"))() as session:
        rows = session.scalars(select(models.AuditLog).where(models.AuditLog.entity == "users"))
        return [(row.user, row.action, row.after and row.after.get("role")) for row in rows]


def test_user_add_writes_the_audit_row_the_users_page_writes(db):
    invoke(db, "project", "create", "p")
    added = invoke(db, "user", "add", "ann", "--password", "s3cret-horse!", "-p", "p")
    assert added.exit_code == 0, added.output
    assert audit_rows(db) == [("cli", "add_user", "annotator")]
    empty = invoke(db, "user", "add", "bob", "--password", " ")
    assert empty.exit_code == 2
    assert empty.output.strip() == (
        "error: --password must not be empty; leave it out to get a random one"
    )
    unknown = invoke(db, "user", "add", "cy", "-p", "nope")
    assert unknown.exit_code == 1 and "nope" in unknown.output
    assert len(unknown.output.strip().splitlines()) == 1  # one line, no traceback


def test_user_list_shows_role_activity_projects_and_creation(db):
    invoke(db, "project", "create", "p")
    invoke(db, "project", "create", "q")
    invoke(db, "user", "add", "ann", "-p", "p", "-p", "q")
    invoke(db, "user", "add", "lea", "--role", "lead")
    listed = runner.invoke(app, ["user", "list", "--db", db], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    rows = [cells(line) for line in listed.output.splitlines() if len(cells(line)) == 5]
    assert rows[0] == ["name", "role", "active", "projects", "created"]
    assert [row[:4] for row in rows[1:]] == [
        ["ann", "annotator", "yes", "p, q"],
        ["lea", "lead", "yes", ""],
    ]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", row[4]) for row in rows[1:])


def cells(line: str) -> list[str]:
    """The cells of a row of the table the CLI prints (rich draws │ and ┃ between them)."""
    return [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]


def test_user_reset_password_prints_a_random_one_once_and_audits_it(db):
    invoke(db, "user", "add", "ann", "--password", "old-password-1")
    chosen = invoke(db, "user", "reset-password", "ann", "--password", "new-password-1")
    assert chosen.exit_code == 0 and chosen.output.strip() == "password of ann reset"
    drawn = invoke(db, "user", "reset-password", "ann")
    assert drawn.exit_code == 0
    secret = re.fullmatch(r"password of ann reset to (\S+)", drawn.output.strip()).group(1)
    with session_factory(init_db(f"sqlite:///{db}"))() as session:
        assert accounts.authenticate(session, "ann", secret) is not None
        assert accounts.authenticate(session, "ann", "new-password-1") is None
    assert [a for a in audit_rows(db) if a[1] == "reset_password"] == [
        ("cli", "reset_password", None), ("cli", "reset_password", None),
    ]  # fmt: skip
    unknown = invoke(db, "user", "reset-password", "nobody")
    assert unknown.exit_code == 1 and unknown.output.strip() == "error: no user named 'nobody'"
    empty = invoke(db, "user", "reset-password", "ann", "--password", "")
    assert empty.exit_code == 2 and "must not be empty" in empty.output


# --------------------------------------------------------------------------- model versions


@pytest.fixture
def versions(db, monkeypatch) -> str:
    """Project p with v1 (F1 0.639, int8 within the tolerance), v2 (0.580, a candidate,
    int8 not), a pending v3; v1 serves."""
    from noteloop import cli
    from noteloop.core.model.base import Int8Check
    from noteloop.core.schema import LabelSchema
    from noteloop.db import serving

    for shown in (cli.console, cli.err_console):  # wide enough for a table row on one line
        monkeypatch.setattr(shown, "width", 300)
    evaluation = {
        "n_docs": 6,
        "entity": {"strict": {"f1": 0.639}, "lenient": {"f1": 0.7}},
        "relation": {"micro": {"f1": 0.31}},
        "ci": {"entity_strict": [0.612, 0.668]},
    }
    with session_factory(init_db(f"sqlite:///{db}")).begin() as session:
        p = projects.create_project(session, "p", LabelSchema())
        for name, f1, int8_f1, status in (
            ("v1", 0.639, 0.637, "ready"),
            ("v2", 0.58, 0.571, "ready"),
            ("v3", None, None, "pending"),
        ):
            ev = {**evaluation, "entity": {"strict": {"f1": f1}}} if f1 else None
            int8 = Int8Check(6, f1, int8_f1).to_dict() if f1 else None
            model_versions.register_model_version(
                session,
                p,
                name=name,
                backend="encoder",
                path="/x",
                metrics={"evaluation": ev, "train": {"int8_check": int8} if int8 else {}},
                n_train_docs=19,
                status=status,
            )
        serving.use_version(session, p, "v1", "rule ci", "the project's first trained version")
        version = session.scalars(
            select(models.ModelVersion).where(models.ModelVersion.name == "v2")
        ).one()
        version.verdict = "candidate: below v1's interval"
    return db


def row_of(output: str, name: str) -> str:
    (line,) = [line for line in output.splitlines() if f" {name} " in line]
    return line


def test_model_list_shows_scores_the_serving_version_and_verdicts(versions):
    listed = invoke(versions, "model", "list", "--project", "p")
    assert listed.exit_code == 0, listed.output
    assert "0.639 (0.612-0.668)" in row_of(listed.output, "v1")
    assert " serving " in row_of(listed.output, "v1")
    v2 = row_of(listed.output, "v2")
    assert "0.580" in v2 and "serving" not in v2 and "candidate: below v1's interval" in v2
    assert "pending" in row_of(listed.output, "v3")


def test_model_list_says_whether_int8_kept_the_f1(versions):
    listed = invoke(versions, "model", "list", "--project", "p").output
    assert "passed: 0.637 (-0.002), int8" in row_of(listed, "v1")
    assert "failed: 0.571 (-0.009), float" in row_of(listed, "v2")
    assert "passed" not in row_of(listed, "v3") and "failed" not in row_of(listed, "v3")


def test_model_use_serves_a_version_and_queues_a_predict_job(versions):
    used = invoke(versions, "model", "use", "v2", "--project", "p", "--reason", "v1 overfits")
    assert used.exit_code == 0, used.output
    assert used.output.strip() == (
        "v2 serves project p now; predict job 1 queued (`noteloop worker` suggests for the "
        "pool with it)"
    )
    with session_factory(init_db(f"sqlite:///{versions}"))() as session:
        row = session.scalars(select(models.ServingModel)).one()
        job = session.scalars(select(models.TrainingJob)).one()
        assert (row.chosen_by, row.reason) == ("cli", "v1 overfits")
        assert session.get(models.ModelVersion, row.model_version_id).name == "v2"
    assert (job.kind, job.status, job.reason) == ("predict", "queued", "cli chose v2")
    assert " serving " in row_of(invoke(versions, "model", "list", "-p", "p").output, "v2")
    listed_jobs = invoke(versions, "jobs", "-p", "p")
    assert "predict" in row_of(listed_jobs.output, "1") and "queued" in listed_jobs.output


def test_model_use_refusals_are_one_line_errors(versions):
    unknown = invoke(versions, "model", "use", "v9", "-p", "p")
    assert unknown.exit_code == 1
    assert unknown.output.strip() == (
        "error: project p has no model version 'v9'; its versions: v3, v2, v1"
    )
    pending = invoke(versions, "model", "use", "v3", "-p", "p")
    assert pending.exit_code == 1 and len(pending.output.strip().splitlines()) == 1
    assert pending.output.startswith("error: model version v3 is pending, not ready")
    no_project = invoke(versions, "model", "use", "v1", "-p", "nope")
    assert no_project.exit_code == 1 and no_project.output.startswith("error: ")
    assert "nope" in no_project.output


def test_names_print_as_typed_never_as_console_markup(db):
    assert invoke(db, "init").exit_code == 0
    name = "[red]evil[/red]_[x](http://a)"
    created = invoke(db, "user", "add", name, "--password", "a long enough password")
    assert created.exit_code == 0, created.output
    assert name in created.output
    listed = invoke(db, "user", "list")
    assert "[red]evil[/red]" in listed.output  # a table cell may wrap the rest
