"""Browser fixtures: the annotator test app and the real app (on a seeded demo) under
``streamlit run``, and a headless Chromium.

Chromium is Debian's (``apt-get install chromium``), never a Playwright download. Without
it, every test in this folder is skipped with the reason.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from app_server import SeededApp, seed, serve_seeded
from widget_server import CHROMIUM, CHROMIUM_ARGS, serve_app

from noteloop.db.engine import make_engine, session_factory

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists():
        return
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: apt-get install -y chromium")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def app_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("annotator") / "submitted.json"


@pytest.fixture(scope="session")
def app_url(app_output: Path) -> Iterator[str]:
    with serve_app(app_output) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[[], Any]]:
    """Pages in browsers of their own (a context each: its own cookies), for tests where
    two people work at once; closed after the test."""
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def submitted(app_output: Path) -> Callable[..., dict[str, Any]]:
    """Clears the app's output; the returned function waits for the next submitted result."""
    app_output.write_text("[]")

    def wait(timeout: float = 20.0, after: dict[str, Any] | None = None) -> dict[str, Any]:
        """The newest result; with ``after``, one newer than that."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = app_output.read_text() if app_output.exists() else ""
            try:
                entries = json.loads(text) if text.strip() else []
            except json.JSONDecodeError:  # caught the app mid-write
                entries = []
            if entries and entries[-1] != after:
                return entries[-1]
            time.sleep(0.1)
        raise AssertionError(f"the app received no submitted result within {timeout} s")

    return wait


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder seeded once per test run (:func:`app_server.seed`): each module's app
    starts from a copy of its database, in seconds instead of a fresh seed."""
    folder = tmp_path_factory.mktemp("seeded")
    seed(folder)
    return folder


@pytest.fixture(scope="module")
def cold_app(tmp_path_factory: pytest.TempPathFactory, seeded: Path) -> Iterator[SeededApp]:
    """The real app on a copy of the seeded demo, one per test module, as started: no
    request has reached it yet unless a test of the module made one."""
    with serve_seeded(tmp_path_factory.mktemp("app"), template=seeded) as served:
        yield served


@pytest.fixture(scope="module")
def app(cold_app: SeededApp) -> SeededApp:
    """The served app, whether or not a request reached it yet: every request runs
    ``app.py`` first, the first one a fresh server gets included."""
    return cold_app


@pytest.fixture
def sessions(app: SeededApp) -> Iterator[Any]:
    """A sessionmaker on the served app's database, as the test's own connection."""
    engine = make_engine(app.db_url)
    yield session_factory(engine)
    engine.dispose()
