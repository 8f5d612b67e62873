"""Alembic environment for noteloop.

``noteloop.db.engine.upgrade`` hands over an open connection in
``config.attributes["connection"]`` and owns its transaction. Run from the ``alembic``
command line instead, this opens the database named by ``NOTELOOP_DB`` (or the ini file's
``sqlalchemy.url``) with noteloop's own engine settings.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from noteloop.db.engine import db_url_from_env, make_engine
from noteloop.db.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    # Batch mode: SQLite alters a table by rebuilding it, which later migrations need.
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
    )


def run_with(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=db_url_from_env(config.get_main_option("sqlalchemy.url")),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        run_with(given)
        return
    # Only the command line configures logging: a programmatic upgrade leaves the app's alone.
    if config.config_file_name:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    engine = make_engine(db_url_from_env(config.get_main_option("sqlalchemy.url")))
    try:
        with engine.connect() as connection:
            run_with(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
