"""Scale-out: two `streamlit run` processes on different ports share ONE PostgreSQL database.

Behaviours (in Chromium, no LLM: the guided form):
- a participant starts on server A, opens their resume link on server B and is at the same
  step with their answers so far; they move on on B, A shows where B left them;
- their wiser-than votes, one cast through A and one through B, are both counted;
- the facilitator dashboard on A and on B shows the same numbers, equal to the database's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from db import queries
from db.engine import make_engine, session_scope
from db.models import Participant, ValuesCard, WiserVote
from tests.e2e import seed
from tests.e2e.harness import (
    AppServer,
    assert_no_traceback,
    browser,
    choose,
    click,
    fill,
    key,
    login,
    main_text,
    settle,
    shot,
    start_all,
    stop_all,
)

ADMIN = ("scaleadmin", "scale-out-password-1")
SLUG = "scale"


@dataclass
class Env:
    a: AppServer
    b: AppServer
    engine: Engine
    seeded: seed.Seeded


@pytest.fixture(scope="module")
def env(chromium: str, pg_url_module: str) -> Iterator[Env]:
    engine = make_engine(pg_url_module)
    s = seed.deliberation(
        engine,
        slug=SLUG,
        title="Scale out",
        questions=[
            (
                "Job",
                "I lost my job. What should I do?",
                ["When the user feels ashamed", "When money is tight"],
            )
        ],
        questions_per_participant=1,
        stories_per_participant=2,
    )
    q = s.questions[0]
    listening = seed.peer(
        engine,
        s,
        question_id=q,
        title="Patient Listening",
        description="Letting people finish their thoughts before advice.",
        policies=[
            "PAUSES where a thought is still forming",
            "WORRIES not yet said aloud",
            "SIGNALS that company matters more than answers",
        ],
    )[1]
    steps = seed.peer(
        engine,
        s,
        question_id=q,
        title="Practical Next Steps",
        description="Turning a vague worry into a small concrete plan.",
        policies=[
            "TASKS small enough to start tonight",
            "RESOURCES nearby that cost little",
            "DEADLINES that actually matter",
        ],
    )[1]
    for ctx, (a, b) in zip(s.contexts[q], [(listening, steps), (steps, listening)], strict=True):
        seed.hypothesis(
            engine, s, from_value=a, to_value=b, context_id=ctx, story=f"Story in context {ctx}."
        )
    common = {
        "DATABASE_URL": pg_url_module,
        "MGE_ADMIN_USER": ADMIN[0],
        "MGE_ADMIN_PASSWORD": ADMIN[1],
    }
    a, b = AppServer(env=dict(common)), AppServer(env=dict(common))
    start_all(a, b)
    try:
        yield Env(a, b, engine, s)
    finally:
        stop_all(a, b)
        engine.dispose()


def login_and_open_dashboard(page: object, app: AppServer) -> dict[str, str]:
    login(page, app.url, *ADMIN)
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Dashboard").click()
    page.locator('[data-testid="stMetric"]').first.wait_for(timeout=60_000)
    settle(page)
    return metrics(page)


def metrics(page: object) -> dict[str, str]:
    out = {}
    for m in page.locator('[data-testid="stMetric"]').all():
        label = m.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        out[label] = m.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return out


def test_two_servers_one_database(env: Env) -> None:
    with browser() as b:
        page_a = b.new_page(viewport={"width": 1100, "height": 900})
        page_a.set_default_timeout(30_000)
        # start on A: consent and the first answer of the guided form
        page_a.goto(f"{env.a.url}/?d={SLUG}")
        click(page_a, "consent_agree")
        key(page_a, "form_story").wait_for(timeout=60_000)
        fill(page_a, "form_story", "My neighbour lost his job and told nobody.")
        click(page_a, "form_story_next")
        key(page_a, "form_attention").wait_for(timeout=60_000)
        token = page_a.url.split("r=", 1)[1].split("&", 1)[0]
        shot(page_a, "scale-out-1-server-a")

        # resume on B with the link: the same step, with the answer so far
        page_b = b.new_page(viewport={"width": 1100, "height": 900})
        page_b.set_default_timeout(30_000)
        page_b.goto(f"{env.b.url}/?d={SLUG}&r={token}")
        key(page_b, "form_attention").wait_for(timeout=60_000)
        settle(page_b)
        assert "My neighbour lost his job and told nobody." in main_text(page_b)
        shot(page_b, "scale-out-2-server-b-resumed")
        fill(page_b, "form_attention", "Whether he felt safe to ask for help.")
        click(page_b, "form_attention_next")
        fill(page_b, "card_title", "Safe to Ask")
        fill(page_b, "card_description", "Making it easy to ask for help early.")
        fill(
            page_b,
            "card_policies",
            "MOMENTS when asking would still change things\nPEOPLE nearby who would gladly help\n"
            "SIGNS that pride keeps someone silent",
        )
        click(page_b, "card_confirm")
        key(page_b, "peers_submit").wait_for(timeout=60_000)

        # A, reloaded, is where B left off; the peers are submitted on A
        page_a.reload()
        key(page_a, "peers_submit").wait_for(timeout=60_000)
        settle(page_a)
        page_a.locator("[class*='st-key-peer_']").filter(has_text="I find this wise").first.locator(
            "label"
        ).click()
        settle(page_a)
        click(page_a, "peers_submit")

        # one story judged on A, the next on B
        page_a.get_by_text("Story 1 of 2").wait_for(timeout=60_000)
        choose(page_a, "wiser_choice", "Yes, they became wiser")
        click(page_a, "wiser_submit")
        page_a.get_by_text("Story 2 of 2").wait_for(timeout=60_000)
        page_b.reload()
        page_b.get_by_text("Story 2 of 2").wait_for(timeout=60_000)
        settle(page_b)
        choose(page_b, "wiser_choice", "No, they did not become wiser")
        click(page_b, "wiser_submit")
        page_b.get_by_text("Where your value landed").wait_for(timeout=60_000)
        assert_no_traceback(page_a)
        assert_no_traceback(page_b)

        with session_scope(env.engine) as s:
            d = queries.get_deliberation(s, slug=SLUG)
            p = queries.get_participant_by_token(s, deliberation_id=d.id, token=token)
            assert p is not None
            votes = s.exec(select(WiserVote).where(WiserVote.participant_id == p.id)).all()
            assert sorted(v.choice for v in votes) == ["no_upgrade", "upgrade"]
            people = s.exec(
                select(func.count())
                .select_from(Participant)
                .where(Participant.deliberation_id == d.id)
            ).one()
            all_votes = s.exec(
                select(func.count()).select_from(WiserVote).where(WiserVote.deliberation_id == d.id)
            ).one()
            cards = s.exec(
                select(func.count())
                .select_from(ValuesCard)
                .where(
                    ValuesCard.deliberation_id == d.id,
                    ValuesCard.submitted_at.is_not(None),  # type: ignore[union-attr]
                )
            ).one()

        # the console on either server shows the same numbers, the database's
        console_a = b.new_page(viewport={"width": 1300, "height": 1000})
        console_b = b.new_page(viewport={"width": 1300, "height": 1000})
        seen_a = login_and_open_dashboard(console_a, env.a)
        seen_b = login_and_open_dashboard(console_b, env.b)
        shot(console_a, "scale-out-3-dashboard-a")
        shot(console_b, "scale-out-4-dashboard-b")
        assert seen_a == seen_b
        assert seen_a["Participants"] == str(people) == "3"
        assert seen_a["Wiser votes"] == str(all_votes) == "2"
        assert seen_a["Cards submitted"] == str(cards) == "3"
