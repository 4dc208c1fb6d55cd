"""The schema: Alembic builds it on SQLite and PostgreSQL, idempotently, matching the models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from db.engine import make_engine
from db.migrate import (
    HEAD,
    alembic_config,
    current_revision,
    stored_revisions,
    table_names,
    upgrade,
)
from db.models import WiserVote, metadata
from tests import factories


def test_upgrade_twice_leaves_same_tables(engine):
    before = table_names(engine)
    upgrade(engine)
    upgrade(engine)
    assert table_names(engine) == before
    assert current_revision(engine) == "0001_initial"
    assert {"deliberation", "participant", "wiservote", "llmcall", "cardversion"} <= set(before)


def test_upgrade_on_empty_sqlite_file_creates_every_model_table(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    upgrade(eng)
    assert set(table_names(eng)) - {"alembic_version"} == set(metadata.tables)


def test_head_constant_is_the_newest_migration(engine):
    # A new migration without HEAD moved on would be skipped on databases at the old head.
    assert ScriptDirectory.from_config(alembic_config(engine)).get_heads() == [HEAD]
    assert stored_revisions(engine) == [HEAD]


def _upgrade_in_a_fresh_interpreter(url: str) -> bool:
    """Upgrade `url` in a new Python process; whether that process imported Alembic."""
    child = (
        "import sys\n"
        "from db.engine import make_engine\n"
        "from db.migrate import upgrade\n"
        f"upgrade(make_engine({url!r}))\n"
        "print('alembic' in sys.modules)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    run = [sys.executable, "-c", child]
    done = subprocess.run(run, cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip() == "True"


def test_a_database_at_head_opens_without_importing_alembic(db_url, tmp_path):
    assert not _upgrade_in_a_fresh_interpreter(db_url)  # at head: one SELECT, no Alembic
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert _upgrade_in_a_fresh_interpreter(fresh)  # empty: Alembic builds the schema
    assert current_revision(make_engine(fresh)) == HEAD


def test_stored_revisions_without_a_schema_is_none(tmp_path):
    assert stored_revisions(make_engine(f"sqlite:///{tmp_path / 'empty.db'}")) is None


def test_migrations_match_models_without_diff(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_busy_timeout(sqlite_engine):
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_second_wiser_vote_on_same_triple_is_refused_by_database(engine):
    with Session(engine) as s:
        d = factories.deliberation(s)
        a, b = factories.value(s, d, title="A"), factories.value(s, d, title="B")
        c = factories.context(s, d)
        p, _ = factories.participant(s, d)
        row = dict(
            deliberation_id=d.id,
            participant_id=p.id,
            from_value_id=a.id,
            to_value_id=b.id,
            context_id=c.id,
        )
        s.add(WiserVote(choice="upgrade", **row))
        s.commit()
        s.add(WiserVote(choice="no_upgrade", **row))
        with pytest.raises(IntegrityError):
            s.commit()


def test_panel_id_is_unique_per_deliberation_in_database(engine):
    with Session(engine) as s:
        d1, d2 = factories.deliberation(s), factories.deliberation(s)
        factories.participant(s, d1, panel_pid="PID1", entry_channel="panel")
        factories.participant(
            s, d2, panel_pid="PID1", entry_channel="panel"
        )  # other deliberation: fine
        with pytest.raises(IntegrityError):
            factories.participant(s, d1, panel_pid="PID1", entry_channel="panel")


@pytest.mark.postgres
def test_cli_upgrade_twice_on_fresh_empty_postgres_database():
    """`mge db upgrade` on a PostgreSQL database nothing has touched, twice."""
    import uuid

    from sqlalchemy import text
    from typer.testing import CliRunner

    from elicit.cli import app
    from tests.conftest import PG_ADMIN_URL, _pg_available

    if reason := _pg_available():
        pytest.skip(reason)
    name = f"mge_empty_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        tables = []
        for _ in range(2):
            result = CliRunner().invoke(app, ["db", "upgrade", "--database-url", url])
            assert result.exit_code == 0, result.output
            eng = make_engine(url, pool_size=1)
            tables.append(table_names(eng))
            eng.dispose()
        assert tables[0] == tables[1]
        assert set(tables[0]) - {"alembic_version"} == set(metadata.tables)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
