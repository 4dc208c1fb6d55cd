"""Fixtures for the concurrency tests: the run's PostgreSQL database, emptied for each user,
and the browser marks for the scale-out run (it shares the one xdist worker that runs every
Chromium test)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from db.engine import make_engine
from tests.conftest import _truncate_all
from tests.e2e.conftest import chromium  # noqa: F401 - the fixture, for the scale-out run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.fspath).replace(os.sep, "/")
        if "tests/concurrency/" in path:
            item.add_marker(pytest.mark.postgres)
            if "chromium" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.browser)
                item.add_marker(pytest.mark.xdist_group("browser"))


def _emptied(url: str) -> str:
    eng = make_engine(url, pool_size=1)
    _truncate_all(eng)
    eng.dispose()
    return url


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """The run's PostgreSQL database (this xdist worker's), emptied, for one test."""
    yield _emptied(pg_database)


@pytest.fixture(scope="module")
def pg_url_module(pg_database: str) -> Iterator[str]:
    """The same for a whole module (the scale-out run's two app servers share it)."""
    yield _emptied(pg_database)
