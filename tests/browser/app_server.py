"""The real app (``noteloop/screen/app.py``) served on a seeded database: end-to-end tests, bench.

The database is the demo as ``make run`` seeds it, with what a worker's first round would
have left: a fake extractor (``tests/fakes.py``) is trained on the demo's gold, predicts
the pool and ranks the queue here, in the test process, so the served app only ever reads
rows, as it does beside a real worker. A second project, ``inject``, holds one note made of
HTML. Also the steps every end-to-end test takes: log in, wait for the next note.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for fakes

from fakes import MEMORY_BACKEND
from widget_driver import box, click_phrase, drag_over, expect_selected
from widget_fixtures import INJECT_TEXT
from widget_server import REPO, serve

from noteloop.core import active
from noteloop.core.schema import Document, LabelSchema, Role, Span, Suggestion
from noteloop.db import accounts, claims, documents, model_versions, projects, suggestions
from noteloop.db.engine import init_db, make_engine, session_factory
from noteloop.usecases import modeling
from noteloop.usecases.demo import seed_demo
from noteloop.worker import rank_queue

APP = REPO / "noteloop" / "screen" / "app.py"
DB_FILE = "noteloop.db"
USERS = {"ann": Role.ANNOTATOR, "lea": Role.LEAD, "eve": Role.ANNOTATOR}
INJECT_ID = 'note-<img src=x onerror="window.__nlInjected=3">'
WIDGET = "#nl-ann[data-ready='1']"
# The widgets in the page: while Streamlit reruns, the old note's stays beside the new one.
HOSTS = """[...document.querySelectorAll('*')].filter(
  (e) => e.shadowRoot && e.shadowRoot.querySelector("#nl-ann[data-ready='1']"))"""
# Exactly one widget shows, mounted at another time than ``at`` ('' for any).
ONE_OTHER = f"""(at) => {{ const hosts = {HOSTS};
  return hosts.length === 1
    && hosts[0].shadowRoot.querySelector('#nl-ann').dataset.mountedAt !== at; }}"""
MOUNTED_AT = f"() => {HOSTS}[0].shadowRoot.querySelector('#nl-ann').dataset.mountedAt"


@dataclass(frozen=True)
class SeededApp:
    url: str  # of the served app
    db_url: str
    folder: Path  # the database, the models, streamlit.log


def password_of(name: str) -> str:
    """The test password of user ``name``: long enough, and never containing the name
    (a user name of this suite has a letter outside the hex digits)."""
    return "pw-" + hashlib.sha256(name.encode()).hexdigest()[:12]


def seed(folder: Path, db_url: str = "") -> str:
    """The database URL of a demo seeded under ``folder`` (or in the empty database
    ``db_url``; its models stay under ``folder``), with suggestions, a ranked queue and
    users ann and eve (annotators of demo and of inject) and lea (lead); passwords
    ``password_of(NAME)``."""
    db_url = db_url or f"sqlite:///{folder / DB_FILE}"
    engine = init_db(db_url)
    make_session = session_factory(engine)
    seed_demo(make_session, REPO / "sample_notes")
    modeling.register_backend("memory", MEMORY_BACKEND)
    trained = modeling.train_project(make_session, "demo", folder / "models", {}, backend="memory")
    _, predictions = modeling.predict_project(make_session, "demo")
    rank_queue(
        make_session, "demo", predictions, trained.version_id, strategy=active.DEFAULT_STRATEGY
    )
    with make_session.begin() as session:
        _inject_project(session)
        for name, role in USERS.items():
            project = "inject" if name == "eve" else "demo"
            accounts.create_user(session, name, role, password_of(name), [project], by="test")
    engine.dispose()
    return db_url


def _inject_project(session: Session) -> None:
    schema = LabelSchema.from_dict({"entity_types": [{"name": "<b>Bold</b>", "hotkey": "b"}]})
    project = projects.create_project(session, "inject", schema)
    [row] = documents.add_documents(session, project, [Document(INJECT_ID, INJECT_TEXT)]).added
    start = INJECT_TEXT.index("<script>")
    end = INJECT_TEXT.index("</script>") + len("</script>")
    version = model_versions.register_model_version(
        session, project, name="fake", backend="memory", path="/nowhere"
    )
    suggestions.add_suggestions(
        session, row, version.id, [Suggestion(Span("S1", "<b>Bold</b>", start, end), 0.9)]
    )


def add_annotator(db_url: str, name: str, project: str = "demo") -> str:
    """A new annotator of ``project`` (password ``password_of(name)``): one per test keeps
    one test's claims, skips and drafts out of another's way. Returns the name."""
    engine = make_engine(db_url)
    with session_factory(engine).begin() as session:
        accounts.create_user(
            session, name, Role.ANNOTATOR, password_of(name), [project], by="test"
        )
    engine.dispose()
    return name


@contextmanager
def serve_seeded(
    folder: Path, timeout: float = 90.0, template: Path | None = None
) -> Iterator[SeededApp]:
    """Seed a database under ``folder`` and serve the app on it (``NOTELOOP_DB``).

    ``template``: a folder seeded before, whose database is copied instead of seeding
    again (its model versions stay in the template's folder, which must outlive this).
    """
    if template is None:
        db_url = seed(folder)
    else:
        shutil.copyfile(template / DB_FILE, folder / DB_FILE)
        db_url = f"sqlite:///{folder / DB_FILE}"
    env = {"NOTELOOP_DB": db_url, "HF_HUB_OFFLINE": "1"}
    with serve(APP, env, folder / "streamlit.log", timeout) as url:
        yield SeededApp(url, db_url, folder)


def log_in(page: Any, url: str, name: str, password: str | None = None, path: str = "") -> None:
    """Open ``url/path`` and log in as ``name`` (``password_of(name)`` unless told)."""
    page.goto(f"{url}/{path}")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password or password_of(name))
    page.get_by_role("button", name="Log in").click()


def wait_for_note(page: Any, before: str = "") -> str:
    """Wait until one widget shows, mounted at another time than ``before`` (what this
    returned for the note shown before, or '' for any); its mount time."""
    page.wait_for_function(ONE_OTHER, arg=before)
    return str(page.evaluate(MOUNTED_AT))


def get_next_note(page: Any) -> str:
    """Click "Get the next note" on the Annotate page; the mount time of the note shown.

    A note given back a moment ago may still be in the page (Streamlit removes an
    element at the end of the run that no longer draws it): the note must be another."""
    before = page.evaluate(
        f"() => {HOSTS}[0]?.shadowRoot.querySelector('#nl-ann').dataset.mountedAt ?? ''"
    )
    page.get_by_role("button", name="Get the next note").click()
    return wait_for_note(page, before)


def held_note(make_session: Any, annotator: str, project: str = "demo") -> int | None:
    """The row id of the note ``annotator`` holds, from the database."""
    with make_session() as session:
        return claims.held_note(session, projects.get_project(session, project), annotator)


def plan(make_session: Any, row: int, annotator: str) -> dict[str, Any]:
    """What a test does on note ``row``, worked out from the database: the first suggestion
    open for ``annotator`` in text order (→ then Enter accepts it), a free word near the top
    for a new span, and a label for it that a relation type links with the suggestion's."""
    with make_session() as session:
        project = projects.get_project(session, "demo")
        text = documents.get_document(session, row).text
        suggested = sorted(
            (s.item for s in suggestions.suggestions_for(session, row, open_for=annotator)),
            key=lambda s: (s.start, s.end),
        )
        schema = projects.project_schema(project)
    first = next(s for s in suggested if isinstance(s, Span))
    taken = [(s.start, s.end) for s in suggested if isinstance(s, Span)]
    word = next(
        m for m in re.finditer(r"[A-Za-z]{5,}", text[:600])
        if all(m.end() <= a or m.start() >= b for a, b in taken) and m.start() != first.start
    )  # fmt: skip
    label, relation, manual_is_head = link(schema, first.label)
    return {
        "row": row,
        "text": text,
        "first": first,
        "n_open": len(suggested),
        "word": word.group(),
        "word_at": (word.start(), word.end()),
        "word_nth": text[: word.start()].count(word.group()),
        "hotkey": schema.entity(label).hotkey,
        "label": label,
        "relation": relation,
        "manual_is_head": manual_is_head,
    }


def link(schema: LabelSchema, other: str) -> tuple[str, str, bool]:
    """An entity type with a hotkey and the first relation type (the widget's picker order)
    between it and ``other``: (label, relation type, whether the new span is the head)."""
    for head_first in (True, False):
        for entity in schema.entity_types:
            pair = (entity.name, other) if head_first else (other, entity.name)
            types = [r.name for r in schema.relation_types if r.allows(*pair)]
            if types and entity.hotkey:
                return entity.name, types[0], head_first
    raise AssertionError(f"no relation type links {other} with any entity type")


def accept_first(page: Any, todo: dict[str, Any]) -> None:
    """Accept the planned suggestion with the keyboard: → selects the first in text order."""
    click_phrase(page, todo["word"], todo["word_nth"])  # focus, on plain text
    page.keyboard.press("ArrowRight")
    expect_selected(page, sid=todo["first"].suggestion_id)
    page.keyboard.press("Enter")
    box(page, sid=todo["first"].suggestion_id, state="gold").first.wait_for()


def draw_span(page: Any, todo: dict[str, Any]) -> None:
    """A new span over the planned word: selected with the mouse, labelled by its hotkey."""
    drag_over(page, todo["word"], todo["word_nth"])
    page.locator("#nl-ann-picker:not([hidden])").wait_for()
    page.keyboard.press(todo["hotkey"])
    box(page, label=todo["label"], state="gold").first.wait_for()


def choose(page: Any, label: str, option: str) -> None:
    """Pick ``option`` in the Streamlit selectbox or multiselect labelled ``label``."""
    page.get_by_role("combobox", name=label, exact=True).click()  # the visible one
    page.keyboard.type(option)
    page.get_by_role("option", name=option).first.click()
