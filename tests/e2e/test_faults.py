"""LLM faults in a real browser: the scripted server (its own process) fails across turns.

Behaviours:
- a 500, a 429, a timeout and a stream cut mid-reply, one per turn: after each the participant
  sees a plain message and "Try again", the retry answers; then two malformed card tool calls
  (the stream's and the forced re-ask's) leave the participant writing the card on screen.
  Every message typed is stored exactly once; the ledger has one error row per fault.
- three failures in a row: the guided form takes over, nothing typed is lost, and the
  participant can still finish their card in the form.
No page ever shows a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from db import queries
from db.engine import make_engine, session_scope
from db.models import Interview, LLMCall, Message
from tests.e2e import seed
from tests.e2e.harness import (
    AppServer,
    LLMProcess,
    assert_no_traceback,
    browser,
    chat,
    click,
    fill,
    key,
    main_text,
    settle,
    shot,
)
from tests.llm_server import Fault, Reply

TOOL = "submit_values_card"
TIMEOUT_S = 3


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
    url = seed.sqlite_copy(_sqlite_template, tmp_path_factory.mktemp("faults"))
    engine = make_engine(url)
    d = seed.deliberation(
        engine,
        slug="faults",
        title="Faults",
        questions=[("Job", "I lost my job. What should I do?", ["When the user feels ashamed"])],
    )
    # The card comes only when scripted: the default answer is always a question.
    llm = LLMProcess(mode="interviewer", card_after=99).start()
    app = AppServer(
        env={
            "DATABASE_URL": url,
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "test-key",
            "MGE_LLM_MAX_RETRIES": "0",  # every fault reaches the participant
            "MGE_LLM_TIMEOUT_S": str(TIMEOUT_S),
        }
    )
    try:
        app.start()
        yield Env(app, llm, engine, d.slug)
    finally:
        app.stop()
        llm.stop()
        engine.dispose()


def join(env: Env, page: object) -> int:
    """Consent in the browser; returns the new participant's id."""
    page.goto(f"{env.app.url}/?d={env.slug}")
    click(page, "consent_agree")
    page.locator('[data-testid="stChatInputTextArea"]').wait_for(timeout=60_000)
    token = page.url.split("r=", 1)[1].split("&", 1)[0]
    with session_scope(env.engine) as s:
        d = queries.get_deliberation(s, slug=env.slug)
        p = queries.get_participant_by_token(s, deliberation_id=d.id, token=token)
        assert p is not None and p.id is not None
        return p.id


def stored_user_messages(env: Env, participant_id: int) -> list[str]:
    with session_scope(env.engine) as s:
        ids = [i.id for i in queries.list_participant_interviews(s, participant_id=participant_id)]
        rows = s.exec(
            select(Message)
            .where(Message.interview_id.in_(ids), Message.role == "user")  # type: ignore[union-attr]
            .order_by(Message.id)
        ).all()
        return [m.content for m in rows]


def ledger(env: Env, participant_id: int) -> list[tuple[str, str | None]]:
    with session_scope(env.engine) as s:
        rows = s.exec(
            select(LLMCall).where(LLMCall.participant_id == participant_id).order_by(LLMCall.id)
        ).all()
        return [(r.outcome, r.error_type) for r in rows]


def send_and_wait(page: object, text: str) -> None:
    users = page.locator('[data-testid="stChatMessageAvatarUser"]')
    before = users.count()
    chat(page, text)
    users.nth(before).wait_for(timeout=60_000)
    settle(page)


def alert(page: object, text: str) -> object:
    return page.locator('[data-testid="stAlert"]').filter(has_text=text).first


def warning_text(page: object) -> str:
    return " ".join(page.locator('[data-testid="stAlert"]').all_inner_texts())


def test_faults_across_turns_lose_nothing_and_offer_a_retry(env: Env) -> None:
    faults = [
        ("500", Fault.server_error(500), "service had a problem", "server"),
        ("429", Fault.rate_limit(), "very busy", "rate_limit"),
        ("timeout", Fault.timeout(hang_s=TIMEOUT_S + 5), "took too long", "timeout"),
        (
            "stream-cut",
            Fault.cut(after_chunks=4, reply=Reply(text="This answer will be cut off half way")),
            "connection to the AI assistant was lost",
            "connection",
        ),
    ]
    typed: list[str] = []
    with browser() as b:
        page = b.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(30_000)
        pid = join(env, page)
        for i, (name, fault, says, _kind) in enumerate(faults):
            text = f"Turn {i + 1} before the {name}: my sister *kept* <b>quiet</b> for weeks."
            env.llm.script(fault)
            send_and_wait(page, text)
            typed.append(text)
            alert(page, "Your message is saved").wait_for(timeout=60_000)
            key(page, "chat_retry").wait_for(timeout=60_000)
            shown = warning_text(page)
            assert says in shown and "Your message is saved" in shown, shown
            assert text in main_text(page)  # the message stays on screen, as typed
            assert stored_user_messages(env, pid) == typed  # and in the database, once
            assert_no_traceback(page)
            shot(page, f"faults-{i + 1}-{name}")
            env.llm.script(
                Reply(text=f"Thanks for bearing with me. What happened after turn {i + 1}?")
            )
            click(page, "chat_retry")
            page.get_by_text(f"What happened after turn {i + 1}?").wait_for(timeout=60_000)
            settle(page)
            assert key(page, "chat_retry").count() == 0
        assert "This answer will be cut off" not in main_text(page)  # the cut text is not kept

        # a malformed card tool call, twice (the reply and the forced re-ask): the participant
        # writes the card on screen
        env.llm.script(Reply.malformed_tool_call(TOOL), Reply.malformed_tool_call(TOOL))
        last = "That is all I can say: honesty, kindly."
        send_and_wait(page, last)
        typed.append(last)
        key(page, "card_title").wait_for(timeout=60_000)
        assert "Write your values card" in main_text(page)
        assert_no_traceback(page)
        shot(page, "faults-5-malformed-tool-call")
        assert stored_user_messages(env, pid) == typed

    rows = ledger(env, pid)
    errors = [kind for outcome, kind in rows if outcome == "error" and kind != "invalid_output"]
    assert errors == [kind for *_, kind in faults]  # one row per fault, in order
    # 4 retries + the two malformed card calls, which the ledger marks as unusable output
    assert len(rows) == len(faults) * 2 + 2
    assert [kind for outcome, kind in rows if kind == "invalid_output"] == ["invalid_output"] * 2


def test_three_failures_in_a_row_switch_to_the_guided_form(env: Env) -> None:
    typed = [f"Attempt {i}: my grandfather never asked for help." for i in range(3)]
    with browser() as b:
        page = b.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(30_000)
        pid = join(env, page)
        env.llm.script(Fault.server_error(503), Fault.rate_limit(), Fault.server_error(500))
        for i, text in enumerate(typed):
            send_and_wait(page, text)
            if i < 2:
                alert(page, "Your message is saved").wait_for(timeout=60_000)
                key(page, "chat_retry").wait_for(timeout=60_000)
        key(page, "form_story").wait_for(timeout=60_000)
        body = main_text(page)
        assert "No AI is assisting you right now" in body
        assert "failed 3 times in a row" in body  # the notice in the transcript
        for text in typed:
            assert text in body  # the conversation so far stays visible
        assert page.locator('[data-testid="stChatInputTextArea"]').count() == 0
        assert_no_traceback(page)
        shot(page, "faults-guided-form")
        assert stored_user_messages(env, pid) == typed
        with session_scope(env.engine) as s:
            interview = s.exec(select(Interview).where(Interview.participant_id == pid)).one()
            assert interview.mode == "form"

        # the form still gets them to a confirmed card
        fill(page, "form_story", "He waited until it was too late to ask.")
        click(page, "form_story_next")
        fill(page, "form_attention", "Whether asking feels safe, and who is there to ask.")
        click(page, "form_attention_next")
        fill(page, "card_title", "Safe to Ask")
        fill(page, "card_description", "Making it easy for someone to ask for help early.")
        fill(
            page,
            "card_policies",
            "MOMENTS when asking for help would still change things\n"
            "PEOPLE nearby who would gladly help\n"
            "SIGNS that pride is keeping someone silent",
        )
        click(page, "card_confirm")
        page.get_by_text("Thank you! Your card is saved.").wait_for(timeout=60_000)
        assert_no_traceback(page)
    assert stored_user_messages(env, pid) == [
        *typed,
        "He waited until it was too late to ask.",
        "Whether asking feels safe, and who is there to ask.",
    ]
    assert [kind for outcome, kind in ledger(env, pid) if outcome == "error"] == [
        "server",
        "rate_limit",
        "server",
    ]
