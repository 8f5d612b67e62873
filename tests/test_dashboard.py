"""Dashboard and adjudication over a real project: two annotators on the same notes, model
versions with suggestions that annotators treated, curve points the worker's function
wrote. Every expected number is worked out by hand in the comments."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from app_helpers import log_in
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from noteloop.core.agreement import diff_annotations, merge
from noteloop.core.effort import Action, Costs
from noteloop.core.errors import ConflictError
from noteloop.core.metrics import evaluate
from noteloop.core.schema import (
    Document,
    EntityType,
    LabelSchema,
    Relation,
    RelationType,
    Role,
    Span,
    Split,
    Suggestion,
)
from noteloop.db import (
    accounts,
    adjudication,
    dashboard,
    documents,
    gold,
    learning,
    model_versions,
    models,
    projects,
    suggestions,
)
from noteloop.db.engine import downgrade, init_db, make_engine, session_factory, upgrade
from noteloop.db.errors import StoreError
from noteloop.screen import charts
from noteloop.usecases.modeling import training_data

pytestmark = pytest.mark.both_databases

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "noteloop" / "screen" / "app.py")
PAGES = ROOT / "noteloop" / "screen" / "views"

SCHEMA = LabelSchema(
    (EntityType("Drug"), EntityType("Dosage"), EntityType("Problem")),
    (
        RelationType("has_dose", ("Drug",), ("Dosage",)),
        RelationType("treats", ("Drug",), ("Problem",)),
    ),
)
NOTES = {
    "n1": "Aspirin 81 mg for chest pain.",
    "n2": "Metformin daily for diabetes.",
    "n3": "Lisinopril 10 mg daily.",
    "n4": "Warfarin 5 mg nightly.",
}
TEST_NOTE = Document("t1", "Atorvastatin 40 mg for cholesterol.")


def sp(span_id, label, start, end, source="manual", suggestion_id=None) -> Span:
    return Span(span_id, label, start, end, source=source, suggestion_id=suggestion_id)


@dataclass
class State:
    make_session: sessionmaker[Session]
    rows: dict[str, int]  # note id -> row id
    sid: dict[tuple[str, str], int]  # (note, suggestion key) -> suggestion row id


def _suggest(session: Session, rows, version_id) -> dict[tuple[str, str], int]:
    batches = {
        "n1": [
            Suggestion(Span("S1", "Drug", 0, 7), 0.9),
            Suggestion(Span("S2", "Dosage", 8, 10), 0.8),
            Suggestion(Span("S3", "Problem", 18, 28), 0.6),
            Suggestion(Relation("R1", "has_dose", "S1", "S2"), 0.7),
        ],
        "n2": [Suggestion(Span("S1", "Drug", 0, 9), 0.9)],
        "n3": [Suggestion(Span("S1", "Drug", 0, 10), 0.9)],
        "n4": [
            Suggestion(Span("S1", "Drug", 0, 8), 0.9),
            Suggestion(Span("S2", "Dosage", 9, 13), 0.5),
        ],
    }
    ids = {}
    for note, items in batches.items():
        suggestions.add_suggestions(session, rows[note], version_id, items)
        for key, row in suggestions.suggestion_row_ids(session, rows[note]).items():
            ids[(note, key)] = row
    return ids


def _save(make_session, row, who, spans, relations=(), seconds=0.0) -> None:
    with make_session.begin() as session:
        gold.save_annotation(
            session, row, who, spans, relations, expected_version=0, seconds_spent=seconds
        )


def _annotate(state: State) -> None:
    """ann1 and ann2 both annotate n1 and n2; ann1 also n3; nobody n4."""
    r, s, ms = state.rows, state.sid, state.make_session
    # ann1 on n1 (version A of test_agreement): Drug accepted, Dosage edited to "81 mg".
    a_spans = [
        sp("T1", "Drug", 0, 7, "accepted", s[("n1", "S1")]),
        sp("T2", "Dosage", 8, 13, "edited", s[("n1", "S2")]),
        sp("T3", "Problem", 18, 28),
    ]
    a_rels = [Relation("R1", "has_dose", "T1", "T2"), Relation("R2", "treats", "T1", "T3")]
    _save(ms, r["n1"], "ann1", a_spans, a_rels, seconds=600)
    # ann2 on n1 (version B): Drug and Dosage "81" accepted, "chest pain" drawn as Drug.
    b_spans = [
        sp("T1", "Drug", 0, 7, "accepted", s[("n1", "S1")]),
        sp("T2", "Dosage", 8, 10, "accepted", s[("n1", "S2")]),
        sp("T3", "Drug", 18, 28),
    ]
    _save(ms, r["n1"], "ann2", b_spans, [Relation("R1", "has_dose", "T1", "T2")], seconds=900)
    for who, seconds in (("ann1", 300), ("ann2", 900)):  # n2: the same two spans
        spans = [sp("T1", "Drug", 0, 9, "accepted", s[("n2", "S1")]), sp("T2", "Problem", 20, 28)]
        _save(ms, r["n2"], who, spans, [Relation("R1", "treats", "T1", "T2")], seconds=seconds)
    # ann1 on n3 leaves the suggestion open and draws both spans by hand.
    _save(ms, r["n3"], "ann1", [sp("T1", "Drug", 0, 10), sp("T2", "Dosage", 11, 16)], seconds=300)
    with ms.begin() as session:  # each annotator's own decisions; what a submit leaves
        for who, key, status in (  # open counts as rejected (n1 S3 for ann2, n3 S1)
            ("ann1", ("n1", "S1"), "accepted"),
            ("ann1", ("n1", "S2"), "edited"),
            ("ann1", ("n1", "S3"), "rejected"),
            ("ann1", ("n1", "R1"), "accepted"),
            ("ann2", ("n1", "S1"), "accepted"),
            ("ann2", ("n1", "S2"), "accepted"),
            ("ann2", ("n1", "R1"), "accepted"),
            ("ann1", ("n2", "S1"), "accepted"),
            ("ann2", ("n2", "S1"), "accepted"),
        ):
            suggestions.record_decisions(session, who, {s[key]: status})


def _evaluations() -> list[dict]:
    gold = TEST_NOTE.with_annotations(
        [sp("T1", "Drug", 0, 12), sp("T2", "Dosage", 13, 18), sp("T3", "Problem", 23, 34)],
        [Relation("R1", "has_dose", "T1", "T2")],
    )
    # v1 finds only the drug: strict tp 1, fn 2 -> F1 2/4 = 0.5; v2 finds everything: 1.0.
    half = gold.with_annotations([sp("P1", "Drug", 0, 12)])
    return [
        evaluate([gold], [half], n_bootstrap=50).to_dict(),
        evaluate([gold], [gold], n_bootstrap=50).to_dict(),
    ]


@pytest.fixture
def state(db_url) -> State:
    make_session = session_factory(init_db(db_url))
    with make_session.begin() as session:
        project = projects.create_project(session, "clinic", SCHEMA)
        notes = [Document(k, v) for k, v in NOTES.items()]
        added = documents.add_documents(session, project, notes)
        documents.add_documents(session, project, [TEST_NOTE], split=Split.TEST)
        for name, role in (("ann1", "annotator"), ("ann2", "annotator"), ("lea", "lead")):
            accounts.create_user(session, name, role, "", [project.name], by="test")
        accounts.create_user(session, "adm", Role.ADMIN, "", [], by="test")
        v1 = model_versions.register_model_version(
            session, project, name="v1", backend="memory", path="/m/1"
        )
        rows = dict(zip(NOTES, added.added, strict=True))
        sid = _suggest(session, rows, v1.id)
    state = State(make_session, rows, sid)
    _annotate(state)
    with make_session.begin() as session:
        project = projects.get_project(session, "clinic")
        v1 = session.scalar(select(models.ModelVersion).where(models.ModelVersion.name == "v1"))
        v2 = model_versions.register_model_version(
            session, project, name="v2", backend="memory", path="/m/2"
        )
        ev1, ev2 = _evaluations()
        learning.add_curve_points(session, project, v1, ev1, n_gold_docs=2, annotator_hours=0.5)
        learning.add_curve_points(session, project, v2, ev2, n_gold_docs=3, annotator_hours=0.83)
    return state


def project_of(session: Session):
    return projects.get_project(session, "clinic")


# --------------------------------------------------------------------------- db functions


def test_suggestion_outcomes_per_version(state):
    with state.make_session() as session:
        outcomes = dashboard.suggestion_outcomes(session, project_of(session))
    by = {(o.version, o.kind): o for o in outcomes}
    assert set(by) == {("v1", "span"), ("v1", "relation")}  # v2 suggested nothing
    spans = by[("v1", "span")]
    # Per annotator. ann1 n1: accepted, edited, rejected; ann2 n1: accepted x2, one left
    # open at submit; n2: accepted by both; ann1 n3: left open at submit; n4: open x2.
    assert (spans.accepted, spans.edited, spans.rejected) == (5, 1, 3)
    assert (spans.unreviewed, spans.pending) == (0, 2)  # open at submit is rejected
    assert spans.rate("accepted") == pytest.approx(5 / 9)
    assert spans.rate("rejected") == pytest.approx(3 / 9)
    # hand-drawn spans on notes shown v1: n1 1 + 1, n2 1 + 1, n3 2
    assert spans.manual == 6
    assert by[("v1", "relation")].accepted == 2
    with pytest.raises(ValueError, match="status must be accepted, edited or rejected"):
        spans.rate("open")


def test_annotator_effort_per_version_prices_the_actions_to_the_submitted_gold(state):
    with state.make_session() as session:
        efforts, costs = dashboard.annotator_effort(session, project_of(session))
    assert costs == Costs()  # 5 timed notes: too few to fit
    (v1,) = efforts  # v2 suggested nothing; every submitted note was shown v1's batch
    assert v1.version == "v1" and v1.effort.notes == 5 and v1.effort.words == 24
    # ann1 n1: S1, S3 and the relation right, S2 "81" fixed to "81 mg", "treats" drawn;
    # ann2 n1: S1, S2, the relation right, S3 relabelled Problem -> Drug; n2 (twice): the
    # drug right, the problem and "treats" drawn; ann1 n3: the drug right, the dose drawn.
    assert v1.effort.actions == {
        Action.ACCEPT: 9,
        Action.FIX_BOUNDARY: 1,
        Action.RELABEL: 1,
        Action.CREATE_SPAN: 3,
        Action.CREATE_RELATION: 3,
    }
    assert v1.effort.scratch == {Action.CREATE_SPAN: 12, Action.CREATE_RELATION: 5}
    assert (v1.logged_seconds, v1.timed, v1.logged_per_note) == (3000, 5, 600)
    assert v1.effort.seconds < v1.effort.scratch_seconds
    with state.make_session() as session:
        _, fitted = dashboard.annotator_effort(session, project_of(session), min_fit_notes=5)
    assert fitted.source == "a fit to the logged time of 5 notes"
    # annotators logged 10 minutes a note against the model's seconds: the fit is slower
    assert fitted.read_per_word > costs.read_per_word


def test_the_queue_guard_sets_the_strategys_picks_beside_the_random_ones(state):
    with state.make_session.begin() as session:
        for note, who, strategy, pick in (
            ("n1", "ann1", "breaking-ties", "strategy"),
            ("n3", "ann1", "breaking-ties", "strategy"),
            ("n2", "ann1", "breaking-ties", "random"),
            ("n1", "ann2", "cold-start", "strategy"),  # no model ranked it: left out
        ):
            session.add(models.QueuePick(document_id=state.rows[note], annotator=who,
                                         pick=pick, strategy=strategy, rank=1))
    with state.make_session() as session:
        groups = dashboard.queue_guard(session, project_of(session))
    by = {(g.strategy, g.pick): g for g in groups}
    assert set(by) == {("breaking-ties", "strategy"), ("breaking-ties", "random")}
    mine, rand = by[("breaking-ties", "strategy")], by[("breaking-ties", "random")]
    # n1: 2 of 3 suggested spans right, 1 missed; n3: 1 right, 1 missed -> P 3/4, R 3/5
    assert (mine.notes, mine.words) == (2, 10)
    assert mine.model_f1 == pytest.approx(2 / 3)
    # n1: a boundary fixed and "treats" drawn; n3: the dose drawn
    assert mine.corrections == 3 and mine.corrections_per_kword == pytest.approx(300)
    assert (rand.notes, rand.corrections, rand.model_f1) == (1, 2, pytest.approx(2 / 3))
    assert dashboard.guard_warnings(groups) == []  # one random note judges nothing


def test_the_guard_warns_when_the_strategy_finds_no_more_to_correct_than_random():
    def group(pick, notes, corrections):
        return dashboard.PickGroup("embedding-kmeans", pick, notes, 1000 * notes, 0.5,
                                   corrections)

    paying = [group("strategy", 40, 400), group("random", 10, 60)]
    assert dashboard.guard_warnings(paying) == []
    (warning,) = dashboard.guard_warnings([group("strategy", 40, 200), group("random", 10, 60)])
    assert warning.startswith("embedding-kmeans: its 40 picks needed 5.0 corrections per "
                              "1,000 words, the 10 random ones 6.0")
    assert dashboard.guard_warnings([group("strategy", 40, 200), group("random", 9, 60)]) == []


def test_throughput_per_annotator(state):
    with state.make_session() as session:
        people = {p.annotator: p for p in dashboard.throughput(session, project_of(session))}
    # ann1: 600 + 300 + 300 s on 3 notes = 1/3 h -> 9 notes per hour
    assert (people["ann1"].submitted, people["ann1"].seconds) == (3, 1200)
    assert people["ann1"].notes_per_hour == pytest.approx(9.0)
    # words: 6 + 4 + 4 (n1, n2, n3)
    assert people["ann1"].words == 14
    # ann2: 1800 s on 2 notes -> 4 notes per hour
    assert people["ann2"].notes_per_hour == pytest.approx(4.0)


def test_shared_notes_and_agreement(state):
    with state.make_session() as session:
        project = project_of(session)
        shared = adjudication.shared_notes(session, project)
        (pair,) = dashboard.dashboard(session, project).agreement
    assert [(n.external_id, n.annotators, n.final) for n in shared] == [
        ("n1", ("ann1", "ann2"), None),
        ("n2", ("ann1", "ann2"), None),
    ]
    assert (pair.a, pair.b, pair.agreement.n_docs) == ("ann1", "ann2", 2)
    # strict spans: n1 tp 1 fp 2 fn 2, n2 tp 2 -> 2*3 / (2*3 + 2 + 2) = 0.6
    assert pair.agreement.entity_strict.f1 == pytest.approx(0.6)
    # relations: n1 none of 1 vs 2 shared, n2 treats shared -> tp 1, fp 1, fn 2 -> 2/5
    assert pair.agreement.relation.f1 == pytest.approx(0.4)


def test_curve_labels_and_stopping_signal(state):
    with state.make_session() as session:
        data = dashboard.dashboard(session, project_of(session))
    assert data.labels == ["Dosage", "Drug", "Problem", "has_dose"]
    strict = [p["value"] for p in data.micro if p["metric"] == "strict_f1"]
    assert strict == [0.5, 1.0]
    assert data.stop is not None and not data.stop.stop
    assert data.stop.message == (
        "the curve has 2 round(s); judging it needs at least 4: keep annotating"
    )
    assert (data.trigger.gold_in_pool, data.gold_test, data.versions) == (3, 0, 2)
    assert data.hours == pytest.approx(3000 / 3600)


def _result(strategy, seed, f1s):
    points = [
        {
            "round": i,
            "n_docs": 10 * (i + 1),
            "n_tokens": 100 * (i + 1),
            "train_seconds": 1.0,
            "entity": {"strict": {"p": f, "r": f, "f1": f}, "lenient": {"p": f, "r": f, "f1": f}},
            "relation": {"p": f / 2, "r": f / 2, "f1": f / 2},
        }
        for i, f in enumerate(f1s)
    ]
    return {
        "corpus": "toy",
        "strategy": strategy,
        "seed": seed,
        "backend": "encoder",
        "points": points,
    }


def test_simulations_are_stored_as_bands_and_replaced(state):
    runs = [_result("random", 0, [0.2, 0.3]), _result("random", 1, [0.4, 0.5])]
    runs.append(_result("breaking-ties", 0, [0.3, 0.6]))
    with state.make_session.begin() as session:
        names = dashboard.save_simulation(session, project_of(session), runs, "lea")
    assert names == ["random on toy", "breaking-ties on toy"]
    with state.make_session.begin() as session:
        project = project_of(session)
        points = dashboard.simulated_curves(session, project)
        first = next(
            p for p in points if p["strategy"] == "random on toy" and p["metric"] == "strict_f1"
        )
        # mean of 0.2 and 0.4 at 10 notes, band from the lowest to the highest seed
        assert first["n_gold_docs"] == 10
        assert (first["value"], first["ci_low"], first["ci_high"]) == pytest.approx((0.3, 0.2, 0.4))
        assert len(points) == 2 * 3 * 2  # strategies x metrics x rounds
        dashboard.save_simulation(session, project, runs[:2], "lea")  # replaces, adds nothing
        assert len(dashboard.simulated_curves(session, project)) == 12
        assert learning.curve(session, project) == dashboard.dashboard(session, project).micro
        assert all(p["version"] for p in learning.curve(session, project))  # live only
        assert dashboard.delete_simulation(session, project, "random on toy", "lea") == 6
        with pytest.raises(StoreError, match="no simulated series named 'nope'"):
            dashboard.delete_simulation(session, project, "nope", "lea")


def test_bad_simulation_files_are_refused_with_a_reason(state):
    with pytest.raises(ValueError, match=r"runs\.json: not a JSON file of simulation results"):
        dashboard.read_results([("runs.json", b"{not json")])
    broken = _result("random", 0, [0.2])
    del broken["points"][0]["train_seconds"]
    with (
        state.make_session.begin() as session,
        pytest.raises(
            ValueError, match=r"simulation result 1 of 1: .*missing key\(s\) \['train_seconds'\]"
        ),
    ):
        dashboard.save_simulation(session, project_of(session), [broken], "lea")
    twice = [_result("random", 0, [0.2]), _result("random", 0, [0.3])]
    with state.make_session.begin() as session, pytest.raises(ValueError, match="run given twice"):
        dashboard.save_simulation(session, project_of(session), twice, "lea")
    assert dashboard.read_results([("a.json", json.dumps([broken, broken]).encode())]) == [
        broken,
        broken,
    ]


# --------------------------------------------------------------------------- adjudication


def _final_of_n1(state, lead: str):
    """lea's choices on n1: A's Dosage and Problem, B's nothing extra."""
    with state.make_session() as session:
        loaded = adjudication.note_versions(session, project_of(session), state.rows["n1"], lead)
    diff = diff_annotations(loaded.versions["ann1"], loaded.versions["ann2"])
    return loaded, merge(diff, {1: "drop", 2: "a", 3: "a", 4: "a", 5: "a", 6: "drop"})


def test_adjudication_becomes_the_gold_that_training_reads(state):
    loaded, final = _final_of_n1(state, "lea")
    assert (loaded.lead_version, loaded.final_document) == (0, None)
    with state.make_session.begin() as session:
        version = adjudication.adjudicate(
            session,
            project_of(session),
            state.rows["n1"],
            "lea",
            final,
            expected_version=0,
            expected_final=None,
        )
    assert version == 1
    with state.make_session() as session:
        project = project_of(session)
        gold_docs = {d.id: d for d in gold.gold_documents(session, project, split=Split.POOL)}
        train = {d.id: d for d in training_data(session, "clinic").train}
        (n1, _) = adjudication.shared_notes(session, project)
        (pair,) = dashboard.dashboard(session, project).agreement
        people = {p.annotator: p for p in dashboard.throughput(session, project)}
        audit = session.scalars(
            select(models.AuditLog).where(models.AuditLog.action == "adjudicate")
        ).all()
    assert gold_docs["n1"].annotation_set() == final.annotation_set()
    assert train["n1"].annotation_set() == final.annotation_set()
    assert len(gold_docs["n1"].spans) == 3 and train["n2"].spans  # n2 still ann2's, the latest
    assert (n1.final.lead, n1.final.version, n1.annotators) == ("lea", 1, ("ann1", "ann2"))
    assert pair.agreement.n_docs == 2  # the adjudication is nobody's own version
    assert people["lea"].adjudicated == 1 and people["lea"].submitted == 0
    assert [(a.user, a.after["from"]) for a in audit] == [("lea", ["ann1", "ann2"])]


def test_a_second_lead_who_opened_before_the_first_saved_is_refused(state):
    _, final = _final_of_n1(state, "lea")
    seen_by_admin = None  # the admin opened n1 before lea saved
    with state.make_session.begin() as session:
        adjudication.adjudicate(
            session, project_of(session), state.rows["n1"], "lea", final,
            expected_version=0, expected_final=None,
        )  # fmt: skip
    with (
        state.make_session.begin() as session,
        pytest.raises(
            ConflictError, match=r"note n1: lea adjudicated it at .* since you opened it"
        ),
    ):
        adjudication.adjudicate(
            session, project_of(session), state.rows["n1"], "adm", final,
            expected_version=0, expected_final=seen_by_admin,
        )  # fmt: skip
    loaded, _ = _final_of_n1(state, "adm")  # reloaded: now the admin may replace it
    with state.make_session.begin() as session:
        adjudication.adjudicate(
            session, project_of(session), state.rows["n1"], "adm", final.without_annotations(),
            expected_version=loaded.lead_version, expected_final=loaded.note.final,
        )  # fmt: skip
    with state.make_session() as session:
        gold_docs = {d.id: d for d in gold.gold_documents(session, project_of(session))}
        seen = adjudication.note_versions(session, project_of(session), state.rows["n1"], "adm")
        assert seen.note.final.lead == "adm"
    assert gold_docs["n1"].spans == ()


def test_who_may_adjudicate_what(state):
    _, final = _final_of_n1(state, "lea")

    def attempt(lead, note="n1", expected_version=0):
        with state.make_session.begin() as session:
            adjudication.adjudicate(
                session, project_of(session), state.rows[note], lead, final.without_annotations(),
                expected_version=expected_version, expected_final=None,
            )  # fmt: skip

    with pytest.raises(StoreError, match="ann1 is an annotator: only leads and admins adjudicate"):
        attempt("ann1")
    with pytest.raises(StoreError, match="note n3 has fewer than two submitted versions"):
        attempt("lea", "n3")
    _save(state.make_session, state.rows["n3"], "lea", [sp("T1", "Drug", 0, 10)])
    with pytest.raises(StoreError, match="lea annotated note n3 and cannot adjudicate it"):
        attempt("lea", "n3")
    with pytest.raises(ConflictError, match=r"adm's annotation \(version 3\) no longer exists"):
        attempt("adm", expected_version=3)


def test_migration_0003_marks_stored_annotations_as_annotators_own(tmp_path, monkeypatch):
    # Another database in NOTELOOP_DB must not be the one migrated.
    monkeypatch.setenv("NOTELOOP_DB", str(tmp_path / "other.db"))
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0002")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO projects (id, name, schema, settings, created_at) "
            "VALUES (1, 'p', '{}', '{}', '2026-01-01')"
        )
        connection.exec_driver_sql(
            "INSERT INTO documents (id, project_id, external_id, text, sha256, metadata, split,"
            " n_chars, created_at) VALUES (1, 1, 'd', 'x', 'h', '{}', 'pool', 1, '2026-01-01')"
        )
        connection.exec_driver_sql(
            "INSERT INTO annotations (document_id, annotator, status, version, seconds_spent,"
            " updated_by, started_at, updated_at) VALUES (1, 'a', 'submitted', 1, 0, 'a',"
            " '2026-01-01', '2026-01-01')"
        )
    upgrade(engine)
    with session_factory(engine)() as session:
        assert session.scalar(select(models.Annotation.adjudicated)) is False
    downgrade(engine, "0002")
    with engine.connect() as connection:
        columns = [r[1] for r in connection.exec_driver_sql("PRAGMA table_info(annotations)")]
    assert "adjudicated" not in columns and "annotator" in columns
    engine.dispose()
    assert not (tmp_path / "other.db").exists()


# --------------------------------------------------------------------------- charts


def test_curve_figure_draws_bands_only_where_every_point_has_an_interval():
    points = [
        {"strategy": "", "task": "entity", "metric": "strict_f1", "value": v, "ci_low": lo,
         "ci_high": hi, "n_gold_docs": n, "annotator_hours": n / 10}
        for n, v, lo, hi in ((5, 0.4, 0.3, 0.5), (10, 0.6, 0.5, 0.7))
    ] + [
        {"strategy": "", "task": "relation", "metric": "f1", "value": 0.2, "ci_low": None,
         "ci_high": None, "n_gold_docs": 5, "annotator_hours": 0.5}
    ]  # fmt: skip
    fig = charts.curve_figure(points, x="n_gold_docs", title="t")
    filled = [t for t in fig.data if t.fill == "toself"]
    assert len(filled) == 1 and list(filled[0].y) == [0.5, 0.7, 0.5, 0.3]
    assert [t.name for t in fig.data if t.showlegend is not False] == [
        "entity F1 (strict)",
        "relation F1",
    ]
    assert filled[0].mode == "lines"  # no stray markers in plotly's default colours
    with pytest.raises(ValueError, match="x must be one of n_gold_docs, annotator_hours"):
        charts.curve_figure(points, x="hours", title="t")
    with pytest.raises(ValueError, match="unknown curve entity recall"):
        charts.strategy_figure([], points, task="entity", metric="recall")


def test_a_lone_point_shows_its_interval_as_an_error_bar_in_its_own_colour():
    point = {
        "strategy": "",
        "task": "entity",
        "metric": "strict_f1",
        "value": 0.34,
        "ci_low": 0.2,
        "ci_high": 0.45,
        "n_gold_docs": 19,
        "annotator_hours": 1.0,
    }
    fig = charts.curve_figure([point], x="n_gold_docs", title="t")
    (trace,) = fig.data  # no band: a band needs two points
    assert trace.error_y.array == pytest.approx([0.11]) and trace.error_y.arrayminus == (
        pytest.approx([0.14])
    )
    assert trace.error_y.color == trace.line.color


def test_latest_value_and_change():
    rows = [{"task": "entity", "metric": "strict_f1", "value": v} for v in (0.25, 0.5, 0.75)]
    assert charts.latest(rows, "entity", "strict_f1") == (0.75, 0.25)
    assert charts.latest(rows[:1], "entity", "strict_f1") == (0.25, None)
    assert charts.latest([], "entity", "strict_f1") == (None, None)


# --------------------------------------------------------------------------- the pages


def app_as(state, monkeypatch, name: str, role: str) -> AppTest:
    url = state.make_session.kw["bind"].url.render_as_string(hide_password=False)
    monkeypatch.setenv("NOTELOOP_DB", url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["user"] = {"name": name, "role": role}
    at.session_state["login_id"] = log_in(name)
    return at.run()


def _dataframe(at, index):
    return at.dataframe[index].value.to_dict("records")


@pytest.mark.parametrize(("name", "role"), [("lea", "lead"), ("adm", "admin")])
def test_dashboard_shows_the_numbers(state, monkeypatch, name, role):
    at = app_as(state, monkeypatch, name, role)
    at.switch_page(str(PAGES / "dashboard.py")).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["gold notes (pool)"] == "3" and metrics["model versions"] == "2"
    assert metrics["entity F1 (strict)"] == "1.000"
    assert at.metric[4].delta == "+0.500 since the last version"
    charts = at.get("plotly_chart")
    curve = json.loads(charts[0].proto.spec)
    lines = {t["name"]: t["y"] for t in curve["data"] if t.get("name")}
    assert lines["entity F1 (strict)"] == [0.5, 1.0]
    outcomes = _dataframe(at, 0)
    spans = next(r for r in outcomes if r["kind"] == "span")
    assert (spans["accepted"], spans["acceptance rate"], spans["drawn by hand (missed)"]) == (
        5,
        0.556,
        6,
    )
    (effort,) = _dataframe(at, 1)
    assert (effort["model version"], effort["notes"], effort["accept"]) == ("v1", 5, 9)
    assert effort["logged s/note"] == 600 and effort["share of from scratch"] < 1
    people = {r["annotator"]: r for r in _dataframe(at, 2)}
    assert people["ann1"]["notes per hour"] == 9.0 and people["ann2"]["notes submitted"] == 2
    (pair,) = _dataframe(at, 3)
    assert (pair["annotators"], pair["notes"], pair["entity F1 (strict)"]) == (
        "ann1 / ann2",
        2,
        0.6,
    )
    labels = {r["label"]: r for r in _dataframe(at, 4)}
    assert labels["Drug"]["entity F1 (strict)"] == pytest.approx(0.8)  # tp 2, fp 1, fn 0
    assert "the curve has 2 round(s)" in at.info[0].value


def traces(at, index=0) -> dict[str, dict]:
    spec = json.loads(at.get("plotly_chart")[index].proto.spec)
    return {t["name"]: t for t in spec["data"] if t.get("name")}


def test_dashboard_per_label_hours_and_simulation_empty_state(state, monkeypatch):
    at = app_as(state, monkeypatch, "lea", "lead")
    at.switch_page(str(PAGES / "dashboard.py")).run()
    assert any("noteloop simulate" in i.value for i in at.info)
    at.radio[0].set_value("annotator_hours").run()
    strict = traces(at)["entity F1 (strict)"]
    assert (strict["x"], strict["y"]) == ([0.5, 0.83], [0.5, 1.0])
    at.selectbox(key="dashboard_label").select("Drug").run()
    assert not at.exception
    assert traces(at)["entity F1 (strict)"]["y"] == [1.0, 1.0]  # the drug was found both times


def test_dashboard_draws_stored_simulations_beside_the_project(state, monkeypatch):
    runs = [_result("random", 0, [0.2, 0.3]), _result("random", 1, [0.4, 0.5])]
    with state.make_session.begin() as session:
        dashboard.save_simulation(session, project_of(session), runs, "lea")
    at = app_as(state, monkeypatch, "lea", "lead")
    at.switch_page(str(PAGES / "dashboard.py")).run()
    assert not at.exception
    drawn = traces(at, 1)
    assert drawn["random on toy"]["y"] == pytest.approx([0.3, 0.4])
    assert drawn["this project"]["x"] == [2, 3]
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)
    band = next(t for t in spec["data"] if t.get("fill") and t["legendgroup"] == "random on toy")
    assert band["y"] == pytest.approx([0.4, 0.5, 0.3, 0.2])  # highest seed, then lowest back


def test_dashboard_before_any_model_says_when_the_worker_trains(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with session_factory(init_db(url)).begin() as session:
        projects.create_project(session, "fresh", SCHEMA, {"train_every": 7})
        accounts.create_user(session, "lea", Role.LEAD, "", [], by="test")
    monkeypatch.setenv("NOTELOOP_DB", url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["user"] = {"name": "lea", "role": "lead"}
    at.session_state["login_id"] = log_in("lea")
    at.run().switch_page(str(PAGES / "dashboard.py")).run()
    assert not at.exception
    shown = [i.value for i in at.info]
    assert shown[0].startswith("No model yet: the worker trains after 7 gold notes in the pool (0")
    assert any(s.startswith("No note has been submitted by two annotators") for s in shown)
    at.switch_page(str(PAGES / "adjudicate.py")).run()
    assert at.info[0].value.startswith("No note has been submitted by two annotators")


def save(at) -> None:
    next(b for b in at.main.button if b.label == "Save as final gold").click()
    at.run()


def _choose(at, document_row, choices):
    for index, choice in choices.items():
        at.radio(key=f"choice-{document_row}-{index}").set_value(choice)


@pytest.mark.parametrize(("name", "role"), [("lea", "lead"), ("adm", "admin")])
def test_adjudicate_page_saves_the_final_gold(state, monkeypatch, name, role):
    at = app_as(state, monkeypatch, name, role)
    at.switch_page(str(PAGES / "adjudicate.py")).run()
    assert not at.exception
    row = state.rows["n1"]
    captions = [c.value for c in at.caption]
    assert captions[:2] == ["3 span(s), 2 relation(s)", "3 span(s), 1 relation(s)"]
    assert captions[2] == (
        "1 the same in both (kept), 1 with another label, 3 only in ann1, 2 only in ann2"
    )
    texts = [t.value for t in at.text]
    assert texts[0] == NOTES["n1"]  # the note, as plain text
    assert texts[1:3] == ["-", "Dosage '81' [8-10]\nAspirin [81] mg for chest pain."]
    _choose(at, row, {1: "drop", 2: "a"})  # four left undecided
    save(at)
    assert at.error[0].value == "Not saved: 4 difference(s) without a choice: #3, #4, #5, #6"
    # B's label for "chest pain" while keeping A's treats: the schema wants a Problem tail.
    _choose(at, row, {1: "drop", 2: "a", 3: "b", 4: "a", 5: "a", 6: "drop"})
    save(at)
    assert "does not fit project clinic's schema" in at.error[0].value
    _choose(at, row, {5: "drop"})
    save(at)
    assert not at.exception and not at.error
    assert (
        at.success[0].value == "Saved the final gold of n1 (version 1): 3 span(s), 1 relation(s)."
    )
    with state.make_session() as session:
        gold_docs = {d.id: d for d in gold.gold_documents(session, project_of(session))}
    assert [(s.label, s.start, s.end) for s in gold_docs["n1"].spans] == [
        ("Drug", 0, 7),
        ("Dosage", 8, 13),
        ("Drug", 18, 28),  # B's label for "chest pain"
    ]
    assert [r.label for r in gold_docs["n1"].relations] == ["has_dose"]
    assert any(c.value == f"Final gold now: {name}'s adjudication, version 1." for c in at.caption)
