"""Pytest fixtures for the scripted OpenAI-compatible server (`tests/llm_server.py`).

Registered from `tests/conftest.py` (`pytest_plugins`). `llm_server` is a running server with an
empty script; `llm_settings` points the app's Settings at it; `llm_gateway` is a Gateway on a
fresh SQLite ledger whose retries do not really sleep; `gateway` one whose ledger is the test's
`engine` (both databases), without retries.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import Engine

from elicit.config import Settings
from tests.llm_server import ScriptedLLMServer

if TYPE_CHECKING:  # imported lazily: most tests never touch the gateway (or openai)
    from elicit.llm import Gateway


@pytest.fixture
def llm_server() -> Iterator[ScriptedLLMServer]:
    """A scripted server on 127.0.0.1 at a free port; queue answers with `.script(...)`."""
    with ScriptedLLMServer() as server:
        yield server


@pytest.fixture
def llm_settings(llm_server: ScriptedLLMServer) -> Settings:
    """Settings aimed at the scripted server: a short timeout, two retries, no `.env`."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        openai_base_url=llm_server.base_url,
        openai_api_key="test-key",
        mge_llm_timeout_s=5.0,
        mge_llm_max_retries=2,
    )


@pytest.fixture
def llm_gateway(llm_settings: Settings, sqlite_engine: Engine) -> Iterator[Gateway]:
    """A Gateway on the scripted server writing its ledger to a fresh SQLite database."""
    from elicit.llm import Gateway

    gateway = Gateway(
        settings=llm_settings, engine=sqlite_engine, sleep=lambda _s: None, backoff_base_s=0.0
    )
    yield gateway
    gateway.close()


@pytest.fixture
def gateway(llm_server: ScriptedLLMServer, engine: Engine) -> Iterator[Gateway]:
    """A Gateway on the scripted server whose ledger is the test's database (SQLite, then
    PostgreSQL, with `engine`): a 1 s timeout and no retries, so a fault fails at once."""
    from elicit.llm import Gateway

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        openai_base_url=llm_server.base_url,
        openai_api_key="test",
        mge_llm_timeout_s=1.0,
        mge_llm_max_retries=0,
    )
    g = Gateway(settings=settings, engine=engine, sleep=lambda _s: None, backoff_base_s=0.0)
    yield g
    g.close()
