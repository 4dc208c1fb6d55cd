"""Shared fixtures: fresh databases (SQLite file, PostgreSQL), settings without LLM env leaking in.

`db_url` / `engine` run each test on SQLite and, when reachable, on a PostgreSQL database this
test run creates and drops. Postgres tests skip with the reason when none is reachable.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from db.engine import make_engine
from db.migrate import upgrade

pytest_plugins = ["tests.llm_fixtures"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PG_ADMIN_URL = os.environ.get(
    "MGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
LLM_ENV = [
    k for k in os.environ if k.startswith(("OPENAI_", "MGE_")) and k != "MGE_TEST_POSTGRES_URL"
]


@pytest.fixture(autouse=True)
def _no_llm_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's LLM keys or a `.env` file."""
    for key in LLM_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    from elicit.config import get_settings

    get_settings.cache_clear()


def shared_data(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"../shared/data/{name} not present (it is only beside the project's CI)")
    return path


# --- PostgreSQL -----------------------------------------------------------------------------

_pg_reason: str | None = None


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    global _pg_reason
    if _pg_reason is None:
        try:
            eng = make_engine(PG_ADMIN_URL, pool_size=1)
            with eng.connect() as conn:
                conn.execute(text("select 1"))
            eng.dispose()
            _pg_reason = ""
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            _pg_reason = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(exc).__name__}"
    return _pg_reason or None


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database created for this test run (per xdist worker), dropped at the end."""
    reason = _pg_available()
    if reason:
        if os.environ.get("MGE_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " (MGE_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    name = f"mge_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    eng = make_engine(url, pool_size=2)
    upgrade(eng)
    eng.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _truncate_all(engine: Engine) -> None:
    from db.models import metadata

    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    with eng.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    eng.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, _sqlite_template: Path) -> Iterator[str]:
    """A fresh, migrated database URL: a SQLite file, then PostgreSQL (tables emptied)."""
    if request.param == "sqlite":
        path = tmp_path / "mge.db"
        shutil.copy(_sqlite_template, path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_database")
        eng = make_engine(url, pool_size=1)
        _truncate_all(eng)
        eng.dispose()
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_template: Path) -> str:
    """A fresh, migrated SQLite file only (for tests that need no PostgreSQL run)."""
    path = tmp_path / "mge.db"
    shutil.copy(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    yield eng
    eng.dispose()
