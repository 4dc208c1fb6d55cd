"""A facilitator runs a deliberation in Chromium, from login to a downloaded export.

Behaviours (offline: no LLM, so dedupe is by similarity and stories are templated):
- log in through the sidebar; create an open deliberation with the form; add a question with
  two contexts and one more context linked to it; each is stored as typed;
- the dashboard counts a participant who joins in another tab ("Refresh now");
- deduplication: a dry run proposes merging two near-identical cards' values and changes
  nothing; applying it merges them and logs the decisions;
- hypotheses: "Generate" writes stories in the question's contexts, both directions;
- the graph page's pyvis iframe draws the kept edges' values on a vis-network canvas;
- the Exports page downloads the reference summary JSON, which holds the graph's values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from db import queries
from db.engine import make_engine, session_scope
from db.models import DedupeDecision, Hypothesis, ValuesCard
from tests.e2e import seed
from tests.e2e.harness import (
    AppServer,
    assert_no_traceback,
    browser,
    click,
    fill,
    key,
    login,
    main_text,
    settle,
    shot,
)

ADMIN = ("facilitator", "facilitator-password-1")
SLUG = "parenting-ai"
QUESTION = "My teenager wants to drop out of school. What should I do?"
CONTEXTS = ["When the parent feels panic", "When the teenager feels unheard"]
EXTRA_CONTEXT = "When money is tight at home"
TWIN = {
    "description": "Staying beside a young person while they find their own way.",
    "policies": [
        "MOMENTS when the young person is ready to talk",
        "QUESTIONS that let them say what they already know",
        "SIGNS that they feel trusted to decide",
    ],
}
OTHERS = {
    "Practical Next Steps": (
        "Turning a vague worry into a small concrete plan for tomorrow.",
        ["TASKS small enough to start tonight", "RESOURCES nearby", "DEADLINES that matter"],
    ),
    "Family Rituals": (
        "Keeping ordinary family routines steady while deciding.",
        ["MEALS shared without an agenda", "ROUTINES that calm the house", "WALKS taken together"],
    ),
}


@pytest.fixture(scope="module")
def app(
    chromium: str, _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AppServer, Engine]]:
    url = seed.sqlite_copy(_sqlite_template, tmp_path_factory.mktemp("facilitator"))
    server = AppServer(
        env={"DATABASE_URL": url, "MGE_ADMIN_USER": ADMIN[0], "MGE_ADMIN_PASSWORD": ADMIN[1]}
    )
    engine = make_engine(url)
    try:
        server.start()
        yield server, engine
    finally:
        server.stop()
        engine.dispose()


def open_console_page(page: Any, title: str) -> None:
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=title).first.click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    settle(page)


def metrics(page: Any) -> dict[str, str]:
    out = {}
    for m in page.locator('[data-testid="stMetric"]').all():
        label = m.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        out[label] = m.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return out


def seed_cards(engine: Engine) -> None:
    """Participants' cards for the new question (through the app's functions): two that say
    the same thing in nearly the same words, each on a value of its own (as cards imported or
    placed before a dedupe run can be), and two different ones."""
    with session_scope(engine) as s:
        d = queries.get_deliberation(s, slug=SLUG)
        question_id = queries.list_questions(s, deliberation_id=d.id)[0].id
        contexts = {c.text: c.id for c in queries.list_contexts(s, deliberation_id=d.id)}
    seeded = seed.Seeded(SLUG, d.id, [question_id], {question_id: list(contexts.values())})
    for title in ("Patient Company", "Patient Companionship"):
        seed.unchecked_peer(engine, seeded, question_id=question_id, title=title, **TWIN)
    for title, (description, policies) in OTHERS.items():
        seed.peer(
            engine,
            seeded,
            question_id=question_id,
            title=title,
            description=description,
            policies=policies,
        )


def vote_on_hypotheses(engine: Engine) -> int:
    """Participants judge the generated stories so the graph has kept edges: everyone who may
    judge a story says "upgrade" towards the value with the higher id and "no_upgrade" the
    other way. Returns the number of votes."""
    from elicit import journey

    with session_scope(engine) as s:
        d = queries.get_deliberation(s, slug=SLUG)
        hyps = queries.list_hypotheses(s, deliberation_id=d.id)
        people = [
            c.participant_id
            for c in s.exec(select(ValuesCard).where(ValuesCard.deliberation_id == d.id)).all()
            if c.submitted_at is not None
        ]
    n = 0
    for h in hyps:
        choice = "upgrade" if h.to_value_id > h.from_value_id else "no_upgrade"
        for pid in people:
            try:
                journey.record_wiser_vote(
                    engine, participant_id=pid, hypothesis_id=h.id, choice=choice
                )
                n += 1
            except journey.JourneyError:
                continue  # a story about their own value
    return n


def test_facilitator_runs_a_deliberation(app: tuple[AppServer, Engine]) -> None:
    server, engine = app
    with browser() as b:
        context = b.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(30_000)
        login(page, server.url, *ADMIN)
        shot(page, "facilitator-1-logged-in")

        # create the deliberation
        open_console_page(page, "Deliberations")
        fill(page, "create_slug", SLUG)
        fill(page, "create_title", "AI and parenting")
        fill(page, "create_topic", "How an AI should answer worried parents")
        fill(page, "create_welcome", "Welcome, and thank you for joining.")
        key(page, "create_open").locator("label").click()
        click(page, "create_submit")
        page.get_by_text(f"Created {SLUG}").wait_for(timeout=60_000)
        shot(page, "facilitator-2-created")
        d = queries_deliberation(engine)
        assert (d.title, d.is_open, d.welcome_text) == (
            "AI and parenting",
            True,
            "Welcome, and thank you for joining.",
        )

        # a question with two contexts, then one more context linked to it
        open_console_page(page, "Questions and contexts")
        fill(page, "q_add_title", "Dropping out")
        fill(page, "q_add_text", QUESTION)
        fill(page, "q_add_contexts", "\n".join(CONTEXTS))
        click(page, "q_add_submit")
        page.get_by_text("Question added.").wait_for(timeout=60_000)
        fill(page, "c_add_text", EXTRA_CONTEXT)
        key(page, "c_add_questions").get_by_role("button").first.click()
        settle(page)
        click(page, "c_add_submit")
        page.get_by_text("Context added.").wait_for(timeout=60_000)
        shot(page, "facilitator-3-questions")
        with session_scope(engine) as s:
            qs = queries.list_questions(s, deliberation_id=d.id)
            assert [q.text for q in qs] == [QUESTION]
            linked = queries.list_question_context_ids(s, question_id=qs[0].id)
            texts = {c.id: c.text for c in queries.list_contexts(s, deliberation_id=d.id)}
        assert sorted(texts[i] for i in linked) == sorted([*CONTEXTS, EXTRA_CONTEXT])

        # the dashboard counts a participant who joins meanwhile
        open_console_page(page, "Dashboard")
        page.locator('[data-testid="stMetric"]').first.wait_for(timeout=60_000)
        assert metrics(page)["Participants"] == "0"
        visitor = context.new_page()
        visitor.goto(f"{server.url}/?d={SLUG}")
        click(visitor, "consent_agree")
        key(visitor, "form_story").wait_for(timeout=60_000)  # offline: the guided form
        visitor.close()
        click(page, "dash_refresh")
        page.wait_for_function(
            """() => [...document.querySelectorAll('[data-testid="stMetric"]')].some(m =>
                m.innerText.includes('Participants') && m.innerText.trim().endsWith('1'))""",
            timeout=30_000,
        )
        assert metrics(page)["Participants"] == "1"
        shot(page, "facilitator-4-dashboard")

        # deduplication: a dry run, then apply
        seed_cards(engine)
        values_before = live_values(engine)
        open_console_page(page, "Deduplication")
        click(page, "dd_dry_run")
        page.get_by_text("Review the dry run").wait_for(timeout=60_000)
        settle(page)
        assert "1 merge(s)" in main_text(page)
        assert live_values(engine) == values_before  # a dry run changes nothing
        shot(page, "facilitator-5-dedupe-dry-run")
        click(page, "dd_apply")
        page.get_by_text("decisions logged").wait_for(timeout=60_000)
        shot(page, "facilitator-6-dedupe-applied")
        after = live_values(engine)
        assert len(after) == len(values_before) - 1
        with session_scope(engine) as s:
            twins = s.exec(
                select(ValuesCard).where(
                    ValuesCard.title.in_(["Patient Company", "Patient Companionship"])
                )  # type: ignore[attr-defined]
            ).all()
            assert len({c.canonical_value_id for c in twins}) == 1
            assert s.exec(select(DedupeDecision).where(DedupeDecision.actor == ADMIN[0])).all()

        # hypotheses for every context
        open_console_page(page, "Wiser-than hypotheses")
        click(page, "hy_generate")
        page.get_by_text("hypothesis(es) created").wait_for(timeout=60_000)
        shot(page, "facilitator-7-hypotheses")
        with session_scope(engine) as s:
            hyps = s.exec(select(Hypothesis).where(Hypothesis.deliberation_id == d.id)).all()
        assert hyps and all(h.story.strip() for h in hyps)
        pairs = {(h.from_value_id, h.to_value_id, h.context_id) for h in hyps}
        assert all((b_, a_, c_) in pairs for a_, b_, c_ in pairs)  # both directions
        assert {h.context_id for h in hyps} <= set(linked)
        assert vote_on_hypotheses(engine) >= 4

        # the graph: the pyvis iframe draws the values on a vis-network canvas
        open_console_page(page, "Moral graph")
        frame_el = page.locator("iframe").first
        frame_el.wait_for(timeout=60_000)
        frame = frame_el.content_frame
        frame.locator("#mynetwork canvas").first.wait_for(timeout=60_000)
        drawn = frame.locator("body").evaluate("() => nodes.get().map(n => n.label)")
        assert len(drawn) >= 2 and set(drawn) <= set(live_values(engine).values())
        shot(page, "facilitator-8-graph")

        # an export
        open_console_page(page, "Exports")
        with page.expect_download(timeout=60_000) as got:
            key(page, "exports_mge-summary").locator("button").click()
        summary = json.loads(Path(got.value.path()).read_text())
        assert got.value.suggested_filename.endswith(".json")
        assert {v["title"] for v in summary["values"]} >= set(drawn)
        assert summary["edges"] and all("counts" in e for e in summary["edges"])
        shot(page, "facilitator-9-exports")
        assert_no_traceback(page)
        context.close()


def queries_deliberation(engine: Engine) -> Any:
    with session_scope(engine) as s:
        return queries.get_deliberation(s, slug=SLUG)


def live_values(engine: Engine) -> dict[int, str]:
    with session_scope(engine) as s:
        d = queries.get_deliberation(s, slug=SLUG)
        return {v.id: v.title for v in queries.list_canonical_values(s, deliberation_id=d.id)}
