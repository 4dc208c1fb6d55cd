"""Security tests: the Chromium ones join the one xdist worker that runs every browser test."""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import chromium  # noqa: F401 - the fixture, for the browser runs


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.fspath).replace(os.sep, "/")
        if "tests/security/" in path and "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.xdist_group("browser"))
