"""The Deduplication and Hypotheses console pages through AppTest.

Behaviours, one test each:

Both pages
- logged out (no token, or a forged one): only the login form; none of the data.
- session ended while the page was open: the main actions change nothing, the login form shows.
Deduplication (console_dedupe.py)
- a dry run shows the proposed values with card titles (as plain text) and changes nothing;
  says when no LLM is configured.
- apply carries out the plan (cards relinked, decisions in the log table); then it is gone.
- a plan made stale by a merge by hand is refused with a message.
- merge by hand moves the cards; split by hand gives a card its own value.
- with the scripted LLM the dry run asks it (ledger rows, purpose "dedupe"); a malformed
  answer shows a clear error and writes nothing.
Hypotheses (console_hypotheses.py)
- without an LLM: says so; generating writes templated stories for both directions, which
  are listed with both values side by side, the story, and vote counts per hypothesis.
- with the scripted LLM: the story from the tool call is shown; a malformed answer shows an
  error and writes nothing.
- edit a story, archive it; add one by hand; participant text is escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from db.engine import make_engine
from db.models import (
    CanonicalValue,
    DedupeDecision,
    Deliberation,
    FacilitatorSession,
    Hypothesis,
    LLMCall,
    WiserVote,
)
from elicit import auth
from elicit.config import get_settings
from tests import factories
from tests.llm_server import Reply, ToolCall
from tests.values_seed import AUTONOMY, CARE, SAFETY, TWIN, count, links, seed

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "**bold** <script>alert('x')</script> [click](http://evil.example)"
LAYOUT = {"a": [("a", AUTONOMY)], "b": [("b", TWIN)], "v": [("s", SAFETY), ("c", CARE)]}


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


@pytest.fixture
def llm_env(monkeypatch, sqlite_url, llm_server):
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("MGE_LLM_MAX_RETRIES", "0")
    e = _env(monkeypatch, sqlite_url)
    yield e
    st.cache_resource.clear()
    e.engine.dispose()


def page(name: str, token: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / f"{name}.py"), default_timeout=30)
    if token is not None:
        at.session_state["console_token"] = token
    return run(at)


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
    parts: list[str] = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "text", "info", "error"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [str(e.value) for e in at.success]
    parts += [df.value.to_string() for df in at.dataframe]
    parts += [str(o) for sb in at.selectbox for o in sb.options]
    parts += [str(w.value) for w in at.text_area]
    return unescape("\n".join(parts))


def is_login_form(at: AppTest) -> bool:
    return [t.value for t in at.title] == ["Facilitator login"] and [
        b.label for b in at.button
    ] == ["Log in"]


def end_sessions(engine: Engine) -> None:
    with Session(engine) as s:
        s.execute(delete(FacilitatorSession))
        s.commit()


TABLE_COLUMNS = {  # AppTest does not expose a dataframe's key: find it by a column of its own
    "dd_plan_table": "merges values",
    "dd_plan_cards": "card title",
    "dd_log": "action",
    "hy_votes_table": "no_upgrade",
}


def table(at: AppTest, key: str):
    column = TABLE_COLUMNS[key]
    return next(df.value for df in at.dataframe if column in df.value.columns)


# --- the gate ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["console_dedupe", "console_hypotheses"])
@pytest.mark.parametrize("token", [None, "forged-token"])
def test_logged_out_page_shows_only_the_login_form(env, name, token):
    seed(env.engine, {"a": [("a", dict(AUTONOMY, title="Zebra Secret Value"))]}, slug="study")
    at = page(name, token)
    assert is_login_form(at)
    assert "Zebra" not in shown(at)


def test_expired_session_cannot_dry_run_or_apply(env):
    world = seed(env.engine, LAYOUT, slug="study")
    before = links(env.engine, world)
    at = page("console_dedupe", env.token)
    click(at, "dd_dry_run")
    assert "Own Conclusions" in shown(at)
    end_sessions(env.engine)
    click(at, "dd_apply")
    assert is_login_form(at) and "Own Conclusions" not in shown(at)
    assert links(env.engine, world) == before
    assert count(env.engine, DedupeDecision) == 0


def test_expired_session_cannot_merge_by_hand(env):
    world = seed(env.engine, LAYOUT, slug="study")
    at = page("console_dedupe", env.token)
    at.selectbox(key="dd_merge_keep").set_value(world.values["a"])
    at.multiselect(key="dd_merge_ids").set_value([world.values["v"]])
    end_sessions(env.engine)
    click(at, "dd_merge_submit")
    assert is_login_form(at)
    assert count(env.engine, DedupeDecision) == 0


def test_expired_session_cannot_generate_hypotheses(env):
    seed(env.engine, LAYOUT, slug="study")
    at = page("console_hypotheses", env.token)
    end_sessions(env.engine)
    click(at, "hy_generate")
    assert is_login_form(at)
    assert count(env.engine, Hypothesis) == 0


# --- deduplication ----------------------------------------------------------------------------


def test_dry_run_shows_the_plan_and_changes_nothing(env):
    world = seed(env.engine, dict(LAYOUT, h=[("h", dict(CARE, title=HOSTILE))]), slug="study")
    before = links(env.engine, world)
    at = page("console_dedupe", env.token)
    assert "No LLM is configured" in unescape(" ".join(i.value for i in at.info))
    click(at, "dd_dry_run")
    plan = table(at, "dd_plan_table")
    assert "Own Conclusions" in set(plan["title"]) or "Their Own Conclusions" in set(plan["title"])
    cards = table(at, "dd_plan_cards")
    assert {"Own Conclusions", "Their Own Conclusions"} <= set(cards["card title"])
    at.toggle(key="dd_show_all").set_value(True)
    run(at)
    assert "Gentle Presence" in set(table(at, "dd_plan_table")["title"])  # unchanged, now shown
    assert HOSTILE in set(table(at, "dd_plan_cards")["card title"])  # a plain-text cell
    assert links(env.engine, world) == before
    assert count(env.engine, DedupeDecision) == 0


def test_apply_carries_out_the_plan_and_logs_it(any_env):
    world = seed(any_env.engine, LAYOUT, slug="study")
    at = page("console_dedupe", any_env.token)
    click(at, "dd_dry_run")
    click(at, "dd_apply")
    assert "1 merge(s)" in unescape(" ".join(s.value for s in at.success))
    now = links(any_env.engine, world)
    assert now["a"] == now["b"] == world.values["a"] and now["s"] != now["c"]
    log = table(at, "dd_log")
    assert {"keep", "merge", "split", "create"} <= set(log["action"])
    assert set(log["by"]) == {"fac"}
    assert not [b for b in at.button if b.key == "dd_apply"]  # the plan is gone


def test_a_stale_plan_is_refused(env):
    world = seed(env.engine, LAYOUT, slug="study")
    at = page("console_dedupe", env.token)
    click(at, "dd_dry_run")
    from elicit import dedupe

    dedupe.split_card(env.engine, card_id=world.cards["c"], actor="someone else")
    click(at, "dd_apply")
    assert "Run the dry run again" in unescape(" ".join(e.value for e in at.error))
    assert links(env.engine, world)["b"] == world.values["b"]


def test_merge_and_split_by_hand(any_env):
    world = seed(any_env.engine, LAYOUT, slug="study")
    at = page("console_dedupe", any_env.token)
    at.selectbox(key="dd_merge_keep").set_value(world.values["a"])
    at.multiselect(key="dd_merge_ids").set_value([world.values["b"]])
    click(at, "dd_merge_submit")
    assert f"into value {world.values['a']}" in unescape(at.success[0].value)
    assert links(any_env.engine, world)["b"] == world.values["a"]
    at.selectbox(key="dd_split_card").set_value(world.cards["c"])
    click(at, "dd_split_submit")
    now = links(any_env.engine, world)
    assert now["c"] not in (world.values["v"], None) and now["s"] == world.values["v"]
    log = table(at, "dd_log")
    assert sorted(log["action"]) == ["merge", "split"] and set(log["method"]) == {"manual"}


def test_merge_by_hand_refuses_keeping_a_merged_value(env):
    world = seed(env.engine, LAYOUT, slug="study")
    at = page("console_dedupe", env.token)
    at.selectbox(key="dd_merge_keep").set_value(world.values["a"])
    at.multiselect(key="dd_merge_ids").set_value([world.values["a"]])
    click(at, "dd_merge_submit")
    assert "cannot also be" in unescape(" ".join(e.value for e in at.error))
    assert count(env.engine, DedupeDecision) == 0


def judge_all(same: bool) -> Reply:
    return Reply(tool_calls=[ToolCall("judge_same_value", {"reason": "r", "same_value": same})])


def test_dry_run_with_llm_asks_it_and_applies(llm_env, llm_server):
    world = seed(llm_env.engine, LAYOUT, slug="study")
    llm_server.default = judge_all(False)
    at = page("console_dedupe", llm_env.token)
    assert not at.info  # no "no LLM" note
    click(at, "dd_dry_run")
    assert "with the LLM check" in shown(at)
    with Session(llm_env.engine) as s:
        calls = s.exec(select(LLMCall)).all()
    assert calls and {c.purpose for c in calls} == {"dedupe"}
    click(at, "dd_apply")
    assert links(llm_env.engine, world)["a"] != links(llm_env.engine, world)["b"]  # vetoed


def test_malformed_llm_answer_shows_an_error_and_writes_nothing(llm_env, llm_server):
    world = seed(llm_env.engine, LAYOUT, slug="study")
    llm_server.default = Reply.malformed_tool_call("judge_same_value")
    before = links(llm_env.engine, world)
    at = page("console_dedupe", llm_env.token)
    click(at, "dd_dry_run")
    assert "could not use" in unescape(" ".join(e.value for e in at.error))
    assert not [b for b in at.button if b.key == "dd_apply"]
    assert links(llm_env.engine, world) == before and count(llm_env.engine, DedupeDecision) == 0


# --- hypotheses -------------------------------------------------------------------------------


def test_generate_without_llm_lists_templated_stories_with_both_values(any_env):
    seed(any_env.engine, LAYOUT, slug="study")
    at = page("console_hypotheses", any_env.token)
    assert "No LLM is configured" in unescape(" ".join(i.value for i in at.info))
    at.number_input(key="hy_per_context").set_value(1)
    click(at, "hy_generate")
    assert "2 hypothesis(es) created with templated stories" in unescape(at.success[0].value)
    with Session(any_env.engine) as s:
        rows = s.exec(select(Hypothesis)).all()
    assert len(rows) == 2 and {r.origin for r in rows} == {"template"}
    votes = table(at, "hy_votes_table")
    assert set(votes["from"]) == {"Own Conclusions", "Their Own Conclusions"} or set(
        votes["from"]
    ) == {"Own Conclusions", "Medical Safety Facts"}
    assert list(votes["upgrade"]) == [0, 0]
    for h in rows:
        assert at.text_area(key=f"hy_story_{h.id}").value == h.story
    text = shown(at)
    assert "Before" in text and "After (wiser?)" in text
    assert "OPPORTUNITIES for the user to reach their own conclusion" in text


def test_vote_counts_per_hypothesis(env):
    world = seed(env.engine, LAYOUT, slug="study")
    at = page("console_hypotheses", env.token)
    at.number_input(key="hy_per_context").set_value(1)
    click(at, "hy_generate")
    with Session(env.engine) as s:
        h = s.exec(select(Hypothesis)).first()
        d = s.get(Deliberation, world.deliberation_id)
        for choice in ("upgrade", "no_upgrade", "upgrade"):
            p, _ = factories.participant(s, d)
            s.add(
                WiserVote(
                    deliberation_id=world.deliberation_id,
                    participant_id=p.id,
                    hypothesis_id=h.id,
                    from_value_id=h.from_value_id,
                    to_value_id=h.to_value_id,
                    context_id=h.context_id,
                    choice=choice,
                )
            )
            s.commit()
        h_id = h.id
    run(at)
    votes = table(at, "hy_votes_table").set_index("id")
    assert (votes.loc[h_id, "upgrade"], votes.loc[h_id, "no_upgrade"]) == (2, 1)
    assert "votes: upgrade 2, no upgrade 1, not sure 0" in shown(at)


def _story(request) -> Reply:
    return Reply(
        tool_calls=[
            ToolCall(
                "write_story",
                {"story": "I used to think the facts were enough when a friend was scared. " * 6},
            )
        ]
    )


def test_generate_with_llm_shows_the_story_from_the_tool_call(llm_env, llm_server):
    seed(llm_env.engine, LAYOUT, slug="study")
    llm_server.default = _story
    at = page("console_hypotheses", llm_env.token)
    at.number_input(key="hy_per_context").set_value(1)
    click(at, "hy_generate")
    assert "with LLM stories" in unescape(at.success[0].value)
    with Session(llm_env.engine) as s:
        rows = s.exec(select(Hypothesis)).all()
        calls = s.exec(select(LLMCall)).all()
    assert {r.origin for r in rows} == {"llm"}
    assert {c.purpose for c in calls} == {"hypothesis"} and len(calls) == 2
    assert at.text_area(key=f"hy_story_{rows[0].id}").value.startswith("I used to think")


def test_malformed_story_shows_an_error_and_writes_nothing(llm_env, llm_server):
    seed(llm_env.engine, LAYOUT, slug="study")
    llm_server.default = Reply.malformed_tool_call("write_story")
    at = page("console_hypotheses", llm_env.token)
    click(at, "hy_generate")
    assert "could not use" in unescape(" ".join(e.value for e in at.error))
    assert count(llm_env.engine, Hypothesis) == 0


def test_edit_archive_and_add_by_hand(env):
    world = seed(env.engine, LAYOUT, slug="study")
    at = page("console_hypotheses", env.token)
    at.number_input(key="hy_per_context").set_value(1)
    click(at, "hy_generate")
    with Session(env.engine) as s:
        first = s.exec(select(Hypothesis).order_by(Hypothesis.id)).first().id
    at.text_area(key=f"hy_story_{first}").input("I used to rush. Now I listen.")
    click(at, f"hy_save_{first}")
    click(at, f"hy_archive_{first}")
    with Session(env.engine) as s:
        h = s.get(Hypothesis, first)
        assert (h.story, h.archived) == ("I used to rush. Now I listen.", True)
    assert not [t for t in at.text_area if t.key == f"hy_story_{first}"]  # archived are hidden
    at.selectbox(key="hy_add_from").set_value(world.values["v"])
    at.selectbox(key="hy_add_to").set_value(world.values["a"])
    at.text_area(key="hy_add_story").input("My own story.")
    click(at, "hy_add_submit")
    with Session(env.engine) as s:
        manual = s.exec(select(Hypothesis).where(Hypothesis.origin == "manual")).one()
    assert (manual.from_value_id, manual.to_value_id) == (world.values["v"], world.values["a"])
    assert at.text_area(key="hy_add_story").value == ""
    # the same again is refused with a message
    at.text_area(key="hy_add_story").input("Again.")
    click(at, "hy_add_submit")
    assert "exists already" in unescape(" ".join(e.value for e in at.error))


def test_participant_text_is_escaped(env):
    seed(env.engine, {"a": [("a", AUTONOMY)], "h": [("h", dict(TWIN, title=HOSTILE))]}, slug="s")
    at = page("console_hypotheses", env.token)
    click(at, "hy_generate")
    raw = [m.value for m in at.markdown]
    assert any("\\*\\*bold\\*\\*" in m for m in raw)
    assert not any("**bold**" in m or "<script>" in m for m in raw)
    source = (REPO / "pages" / "console_hypotheses.py").read_text() + (
        REPO / "pages" / "console_dedupe.py"
    ).read_text()
    assert "unsafe_allow_html" not in source
    with Session(env.engine) as s:
        assert s.exec(select(CanonicalValue).where(CanonicalValue.title == HOSTILE)).first()
