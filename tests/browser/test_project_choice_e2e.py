"""A lead's chosen project in a real headless Chromium: it survives a reload.

A module of its own because it adds a project that sorts before "demo", which would
move every other module's lead (who lands in the first project by name) out of the demo.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from app_server import choose, log_in

from noteloop.db import projects

pytestmark = pytest.mark.browser


def test_a_reload_stays_in_the_project_the_lead_chose(page, app, sessions, artifacts: Path):
    with sessions.begin() as session:  # first by name: where a reload used to land
        projects.create_project(session, "aaa_other", projects.project_schema(
            projects.get_project(session, "demo")))  # fmt: skip
    picker = page.get_by_role("combobox", name="Project", exact=True)
    log_in(page, app.url, "lea")
    page.get_by_role("heading", name="Dashboard").wait_for()
    assert picker.input_value() == "aaa_other"  # no choice kept yet: the first by name
    choose(page, "Project", "demo")
    page.wait_for_function(
        "() => document.querySelector(\"input[aria-label='Project']\").value === 'demo'"
    )
    page.get_by_text("gold notes").first.wait_for()
    page.wait_for_timeout(500)  # the cookie is written by the page's script
    page.reload()
    page.get_by_role("heading", name="Dashboard").wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=artifacts / "project_after_reload.png")
    assert picker.input_value() == "demo"
