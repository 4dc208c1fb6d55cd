"""Bad input: each gets one clear message, nothing already saved is lost, no traceback.

Behaviours:
Chromium, a participant mid-interview (the scripted LLM as its own process)
- an empty (blank) message stores nothing; a 100,000-character message is refused with the
  limit named and stores nothing; a message full of control and invisible characters is stored
  without them and shown; the earlier messages stay on screen and in the database;
- a wrong API key (401 from the provider): the guided form takes over at once (a retry cannot
  fix a key), with a plain notice and no provider detail; every message typed is kept.
Chromium, a wrong DATABASE_URL: the app shows one sentence saying so, no traceback.
AppTest, other wrong DATABASE_URLs (another database kind, not a URL, a folder that does not
exist): one error message each, no exception.
CLI (`mge`): a wrong DATABASE_URL, invalid UTF-8 in a summary file or in each dump file,
malformed JSON, wrong shapes, a bad row late in a dump: exit code 1, one line on the output,
no traceback, and the database exactly as before (an import is all or nothing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import select
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from db import queries
from db.engine import make_engine, session_scope
from db.models import Message
from elicit.cli import app as mge_app
from elicit.config import get_settings
from elicit.interview import clean_input
from tests.e2e import seed
from tests.e2e.harness import (
    AppServer,
    LLMProcess,
    assert_no_traceback,
    browser,
    chat,
    key,
    main_text,
    settle,
    shot,
)
from tests.graph_seed import write_dump
from tests.llm_server import Fault, Reply
from tests.security.test_access_control import snapshot

REPO = Path(__file__).resolve().parents[2]
LIMIT = 4000
CONTROL = "A\x01B\x07C\x1bD\u202eE\u200bF\u2066G\x7fH\tI\r\nJ"


@dataclass
class Env:
    app: AppServer
    llm: LLMProcess
    engine: Engine
    slug: str


@pytest.fixture(scope="module")
def env(
    chromium: str, _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    url = seed.sqlite_copy(_sqlite_template, tmp_path_factory.mktemp("badinput"))
    engine = make_engine(url)
    d = seed.deliberation(
        engine,
        slug="bad",
        title="Bad input",
        questions=[("Q", "What should I do?", ["When it is hard"])],
        questions_per_participant=1,
    )
    llm = LLMProcess(mode="interviewer", card_after=99).start()
    app = AppServer(
        env={
            "DATABASE_URL": url,
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "wrong-key",
            "MGE_LLM_MAX_RETRIES": "0",
            "MGE_MAX_MESSAGE_CHARS": str(LIMIT),
        }
    )
    try:
        app.start()
        yield Env(app, llm, engine, d.slug)
    finally:
        app.stop()
        llm.stop()
        engine.dispose()


def stored(env: Env) -> list[str]:
    with session_scope(env.engine) as s:
        rows = s.exec(select(Message).where(Message.role == "user").order_by(Message.id)).all()
        return [m.content for m in rows]


def users_on_screen(page: Any) -> int:
    return page.locator('[data-testid="stChatMessageAvatarUser"]').count()


def alerts(page: Any) -> str:
    return " ".join(page.locator('[data-testid="stAlert"]').all_inner_texts())


def test_bad_messages_get_one_clear_message_and_lose_nothing(env: Env) -> None:
    with browser() as b:
        page = b.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(30_000)
        page.goto(f"{env.app.url}/?d={env.slug}")
        key(page, "consent_agree").locator("button").click()
        box = page.locator('[data-testid="stChatInputTextArea"]')
        box.wait_for(timeout=60_000)
        settle(page)
        env.llm.script(Reply(text="Thank you. What happened then?"))
        chat(page, "My first answer, which must survive.")
        page.get_by_text("What happened then?").wait_for(timeout=60_000)
        settle(page)
        first = stored(env)
        assert first == ["My first answer, which must survive."]

        # blank: either the input does not send, or one message says it is empty
        chat(page, "   \n   ")
        settle(page)
        if alerts(page):
            assert "Your message is empty" in alerts(page)
        assert stored(env) == first and users_on_screen(page) == 1
        assert_no_traceback(page)

        # 100,000 characters: refused, the limit named, nothing stored
        chat(page, "x" * 100_000)
        page.locator('[data-testid="stAlert"]').filter(has_text="the limit is 4,000").wait_for(
            timeout=60_000
        )
        settle(page)
        assert "100,000 characters long" in alerts(page)
        assert stored(env) == first and users_on_screen(page) == 1
        assert "My first answer, which must survive." in main_text(page)
        shot(page, "bad-input-100k")
        assert_no_traceback(page)

        # control and invisible characters: stored (and shown) without them
        env.llm.script(Reply(text="I see. Go on."))
        chat(page, CONTROL)
        page.get_by_text("I see. Go on.").wait_for(timeout=60_000)
        settle(page)
        saved = stored(env)
        assert saved[0] == first[0] and len(saved) == 2
        assert saved[1] == clean_input(CONTROL, max_chars=LIMIT) == "ABCDEFGH\tI\nJ"
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u202e\u2066]", saved[1])
        assert "ABCDEFGH" in main_text(page)
        assert_no_traceback(page)

        # a wrong API key: the provider says 401; retrying cannot fix that, so the guided
        # form takes over at once, saying why, with the message kept
        typed = ["Attempt while the key is wrong."]
        env.llm.script(Fault.http(401, message="Incorrect API key provided"))
        before = users_on_screen(page)
        chat(page, typed[0])
        page.locator('[data-testid="stChatMessageAvatarUser"]').nth(before).wait_for(timeout=60_000)
        settle(page)
        key(page, "form_story").wait_for(timeout=60_000)
        assert "No AI is assisting you right now" in main_text(page)
        assert "interviewer is not available" in alerts(page)
        assert "Incorrect API key" not in main_text(page)  # no provider detail
        shot(page, "bad-input-401-guided-form")
        assert_no_traceback(page)
        assert stored(env) == [*saved, *typed]
        body = main_text(page)
        for text in [first[0], *typed]:
            assert text in body


def test_wrong_database_url_shows_one_clear_message(chromium: str) -> None:
    server = AppServer(env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:9/nothing"})
    with browser() as b:
        try:
            server.start()
            page = b.new_page(viewport={"width": 1100, "height": 800})
            page.goto(f"{server.url}/?d=anything")
            alert = page.locator('[data-testid="stAlert"]')
            alert.first.wait_for(timeout=60_000)
            settle(page)
            text = alert.first.inner_text()
            assert text.startswith("The app cannot reach its database.")
            assert "DATABASE_URL" in text and len(text.splitlines()) <= 2
            assert alert.count() == 1
            shot(page, "bad-input-database-url")
            assert_no_traceback(page)
        finally:
            server.stop()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://root@localhost/mge", "uses 'mysql'"),
        ("not a url at all", "is not a database URL"),
        ("sqlite:////nonexistent-folder/deeper/mge.db", "cannot open the database"),
    ],
)
def test_wrong_database_url_in_apptest(
    monkeypatch: pytest.MonkeyPatch, url: str, says: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=30).run()
    finally:
        st.cache_resource.clear()
        get_settings.cache_clear()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("The app cannot reach its database.")
    assert says in errors[0]
    assert "Traceback" not in errors[0]


# --- the CLI ------------------------------------------------------------------------------------

runner = CliRunner()


def mge(*args: str) -> Any:
    return runner.invoke(mge_app, list(args))


def one_line_failure(result: Any) -> str:
    out = result.output.strip()
    assert result.exit_code == 1, (result.exit_code, out)
    assert len(out.splitlines()) == 1, out
    assert "Traceback" not in out
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    return out


UNREACHABLE = "postgresql://nobody@127.0.0.1:9/nothing"
COMMANDS = {
    "db-upgrade": ("db", "upgrade"),
    "db-current": ("db", "current"),
    "export": ("export", "-d", "x", "-f", "json", "-o", "/tmp/mge-never-written.json"),
}


@pytest.mark.parametrize(
    ("url", "command"),
    [
        pytest.param(
            url,
            cmd,
            id=f"{name}-{url.split(':')[0]}",
        )
        for url in (UNREACHABLE, "mysql://root@localhost/mge", "definitely not a url")
        for name, cmd in COMMANDS.items()
    ],
)
def test_cli_wrong_database_url_is_one_line(url: str, command: tuple[str, ...]) -> None:
    out = one_line_failure(mge(*command, "--database-url", url))
    assert "DATABASE_URL" in out or "database" in out.lower()


def _dump(folder: Path) -> Path:
    write_dump(folder, n_users=4)
    return folder


def _break_utf8(path: Path) -> None:
    data = path.read_bytes()
    cut = data.index(b'"title": "') + 12
    path.write_bytes(data[:cut] + b"\xff\xfe\xc3(" + data[cut:])


CORRUPTIONS = {
    "utf8-values": lambda f: _break_utf8(f / "canonicalValuesCard.json"),
    "utf8-edges": lambda f: (f / "edge.json").write_bytes(
        (f / "edge.json").read_bytes().replace(b'"upgrade"', b'"upgr\xe9de"', 1)
    ),
    "utf8-cards": lambda f: _break_utf8(f / "valuesCard.json"),
    "json-syntax": lambda f: (f / "edge.json").write_text('[{"userId": 1, "fromId": '),
    "not-an-array": lambda f: (f / "canonicalValuesCard.json").write_text('{"id": 1}'),
    "missing-file": lambda f: (f / "edge.json").unlink(),
    "bad-relationship-late": lambda f: (f / "edge.json").write_text(
        json.dumps(
            json.loads((f / "edge.json").read_text())[:-1]
            + [{**json.loads((f / "edge.json").read_text())[-1], "relationship": "wiser!"}]
        )
    ),
    "unknown-value-id": lambda f: (f / "edge.json").write_text(
        json.dumps([{**json.loads((f / "edge.json").read_text())[0], "toId": 999_999}])
    ),
    "criteria-not-a-list": lambda f: (f / "canonicalValuesCard.json").write_text(
        json.dumps(
            [
                {**v, "evaluationCriteria": 42}
                for v in json.loads((f / "canonicalValuesCard.json").read_text())
            ]
        )
    ),
}


@pytest.fixture
def populated(sqlite_url: str) -> Iterator[tuple[str, Engine]]:
    """A database that already holds a deliberation with participants and votes."""
    engine = make_engine(sqlite_url)
    s = seed.deliberation(
        engine,
        slug="target",
        title="Existing work",
        questions=[("Q", "A question?", ["When it matters"])],
        questions_per_participant=1,
    )
    pid, value = seed.peer(
        engine,
        s,
        question_id=s.questions[0],
        title="Kept Value",
        description="Must survive a failed import.",
        policies=["MOMENTS that matter", "CHOICES that help", "SIGNS of care"],
    )
    yield sqlite_url, engine
    engine.dispose()


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@pytest.mark.parametrize("slug", ["target", "fresh-import"])
def test_cli_malformed_dump_is_one_line_and_saves_nothing(
    populated: tuple[str, Engine], tmp_path: Path, corruption: str, slug: str
) -> None:
    url, engine = populated
    folder = _dump(tmp_path / "dump")
    CORRUPTIONS[corruption](folder)
    before = snapshot(engine)
    out = one_line_failure(
        mge("import", "mge-dump", str(folder), "-d", slug, "--database-url", url)
    )
    assert out, corruption
    assert snapshot(engine) == before, f"{corruption}: the failed import changed the database"


def test_cli_summary_with_invalid_utf8_is_one_line(
    populated: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = populated
    path = tmp_path / "summary.json"
    path.write_bytes(b'{"values": [{"id": 1, "title": "Caf\xe9"}], "edges": []}')
    before = snapshot(engine)
    out = one_line_failure(
        mge("import", "mge-summary", str(path), "-d", "target", "--database-url", url)
    )
    assert "UTF-8" in out or "utf-8" in out
    assert snapshot(engine) == before
    with session_scope(engine) as s:
        assert queries.get_deliberation(s, slug="target").title == "Existing work"


def test_the_switch_to_the_guided_form_is_explained(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str, llm_server: Any
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("MGE_LLM_MAX_RETRIES", "0")
    get_settings.cache_clear()
    st.cache_resource.clear()
    engine = make_engine(sqlite_url)
    try:
        d = seed.deliberation(
            engine,
            slug="switch",
            title="Switch",
            questions=[("Q", "What now?", ["When x"])],
            questions_per_participant=1,
        )
        at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=30)
        at.query_params["d"] = d.slug
        at.run()
        at.button(key="consent_agree").click().run()
        llm_server.script(*(Fault.server_error(500) for _ in range(3)))
        for i in range(3):
            at.chat_input(key="chat_input").set_value(f"try {i}").run()
        assert not at.exception
        assert at.text_area(key="form_story")  # the guided form took over
        shown = " ".join(str(w.value) for w in [*at.warning, *at.info, *at.error])
        assert "Everything you wrote is saved" in shown
    finally:
        st.cache_resource.clear()
        get_settings.cache_clear()
        engine.dispose()
