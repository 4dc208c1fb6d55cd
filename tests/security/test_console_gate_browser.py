"""The console gate in Chromium, against the real app.

Behaviours:
- logged out, every console URL path shows the login form on that page and none of the
  console: no console title, no console link but the login, no data; logging in there opens
  the page the link named;
- a wrong password shows one message and logs nobody in (the sidebar keeps only the login);
- an export download asked for after the console session ended yields no file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.engine import make_engine
from db.models import FacilitatorSession, utcnow
from elicit import auth
from tests.e2e import seed
from tests.e2e.harness import (
    AppServer,
    assert_no_traceback,
    browser,
    dismiss_dialogs,
    key,
    login,
    main_text,
    settle,
    shot,
)
from tests.security.test_access_control import URL_PATHS

ADMIN = ("gatekeeper", "gate-keeper-password")
SECRET = "Zebra Secret"
CONSOLE_TITLES = [
    "Deliberations",
    "Questions and contexts",
    "Dashboard",
    "Deduplication",
    "Wiser-than hypotheses",
    "Moral graph",
    "Exports",
    "Interviews and cards",
    "Participant data",
    "Accounts",
]


@pytest.fixture(scope="module")
def app(
    chromium: str, _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AppServer, Engine]]:
    url = seed.sqlite_copy(_sqlite_template, tmp_path_factory.mktemp("gate"))
    engine = make_engine(url)
    s = seed.deliberation(
        engine,
        slug="zebra",
        title=f"{SECRET} closed study",
        questions=[("Q", f"{SECRET} question?", ["When zebras"])],
        questions_per_participant=1,
    )
    from elicit import console

    console.set_open(engine, deliberation_id=s.id, is_open=False)  # not on the public list
    auth.create_account(engine, username=ADMIN[0], password=ADMIN[1])
    server = AppServer(env={"DATABASE_URL": url})
    try:
        server.start()
        yield server, engine
    finally:
        server.stop()
        engine.dispose()


@pytest.fixture(scope="module")
def chrome(app: tuple[AppServer, Engine]) -> Iterator[Any]:
    with browser() as b:
        yield b


def sidebar_links(page: Any) -> list[str]:
    """The sidebar's page names (each link's last line: the icon's name comes first)."""
    texts = page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()
    return [t.strip().splitlines()[-1].strip() for t in texts]


def test_console_url_paths_logged_out_show_only_the_login_form(
    app: tuple[AppServer, Engine], chrome: Any
) -> None:
    server, _ = app
    page = chrome.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(30_000)
    for path in URL_PATHS:
        page.goto(f"{server.url}/{path}")
        page.locator('[data-testid="stSidebarNavLink"]').first.wait_for(timeout=60_000)
        settle(page)
        # The first visit after the server starts may get Streamlit's "Page not found"
        # notice (it reads pages/ as old-style pages once); the page still runs.
        dismiss_dialogs(page)
        key(page, "login_user").wait_for(timeout=60_000)
        body = main_text(page)
        assert "Facilitator login" in body, path
        assert SECRET not in body, path
        for title in CONSOLE_TITLES:
            assert page.get_by_role("heading", name=title, exact=True).count() == 0, (path, title)
        assert [t for t in sidebar_links(page) if t != "Take part"] == ["Facilitator login"]
        assert_no_traceback(page)
    shot(page, "gate-logged-out-console-path")
    page.close()


def test_logging_in_on_a_console_link_opens_that_page(
    app: tuple[AppServer, Engine], chrome: Any
) -> None:
    server, _ = app
    page = chrome.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(f"{server.url}/console-accounts")
    key(page, "login_user").wait_for(timeout=60_000)
    settle(page)
    dismiss_dialogs(page)
    key(page, "login_user").locator("input").fill(ADMIN[0])
    key(page, "login_password").locator("input").fill(ADMIN[1])
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Accounts", exact=True).wait_for(timeout=60_000)
    settle(page)
    assert page.url.endswith("/console-accounts")
    assert "Dashboard" in sidebar_links(page)
    assert_no_traceback(page)
    page.close()


def test_wrong_password_in_the_browser_logs_nobody_in(
    app: tuple[AppServer, Engine], chrome: Any
) -> None:
    server, engine = app
    with Session(engine) as s:
        sessions_before = len(s.exec(select(FacilitatorSession)).all())
    page = chrome.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(server.url)
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Facilitator login").click()
    key(page, "login_user").wait_for(timeout=60_000)
    settle(page)
    key(page, "login_user").locator("input").fill(ADMIN[0])
    key(page, "login_password").locator("input").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Wrong username or password.").wait_for(timeout=60_000)
    settle(page)
    shot(page, "gate-wrong-password")
    assert [t for t in sidebar_links(page) if t != "Take part"] == ["Facilitator login"]
    assert SECRET not in main_text(page)
    with Session(engine) as s:
        assert len(s.exec(select(FacilitatorSession)).all()) == sessions_before
    page.close()


def test_download_after_the_session_ended_yields_no_file(
    app: tuple[AppServer, Engine], chrome: Any
) -> None:
    server, engine = app
    page = chrome.new_page(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
    page.set_default_timeout(30_000)
    login(page, server.url, *ADMIN)
    link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Exports")
    if link.count() == 0:
        pytest.skip("the Exports console page is not registered in streamlit_app.py yet")
    link.click()
    page.get_by_role("heading", name="Exports").wait_for(timeout=60_000)
    settle(page)
    with page.expect_download(timeout=60_000) as live:  # the control: a live session downloads
        key(page, "exports_graphml").locator("button").click()
    assert b"<graphml" in Path(live.value.path()).read_bytes()
    settle(page)
    with Session(engine) as s:  # the session ends while the page is open
        for row in s.exec(select(FacilitatorSession)).all():
            row.expires_at = utcnow()
            s.add(row)
        s.commit()
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))
    key(page, "exports_json").locator("button").click()
    page.get_by_text("Failed to generate file for download").wait_for(timeout=60_000)
    settle(page)
    shot(page, "gate-download-after-logout")
    assert downloads == [] or all(d.failure() is not None for d in downloads)
    assert_no_traceback(page)
    page.close()
