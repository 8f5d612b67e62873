"""The ``noteloop`` command, a module per command group: :mod:`.admin` (database, projects,
users, serving the app), :mod:`.data` (import, export, documents), :mod:`.model` (training,
the worker, model versions) and :mod:`.research` (experiments on corpora). :mod:`.common`
holds the one error boundary every command runs inside.

Environment variables are read here, once: ``NOTELOOP_DB`` names the database (a path or
any SQLAlchemy URL). Every other module takes what it needs as arguments.
"""

from noteloop.cli import admin, data, model, research  # noqa: F401  (they register commands)
from noteloop.cli.common import app, console, err_console

__all__ = ["app", "console", "err_console"]
