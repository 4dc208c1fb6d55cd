"""Console pages through AppTest: the login gate on every page and action, then each behaviour.

Behaviours, one test each:

Every console page
- logged out (no token, or a forged one): only the login form; none of the data.
- session ended while the page was open: its main action changes nothing, the login form shows.
Router
- logged out: the console is only the login page; logged in: every console page opens.
Deliberations (console_deliberations.py)
- lists deliberations; creates one (closed by default); refuses a bad slug with the message;
  saves settings; refuses a bad completion URL; opens and closes; duplicates.
Questions and contexts (console_questions.py)
- shows the chosen deliberation's questions and contexts; adds a question with contexts;
  refuses a context without "When"; edits a question and unlinks a context; archives and
  restores a question; adds, edits and archives a context; without an LLM says so; with the
  scripted LLM drafts questions, saves only the kept (edited) ones; drafts contexts for a question.
Dashboard (console_dashboard.py)
- shows the status line; metrics equal the ledger's sums and the participants' progress;
  "Refresh now" shows new data; the whole-ledger switch widens the LLM usage; auto-refresh toggles.
Interviews and cards (console_interviews.py)
- lists and searches interviews by message text; renders participant text as plain text;
  shows card versions with their origin; flags/archives an interview, flags the participant;
  flags and archives a card; searches cards.
Participant data (console_participants.py)
- finds by token or panel id; says when nothing matches; the download holds the export JSON;
  flags; deletes only after confirmation, and their votes leave what the graph engine reads.
Accounts (console_accounts.py)
- changes the password (checks the current one); creates a facilitator; lists facilitators.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select
from streamlit.testing.v1 import AppTest

from db import queries
from db.engine import make_engine
from db.models import (
    Context,
    Deliberation,
    Facilitator,
    FacilitatorSession,
    Interview,
    LLMCall,
    Participant,
    Question,
    ValuesCard,
)
from elicit import auth, participants
from elicit.config import get_settings
from tests import factories
from tests.console_seed import HOSTILE, add, contributor, hypothesis_and_vote
from tests.llm_server import Reply
from tests.llm_server import ToolCall as ScriptedToolCall

REPO = Path(__file__).resolve().parents[2]
PAGES = [
    "console_deliberations",
    "console_questions",
    "console_dashboard",
    "console_interviews",
    "console_participants",
    "console_accounts",
]
SECRET_TITLE = "Zebra Secret Deliberation"


@dataclass
class Env:
    url: str
    engine: Engine
    token: str


def _env(monkeypatch: pytest.MonkeyPatch, url: str) -> Env:
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    st.cache_resource.clear()
    engine = make_engine(url)
    auth.create_account(engine, username="fac", password="password123")
    token = auth.login(engine, username="fac", password="password123", hours=1).token
    return Env(url, engine, token)


@pytest.fixture
def env(monkeypatch, sqlite_url):
    e = _env(monkeypatch, sqlite_url)
    yield e
    st.cache_resource.clear()
    e.engine.dispose()


@pytest.fixture
def any_env(monkeypatch, db_url):
    """The same on SQLite and PostgreSQL."""
    e = _env(monkeypatch, db_url)
    yield e
    st.cache_resource.clear()
    e.engine.dispose()


def page(name: str, token: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / f"{name}.py"), default_timeout=30)
    if token is not None:
        at.session_state["console_token"] = token
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click()
    return run(at)


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def shown(at: AppTest) -> str:
    """Every piece of text the page rendered (escapes removed), one per line."""
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
    parts += [str(o) for p in at.pills for o in p.formatted_values]
    parts += [str(w.value) for w in [*at.text_input, *at.text_area]]
    parts += [e.label for e in at.expander]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return unescape("\n".join(parts))


def errors(at: AppTest) -> str:
    return unescape(" ".join(e.value for e in at.error))


def successes(at: AppTest) -> str:
    return unescape(" ".join(e.value for e in at.success))


def is_login_form(at: AppTest) -> bool:
    return (
        [t.value for t in at.title] == ["Facilitator login"]
        and {w.key for w in at.text_input} == {"login_user", "login_password"}
        and [b.label for b in at.button] == ["Log in"]
    )


def end_sessions(engine: Engine) -> None:
    with Session(engine) as s:
        s.execute(delete(FacilitatorSession))
        s.commit()


def count(engine: Engine, model, *where) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def seeded(engine: Engine, **fields) -> dict:
    """A deliberation with one question, one context and two contributors (A, B), A -> B vote."""
    with Session(engine, expire_on_commit=False) as s:
        d = factories.deliberation(s, slug=fields.pop("slug", "study"), **fields)
        q = factories.question(s, d, text="What should I do?")
        ctx = factories.context(s, d, q)
        a = contributor(s, d, q, panel_pid="PID-A", words=HOSTILE, card_title="Grounded Honesty")
        b = contributor(
            s,
            d,
            q,
            panel_pid="PID-B",
            words="I value patience with GRANDMOTHER",
            card_title="Patient Care",
            step="interview",
        )
        hypothesis_and_vote(s, d, ctx, a.participant, a.value, b.value)
        hypothesis_and_vote(s, d, ctx, b.participant, a.value, b.value)
    return {"d": d, "q": q, "ctx": ctx, "a": a, "b": b}


# --- the gate ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("token", [None, "forged-token"])
def test_logged_out_page_shows_only_the_login_form(env, name, token):
    seeded(env.engine, title=SECRET_TITLE, topic="Zebra topic")
    at = page(name, token)
    assert is_login_form(at)
    assert "Zebra" not in shown(at)
    assert "PID-A" not in shown(at)


def test_expired_session_cannot_toggle_a_deliberation(env):
    w = seeded(env.engine)
    at = page("console_deliberations", env.token)
    end_sessions(env.engine)
    click(at, "delib_toggle_open")
    assert is_login_form(at)
    with Session(env.engine) as s:
        assert s.get(Deliberation, w["d"].id).is_open is True


def test_expired_session_cannot_create_a_deliberation(env):
    at = page("console_deliberations", env.token)
    at.text_input(key="create_slug").input("sneaky")
    at.text_input(key="create_title").input("Sneaky")
    end_sessions(env.engine)
    click(at, "create_submit")
    assert is_login_form(at)
    assert count(env.engine, Deliberation) == 0


def test_expired_session_cannot_archive_a_question(env):
    w = seeded(env.engine)
    at = page("console_questions", env.token)
    end_sessions(env.engine)
    click(at, f"q_archive_{w['q'].id}")
    assert is_login_form(at)
    with Session(env.engine) as s:
        assert s.get(Question, w["q"].id).archived is False


def test_expired_session_dashboard_refresh_shows_no_data(env):
    seeded(env.engine, title=SECRET_TITLE)
    at = page("console_dashboard", env.token)
    assert "Zebra" in shown(at)
    end_sessions(env.engine)
    click(at, "dash_refresh")
    assert is_login_form(at) and "Zebra" not in shown(at)


def test_expired_session_cannot_flag_an_interview(env):
    w = seeded(env.engine)
    at = page("console_interviews", env.token)
    end_sessions(env.engine)
    click(at, "iv_flag")
    assert is_login_form(at)
    assert count(env.engine, Interview, Interview.flagged.is_(True)) == 0
    assert w["a"].interview.flagged is False


def test_expired_session_cannot_delete_a_participant(env):
    w = seeded(env.engine)
    at = page("console_participants", env.token)
    at.text_input(key="pd_query").input(w["a"].token)
    click(at, "pd_lookup")
    at.checkbox(key="pd_confirm").check()
    end_sessions(env.engine)
    click(at, "pd_delete")
    assert is_login_form(at)
    assert count(env.engine, Participant) == 2


def test_expired_session_cannot_create_a_facilitator(env):
    at = page("console_accounts", env.token)
    at.text_input(key="acct_new_user").input("mallory")
    at.text_input(key="acct_new_password").input("password123")
    at.text_input(key="acct_new_repeat").input("password123")
    end_sessions(env.engine)
    click(at, "acct_create_submit")
    assert is_login_form(at)
    assert count(env.engine, Facilitator) == 1


# --- the router -------------------------------------------------------------------------------


def test_router_hides_console_until_login_then_opens_every_page(env):
    seeded(env.engine, title=SECRET_TITLE, is_open=False)  # closed: not on the public landing
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=30)
    run(at)
    assert "Zebra" not in shown(at)
    # registered (so a bookmarked link finds it) but hidden, and behind the login form
    at.switch_page("pages/console_dashboard.py")
    run(at)
    assert [t.value for t in at.title] == ["Facilitator login"]
    assert "Zebra" not in shown(at)

    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=30)
    at.session_state["console_token"] = env.token
    run(at)
    assert get_settings().describe() in [c.value for c in at.sidebar.caption]
    titles = {
        "console_deliberations": "Deliberations",
        "console_questions": "Questions and contexts",
        "console_dashboard": "Dashboard",
        "console_interviews": "Interviews and cards",
        "console_participants": "Participant data",
        "console_accounts": "Accounts",
    }
    for name, title in titles.items():
        at.switch_page(f"pages/{name}.py")
        run(at)
        assert [t.value for t in at.title] == [title], name


# --- deliberations ----------------------------------------------------------------------------


def test_deliberations_lists_existing(env):
    seeded(env.engine, title=SECRET_TITLE)
    at = page("console_deliberations", env.token)
    table = at.dataframe[0].value
    assert list(table["title"]) == [SECRET_TITLE]
    assert list(table["participants"]) == [2]


def test_create_deliberation_saves_settings_closed_by_default(env):
    at = page("console_deliberations", env.token)
    at.text_input(key="create_slug").input("ai-and-grief")
    at.text_input(key="create_title").input("AI and grief")
    at.text_area(key="create_topic").input("How an AI should respond to grief")
    at.radio(key="create_framing").set_value("personal")
    at.number_input(key="create_stories_n").set_value(5)
    at.text_input(key="create_completion_url").input("https://app.prolific.com/x?cc=1")
    click(at, "create_submit")
    assert "Created ai-and-grief" in successes(at)
    with Session(env.engine) as s:
        d = queries.get_deliberation(s, slug="ai-and-grief")
    assert (d.title, d.value_framing, d.stories_per_participant, d.is_open) == (
        "AI and grief",
        "personal",
        5,
        False,
    )
    assert d.completion_url == "https://app.prolific.com/x?cc=1"
    assert at.selectbox(key="delib_pick").value == "ai-and-grief"


def test_create_deliberation_with_bad_slug_shows_message(env):
    at = page("console_deliberations", env.token)
    at.text_input(key="create_slug").input("AI and Grief")
    at.text_input(key="create_title").input("AI and grief")
    click(at, "create_submit")
    assert "only lowercase letters (a-z), digits and hyphens" in errors(at)
    assert count(env.engine, Deliberation) == 0


def test_edit_settings_saves(env):
    w = seeded(env.engine)
    at = page("console_deliberations", env.token)
    assert at.text_input(key="edit_title").value == "Test"
    at.text_input(key="edit_title").input("New title")
    at.radio(key="edit_framing").set_value("personal")
    at.number_input(key="edit_questions_n").set_value(1)
    at.text_input(key="edit_invite").input("code-42")
    click(at, "edit_submit")
    assert "saved" in successes(at)
    with Session(env.engine) as s:
        d = s.get(Deliberation, w["d"].id)
    assert (d.title, d.value_framing, d.questions_per_participant, d.invite_code) == (
        "New title",
        "personal",
        1,
        "code-42",
    )
    assert at.text_input(key="edit_title").value == "New title"


def test_edit_settings_refuses_bad_completion_url(env):
    w = seeded(env.engine)
    at = page("console_deliberations", env.token)
    at.text_input(key="edit_completion_url").input("javascript:alert(1)")
    click(at, "edit_submit")
    assert "must be a full web address" in errors(at)
    with Session(env.engine) as s:
        assert s.get(Deliberation, w["d"].id).completion_url is None


def test_open_and_close_deliberation(env):
    w = seeded(env.engine)
    at = page("console_deliberations", env.token)
    assert at.button(key="delib_toggle_open").label == "Close to participants"
    click(at, "delib_toggle_open")
    with Session(env.engine) as s:
        assert s.get(Deliberation, w["d"].id).is_open is False
    assert at.button(key="delib_toggle_open").label == "Open to participants"
    click(at, "delib_toggle_open")
    with Session(env.engine) as s:
        assert s.get(Deliberation, w["d"].id).is_open is True


def test_duplicate_deliberation(env):
    seeded(env.engine)
    at = page("console_deliberations", env.token)
    at.text_input(key="dup_slug").input("study-2")
    click(at, "dup_submit")
    assert "study-2" in successes(at)
    with Session(env.engine) as s:
        copy = queries.get_deliberation(s, slug="study-2")
        assert [q.text for q in queries.list_questions(s, deliberation_id=copy.id)] == [
            "What should I do?"
        ]
        assert len(queries.list_contexts(s, deliberation_id=copy.id)) == 1
        assert queries.count_participants(s, deliberation_id=copy.id) == 0
    assert at.selectbox(key="delib_pick").value == "study-2"


# --- questions and contexts -------------------------------------------------------------------


def test_questions_page_shows_questions_and_contexts(env):
    w = seeded(env.engine)
    at = page("console_questions", env.token)
    assert at.text_input(key=f"q_title_{w['q'].id}").value == "What should I do?"[:30]
    assert at.pills(key=f"q_ctx_{w['q'].id}").value == [w["ctx"].id]
    assert at.text_input(key=f"c_text_{w['ctx'].id}").value == "When the user is in distress"


def test_add_question_with_contexts(env):
    w = seeded(env.engine)
    at = page("console_questions", env.token)
    at.text_input(key="q_add_title").input("Grief")
    at.text_area(key="q_add_text").input("My dog died. What now?")
    at.pills(key="q_add_existing").select(w["ctx"].id)
    at.text_area(key="q_add_contexts").input("when the user is grieving\nWhen time is short")
    click(at, "q_add_submit")
    assert "Question added" in successes(at)
    with Session(env.engine) as s:
        q = [x for x in queries.list_questions(s, deliberation_id=w["d"].id) if x.title == "Grief"][
            0
        ]
        texts = {
            c.text for c in queries.list_contexts(s, deliberation_id=w["d"].id, question_id=q.id)
        }
    assert texts == {
        "When the user is grieving",
        "When time is short",
        "When the user is in distress",
    }
    assert at.text_input(key="q_add_title").value == ""


def test_add_question_refuses_context_without_when(env):
    w = seeded(env.engine)
    at = page("console_questions", env.token)
    at.text_input(key="q_add_title").input("Grief")
    at.text_area(key="q_add_text").input("My dog died. What now?")
    at.text_area(key="q_add_contexts").input("The user is grieving")
    click(at, "q_add_submit")
    assert 'starts with "When"' in errors(at)
    assert count(env.engine, Question, Question.deliberation_id == w["d"].id) == 1
    assert at.text_input(key="q_add_title").value == "Grief"  # kept for correction


def test_edit_question_and_unlink_context(env):
    w = seeded(env.engine)
    qid, cid = w["q"].id, w["ctx"].id
    at = page("console_questions", env.token)
    at.text_input(key=f"q_title_{qid}").input("Renamed")
    at.pills(key=f"q_ctx_{qid}").unselect(cid)
    click(at, f"q_save_{qid}")
    with Session(env.engine) as s:
        assert s.get(Question, qid).title == "Renamed"
        assert queries.list_contexts(s, deliberation_id=w["d"].id, question_id=qid) == []


def test_archive_and_restore_question(env):
    w = seeded(env.engine)
    qid = w["q"].id
    at = page("console_questions", env.token)
    click(at, f"q_archive_{qid}")
    with Session(env.engine) as s:
        assert s.get(Question, qid).archived is True
    assert not [b for b in at.button if b.key == f"q_archive_{qid}"]  # hidden
    at.toggle(key="q_show_archived").set_value(True)
    run(at)
    assert at.button(key=f"q_archive_{qid}").label == "Restore"
    click(at, f"q_archive_{qid}")
    with Session(env.engine) as s:
        assert s.get(Question, qid).archived is False


def test_add_edit_archive_context(env):
    w = seeded(env.engine)
    at = page("console_questions", env.token)
    at.text_input(key="c_add_text").input("Nobody listens")
    click(at, "c_add_submit")
    assert 'starts with "When"' in errors(at)
    at.text_input(key="c_add_text").input("When money is tight")
    at.pills(key="c_add_questions").select(w["q"].id)
    click(at, "c_add_submit")
    with Session(env.engine) as s:
        c = s.exec(select(Context).where(Context.text == "When money is tight")).one()
        linked = queries.list_contexts(s, deliberation_id=w["d"].id, question_id=w["q"].id)
    assert c.id in {x.id for x in linked}
    at.text_input(key=f"c_text_{c.id}").input("When money is very tight")
    click(at, f"c_save_{c.id}")
    click(at, f"c_archive_{c.id}")
    with Session(env.engine) as s:
        row = s.get(Context, c.id)
    assert (row.text, row.archived) == ("When money is very tight", True)


def test_questions_page_without_llm_says_so(env):
    seeded(env.engine)
    at = page("console_questions", env.token)
    assert "No LLM is configured" in unescape(" ".join(i.value for i in at.info))
    assert not [b for b in at.button if b.key == "llm_propose"]


@pytest.fixture
def llm_env(monkeypatch, sqlite_url, llm_server):
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    e = _env(monkeypatch, sqlite_url)
    yield e
    st.cache_resource.clear()
    e.engine.dispose()


def test_llm_drafts_questions_and_saves_only_the_kept_ones(llm_env, llm_server):
    w = seeded(llm_env.engine, topic="Grief and loss")
    drafts = {
        "questions": [
            {
                "title": "Pet loss",
                "text": "My dog died. What now?",
                "contexts": ["When the user is grieving", "when the user feels alone"],
            },
            {
                "title": "Funeral",
                "text": "Should I go to my father's funeral?",
                "contexts": ["When family is estranged", "When the user is grieving"],
            },
        ]
    }
    llm_server.script(
        Reply(tool_calls=[ScriptedToolCall("propose_questions", drafts)], usage=(500, 80, 0))
    )
    at = page("console_questions", llm_env.token)
    at.number_input(key="llm_n_questions").set_value(2)
    at.number_input(key="llm_n_contexts").set_value(2)
    click(at, "llm_propose")
    assert at.text_input(key="prop_title_0").value == "Pet loss"
    assert at.text_area(key="prop_ctx_0").value == (
        "When the user is grieving\nWhen the user feels alone"
    )
    assert (
        "<topic>\nGrief and loss\n</topic>"
        in llm_server.last_request.body["messages"][0]["content"]
    )
    assert count(llm_env.engine, Question) == 1  # nothing saved yet
    at.checkbox(key="prop_keep_1").uncheck()
    at.text_input(key="prop_title_0").input("Losing a pet")
    click(at, "prop_save")
    assert "1 question(s) saved" in successes(at)
    with Session(llm_env.engine) as s:
        titles = [q.title for q in queries.list_questions(s, deliberation_id=w["d"].id)]
        [call] = s.exec(select(LLMCall).where(LLMCall.purpose == "questions")).all()
    assert titles == ["What should I do?"[:30], "Losing a pet"]
    assert (call.deliberation_id, call.prompt_name, call.outcome) == (
        w["d"].id,
        "propose_questions",
        "ok",
    )
    assert not [b for b in at.button if b.key == "prop_save"]


def test_llm_drafts_contexts_for_a_question(llm_env, llm_server):
    w = seeded(llm_env.engine)
    llm_server.script(
        Reply(
            tool_calls=[
                ScriptedToolCall(
                    "propose_contexts",
                    {"contexts": ["When the user is ashamed", "When help is far away"]},
                )
            ]
        )
    )
    at = page("console_questions", llm_env.token)
    at.number_input(key="llm_ctx_n").set_value(2)
    click(at, "llm_ctx_propose")
    assert at.text_input(key="propctx_text_1").value == "When help is far away"
    at.checkbox(key="propctx_keep_1").uncheck()
    click(at, "propctx_save")
    with Session(llm_env.engine) as s:
        texts = [
            c.text
            for c in queries.list_contexts(s, deliberation_id=w["d"].id, question_id=w["q"].id)
        ]
        [call] = s.exec(select(LLMCall).where(LLMCall.purpose == "contexts")).all()
    assert texts == ["When the user is in distress", "When the user is ashamed"]
    assert (call.deliberation_id, call.prompt_name) == (w["d"].id, "propose_contexts")


# --- dashboard --------------------------------------------------------------------------------


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_dashboard_shows_status_line(env):
    seeded(env.engine)
    at = page("console_dashboard", env.token)
    assert get_settings().describe() in [c.value for c in at.caption]


def test_dashboard_metrics_equal_ledger_sums(any_env):
    w = seeded(any_env.engine)
    with Session(any_env.engine) as s:
        add(
            s,
            LLMCall(
                purpose="questions",
                model="gpt-4o-mini",
                deliberation_id=w["d"].id,
                input_tokens=12_345,
                cached_input_tokens=1_000,
                output_tokens=999,
                outcome="ok",
            ),
            LLMCall(
                purpose="dedupe",
                model="gpt-4o",
                deliberation_id=w["d"].id,
                input_tokens=None,
                output_tokens=None,
                outcome="error",
            ),
            LLMCall(
                purpose="interview",
                model="gpt-4o",
                deliberation_id=None,
                input_tokens=77_777,
                outcome="ok",
            ),
        )
        rows = s.exec(select(LLMCall).where(LLMCall.deliberation_id == w["d"].id)).all()
    prices = get_settings().prices()
    want_cost = (
        sum(
            ((r.input_tokens or 0) - (r.cached_input_tokens or 0)) * prices[r.model][0]
            + (r.cached_input_tokens or 0) * prices[r.model][1]
            + (r.output_tokens or 0) * prices[r.model][2]
            for r in rows
        )
        / 1_000_000
    )
    at = page("console_dashboard", any_env.token)
    m = _metrics(at)
    assert m["LLM calls"] == str(len(rows))
    assert m["Input tokens"] == f"{sum(r.input_tokens or 0 for r in rows):,}"
    assert m["Cached input tokens"] == f"{sum(r.cached_input_tokens or 0 for r in rows):,}"
    assert m["Output tokens"] == f"{sum(r.output_tokens or 0 for r in rows):,}"
    assert m["Estimated cost"] == f"${want_cost:,.4f}"
    assert (m["Participants"], m["Finished"], m["Completion rate"]) == ("2", "1", "50%")
    assert (m["Cards submitted"], m["Wiser votes"], m["Hypotheses"]) == ("2", "2", "1")
    steps = at.dataframe[0].value
    assert list(steps["reached"])[:3] == [2, 2, 2] and list(steps["reached"])[-1] == 1


def test_dashboard_refresh_now_shows_new_data(env):
    w = seeded(env.engine)
    at = page("console_dashboard", env.token)
    assert _metrics(at)["Participants"] == "2"
    with Session(env.engine) as s:
        factories.participant(s, s.get(Deliberation, w["d"].id))
    click(at, "dash_refresh")
    assert _metrics(at)["Participants"] == "3"


def test_dashboard_whole_ledger_switch(env):
    seeded(env.engine)
    with Session(env.engine) as s:
        add(s, LLMCall(purpose="demo", model="gpt-4o", input_tokens=1_000_000, outcome="ok"))
    at = page("console_dashboard", env.token)
    assert _metrics(at)["Input tokens"] == "5,000"
    at.checkbox(key="dash_whole_ledger").check()
    run(at)
    assert _metrics(at)["Input tokens"] == "1,005,000"
    assert "all deliberations" in " ".join(s.value for s in at.subheader)


def test_dashboard_auto_refresh_toggle(env):
    seeded(env.engine)
    at = page("console_dashboard", env.token)
    assert at.toggle(key="dash_auto").value is False
    at.toggle(key="dash_auto").set_value(True)
    run(at)
    assert at.toggle(key="dash_auto").value is True
    assert _metrics(at)["Participants"] == "2"


# --- interviews and cards ---------------------------------------------------------------------


def test_interviews_list_and_search(env):
    w = seeded(env.engine)
    at = page("console_interviews", env.token)
    assert sorted(at.dataframe[0].value["interview_id"]) == sorted(
        [w["a"].interview.id, w["b"].interview.id]
    )
    at.text_input(key="iv_search").input("grandmother")
    run(at)
    assert list(at.dataframe[0].value["interview_id"]) == [w["b"].interview.id]
    at.text_input(key="iv_search").input("nothing like this")
    run(at)
    assert "0 interview(s)" in shown(at)


def test_transcript_is_plain_text(env):
    w = seeded(env.engine)
    at = page("console_interviews", env.token)
    at.selectbox(key="iv_pick").set_value(w["a"].interview.id)
    run(at)
    assert HOSTILE in [t.value for t in at.text]
    for kind in ("markdown", "caption", "error", "success", "info", "warning"):
        for element in getattr(at, kind):
            assert "<script>" not in element.value and "](http" not in element.value


def test_card_versions_show_origin(env):
    w = seeded(env.engine)
    at = page("console_interviews", env.token)
    at.selectbox(key="iv_pick").set_value(w["a"].interview.id)
    run(at)
    labels = [e.label for e in at.expander]
    assert labels[0] == "Version 1: LLM articulation"
    assert labels[1].startswith("Version 2: Participant edit (changed: title")
    texts = [t.value for t in at.text]
    assert "Honesty" in texts and "Grounded Honesty" in texts


def test_flag_and_archive_interview_and_flag_participant(env):
    w = seeded(env.engine)
    iid, pid = w["a"].interview.id, w["a"].participant.id
    at = page("console_interviews", env.token)
    at.selectbox(key="iv_pick").set_value(iid)
    run(at)
    click(at, "iv_flag")
    click(at, "iv_archive")
    click(at, "iv_flag_participant")
    with Session(env.engine) as s:
        iv, p = s.get(Interview, iid), s.get(Participant, pid)
    assert (iv.flagged, iv.archived, p.flagged) == (True, True, True)
    at.checkbox(key="iv_hide_archived").check()
    run(at)
    assert iid not in list(at.dataframe[0].value["interview_id"])


def test_flag_and_archive_card_from_interview(env):
    w = seeded(env.engine)
    card_id = w["a"].card.id
    at = page("console_interviews", env.token)
    at.selectbox(key="iv_pick").set_value(w["a"].interview.id)
    run(at)
    click(at, f"card_flag_{card_id}")
    click(at, f"card_archive_{card_id}")
    with Session(env.engine) as s:
        card = s.get(ValuesCard, card_id)
    assert (card.flagged, card.archived) == (True, True)


def test_cards_tab_search_and_flag(env):
    w = seeded(env.engine)
    at = page("console_interviews", env.token)
    at.text_input(key="cards_search").input("patient")
    run(at)
    table = at.dataframe[1].value
    assert list(table["card_id"]) == [w["b"].card.id]
    click(at, "cards_flag")
    with Session(env.engine) as s:
        assert s.get(ValuesCard, w["b"].card.id).flagged is True


# --- participant data -------------------------------------------------------------------------


def _find(at: AppTest, by: str, query: str) -> AppTest:
    at.radio(key="pd_by").set_value(by)
    at.text_input(key="pd_query").input(query)
    return click(at, "pd_lookup")


def test_find_participant_by_token_and_panel_id(env):
    w = seeded(env.engine)
    at = page("console_participants", env.token)
    _find(at, "Resume token", w["a"].token)
    assert f"Participant {w['a'].participant.id}" in [s.value for s in at.subheader]
    _find(at, "Panel id", "PID-B")
    assert f"Participant {w['b'].participant.id}" in [s.value for s in at.subheader]


def test_find_participant_says_when_nothing_matches(env):
    seeded(env.engine)
    at = page("console_participants", env.token)
    _find(at, "Panel id", "PID-NOBODY")
    assert "No participant with that panel id" in errors(at)
    assert not at.download_button


def test_participant_download_is_their_export(env):
    from streamlit.runtime.memory_media_file_storage import _calculate_file_id

    w = seeded(env.engine)
    at = page("console_participants", env.token)
    _find(at, "Panel id", "PID-A")
    button = at.download_button(key="pd_export")
    data = participants.export_participant_json(env.engine, participant_id=w["a"].participant.id)
    assert json.loads(data)["participant"]["panel_pid"] == "PID-A"
    file_id = _calculate_file_id(
        data.encode(), "application/json", f"participant-study-{w['a'].participant.id}.json"
    )
    assert button.proto.url.endswith(f"/{file_id}.json")


def test_flag_participant(env):
    w = seeded(env.engine)
    at = page("console_participants", env.token)
    _find(at, "Panel id", "PID-A")
    click(at, "pd_flag")
    with Session(env.engine) as s:
        assert s.get(Participant, w["a"].participant.id).flagged is True


def test_delete_participant_needs_confirmation_and_propagates(any_env):
    w = seeded(any_env.engine)
    d, a = w["d"], w["a"]
    at = page("console_participants", any_env.token)
    _find(at, "Panel id", "PID-A")
    click(at, "pd_delete")
    assert "Tick the box" in errors(at)
    assert count(any_env.engine, Participant) == 2
    at.checkbox(key="pd_confirm").check()
    click(at, "pd_delete")
    assert f"Participant {a.participant.id} deleted" in successes(at)
    with Session(any_env.engine) as s:
        assert s.get(Participant, a.participant.id) is None
        votes = queries.list_deliberation_wiser_votes(s, deliberation_id=d.id)
        values = {v.id for v in queries.list_canonical_values(s, deliberation_id=d.id)}
    assert all(v.participant_id != a.participant.id for v, _ in votes)
    assert votes == []  # B's only vote was on A's value, which went with A
    assert values == {w["b"].value.id}
    assert not at.download_button  # nothing left to show


# --- accounts ---------------------------------------------------------------------------------


def test_change_password(env):
    at = page("console_accounts", env.token)
    at.text_input(key="acct_current").input("wrong-password")
    at.text_input(key="acct_new").input("brand-new-pass")
    at.text_input(key="acct_repeat").input("brand-new-pass")
    click(at, "acct_password_submit")
    assert "current password is wrong" in errors(at)
    at.text_input(key="acct_current").input("password123")
    at.text_input(key="acct_new").input("brand-new-pass")
    at.text_input(key="acct_repeat").input("brand-new-pass")
    click(at, "acct_password_submit")
    assert "Password changed" in successes(at)
    assert at.title[0].value == "Accounts"  # this session stays
    assert auth.login(env.engine, username="fac", password="brand-new-pass", hours=1).token
    with pytest.raises(auth.AuthError):
        auth.login(env.engine, username="fac", password="password123", hours=1)


def test_create_facilitator_and_list(env):
    at = page("console_accounts", env.token)
    at.text_input(key="acct_new_user").input("bea")
    at.text_input(key="acct_new_password").input("password123")
    at.text_input(key="acct_new_repeat").input("password999")
    click(at, "acct_create_submit")
    assert "do not match" in errors(at)
    at.text_input(key="acct_new_password").input("password123")
    at.text_input(key="acct_new_repeat").input("password123")
    click(at, "acct_create_submit")
    assert "Facilitator created" in successes(at)
    assert list(at.dataframe[0].value["username"]) == ["bea", "fac"]
    assert auth.login(env.engine, username="bea", password="password123", hours=1).token


# --- pilot with simulated participants (console_deliberations.py) ------------------------------


def test_pilot_runs_simulated_participants_then_deletes_them(llm_env, llm_server):
    from tests.elicit.test_simulate import Pilot

    w = seeded(llm_env.engine, is_open=False)
    llm_server.default = Pilot()
    real = count(llm_env.engine, Participant)
    at = page("console_deliberations", llm_env.token)
    assert "Simulated participants in this deliberation: 0" in shown(at)
    at.number_input(key="sim_n").set_value(2)
    click(at, "sim_run")
    assert "2 simulated participant(s): 2 finished, 2 card(s) confirmed" in successes(at)
    assert "Simulated participants in this deliberation: 2" in shown(at)
    assert "2 simulated participant(s) from a pilot are still counted" in at.warning[0].value
    assert count(llm_env.engine, Participant, Participant.entry_channel == "simulated") == 2
    with Session(llm_env.engine) as s:
        assert s.get(Deliberation, w["d"].id).is_open is False  # a pilot does not open it
    assert at.button(key="sim_delete").disabled  # not before the confirmation
    at.checkbox(key="sim_delete_sure").check()
    run(at)
    click(at, "sim_delete")
    assert "Deleted 2 simulated participant(s)." in successes(at)
    with Session(llm_env.engine) as s:
        live = s.exec(select(Participant).where(col(Participant.deleted_at).is_(None))).all()
    assert len(live) == real
    assert "Simulated participants in this deliberation: 0" in shown(at)
    assert not at.warning


def test_pilot_without_llm_says_so(env):
    seeded(env.engine)
    at = page("console_deliberations", env.token)
    assert "simulated participants need one" in unescape(" ".join(i.value for i in at.info))
    assert not [b for b in at.button if b.key == "sim_run"]


def test_expired_session_cannot_run_a_pilot(llm_env, llm_server):
    from tests.elicit.test_simulate import Pilot

    seeded(llm_env.engine)
    llm_server.default = Pilot()
    at = page("console_deliberations", llm_env.token)
    end_sessions(llm_env.engine)
    click(at, "sim_run")
    assert is_login_form(at)
    assert count(llm_env.engine, Participant, Participant.entry_channel == "simulated") == 0
    assert llm_server.requests == []
