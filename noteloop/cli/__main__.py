"""``python -m noteloop.cli``: the ``noteloop`` command."""

from noteloop.cli import app

app()
