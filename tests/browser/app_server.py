"""The real app (``noteloop/app.py``) served on a seeded database: end-to-end tests, bench.

The database is the demo as ``make run`` seeds it, with the suggestions a trained model
would have left: a fake extractor (``tests/fakes.py``) is trained on the demo's gold and
predicts the pool here, in the test process, so the served app only ever reads rows, as
it does beside a real worker. A second project, ``inject``, holds one note made of HTML.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for fakes

from fakes import MEMORY_BACKEND
from widget_fixtures import INJECT_TEXT
from widget_server import REPO, serve

from noteloop import modeling
from noteloop.core.schema import Document, LabelSchema, Role, Span, Suggestion
from noteloop.db import repo
from noteloop.db.engine import init_db, session_factory
from noteloop.seed import seed_demo

APP = REPO / "noteloop" / "app.py"
USERS = {"ann": Role.ANNOTATOR, "lea": Role.LEAD, "eve": Role.ANNOTATOR}
INJECT_ID = 'note-<img src=x onerror="window.__nlInjected=3">'


@dataclass(frozen=True)
class SeededApp:
    url: str  # of the served app
    db_url: str


def seed(folder: Path) -> str:
    """The database URL of a demo seeded under ``folder``, with suggestions and users
    ann and eve (annotators of demo and of inject) and lea (lead); passwords NAME-pw."""
    db_url = f"sqlite:///{folder / 'noteloop.db'}"
    engine = init_db(db_url)
    make_session = session_factory(engine)
    seed_demo(make_session, REPO / "sample_notes")
    modeling.register_backend("memory", MEMORY_BACKEND)
    modeling.train_project(make_session, "demo", folder / "models", {}, backend="memory")
    modeling.predict_project(make_session, "demo")
    with make_session.begin() as session:
        _inject_project(session)
        for name, role in USERS.items():
            user = repo.add_user(session, name, role, f"{name}-pw")
            repo.add_member(
                session, user, repo.get_project(session, "inject" if name == "eve" else "demo")
            )
    engine.dispose()
    return db_url


def _inject_project(session: Session) -> None:
    schema = LabelSchema.from_dict({"entity_types": [{"name": "<b>Bold</b>", "hotkey": "b"}]})
    project = repo.create_project(session, "inject", schema)
    [row] = repo.add_documents(session, project, [Document(INJECT_ID, INJECT_TEXT)]).added
    start = INJECT_TEXT.index("<script>")
    end = INJECT_TEXT.index("</script>") + len("</script>")
    version = repo.register_model_version(
        session, project, name="fake", backend="memory", path="/nowhere"
    )
    repo.add_suggestions(
        session, row, version.id, [Suggestion(Span("S1", "<b>Bold</b>", start, end), 0.9)]
    )


@contextmanager
def serve_seeded(folder: Path, timeout: float = 90.0) -> Iterator[SeededApp]:
    """Seed a database under ``folder`` and serve the app on it (``NOTELOOP_DB``)."""
    db_url = seed(folder)
    env = {"NOTELOOP_DB": db_url, "HF_HUB_OFFLINE": "1"}
    with serve(APP, env, folder / "streamlit.log", timeout) as url:
        yield SeededApp(url, db_url)
