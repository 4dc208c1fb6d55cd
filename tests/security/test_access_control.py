"""Access control: the console behind login for every page and action; participants' links.

Behaviours:
AppTest (every file in pages/console_*.py, so a page added later is covered without edits)
- with no token, a forged one, or an expired one: only the login form, none of the data;
- with a session that ended while the page was open, every button and form of the page
  changes nothing in the database (a snapshot of every table) and shows the login form;
- a wrong password shows one message and opens nothing.
Participants
- a resume token opens only its own participant, in its own deliberation: every (token,
  deliberation) pair is tried, and tampered tokens; the transcript of another participant is
  never shown;
- resume tokens and console session tokens carry >= 128 bits from `secrets` (the generating
  code, and the length, alphabet, uniqueness and per-character entropy of 200 issued tokens);
  the database stores only their SHA-256.
Chromium
- logged out, each console URL path shows only the login form, no console page; logging in
  there opens the page the link named;
- a wrong password in the browser logs nobody in;
- a console download asked for after the session ended yields no file.
"""

from __future__ import annotations

import math
import re
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from db.engine import make_engine
from db.models import FacilitatorSession, Participant, metadata, utcnow
from elicit import auth, interview, journey
from elicit.config import get_settings
from tests.e2e import seed

REPO = Path(__file__).resolve().parents[2]
CONSOLE_FILES = sorted(
    p.stem for p in (REPO / "pages").glob("console_*.py") if p.stem != "console_common"
)
SECRET = "Zebra Secret"
ADMIN = ("gatekeeper", "gate-keeper-password")
ACTIONS_TRIED: dict[str, list[str]] = {}  # for the report: which buttons each page offered
URL_PATHS = [
    "console",
    "console-questions",
    "console-dashboard",
    "console-dedupe",
    "console-hypotheses",
    "console-graph",
    "console-exports",
    "console-interviews",
    "console-participants",
    "console-accounts",
]


# --- the data every test looks for -------------------------------------------------------------


@dataclass
class World:
    url: str
    engine: Engine
    seeded: seed.Seeded
    tokens: dict[str, str]  # participant label -> resume token


def build_world(url: str) -> World:
    """A deliberation with two placed values that look alike (so a dry run proposes a merge),
    a story with votes (so the graph has an edge), a participant mid-interview."""
    engine = make_engine(url)
    s = seed.deliberation(
        engine,
        slug="zebra",
        title=f"{SECRET} Deliberation",
        questions=[("Zebra question", f"{SECRET} question?", ["When the zebra is scared"])],
        topic=f"{SECRET} topic",
        questions_per_participant=1,
    )
    q = s.questions[0]
    policies = ["MOMENTS when the zebra pauses", "SIGNS of zebra fear", "CHOICES zebras make"]
    a = seed.unchecked_peer(
        engine, s, question_id=q, title="Zebra Care", description="Zebra care.", policies=policies
    )[1]
    b = seed.unchecked_peer(
        engine, s, question_id=q, title="Zebra Calm", description="Zebra care.", policies=policies
    )[1]
    # a second card that joins one of them (so a card can be split out by hand)
    seed.peer(
        engine, s, question_id=q, title="Zebra Care", description="Zebra care.", policies=policies
    )
    voters = [
        seed.unchecked_peer(
            engine,
            s,
            question_id=q,
            title=f"Voter {n}",
            description=f"Voter {n} thing.",
            policies=[f"MOMENTS {n}"],
        )[0]
        for n in "xy"
    ]
    h = seed.hypothesis(
        engine, s, from_value=a, to_value=b, context_id=s.contexts[q][0], story=f"{SECRET} story."
    )
    for v in voters:
        seed.vote(engine, participant_id=v, hypothesis_id=h, choice="upgrade", comment="zebra")
    tokens = {}
    for label in ("alice", "bob"):
        entry = journey.join(engine, slug=s.slug, consent=journey.Consent())
        state = interview.load_state(
            engine, participant_id=entry.participant_id, llm_available=False
        )
        interview.answer_form(
            engine,
            interview_id=state.interview_id,
            stage="story",
            text=f"{label} private story about {SECRET}",
            max_chars=4000,
        )
        tokens[label] = entry.token
    auth.create_account(engine, username=ADMIN[0], password=ADMIN[1])
    return World(url, engine, s, tokens)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, except the console sessions themselves (ending them is how
    these tests log out) and last-login times."""
    out = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name == "facilitatorsession":
                continue
            cols = [c.name for c in table.columns if c.name != "last_login_at"]
            rows = conn.execute(
                sql_text(f'SELECT {", ".join(cols)} FROM "{table.name}" ORDER BY 1')
            ).all()
            out[table.name] = [tuple(map(str, r)) for r in rows]
    return out


def end_sessions(engine: Engine) -> None:
    """Every console session expires now (as when its hours run out)."""
    with Session(engine) as s:
        for row in s.exec(select(FacilitatorSession)).all():
            row.expires_at = utcnow() - timedelta(seconds=1)
            s.add(row)
        s.commit()


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> Iterator[World]:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    get_settings.cache_clear()
    st.cache_resource.clear()
    w = build_world(sqlite_url)
    yield w
    st.cache_resource.clear()
    w.engine.dispose()


# --- AppTest: every console page file ---------------------------------------------------------


def open_page(name: str, token: str | None) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / f"{name}.py"), default_timeout=30)
    if token is not None:
        at.session_state["console_token"] = token
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def page_text(at: AppTest) -> str:
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "text",
        "info",
        "warning",
        "error",
        "success",
        "code",
    ):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [df.value.to_string() for df in at.dataframe]
    parts += [str(o) for sb in at.selectbox for o in sb.options]
    parts += [str(w.value) for w in [*at.text_input, *at.text_area]]
    parts += [e.label for e in at.expander]
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))


def is_login_form(at: AppTest) -> bool:
    return (
        [t.value for t in at.title] == ["Facilitator login"]
        and {w.key for w in at.text_input} == {"login_user", "login_password"}
        and [b.label for b in at.button] == ["Log in"]
    )


def expired_token(engine: Engine) -> str:
    token = auth.login(engine, username=ADMIN[0], password=ADMIN[1], hours=1).token
    end_sessions(engine)
    return token


@pytest.mark.parametrize("kind", ["none", "forged", "expired"])
@pytest.mark.parametrize("name", CONSOLE_FILES)
def test_console_page_without_a_live_session_shows_only_the_login_form(
    world: World, name: str, kind: str
) -> None:
    token = {
        "none": None,
        "forged": secrets.token_urlsafe(32),
        "expired": expired_token(world.engine) if kind == "expired" else None,
    }[kind]
    before = snapshot(world.engine)
    at = open_page(name, token)
    assert is_login_form(at), name
    assert SECRET not in page_text(at) and "Zebra" not in page_text(at)
    assert snapshot(world.engine) == before


def prepare(at: AppTest, name: str, world: World) -> AppTest:
    """Bring the page to where its actions would do something: forms filled in, a dedupe plan
    made, a participant found (so every gate is tested on an action that would succeed)."""
    fields: dict[str, str] = {
        "create_slug": "sneaky",
        "create_title": "Sneaky",
        "dup_slug": "sneaky-copy",
        "q_add_title": "Sneaky",
        "q_add_text": "Sneaky question?",
        "q_add_contexts": "When sneaky",
        "c_add_text": "When sneaky",
        "acct_new_user": "mallory",
        "acct_new_password": "password123",
        "acct_new_repeat": "password123",
        "acct_current": ADMIN[1],
        "acct_new": "another-password",
        "acct_repeat": "another-password",
        "hy_add_story": f"{SECRET} added story",
        "pd_query": world.tokens["alice"],
    }
    if name == "console_dedupe":
        at.button(key="dd_dry_run").click().run()
    if name == "console_participants":
        at.text_input(key="pd_query").input(world.tokens["alice"])
        at.button(key="pd_lookup").click().run()
    present = {w.key for w in [*at.text_input, *at.text_area]}
    for key, value in fields.items():
        if key in present:
            widget = next(w for w in [*at.text_input, *at.text_area] if w.key == key)
            widget.input(value)
    for box in at.checkbox:
        if box.key == "pd_confirm":
            box.check()
    for multi in at.multiselect:
        if multi.key == "dd_merge_ids" and multi.options:
            multi.select(multi.options[-1])
    return at


@pytest.mark.parametrize("name", CONSOLE_FILES)
def test_every_console_action_after_the_session_ended_changes_nothing(
    world: World, name: str
) -> None:
    """Each button the page shows, clicked on the open page after the session ended."""

    def live_page() -> AppTest:
        token = auth.login(world.engine, username=ADMIN[0], password=ADMIN[1], hours=1).token
        at = prepare(open_page(name, token), name, world)
        assert not at.exception, [e.value for e in at.exception]
        assert not is_login_form(at), f"{name} did not open with a live session"
        return at

    keys = [b.key for b in live_page().button if b.key and b.key != "logout"]
    if not keys:  # a view (graph) or downloads only (exports): the next rerun is the form
        at = live_page()
        end_sessions(world.engine)
        at.run()
        assert is_login_form(at) and SECRET not in page_text(at)
        return
    tried = 0
    for key in keys:
        at = live_page()
        if key not in [b.key for b in at.button]:
            continue  # shown only in another state
        before = snapshot(world.engine)
        end_sessions(world.engine)
        at.button(key=key).click().run()
        assert not at.exception, (name, key, [e.value for e in at.exception])
        assert is_login_form(at), (name, key)
        assert SECRET not in page_text(at)
        assert snapshot(world.engine) == before, f"{name}: {key} changed the database"
        tried += 1
    assert tried == len(keys)
    ACTIONS_TRIED[name] = keys


def test_wrong_password_opens_nothing(world: World) -> None:
    before = snapshot(world.engine)
    login_page = AppTest.from_function(_login_only, default_timeout=30)
    login_page.run()
    for user, password in ((ADMIN[0], "wrong-password"), ("nobody", ADMIN[1]), (ADMIN[0], "")):
        login_page.text_input(key="login_user").input(user)
        login_page.text_input(key="login_password").input(password)
        login_page.button[0].click().run()
        assert [e.value for e in login_page.error] == ["Wrong username or password."]
        assert "console_token" not in login_page.session_state
    assert snapshot(world.engine) == before
    with Session(world.engine) as s:
        assert s.exec(select(FacilitatorSession)).all() == []


def _login_only() -> None:
    from pages import common

    common.login_form()


# --- participants' links ---------------------------------------------------------------------


def _open_participant(slug: str, **params: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=30)
    at.query_params["d"] = slug
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _shown(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.warning]
    parts += [m.value for m in at.info] + [m.value for m in at.caption]
    parts += [str(w.value) for w in at.text_area]
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))


def test_a_resume_token_opens_only_its_own_participant(world: World) -> None:
    other = seed.deliberation(
        world.engine,
        slug="other",
        title="Other deliberation",
        questions=[("Q", "Other question?", ["When other"])],
        questions_per_participant=1,
    )
    entry = journey.join(world.engine, slug=other.slug, consent=journey.Consent())
    state = interview.load_state(
        world.engine, participant_id=entry.participant_id, llm_available=False
    )
    interview.answer_form(
        world.engine,
        interview_id=state.interview_id,
        stage="story",
        text="carol private story",
        max_chars=4000,
    )
    tokens = {
        ("zebra", "alice"): world.tokens["alice"],
        ("zebra", "bob"): world.tokens["bob"],
        ("other", "carol"): entry.token,
    }
    stories = {
        "alice": "alice private story",
        "bob": "bob private story",
        "carol": "carol private story",
    }
    tried = 0
    for (home, who), token in tokens.items():
        for slug in ("zebra", "other"):
            at = _open_participant(slug, r=token)
            shown = _shown(at)
            if slug == home:
                assert stories[who] in shown
            else:
                assert "does not open anything here" in shown  # the consent page, afresh
                assert [b.key for b in at.button] == ["consent_agree"]
            for name, story in stories.items():
                if name != who or slug != home:
                    assert story not in shown, (who, slug, name)
            tried += 1
        # tampered tokens: one character changed, cut short, padded, upper-cased
        for bad in (
            token[:-1] + ("A" if token[-1] != "A" else "B"),
            token[:22],
            token + "x",
            token.upper(),
            queries_hash_like(token),
        ):
            at = _open_participant(home, r=bad)
            shown = _shown(at)
            assert all(story not in shown for story in stories.values()), bad
            tried += 1
    assert tried == 6 + 15


def queries_hash_like(token: str) -> str:
    """The stored form of the token: knowing the database row must not open the link."""
    from db import queries

    return queries.hash_token(token)


def test_tokens_carry_at_least_128_random_bits(world: World) -> None:
    import inspect

    assert "secrets.token_urlsafe(TOKEN_BYTES)" in inspect.getsource(journey.new_token)
    assert journey.TOKEN_BYTES * 8 >= 128
    assert "secrets.token_urlsafe(32)" in inspect.getsource(auth.login)
    issued = [
        journey.join(world.engine, slug=world.seeded.slug, consent=journey.Consent()).token
        for _ in range(100)
    ]
    issued += [
        auth.login(world.engine, username=ADMIN[0], password=ADMIN[1], hours=1).token
        for _ in range(100)
    ]
    assert len(set(issued)) == len(issued)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", t) for t in issued)  # 43 chars x 6 bits = 258
    counts = Counter("".join(issued))
    total = sum(counts.values())
    per_char = -sum(n / total * math.log2(n / total) for n in counts.values())
    assert per_char > 5.8  # close to log2(64) = 6: no skewed alphabet
    assert per_char * 43 >= 128
    with Session(world.engine) as s:
        stored = [p.token_hash for p in s.exec(select(Participant)).all()]
        sessions = [r.token_hash for r in s.exec(select(FacilitatorSession)).all()]
    assert not set(issued) & set(stored + sessions)  # only hashes are stored
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored + sessions)


def test_a_panel_pid_alone_does_not_open_someone_elses_interview(world: World) -> None:
    panel = journey.PanelIds("5f0c0ffee0c0ffee0c0ffee0", "study-1", "session-secret-1")
    entry = journey.join(world.engine, slug="zebra", consent=journey.Consent(), panel=panel)
    state = interview.load_state(
        world.engine, participant_id=entry.participant_id, llm_available=False
    )
    interview.answer_form(
        world.engine,
        interview_id=state.interview_id,
        stage="story",
        text="dave private story",
        max_chars=4000,
    )
    stranger = _open_participant("zebra", PROLIFIC_PID=panel.pid)  # no session id, no token
    assert "dave private story" not in _shown(stranger)
    # and the real participant's link still works afterwards
    assert "dave private story" in _shown(_open_participant("zebra", r=entry.token))
