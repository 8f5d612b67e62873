"""Every page as every role that may see it, over the seeded demo: what each one shows,
what its buttons write, and what a bad input is told (with nothing saved)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from app_helpers import PAGES, USERS, app_as, page_as
from sqlalchemy import func, select

from noteloop.core.schema import Role
from noteloop.db import accounts, documents, gold, jobs, model_versions, models, projects, serving
from noteloop.db.engine import make_engine, session_factory

ANNOTATOR_PAGES = ["annotate.py", "queue.py"]
LEAD_PAGES = ["overview.py", "model.py", "data.py", "documents.py", "schema.py"]
LEAD_PAGES += [p for p in ("dashboard.py", "adjudicate.py") if (PAGES / p).exists()]
ALLOWED = {
    "annotator": ANNOTATOR_PAGES,
    "lead": ANNOTATOR_PAGES + LEAD_PAGES,
    "admin": [*ANNOTATOR_PAGES, *LEAD_PAGES, "users.py"],
}
# What each page shows on the seeded demo (pages written elsewhere: no exception only).
SHOWS = {
    "annotate.py": lambda at: "Get the next note" in {b.label for b in at.button},
    "queue.py": lambda at: at.title[0].value == "Queue",
    "overview.py": lambda at: at.title[0].value == "Project demo",
    "model.py": lambda at: {"Train now", "Save settings"} <= {b.label for b in at.button},
    "data.py": lambda at: [t.label for t in at.tabs] == ["Import", "Export"],
    "documents.py": lambda at: len(at.text[0].value) > 100,  # the first note, as text
    "schema.py": lambda at: "Drug" in at.dataframe[0].value["name"].tolist(),
    "users.py": lambda at: {"ann", "lea", "adm", "admin"} <= set(at.dataframe[0].value["user"]),
}
EVALUATION = {
    "n_docs": 6,
    "entity": {"strict": {"f1": 0.61}, "lenient": {"f1": 0.74}},
    "relation": {"micro": {"f1": 0.33}},
}


@pytest.fixture
def sessions(demo_db):
    engine = make_engine(demo_db)
    yield session_factory(engine)
    engine.dispose()


def labelled(elements: Any, label: str) -> Any:
    found = [e for e in elements if e.label == label]
    assert found, f"no element labelled {label!r} among {[e.label for e in elements]}"
    return found[0]


def click(at: Any, label: str, block: Any = None) -> Any:
    labelled((block or at).button, label).click()
    return at.run()


@pytest.mark.parametrize(
    ("role", "page"), [(role, page) for role, pages in ALLOWED.items() for page in pages]
)
def test_every_page_renders_for_every_role_that_may_see_it(demo_db, role, page):
    at = page_as(role, page)
    assert not at.exception, at.exception
    if page in SHOWS:
        assert SHOWS[page](at), f"{page} as {role} does not show what it should"


@pytest.mark.parametrize(
    ("role", "page"),
    [("annotator", p) for p in [*LEAD_PAGES, "users.py"]] + [("lead", "users.py")],
)
def test_pages_outside_the_role_are_not_registered(demo_db, role, page):
    at = app_as(USERS[role][0], role)
    with pytest.raises(ValueError, match="Known pages"):
        at.switch_page(str(PAGES / page))


def test_a_role_is_read_from_the_database_at_every_run(demo_db, sessions):
    at = app_as("lea", "lead")
    at.switch_page(str(PAGES / "model.py")).run()
    with sessions.begin() as session:
        accounts.get_user(session, "lea").role = Role.ANNOTATOR.value
    at.run()  # the next click: the model page is no longer registered for lea
    assert at.session_state["user"]["role"] == "annotator"
    with pytest.raises(ValueError, match="Known pages"):
        at.switch_page(str(PAGES / "model.py"))
    with sessions.begin() as session:
        accounts.get_user(session, "lea").active = False
    at.run()
    assert "user" not in at.session_state  # deactivated: logged out
    assert at.button[0].label == "Log in"


# --------------------------------------------------------------------------- model


def register_version(
    sessions, name: str = "v-test", backend: str = "encoder", verdict: str = "", train=None
) -> None:
    with sessions.begin() as session:
        version = model_versions.register_model_version(
            session,
            projects.get_project(session, "demo"),
            name=name,
            backend=backend,
            path="/nowhere",
            metrics={"evaluation": EVALUATION, **({"train": train} if train else {})},
            n_train_docs=19,
        )
        version.verdict = verdict


def serve(sessions, name: str) -> None:
    with sessions.begin() as session:
        serving.use_version(session, projects.get_project(session, "demo"), name, "lea", "")


def test_model_page_lists_versions_with_their_scores(demo_db, sessions):
    register_version(sessions, "v-old", train={"epochs": 24, "warm_from": ""})
    register_version(sessions, "v-new", verdict="serves: the project's first trained version",
                     train={"epochs": 3, "warm_from": "/models/demo/v-old"})
    register_version(sessions, "import:file.jsonl", backend="import")
    serve(sessions, "v-new")
    at = page_as("lead", "model.py")
    rows = at.dataframe[0].value.to_dict("records")
    assert [r["version"] for r in rows] == ["import:file.jsonl", "v-new", "v-old"]
    assert [r["serving"] for r in rows] == ["", "yes", ""]  # an import does not predict
    assert rows[1]["entity F1 (strict)"] == "0.610"
    assert (rows[1]["relation F1"], rows[1]["train notes"], rows[1]["test notes"]) == (
        "0.330", 19, 6,
    )  # fmt: skip
    assert rows[1]["verdict"] == "serves: the project's first trained version"
    assert [r["trained from"] for r in rows] == ["", "v-old", "base model"]
    assert "v-new" in at.caption[0].value


def test_model_page_serves_a_chosen_version_and_queues_the_pool_for_it(demo_db, sessions):
    register_version(sessions, "v1")
    register_version(sessions, "v2", verdict="candidate: below v1's interval")
    register_version(sessions, "import:file.jsonl", backend="import")
    serve(sessions, "v1")
    at = page_as("lead", "model.py")
    chosen = labelled(at.selectbox, "Version to serve")
    assert chosen.options == ["v2", "v1"] and chosen.value == "v1"  # an import cannot serve
    assert at.dataframe[0].value.to_dict("records")[1]["verdict"] == (
        "candidate: below v1's interval"
    )
    chosen.set_value("v2")
    labelled(at.text_input, "Reason (optional)").set_value("v2 finds the doses")
    at = click(at, "Serve this version")
    assert not at.exception and not at.error
    with sessions() as session:
        row = session.scalars(select(models.ServingModel)).one()
        assert session.get(models.ModelVersion, row.model_version_id).name == "v2"
        assert (row.chosen_by, row.reason) == ("lea", "v2 finds the doses")
        job = session.scalars(select(models.TrainingJob)).one()
        audit = session.scalars(
            select(models.AuditLog).where(models.AuditLog.action == "use_model_version")
        ).all()[-1]
    assert (job.kind, job.status, job.reason) == ("predict", "queued", "lea chose v2")
    assert (audit.user, audit.before, audit.after) == (
        "lea", {"version": "v1"}, {"version": "v2", "reason": "v2 finds the doses"},
    )  # fmt: skip
    assert [r["serving"] for r in at.dataframe[0].value.to_dict("records")] == ["", "yes", ""]
    assert "v2" in at.caption[0].value
    jobs_table = at.dataframe[1].value.to_dict("records")
    assert (jobs_table[0]["kind"], jobs_table[0]["status"]) == ("predict", "queued")


def test_model_page_keeps_what_it_cannot_serve_out_of_the_choice(demo_db, sessions):
    register_version(sessions, "import:file.jsonl", backend="import")
    at = page_as("lead", "model.py")
    assert not [s for s in at.selectbox if s.label == "Version to serve"]
    assert "No trained model yet" in at.info[0].value


def test_train_now_queues_one_job_and_cancel_cancels_it(demo_db, sessions):
    at = page_as("lead", "model.py")
    at = click(at, "Train now")
    with sessions() as session:
        job = session.scalars(select(models.TrainingJob)).one()
        assert (job.status, job.reason, job.config) == ("queued", "train now", {})
    assert labelled(at.button, "Train now").disabled  # one job at a time
    assert "Job 1 queued" in at.get("progress")[0].proto.text
    assert at.dataframe[0].value.to_dict("records")[0]["status"] == "queued"  # no versions yet
    at = click(at, "Cancel job 1")
    with sessions() as session:
        assert session.scalars(select(models.TrainingJob.status)).one() == "cancelled"
    assert not labelled(at.button, "Train now").disabled


def test_annotate_says_when_suggestions_are_being_prepared(demo_db, sessions):
    at = click(page_as("annotator", "annotate.py"), "Get the next note")
    assert at.main.caption[0].value.startswith("Note **")
    assert "No model yet" in at.main.caption[1].value  # the demo has no model
    with sessions.begin() as session:
        job, _ = jobs.enqueue(session, projects.get_project(session, "demo"), reason="train now")
        jobs.claim_next(session, "w1")
        jobs.heartbeat(session, job.id, phase="training: epoch 2, loss 1.234", progress=0.3)
    at = page_as("annotator", "annotate.py")  # a new session: the held note opens again
    assert at.main.caption[1].value.endswith(
        "Suggestions are being prepared. training: epoch 2, loss 1.234 (30%)"
    )


def test_training_settings_are_validated_whole_and_saved(demo_db, sessions):
    with sessions.begin() as session:  # a setting saved elsewhere keeps its value
        projects.update_project_settings(
            session, projects.get_project(session, "demo"), {"claim_minutes": 45.0}, "t"
        )
    at = page_as("lead", "model.py")
    labelled(at.number_input, "window_overlap").set_value(300)  # window_tokens is 256
    labelled(at.number_input, "train_every").set_value(3)
    at = click(at, "Save settings")
    shown = r"\`window_overlap\` must be in \[0, window_tokens=256)"  # escaped Markdown
    assert shown in at.error[0].value
    with sessions() as session:
        assert projects.get_project(session, "demo").settings["train_every"] == 5  # nothing saved
    labelled(at.number_input, "window_overlap").set_value(16)
    labelled(at.number_input, "lora_r").set_value(8)
    labelled(at.selectbox, "strategy").set_value("entropy")
    assert labelled(at.selectbox, "model_rule").value == "ci"
    labelled(at.selectbox, "model_rule").set_value("manual")
    at = click(at, "Save settings")
    assert not at.error
    with sessions() as session:
        settings = projects.get_project(session, "demo").settings
    assert settings["model_config"] == {"lora_r": 8, "window_overlap": 16}  # only changes
    assert (settings["train_every"], settings["strategy"]) == (3, "entropy")
    assert (settings["model_rule"], settings["claim_minutes"]) == ("manual", 45.0)


# --------------------------------------------------------------------------- data


def n_documents(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(models.Document))


def import_files(at: Any, fmt: str, files: list[tuple[str, bytes]], **choices: Any) -> Any:
    tab = at.tabs[0]
    labelled(tab.selectbox, "Format").set_value(fmt)
    labelled(at.file_uploader, "Files, or a .zip of them").set_value(
        [(name, data, "application/octet-stream") for name, data in files]
    )
    for label, value in choices.items():
        labelled(tab.checkbox, label).check() if value is True else None
    return click(at, "Import", tab)


def jsonl(*docs: dict[str, Any]) -> bytes:
    return "".join(json.dumps(d) + "\n" for d in docs).encode()


def test_data_page_refuses_a_bad_file_with_its_lines_and_changes_nothing(demo_db, sessions):
    before = n_documents(sessions)
    bad = jsonl(
        {"id": "n1", "text": "Chest pain today.", "spans": [{"id": "T1", "start": 0, "end": 10,
                                                            "label": "Problem"}]},
        {"id": "n2", "text": "Fever.", "spans": [{"id": "T1", "start": 0, "end": 60,
                                                  "label": "Problem"}]},
        {"id": "n3", "text": "Rash.", "spans": [{"id": "T1", "start": 0, "end": 4,
                                                 "label": "Nonsense"}]},
    )  # fmt: skip
    at = import_files(page_as("lead", "data.py"), "jsonl", [("bad.jsonl", bad)])
    assert "Refused 1 file(s), nothing of them imported" in at.error[0].value
    listed = at.code[0].value.splitlines()
    assert listed[0].startswith("bad.jsonl:2: ")
    assert listed[1].startswith("bad.jsonl:3: ") and "'Nonsense' is not in the schema" in listed[1]
    assert "/tmp" not in at.code[0].value  # paths name the upload, not a temporary folder
    assert n_documents(sessions) == before


def test_data_page_imports_and_lists_duplicates(demo_db, sessions):
    before = n_documents(sessions)
    good = jsonl(
        {"id": "new-1", "text": "Aspirin for chest pain.", "spans": [
            {"id": "T1", "start": 0, "end": 7, "label": "Drug"},
            {"id": "T2", "start": 12, "end": 22, "label": "Problem"}],
         "relations": [{"id": "R1", "label": "treats", "head": "T1", "tail": "T2"}]},
    )  # fmt: skip
    with sessions() as session:
        known = documents.documents(session, projects.get_project(session, "demo"))[0]
    dup = jsonl({"id": "again", "text": known.text})
    at = import_files(page_as("lead", "data.py"), "jsonl", [("a.jsonl", good), ("b.jsonl", dup)])
    assert not at.error
    assert at.success[0].value.startswith("Imported 2 file(s): 1 new documents, 1 gold annotations")
    assert at.dataframe[0].value.to_dict("records") == [
        {"note": "again", "why": f"same text as document {known.id}"}
    ]
    assert n_documents(sessions) == before + 1


def test_data_page_imports_a_brat_zip(demo_db, sessions):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes/z1.txt", "Metformin for diabetes.\n")
        archive.writestr("notes/z1.ann", "T1\tDrug 0 9\tMetformin\nT2\tProblem 14 22\tdiabetes\n")
        archive.writestr("notes/README.md", "not a note")
    at = import_files(page_as("lead", "data.py"), "brat", [("notes.zip", buffer.getvalue())])
    assert not at.error, at.error
    assert "1 new documents, 1 gold annotations" in at.success[0].value
    assert "notes.zip/notes/README.md" in at.main.caption[-1].value
    with sessions() as session:
        demo = projects.get_project(session, "demo")
        doc = gold.gold_documents(session, demo, annotator="import")
    assert [(s.label, s.text_in(doc[0].text)) for s in doc[0].spans] == [
        ("Drug", "Metformin"), ("Problem", "diabetes"),
    ]  # fmt: skip


def test_data_page_clears_the_uploader_so_a_second_import_imports_nothing(demo_db, sessions):
    before = n_documents(sessions)
    at = import_files(page_as("lead", "data.py"), "txt", [("fresh-1.txt", b"Cough for 3 days.")])
    assert at.success[0].value.startswith("Imported 1 file(s): 1 new documents")
    assert not labelled(at.file_uploader, "Files, or a .zip of them").value
    labelled(at.tabs[0].selectbox, "Format").set_value("csv")
    at = click(at, "Import", at.tabs[0])
    assert "Choose the files to import first" in at.error[0].value
    assert not at.success
    assert n_documents(sessions) == before + 1


def test_data_page_shows_a_refused_import_as_a_refusal_only(demo_db, sessions):
    before = n_documents(sessions)
    at = import_files(page_as("lead", "data.py"), "txt", [("n1.ann", b"T1\tDrug 0 7\taspirin\n")])
    assert not at.success
    assert "Refused 1 file(s), nothing of them imported" in at.error[0].value
    assert at.code[0].value == (
        "n1.ann: a BRAT annotation file, not a plain-text note: "
        "import the folder with --format brat"
    )
    assert n_documents(sessions) == before


def test_data_page_shows_both_sides_of_a_mixed_import(demo_db, sessions):
    files = [("mixed-1.txt", b"Aspirin for headache."), ("rows.jsonl", jsonl({"id": "x"}))]
    at = import_files(page_as("lead", "data.py"), "txt", files)
    assert at.success[0].value.startswith("Imported 1 file(s): 1 new documents")
    assert "Refused 1 file(s)" in at.error[0].value
    assert at.code[0].value.startswith("rows.jsonl: a JSON Lines file") and "--format jsonl" in (
        at.code[0].value
    )


def test_data_page_names_the_labels_the_schema_lacks_once(demo_db, sessions):
    docs = [{"id": f"m{i}", "text": f"Rash {i}.", "spans": [
        {"id": "T1", "start": 0, "end": 4, "label": "Exanthem"}]} for i in range(20)]
    at = import_files(page_as("lead", "data.py"), "jsonl", [("many.jsonl", jsonl(*docs))])
    assert "Labels the schema lacks: Exanthem." in at.info[0].value
    assert len(at.code[0].value.splitlines()) == 20  # every line still listed, in a box


def test_data_page_says_which_format_reads_files_of_another(demo_db):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # a Label Studio export, as it comes
        archive.writestr("export/tasks.json", json.dumps([{"data": {"text": "Cough."}}]))
        archive.writestr("export/label_config.xml", "<View/>")
    at = import_files(page_as("lead", "data.py"), "doccano", [("ls.zip", buffer.getvalue())])
    assert at.warning[0].value == (
        "Nothing imported: no file among the uploads is of the doccano format. "
        "These files are read by: jsonl, bioc, label-studio, xmi."
    )


def test_data_page_shows_the_last_import_after_a_reload(demo_db, sessions):
    import_files(page_as("lead", "data.py"), "txt", [("reload-1.txt", b"Wheeze at night.")])
    at = page_as("lead", "data.py")  # a fresh session: what a reload gives
    last = [c.value for c in at.tabs[0].caption if c.value.startswith("Last import:")]
    assert len(last) == 1 and "by lea," in last[0] and "txt: 1 file(s), 1 new notes" in last[0]


def test_data_page_shows_the_size_limit_as_configured(demo_db):
    at = page_as("lead", "data.py")
    assert labelled(at.tabs[0].number_input, "Refuse files larger than (MB)").value == 20


def test_data_page_exports_the_gold_as_a_zip(demo_db):
    at = page_as("lead", "data.py")
    tab = at.tabs[1]
    labelled(tab.selectbox, "Format").set_value("jsonl")
    at = click(at, "Prepare the export", tab)
    archive = at.session_state["export-archive-demo"]
    assert at.download_button[0].label == "Download demo-jsonl.zip"
    with zipfile.ZipFile(io.BytesIO(archive.data)) as z:
        lines = z.read("demo-jsonl/documents.jsonl").decode().splitlines()
    assert len(lines) == 25  # every gold note of the demo
    assert "demo-jsonl.zip" in archive.summary and "/tmp" not in archive.summary
    labelled(at.tabs[1].text_input, "Only this annotator's gold").input("nobody")
    at = click(at, "Prepare the export", at.tabs[1])
    assert "no submitted gold annotations by nobody" in at.error[0].value


# --------------------------------------------------------------------------- schema


def stored_schema(sessions) -> dict[str, Any]:
    with sessions() as session:
        return projects.get_project(session, "demo").label_schema


def test_schema_page_adds_an_entity_type(demo_db, sessions):
    at = page_as("lead", "schema.py")
    tab = at.tabs[0]
    labelled(tab.text_input, "Name").input("Device")
    labelled(tab.text_input, "Hotkey (one letter or digit)").input("e")
    at = click(at, "Save entity type", tab)
    assert not at.error, at.error
    assert at.success[0].value == "Schema saved."
    added = stored_schema(sessions)["entity_types"][-1]
    assert (added["name"], added["hotkey"]) == ("Device", "e")
    assert at.dataframe[0].value.to_dict("records")[-1]["name"] == "Device"


def test_schema_page_refuses_to_remove_a_label_the_gold_uses(demo_db, sessions):
    before = stored_schema(sessions)
    with sessions() as session:
        n_spans = session.scalar(select(func.count()).where(models.Span.label == "TestResult"))
        n_reveals = session.scalar(
            select(func.count())
            .select_from(models.Relation)
            .join(models.Span, models.Span.id == models.Relation.tail_id)
            .where(models.Relation.label == "reveals", models.Span.label == "TestResult")
        )
    assert n_spans and n_reveals
    at = page_as("lead", "schema.py")
    labelled(at.tabs[0].selectbox, "Edit entity type").set_value("TestResult")
    at.run()
    at = click(at, "Remove entity type", at.tabs[0])
    error = at.error[0].value
    assert f"entity type TestResult is used by {n_spans} gold span(s)" in error
    assert f"{n_reveals} gold reveals relation(s) go from Test to TestResult" in error
    assert stored_schema(sessions) == before
    # A type a relation type needs on one side: said plainly, before any counting.
    labelled(at.tabs[0].selectbox, "Edit entity type").set_value("Drug")
    at.run()
    at = click(at, "Remove entity type", at.tabs[0])
    assert at.error[0].value == (
        "Not saved: entity type Drug is the only allowed head of relation type has_dosage: "
        "change or remove has_dosage first"
    )
    assert stored_schema(sessions) == before


def test_schema_page_shows_the_schema_error_and_saves_nothing(demo_db, sessions):
    before = stored_schema(sessions)
    at = page_as("lead", "schema.py")
    tab = at.tabs[0]
    labelled(tab.text_input, "Name").input("Device")
    labelled(tab.text_input, "Hotkey (one letter or digit)").input("d")  # Drug's
    at = click(at, "Save entity type", tab)
    assert "hotkey(s) used by more than one entity type: d" in at.error[0].value
    labelled(at.tabs[3].text_area, "The whole schema as JSON").input('{"entity_types": [')
    at = click(at, "Save JSON", at.tabs[3])
    assert at.error[0].value.startswith("Not saved: Expecting value")
    assert stored_schema(sessions) == before


def test_schema_page_edits_a_relation_type(demo_db, sessions):
    at = page_as("lead", "schema.py")
    tab = at.tabs[1]
    labelled(tab.selectbox, "Edit relation type").set_value("located_in")
    at.run()
    labelled(at.tabs[1].multiselect, "Heads").select("Drug")
    at = click(at, "Save relation type", at.tabs[1])
    assert not at.error, at.error
    located = [r for r in stored_schema(sessions)["relation_types"] if r["name"] == "located_in"]
    assert located[0]["heads"] == ["Problem", "Treatment", "Test", "Drug"]


# --------------------------------------------------------------------------- users


def test_users_page_adds_a_user_with_a_generated_password(demo_db, sessions):
    at = page_as("admin", "users.py")
    tab = at.tabs[0]
    labelled(tab.text_input, "User name").input("nurse")
    labelled(tab.multiselect, "Projects").select("demo")
    at = click(at, "Add user", tab)
    assert at.success[0].value == "User nurse (annotator) added."
    secret = at.warning[0].value.split("`")[1]
    with sessions() as session:
        user = accounts.authenticate(session, "nurse", secret)
        assert user is not None and secret not in user.password_hash
        assert [p.name for p in accounts.projects_for(session, user)] == ["demo"]
    at = click(at, "Add user", at.tabs[0])  # empty name now: the form was cleared
    assert "must be non-empty" in at.error[0].value


def test_users_page_changes_a_role_and_resets_a_password(demo_db, sessions):
    at = page_as("admin", "users.py")
    labelled(at.tabs[1].selectbox, "User").set_value("ann")
    at.run()
    labelled(at.tabs[1].selectbox, "Role").set_value("lead")
    at = click(at, "Save changes", at.tabs[1])
    assert at.success[0].value == "User ann saved."
    labelled(at.tabs[1].text_input, "New password (empty: generate one)").input("fresh-password-1")
    at = click(at, "Reset password", at.tabs[1])
    with sessions() as session:
        assert accounts.get_user(session, "ann").role == "lead"
        assert accounts.authenticate(session, "ann", "fresh-password-1") is not None
        assert accounts.authenticate(session, "ann", USERS["annotator"][1]) is None


def test_the_last_admin_cannot_demote_themself(demo_db, sessions):
    with sessions.begin() as session:
        accounts.get_user(session, "admin").role = Role.LEAD.value  # the demo's admin
    at = page_as("admin", "users.py")
    labelled(at.tabs[1].selectbox, "User").set_value("adm")
    at.run()
    labelled(at.tabs[1].selectbox, "Role").set_value("lead")
    at = click(at, "Save changes", at.tabs[1])
    assert "adm is the last active admin" in at.error[0].value
    with sessions() as session:
        assert accounts.get_user(session, "adm").role == "admin"


def test_the_model_configuration_shown_is_the_projects_backends(demo_db, sessions):
    with sessions.begin() as session:
        project = projects.get_project(session, "demo")
        projects.update_project_settings(
            session, project, {"backend": "generative", "model_config": {"lr": 5e-4}}, "t"
        )
    at = page_as("lead", "model.py")
    assert labelled(at.number_input, "lr").value == 5e-4
    assert labelled(at.selectbox, "backend").value == "generative"
    assert not [n for n in at.number_input if n.label == "lr_heads"]  # an encoder field
    labelled(at.number_input, "lora_r").set_value(8)
    at = click(at, "Save settings")
    with sessions() as session:
        settings = projects.get_project(session, "demo").settings
    assert settings["model_config"] == {"lr": 5e-4, "lora_r": 8}
