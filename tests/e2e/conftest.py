"""Browser tests: skipped with the reason where Chromium is missing, except in CI where they must run."""

from __future__ import annotations

import os

import pytest

from tests.e2e.harness import chromium_path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            # one xdist worker runs all browser tests: two Chromium + Streamlit pairs on 2 cores
            # would time each other out
            item.add_marker(pytest.mark.xdist_group("browser"))


@pytest.fixture(scope="session")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        reason = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("MGE_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " and MGE_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    return path
