"""The participant page through Streamlit's AppTest, against the scripted LLM server.

Behaviours, one test each: the landing list; unknown and closed deliberations; a whole journey
through every step with what is stored after each (SQLite and PostgreSQL); reload mid-interview;
LLM faults lose no message; three failures -> guided form; no LLM -> guided form; own value
never among peers; a story never twice and a second vote refused; the same panel PID resumes;
the completion link; input limits; participant text shown as text; invite codes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from db import queries
from db.engine import make_engine, session_scope
from db.models import (
    CardVersion,
    Interview,
    Message,
    Participant,
    SurveyAnswer,
    ValueImpression,
    ValuesCard,
    ValueVote,
    WiserVote,
)
from tests.elicit.test_journey import (
    GOOD,
    add_card,
    hypothesis,
    install_fake_place,
    make_deliberation,
)
from tests.llm_server import Fault, Reply, ScriptedLLMServer, ToolCall

REPO = Path(__file__).resolve().parents[2]
GENERIC = "Something went wrong on our side"
TOOL = "submit_values_card"


# --- harness ------------------------------------------------------------------------------


def _reset_caches() -> None:
    from elicit.config import get_settings

    get_settings.cache_clear()
    st.cache_resource.clear()


@pytest.fixture
def placed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return install_fake_place(monkeypatch)


def _app_env(
    url: str, llm_server: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("MGE_LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("MGE_LLM_TIMEOUT_S", "1")
    monkeypatch.setenv("MGE_PUBLIC_URL", "https://mge.example.org")
    _reset_caches()
    eng = make_engine(url)
    yield eng
    eng.dispose()
    _reset_caches()


@pytest.fixture
def app_db(
    db_url: str, llm_server: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """The app on a fresh database (SQLite, then PostgreSQL) and the scripted LLM."""
    yield from _app_env(db_url, llm_server, monkeypatch)


@pytest.fixture
def app_sqlite(
    sqlite_url: str, llm_server: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    """The same on SQLite only (the engine tests run every fault on both databases)."""
    yield from _app_env(sqlite_url, llm_server, monkeypatch)


@pytest.fixture
def offline_db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The app with no LLM configured at all."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    _reset_caches()
    eng = make_engine(sqlite_url)
    yield eng
    eng.dispose()
    _reset_caches()


def open_app(**params: str) -> AppTest:
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=30)
    for key, value in params.items():
        at.query_params[key] = value
    return ok(at.run())


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if GENERIC in e.value]
    return at


def texts(at: AppTest) -> str:
    """Everything written as markdown, info, warning or caption, joined."""
    parts = [m.value for m in at.markdown] + [m.value for m in at.info]
    parts += [m.value for m in at.warning] + [m.value for m in at.caption]
    parts += [m.value for m in at.error]
    return "\n".join(str(p) for p in parts)


def unescape(md: str) -> str:
    return md.replace("\\", "")


def agree(at: AppTest) -> AppTest:
    return ok(at.button(key="consent_agree").click().run())


def say(at: AppTest, text: str) -> AppTest:
    return ok(at.chat_input(key="chat_input").set_value(text).run())


def participant(eng: Engine) -> Participant:
    """The one participant who came in through the page (seeded peers never consented)."""
    with session_scope(eng) as s:
        rows = [p for p in s.exec(select(Participant)).all() if p.consented_at is not None]
        assert len(rows) == 1
        return rows[0]


def user_texts(eng: Engine) -> list[str]:
    """What the page's participant sent (seeded cards have no messages)."""
    with session_scope(eng) as s:
        rows = s.exec(select(Message).where(Message.role == "user").order_by(Message.id)).all()
        return [m.content for m in rows]


def to_interview(
    eng: Engine, *, n_questions: int = 1, **fields: Any
) -> tuple[AppTest, dict[str, Any]]:
    d = make_deliberation(eng, n_questions=n_questions, **fields)
    at = agree(open_app(d=d["slug"]))
    return at, d


# --- landing and entry --------------------------------------------------------------------


def test_landing_lists_open_deliberations_only(app_db: Engine) -> None:
    make_deliberation(app_db, title="Open *one*")
    make_deliberation(app_db, title="Closed one", is_open=False)
    at = open_app()
    body = texts(at)
    assert "Open \\*one\\*" in body and "Closed one" not in body


def test_unknown_deliberation_says_so(app_db: Engine) -> None:
    at = open_app(d="nope")
    assert "could not find this deliberation" in texts(at)


def test_closed_deliberation_says_so(app_db: Engine) -> None:
    d = make_deliberation(app_db, is_open=False)
    at = open_app(d=d["slug"])
    assert "closed" in texts(at) and not at.button


def test_invite_code_is_asked_and_checked(app_db: Engine) -> None:
    d = make_deliberation(app_db, invite_code="letmein")
    at = open_app(d=d["slug"])
    at = agree(at)
    assert "enter the invite code" in texts(at)
    at.text_input(key="invite_code").set_value("wrong")
    at = agree(at)
    assert "not right" in texts(at)
    at.text_input(key="invite_code").set_value("letmein")
    at = agree(at)
    assert participant(app_db).entry_channel == "invite" and at.query_params.get("r")
    # a link that carries the code needs no typing
    d2 = make_deliberation(app_db, invite_code="abc")
    at2 = open_app(d=d2["slug"], invite="abc")
    assert not at2.text_input
    agree(at2)


# --- the whole journey --------------------------------------------------------------------


def test_full_journey_through_every_step(
    app_db: Engine, llm_server: ScriptedLLMServer, placed: list[int]
) -> None:
    d = make_deliberation(
        app_db,
        n_questions=2,
        stories_per_participant=2,
        peer_values_per_participant=3,
        completion_url="https://panel.example/done?cc=OK",
    )
    q0 = d["questions"][0]
    peers = [add_card(app_db, d["id"], q0, title=f"Peer value {i}")[1] for i in range(3)]
    c1, c2 = d["contexts"][q0]
    hyps = [
        hypothesis(app_db, d, peers[0], peers[1], c1, "I used to ..."),
        hypothesis(app_db, d, peers[1], peers[2], c2, "Later I saw ..."),
    ]

    # consent
    at = open_app(d=d["slug"])
    assert at.button(key="consent_agree").label == "I agree"
    at.radio(key="consent_sharing").set_value("aggregate")
    at.checkbox(key="consent_training").check()
    at = agree(at)
    p = participant(app_db)
    token = at.query_params["r"]
    assert p.token_hash == queries.hash_token(token) and p.step == "question"
    assert (p.consent_publish, p.consent_aggregate_only, p.consent_training) == (False, True, True)
    assert token in at.code[0].value and at.code[0].value.startswith("https://mge.example.org/?d=")

    # question
    at = ok(at.radio(key="question_choice").set_value(q0).run())
    at = ok(at.button(key="question_start").click().run())
    p = participant(app_db)
    assert (p.step, p.question_id) == ("interview", q0)
    assert "Question 0" in unescape(at.chat_message[0].markdown[0].value)

    # interview: a question, then the card through the tool
    llm_server.script(
        Reply(text="What did you notice?"),
        Reply(text="Here is a card.", tool_calls=[ToolCall(TOOL, GOOD)]),
    )
    at = say(at, "My cousin needed room to think.")
    at = say(at, "She needed people to wait for her.")
    assert user_texts(app_db) == [
        "My cousin needed room to think.",
        "She needed people to wait for her.",
    ]
    assert at.text_input(key="card_title").value == GOOD["title"]
    assert at.button(key="card_confirm").label == "Confirm card"
    # the participant edits the title directly
    at.text_input(key="card_title").set_value("Room to think")
    at = ok(at.button(key="card_save").click().run())
    with session_scope(app_db) as s:
        mine = s.exec(select(ValuesCard).where(ValuesCard.participant_id == p.id)).one()
        versions = queries.list_card_versions(s, card_id=mine.id)
        assert [(v.version, v.origin) for v in versions] == [(1, "llm"), (2, "participant")]
    at = ok(at.button(key="card_confirm").click().run())
    p = participant(app_db)
    assert p.step == "peers"
    with session_scope(app_db) as s:
        card = queries.get_participant_card(s, participant_id=p.id)
        assert card is not None and card.title == "Room to think" and card.submitted_at
        own = card.canonical_value_id
        assert own is not None and own not in peers and placed == [card.id]
        interview = s.exec(select(Interview).where(Interview.participant_id == p.id)).one()
        assert interview.status == "confirmed"

    # two earlier participants judged a story about this value: peer 0 is wiser than it
    with session_scope(app_db) as s:
        dd = queries.get_deliberation(s, id=d["id"])
        for _ in range(2):
            voter = Participant(deliberation_id=dd.id, token_hash=queries.hash_token(str(_) + "v"))
            s.add(voter)
            s.commit()
            queries.create_wiser_vote(
                s,
                deliberation_id=d["id"],
                participant_id=voter.id,
                hypothesis_id=None,
                from_value_id=own,
                to_value_id=peers[0],
                context_id=c1,
                choice="upgrade",
            )

    # peers: never their own value
    keys = {c.key for c in at.checkbox}
    assert keys == {f"peer_{v}" for v in peers} | {"peer_none"}
    at.checkbox(key=f"peer_{peers[1]}").check()
    at = ok(at.button(key="peers_submit").click().run())
    with session_scope(app_db) as s:
        shown = s.exec(select(ValueImpression)).all()
        votes = s.exec(select(ValueVote)).all()
        assert {i.canonical_value_id for i in shown} == set(peers)
        assert [(v.canonical_value_id, v.draw_id) for v in votes] == [(peers[1], shown[0].draw_id)]
    assert participant(app_db).step == "wiser"

    # wiser: two stories, each once
    seen = []
    for _ in range(2):
        body = texts(at)
        assert "not an AI" in body
        current = next(
            h
            for h, story in zip(hyps, ["I used to", "Later I saw"], strict=True)
            if story in unescape(body)
        )
        assert current not in seen
        seen.append(current)
        at.radio(key="wiser_choice").set_value("upgrade")
        at.text_area(key="wiser_comment").set_value("It goes further.")
        at = ok(at.button(key="wiser_submit").click().run())
    with session_scope(app_db) as s:
        wv = s.exec(select(WiserVote).where(WiserVote.participant_id == p.id)).all()
        assert sorted(v.hypothesis_id for v in wv) == sorted(hyps)
        assert all(v.comment == "It goes further." for v in wv)
    assert participant(app_db).step == "landed"

    # where my value landed
    assert "Where your value landed" in [h.value for h in at.subheader]
    assert "Room to think" in unescape(texts(at))
    assert "Peer value 0** (2 people)" in unescape(texts(at))
    assert len(at.get("graphviz_chart")) == 1
    at = ok(at.button(key="landed_next").click().run())
    assert participant(app_db).step == "survey"

    # survey
    for item, score in zip(["expressed", "fair", "clarified", "trust"], [5, 4, 4, 3], strict=True):
        at.radio(key=f"survey_{item}").set_value(score)
    at.text_area(key="survey_comment").set_value("Thanks!")
    at = ok(at.button(key="survey_submit").click().run())
    with session_scope(app_db) as s:
        answers = {a.item: (a.score, a.text) for a in s.exec(select(SurveyAnswer)).all()}
    assert answers == {
        "expressed": (5, ""),
        "fair": (4, ""),
        "clarified": (4, ""),
        "trust": (3, ""),
        "comment": (None, "Thanks!"),
    }

    # finish
    p = participant(app_db)
    assert p.step == "finished" and p.finished_at is not None
    assert set(p.step_times) == {
        "consent",
        "question",
        "interview",
        "peers",
        "wiser",
        "landed",
        "survey",
        "finished",
    }
    assert at.link_button(key="finish_complete").proto.url == "https://panel.example/done?cc=OK"

    # a reload lands on the same (last) step
    again = open_app(d=d["slug"], r=token)
    assert "Thank you!" in [h.value for h in again.subheader]


def test_reload_mid_interview_resumes_with_the_whole_transcript(
    app_db: Engine, llm_server: ScriptedLLMServer
) -> None:
    at, d = to_interview(app_db)
    llm_server.script(Reply(text="Tell me more about that."), Reply(text="What mattered most?"))
    at = say(at, "First answer")
    at = say(at, "Second answer")
    token = at.query_params["r"]
    fresh = open_app(d=d["slug"], r=token)
    shown = [(m.name, unescape(m.markdown[0].value)) for m in fresh.chat_message]
    assert shown[1:] == [
        ("user", "First answer"),
        ("assistant", "Tell me more about that."),
        ("user", "Second answer"),
        ("assistant", "What mattered most?"),
    ]
    # another deliberation's link with this token opens nothing
    other = make_deliberation(app_db)
    stranger = open_app(d=other["slug"], r=token)
    assert "does not open anything here" in texts(stranger)
    assert stranger.button(key="consent_agree")


FAULTS = {
    "500": lambda: Fault.server_error(500),
    "429": lambda: Fault.rate_limit(),
    "timeout": lambda: Fault.timeout(hang_s=5),
    "stream_cut": lambda: Fault.cut(after_chunks=2),
    "malformed_tool_json": lambda: Reply.malformed_tool_call(TOOL),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_llm_fault_loses_no_participant_message(
    app_sqlite: Engine, llm_server: ScriptedLLMServer, fault: str
) -> None:
    app_db = app_sqlite
    at, d = to_interview(app_db)
    typed = f"Before the {fault}: a *story* with\nlines"
    llm_server.script(FAULTS[fault]())
    if fault == "malformed_tool_json":  # the re-ask fails too: the participant writes the card
        llm_server.script(Reply.malformed_tool_call(TOOL))
    at = say(at, typed)
    assert user_texts(app_db) == [typed]
    if fault == "malformed_tool_json":
        assert at.text_input(key="card_title").value == ""
        assert "Write your values card" in texts(at)
        return
    assert "saved" in texts(at)
    assert at.button(key="chat_retry").label == "Try again"
    llm_server.script(Reply(text="Sorry about that. What happened next?"))
    at = ok(at.button(key="chat_retry").click().run())
    assert "What happened next" in unescape(texts(at))
    assert user_texts(app_db) == [typed]


def test_a_reply_that_ended_before_the_page_redrew_is_shown_once_with_its_outcome(
    app_sqlite: Engine, llm_server: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chat callback starts the reply in a thread; a quick one (here: made to finish
    first) has already stored its message, or switched the chat to the form, when the page
    loads the interview. The page must still say why, and show the message once."""
    from elicit import interview

    real_start = interview.Reply.start

    def start_and_finish(self: interview.Reply) -> interview.Reply:
        real_start(self)
        assert self.wait(10)
        return self

    monkeypatch.setattr(interview.Reply, "start", start_and_finish)
    at, d = to_interview(app_sqlite)
    llm_server.script(Reply(text="What did you notice then?"))
    at = say(at, "My aunt listened.")
    assert unescape(texts(at)).count("What did you notice then?") == 1
    # A card that needs the forced re-ask: two calls, both over before the page loads.
    llm_server.script(Reply.malformed_tool_call(TOOL), Reply(tool_calls=[ToolCall(TOOL, GOOD)]))
    at = say(at, "She asked before she advised.")
    assert at.text_input(key="card_title").value == GOOD["title"]
    llm_server.script(Fault.http(401))
    at = say(at, "She never judged.")
    assert "interviewer is not available" in texts(at)  # why the form took over
    assert "No AI is assisting" in texts(at)
    assert user_texts(app_sqlite) == [
        "My aunt listened.",
        "She asked before she advised.",
        "She never judged.",
    ]


def test_three_failures_switch_to_the_guided_form(
    app_db: Engine, llm_server: ScriptedLLMServer, placed: list[int]
) -> None:
    at, d = to_interview(app_db)
    llm_server.script(*(Fault.server_error(503) for _ in range(3)))
    for i in range(3):
        at = say(at, f"try {i}")
    assert "No AI is assisting" in texts(at)
    assert user_texts(app_db) == ["try 0", "try 1", "try 2"]
    with session_scope(app_db) as s:
        assert s.exec(select(Interview)).one().mode == "form"  # the only interview here
    assert not at.chat_input
    assert at.text_area(key="form_story")


def test_no_llm_configured_starts_in_the_guided_form(offline_db: Engine) -> None:
    """Also the one page test on the real placement (`elicit.values`, offline embedder)."""
    d = make_deliberation(offline_db, n_questions=1)
    at = agree(open_app(d=d["slug"]))
    assert "No AI is assisting" in texts(at)
    at.text_area(key="form_story").set_value("My cousin at nineteen.")
    at = ok(at.button(key="form_story_next").click().run())
    at.text_area(key="form_attention").set_value("Whether she had time to think.")
    at = ok(at.button(key="form_attention_next").click().run())
    # live checks while typing
    at.text_input(key="card_title").set_value("Room")
    at.text_area(key="card_description").set_value("Giving people time to find their answer.")
    at.text_area(key="card_policies").set_value("moments when she pauses")
    at = ok(at.run())
    body = texts(at)
    assert "2 to 5 words" in body and "CAPITALS" in body
    at = ok(at.button(key="card_confirm").click().run())
    assert participant(offline_db).step == "interview"  # blocked by the problems
    at.text_input(key="card_title").set_value(GOOD["title"])
    at.text_area(key="card_policies").set_value("\n".join(GOOD["policies"]))
    at = ok(at.button(key="card_confirm").click().run())
    p = participant(offline_db)
    assert p.step == "peers"
    with session_scope(offline_db) as s:
        versions = s.exec(select(CardVersion)).all()  # the only card here
        assert [v.origin for v in versions] == ["form"]
        roles = [m.role for m in s.exec(select(Message).order_by(Message.seq)).all()]
        assert roles == ["notice", "user", "notice", "user"]
        card = queries.get_participant_card(s, participant_id=p.id)
        assert card is not None and card.canonical_value_id is not None


def test_two_tabs_cannot_vote_twice_on_the_same_story(app_db: Engine, placed: list[int]) -> None:
    d = make_deliberation(app_db, n_questions=1, stories_per_participant=3)
    q = d["questions"][0]
    a, b = (add_card(app_db, d["id"], q, title=f"Peer value {i}")[1] for i in range(2))
    c1, c2 = d["contexts"][q]
    h1 = hypothesis(app_db, d, a, b, c1, "First story")
    h2 = hypothesis(app_db, d, a, b, c2, "Second story")
    at = agree(open_app(d=d["slug"]))
    p = participant(app_db)
    add_card(app_db, d["id"], q, title="Mine", participant_id=p.id)  # their confirmed card
    with session_scope(app_db) as s:
        queries.set_participant_step(s, participant_id=p.id, step="wiser")
    token = at.query_params["r"]
    tab1, tab2 = open_app(d=d["slug"], r=token), open_app(d=d["slug"], r=token)
    assert "First story" in texts(tab1) and "First story" in texts(tab2)
    tab1.radio(key="wiser_choice").set_value("upgrade")
    tab1 = ok(tab1.button(key="wiser_submit").click().run())
    tab2.radio(key="wiser_choice").set_value("no_upgrade")
    tab2 = ok(tab2.button(key="wiser_submit").click().run())
    assert "already judged this story" in texts(tab2)
    assert "Second story" in texts(tab1) and "Second story" in texts(tab2)
    with session_scope(app_db) as s:
        votes = s.exec(select(WiserVote)).all()
        assert [(v.hypothesis_id, v.choice) for v in votes] == [(h1, "upgrade")]
    assert h2


def test_same_panel_pid_resumes_the_same_participant(app_db: Engine) -> None:
    d = make_deliberation(
        app_db, completion_url="https://app.prolific.com/submissions/complete?cc=X1"
    )
    ids = {"PROLIFIC_PID": "60a1b2c3d4e5f60718293a4b", "STUDY_ID": "st1", "SESSION_ID": "se1"}
    at = agree(open_app(d=d["slug"], **ids))
    first = participant(app_db)
    assert first.entry_channel == "panel" and first.panel_pid == ids["PROLIFIC_PID"]
    again = open_app(d=d["slug"], **ids)  # the panel link again, without the resume token
    assert "consent_agree" not in [b.key for b in again.button]
    assert again.radio(key="question_choice")
    assert again.query_params["r"] != at.query_params["r"]
    assert participant(app_db).id == first.id
    with session_scope(app_db) as s:
        queries.set_participant_step(s, participant_id=first.id, step="finished")
    done = open_app(d=d["slug"], **ids)
    url = done.link_button(key="finish_complete").proto.url
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://app.prolific.com/submissions/complete"
    )
    assert parse_qs(parts.query) == {
        "cc": ["X1"],
        "PROLIFIC_PID": [ids["PROLIFIC_PID"]],
        "STUDY_ID": ["st1"],
        "SESSION_ID": ["se1"],
    }


def test_bad_panel_link_is_refused_plainly(app_db: Engine) -> None:
    d = make_deliberation(app_db)
    at = open_app(d=d["slug"], PROLIFIC_PID="{{%PROLIFIC_PID%}}")
    assert "not complete" in texts(at) and not at.button


def test_too_long_message_names_the_limit_and_stores_nothing(
    app_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MGE_MAX_MESSAGE_CHARS", "300")
    _reset_caches()
    at, d = to_interview(app_db)
    at = say(at, "x" * 301)
    assert "limit is 300" in texts(at)
    at = say(at, "   ")
    assert "empty" in texts(at)
    assert user_texts(app_db) == []


def test_participant_and_llm_text_is_shown_as_text(
    app_db: Engine, llm_server: ScriptedLLMServer
) -> None:
    at, d = to_interview(app_db)
    llm_server.script(Reply(text="![x](http://evil.example/p.png) :red[alarm] <b>hi</b>"))
    at = say(at, "**bold** [link](http://x.example) <script>alert(1)</script>")
    user_md = at.chat_message[1].markdown[0].value
    bot_md = at.chat_message[2].markdown[0].value
    assert "\\*\\*bold\\*\\*" in user_md and "\\<script\\>" in user_md and "\\[link\\]" in user_md
    assert "\\!\\[x\\]" in bot_md and "\\:red\\[alarm\\]" in bot_md and "\\<b\\>" in bot_md
    with session_scope(app_db) as s:  # stored as typed
        assert s.exec(select(ValuesCard)).all() == []
    assert user_texts(app_db) == ["**bold** [link](http://x.example) <script>alert(1)</script>"]
