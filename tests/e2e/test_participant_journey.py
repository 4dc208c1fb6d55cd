"""A participant from the panel link to "finished" in Chromium, on the real app and a scripted
LLM server running as its own process.

Behaviours:
- desktop: consent, question, a multi-turn interview whose reply is seen arriving in pieces
  (streamed), the card shown, its title edited and saved, confirmed; peer values (own value
  never among them), two wiser-than votes, where the value landed (its neighbour and picture),
  the survey, the thanks page whose "Complete the study" link carries the panel ids; what the
  database holds matches what was typed and clicked.
- desktop, reloads: a reload in the middle of the interview shows the whole transcript; after
  the card edit it shows the edited card; at each later step it shows the same step.
- phone (390x844): the same journey, and at every step nothing is wider than the screen.
No page ever shows a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from db import queries
from db.engine import make_engine, session_scope
from db.models import Message, Participant, SurveyAnswer, ValueVote, WiserVote
from tests.e2e import seed
from tests.e2e.harness import (
    AppServer,
    LLMProcess,
    assert_no_traceback,
    browser,
    chat,
    choose,
    click,
    fill,
    horizontal_overflow,
    key,
    main_text,
    settle,
    shot,
    wide_elements,
)
from tests.llm_server import Reply, valid_card

PANEL = {"PROLIFIC_PID": "5f1e2d3c4b5a69788796a5b4", "STUDY_ID": "study-77", "SESSION_ID": "sess-9"}
Q1 = "I just lost my job and I feel ashamed to tell my family. What should I do?"
Q2 = "Should I tell my best friend a hard truth about her partner?"
EDITED_TITLE = "Steady Honest Answers"
PEERS = {
    "Patient Listening": (
        "Letting people finish their thoughts before any advice.",
        [
            "PAUSES where someone is still forming a thought",
            "WORRIES they have not said out loud yet",
            "SIGNALS that they want company rather than answers",
        ],
    ),
    "Practical Next Steps": (
        "Turning a vague worry into a small concrete plan for tomorrow.",
        [
            "TASKS small enough to start this evening",
            "RESOURCES nearby that cost little",
            "DEADLINES that actually matter",
        ],
    ),
    "Family Ties": (
        "Keeping the people who love you close while deciding.",
        [
            "RELATIVES whose support would steady the decision",
            "TRADITIONS that give the family strength",
            "CONVERSATIONS at the kitchen table",
        ],
    ),
}
STREAMED = (
    "Thank you for sharing that. When you picture telling your family, what part of it feels "
    "heaviest, and what would you most want them to understand about you?"
)
TYPED = [
    "My uncle lost his job and hid it for months; it hurt everyone more than the news itself.",
    "I think he needed someone to be straight with him, but kindly, so he could decide.",
    "Honesty that leaves the person steadier and free to choose what to do next.",
]


@dataclass
class Env:
    app: AppServer
    llm: LLMProcess
    engine: Engine


@pytest.fixture(scope="module")
def env(
    chromium: str, _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    """One app server, one scripted LLM process and one fresh database for this module."""
    url = seed.sqlite_copy(_sqlite_template, tmp_path_factory.mktemp("journey"))
    llm = LLMProcess(mode="interviewer", card_after=3).start()
    app = AppServer(
        env={
            "DATABASE_URL": url,
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "test-key",
            "MGE_LLM_MAX_RETRIES": "0",
            "MGE_LLM_TIMEOUT_S": "20",
        }
    )
    app.env["MGE_PUBLIC_URL"] = app.url
    engine = make_engine(url)
    try:
        app.start()
        yield Env(app, llm, engine)
    finally:
        app.stop()
        llm.stop()
        engine.dispose()


def seed_deliberation(env: Env, slug: str) -> seed.Seeded:
    """Two questions; three peers and a participant whose card is the one our participant will
    end with (so their value has a history); stories in the first question's contexts, and two
    earlier votes saying our participant's value is wiser than "Practical Next Steps"."""
    s = seed.deliberation(
        env.engine,
        slug=slug,
        title=f"Journey {slug}",
        questions=[
            ("Job loss", Q1, ["When the user feels ashamed", "When money is tight"]),
            ("Hard truth", Q2, ["When a friendship is at stake"]),
        ],
        questions_per_participant=2,
        stories_per_participant=2,
        peer_values_per_participant=6,
        welcome_text="Welcome! This takes about 15 minutes.",
        completion_url=f"{env.llm.root}/health?cc=DONE42",
    )
    q1 = s.questions[0]
    for title, (description, policies) in PEERS.items():
        seed.peer(
            env.engine, s, question_id=q1, title=title, description=description, policies=policies
        )
    card = valid_card()
    seed.peer(
        env.engine,
        s,
        question_id=q1,
        title=EDITED_TITLE,
        description=card["description"],
        policies=card["policies"],
    )
    listening, steps, family = (s.values[t] for t in PEERS)
    mine = s.values[EDITED_TITLE]
    ashamed, money = s.contexts[q1]
    seed.hypothesis(
        env.engine,
        s,
        from_value=listening,
        to_value=steps,
        context_id=ashamed,
        story="I used to only listen. Then a friend needed a plan, and I saw listening was a start.",
    )
    seed.hypothesis(
        env.engine,
        s,
        from_value=family,
        to_value=listening,
        context_id=money,
        story="I used to call the whole family in. Then I learned to hear one person out first.",
    )
    towards_mine = seed.hypothesis(
        env.engine,
        s,
        from_value=steps,
        to_value=mine,
        context_id=ashamed,
        story="I used to hand out plans. Then I saw that honesty, kindly said, helped more.",
    )
    for voter in ("Patient Listening", "Family Ties"):
        seed.vote(
            env.engine,
            participant_id=s.peers[voter],
            hypothesis_id=towards_mine,
            choice="upgrade",
        )
    return s


def entry_url(env: Env, slug: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in PANEL.items())
    return f"{env.app.url}/?d={slug}&{query}"


def the_participant(env: Env, slug: str) -> Participant:
    with session_scope(env.engine) as s:
        d = queries.get_deliberation(s, slug=slug)
        p = queries.get_participant_by_panel_pid(
            s, deliberation_id=d.id, panel_pid=PANEL["PROLIFIC_PID"]
        )
        assert p is not None
        return p


def user_messages(env: Env, participant_id: int) -> list[str]:
    with session_scope(env.engine) as s:
        interviews = queries.list_participant_interviews(s, participant_id=participant_id)
        ids = [i.id for i in interviews]
        rows = s.exec(
            select(Message)
            .where(Message.interview_id.in_(ids), Message.role == "user")  # type: ignore[union-attr]
            .order_by(Message.id)
        ).all()
        return [m.content for m in rows]


@dataclass
class Run:
    env: Env
    page: object
    slug: str
    name: str
    reloads: bool
    phone: bool

    def check(self, step: str) -> None:
        """After each step: a screenshot, no traceback, and on a phone no sideways scrolling."""
        settle(self.page)
        shot(self.page, f"journey-{self.name}-{step}")
        assert_no_traceback(self.page)
        if self.phone:
            assert horizontal_overflow(self.page) <= 2, f"wider than the phone at {step}"
            width = self.page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 392, f"scrollWidth {width} at {step}"
            assert wide_elements(self.page, 390) == [], f"sideways overflow at {step}"

    def reload(self, expect: str) -> None:
        """Reload the page: the same step comes back."""
        if not self.reloads:
            return
        url = self.page.url
        self.page.reload()
        self.page.get_by_text(expect).first.wait_for(timeout=60_000)
        settle(self.page)
        assert self.page.url == url
        assert_no_traceback(self.page)


def send(page: object, text: str) -> None:
    """Send a chat message and wait for the interviewer's turn to end."""
    users = page.locator('[data-testid="stChatMessageAvatarUser"]')
    before = users.count()
    chat(page, text)
    users.nth(before).wait_for(timeout=60_000)
    settle(page)


def interview_transcript(page: object) -> list[str]:
    return [
        t.strip() for t in page.locator('[data-testid="stChatMessageContent"]').all_inner_texts()
    ]


def go_through_journey(run: Run) -> None:
    env, page, slug = run.env, run.page, run.slug
    page.goto(entry_url(env, slug))
    key(page, "consent_agree").wait_for(timeout=60_000)
    body = main_text(page)
    assert "Welcome! This takes about 15 minutes." in body and "What is shared" in body
    run.check("1-consent")
    choose(page, "consent_training", "Allow my card")
    click(page, "consent_agree")

    # question
    key(page, "question_choice").wait_for(timeout=60_000)
    assert "r=" in page.url
    run.check("2-question")
    run.reload("Choose a question")
    choose(page, "question_choice", "I just lost my job")
    click(page, "question_start")

    # interview: the opening message, then three turns; the first reply streams slowly
    page.locator('[data-testid="stChatInputTextArea"]').wait_for(timeout=60_000)
    assert Q1 in main_text(page)
    run.check("3-interview-start")
    env.llm.script(Reply(text=STREAMED, chunk_delay_s=0.12))
    chat(page, TYPED[0])
    assistant = page.locator('[data-testid="stChatMessage"]').filter(
        has_text="Thank you for sharing"
    )
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if assistant.count():
            seen.add(assistant.last.inner_text().strip())
            if any("understand about you?" in t for t in seen):
                break
        page.wait_for_timeout(40)
    settle(page)
    partial = [t for t in seen if t and "understand about you?" not in t]
    assert partial, f"the reply never showed part-way (seen {seen!r}): not streamed"
    assert any("Thank you" in t for t in partial)
    assert STREAMED in main_text(page)

    send(page, TYPED[1])
    run.check("4-interview-turn-2")
    transcript = interview_transcript(page)
    run.reload(TYPED[1])
    if run.reloads:
        assert interview_transcript(page) == transcript  # the whole transcript, same order
        assert TYPED[0] in main_text(page) and STREAMED in main_text(page)

    send(page, TYPED[2])  # the third turn: the interviewer calls the card tool
    key(page, "card_title").wait_for(timeout=60_000)
    title_box = key(page, "card_title").locator("input")
    assert title_box.input_value() == valid_card()["title"]
    assert "Your values card" in main_text(page)
    run.check("5-card-shown")
    fill(page, "card_title", EDITED_TITLE)
    click(page, "card_save")
    run.reload("Your values card")
    if run.reloads:
        key(page, "card_title").wait_for(timeout=60_000)
        assert key(page, "card_title").locator("input").input_value() == EDITED_TITLE
        for typed in TYPED:
            assert typed in main_text(page)
    run.check("6-card-edited")
    click(page, "card_confirm")

    # peer values: the three peers, never their own value
    key(page, "peers_submit").wait_for(timeout=60_000)
    body = main_text(page)
    for title in PEERS:
        assert title in body
    assert EDITED_TITLE not in body.split("Other people's values", 1)[1]
    run.check("7-peers")
    run.reload("Other people's values")
    peer_box = page.locator("[class*='st-key-peer_']").filter(has_text="I find this wise")
    assert peer_box.count() == 3
    peer_box.first.locator("label").click()
    settle(page)
    click(page, "peers_submit")

    # two wiser-than stories
    for number, answer in ((1, "Yes, they became wiser"), (2, "I'm not sure")):
        page.get_by_text(f"Story {number} of 2").wait_for(timeout=60_000)
        assert "not an AI" in main_text(page)
        run.check(f"8-wiser-{number}")
        if number == 1:
            run.reload("Story 1 of 2")
        choose(page, "wiser_choice", answer)
        fill(page, "wiser_comment", f"Comment on story {number}")
        click(page, "wiser_submit")

    # where my value landed
    page.get_by_text("Where your value landed").wait_for(timeout=60_000)
    body = main_text(page)
    assert EDITED_TITLE in body
    assert "Practical Next Steps (2 people)" in body
    page.locator('[data-testid="stGraphVizChart"] svg').first.wait_for(timeout=30_000)
    run.check("9-landed")
    run.reload("Where your value landed")
    click(page, "landed_next")

    # survey
    page.get_by_text("Four last questions").wait_for(timeout=60_000)
    run.check("10-survey")
    run.reload("Four last questions")
    for item, score in (
        ("expressed", "5 · Strongly agree"),
        ("fair", "4"),
        ("clarified", "4"),
        ("trust", "3"),
    ):
        key(page, f"survey_{item}").locator("label").filter(has_text=score).first.click()
    fill(page, "survey_comment", "Thanks, this was thoughtful.")
    click(page, "survey_submit")

    # finished: the completion link carries the panel ids
    page.get_by_text("Thank you!").wait_for(timeout=60_000)
    run.check("11-finished")
    run.reload("Thank you!")
    link = key(page, "finish_complete").locator("a")
    href = link.get_attribute("href")
    assert href is not None
    parts = urlsplit(href)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{env.llm.root}/health"
    assert parse_qs(parts.query) == {
        "cc": ["DONE42"],
        "PROLIFIC_PID": [PANEL["PROLIFIC_PID"]],
        "STUDY_ID": [PANEL["STUDY_ID"]],
        "SESSION_ID": [PANEL["SESSION_ID"]],
    }
    with page.context.expect_page() as opened:
        link.click()
    completed = opened.value
    completed.wait_for_load_state()
    assert completed.url == href  # the panel's completion page, with the ids
    completed.close()

    # what the database holds
    p = the_participant(env, slug)
    assert p.step == "finished" and p.entry_channel == "panel"
    assert (p.panel_study_id, p.panel_session_id) == (PANEL["STUDY_ID"], PANEL["SESSION_ID"])
    assert p.consent_training is True
    assert user_messages(env, p.id) == TYPED  # every word typed, once, in order
    with session_scope(env.engine) as s:
        card = queries.get_participant_card(s, participant_id=p.id)
        assert card is not None and card.title == EDITED_TITLE and card.submitted_at
        versions = queries.list_card_versions(s, card_id=card.id)
        assert [v.origin for v in versions] == ["llm", "participant"]
        assert card.canonical_value_id == seed_value(env, slug, EDITED_TITLE)
        votes = s.exec(select(WiserVote).where(WiserVote.participant_id == p.id)).all()
        assert sorted(v.choice for v in votes) == ["not_sure", "upgrade"]
        assert sorted(v.comment for v in votes) == ["Comment on story 1", "Comment on story 2"]
        value_votes = s.exec(select(ValueVote).where(ValueVote.participant_id == p.id)).all()
        assert len(value_votes) == 1
        answers = {
            a.item: (a.score, a.text)
            for a in s.exec(select(SurveyAnswer).where(SurveyAnswer.participant_id == p.id))
        }
    assert answers == {
        "expressed": (5, ""),
        "fair": (4, ""),
        "clarified": (4, ""),
        "trust": (3, ""),
        "comment": (None, "Thanks, this was thoughtful."),
    }


def seed_value(env: Env, slug: str, title: str) -> int:
    with session_scope(env.engine) as s:
        d = queries.get_deliberation(s, slug=slug)
        return next(
            v.id for v in queries.list_canonical_values(s, deliberation_id=d.id) if v.title == title
        )


def test_participant_journey_desktop_with_reloads(env: Env) -> None:
    seed_deliberation(env, "journey-desktop")
    with browser() as b:
        context = b.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        go_through_journey(Run(env, page, "journey-desktop", "desktop", reloads=True, phone=False))
        context.close()


def test_participant_journey_phone(env: Env) -> None:
    seed_deliberation(env, "journey-phone")
    with browser() as b:
        context = b.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
        )
        page = context.new_page()
        page.set_default_timeout(30_000)
        go_through_journey(Run(env, page, "journey-phone", "phone", reloads=False, phone=True))
        context.close()
