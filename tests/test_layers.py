"""The layering of the package, checked in one place.

Which part may import which is declared once, as import-linter contracts in
``pyproject.toml`` (indirect imports count); the light modules' promise that importing them
loads no heavy library (a page or a test imports them freely) is checked here at run time,
each in a fresh interpreter, because a library imported lazily inside a function is allowed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "streamlit", "sqlalchemy")

# module -> what importing it must not load
LIGHT = {
    **dict.fromkeys(
        [
            "noteloop.core.schema", "noteloop.core.errors", "noteloop.core.formats.registry",
            "noteloop.core.active", "noteloop.core.agreement", "noteloop.core.align",
            "noteloop.core.metrics", "noteloop.core.serving_rule", "noteloop.core.settings",
            "noteloop.core.schema_edit", "noteloop.core.effort", "noteloop.core.curves",
            "noteloop.core.fewshot", "noteloop.core.answer_grammar", "noteloop.core.token_trie",
            "noteloop.core.job_progress",
            "noteloop.core.model", "noteloop.core.model.base", "noteloop.core.model.config",
            "noteloop.core.model.features", "noteloop.core.model.answers",
            "noteloop.core.model.prompts", "noteloop.usecases.corpora",
        ],
        HEAVY,
    ),
    "noteloop.screen.components.annotator": ("streamlit", "sqlalchemy", "torch"),
}


# The parts of the house (README "Layout"); the contracts name them.
PARTS = {"core", "db", "usecases", "screen", "cli", "worker"}


def test_every_module_belongs_to_a_part():
    package = ROOT / "noteloop"
    modules = {p.stem for p in package.glob("*.py")} - {"__init__"}
    packages = {p.parent.name for p in package.glob("*/__init__.py")}
    assert modules | packages == PARTS


def test_the_layering_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("module", sorted(LIGHT))
def test_importing_a_light_module_loads_nothing_heavy(module):
    code = (
        f"import sys, {module}\n"
        f"print(','.join(m for m in {LIGHT[module]!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "", f"importing {module} loads {out.stdout.strip()}"
