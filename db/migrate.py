"""Apply Alembic migrations from code: the app on start and `mge db upgrade` both call this."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest revision in migrations/versions (tests/db/test_migrations.py checks it). A database
# already there is opened without importing Alembic, which costs a cold start about 0.4 s.
HEAD = "0001_initial"


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; running it again changes nothing."""
    if revision == "head" and stored_revisions(engine) == [HEAD]:
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def stored_revisions(engine: Engine) -> list[str] | None:
    """What the database's `alembic_version` table holds, or None without that table."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version"))
            return sorted(str(r) for r in rows.scalars())
    except SQLAlchemyError:
        return None


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def table_names(engine: Engine) -> list[str]:
    return sorted(inspect(engine).get_table_names())
