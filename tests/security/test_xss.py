"""XSS in Chromium: hostile text everywhere a participant, a facilitator or the LLM can put it.

The 37 payloads of `tests.security.payloads` (script tags, event handlers, `javascript:` and
`data:` URLs, SVG and MathML, broken markup, entity and unicode tricks, markdown links, images
and reference links, Streamlit colour/icon directives and KaTeX `\\href`, DOT injection into the
"where my value landed" picture) go into: the deliberation's title, topic and welcome text, the
question, the contexts, other participants' values (titles, descriptions, policies), the
stories, vote comments, the participant's chat messages, the LLM's streamed reply and the card
it proposes, the participant's card edits, their story comment and survey comment.

Behaviours:
- every participant page from the landing list to "finished" shows the payloads as text and
  runs none of them;
- every console page (those registered in the router) does the same;
- the standalone HTML graph export and the console's graph iframe run none (node labels and
  tooltips hold the text);
each check: no sentinel set in any frame, no dialog, no injected handler/URL/element in the
DOM, no request to another host (a markdown image is not fetched), and the markers visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from db import queries
from db.engine import make_engine, session_scope
from elicit import interview, journey
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
    key,
    login,
    main_text,
    settle,
    shot,
)
from tests.llm_server import Reply, ToolCall
from tests.security.payloads import (
    ALL,
    MARKERS,
    PAYLOADS,
    Watch,
    assert_clean,
    chunks,
    missing_markers,
)

ADMIN = ("xssadmin", "xss-admin-password-1")
SLUG = "xss"
TITLES = chunks(200)  # one value per piece: every payload is in some value's title
CONTEXTS = chunks(480)
CARD = {  # passes the card rules, yet full of markup
    "title": "<b>Bold</b> care X41",
    "description": f"A value {PAYLOADS[0]} that holds {PAYLOADS[2]} together",
    "policies": [
        f"MOMENTS when {PAYLOADS[6]} matters",
        f"CHOICES that {PAYLOADS[4]} opens",
        f"SIGNS of {PAYLOADS[11]} in the room",
    ],
}
CARD_MARKERS = ["X41", "X01", "X03", "X07", "X05", "X12"]


def markers_in(*texts: str) -> list[str]:
    joined = "\n".join(texts)
    return [m for m in MARKERS if m in joined]


@dataclass
class Env:
    app: AppServer
    llm: LLMProcess
    engine: Engine
    seeded: seed.Seeded


@pytest.fixture(scope="module")
def env(
    chromium: str, _sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    url = seed.sqlite_copy(_sqlite_template, tmp_path_factory.mktemp("xss"))
    engine = make_engine(url)
    s = seed.deliberation(
        engine,
        slug=SLUG,
        title=TITLES[0],
        questions=[
            (TITLES[1], ALL, [f"When {c}" for c in CONTEXTS]),
            ("Plain", "A plain second question?", ["When nothing odd happens"]),
        ],
        topic=ALL,
        welcome_text=ALL,
        questions_per_participant=2,
        stories_per_participant=2,
        peer_values_per_participant=len(TITLES) + 1,
    )
    q = s.questions[0]
    values = []
    for i, title in enumerate(TITLES):
        values.append(
            seed.unchecked_peer(
                engine,
                s,
                question_id=q,
                title=title,
                description=ALL if i == 0 else f"Plain description {i}.",
                policies=list(PAYLOADS) if i == 0 else [f"MOMENTS plain {i}"],
            )
        )
    owners = [pid for pid, _ in values]
    ids = [vid for _, vid in values]
    contexts = s.contexts[q]
    # a chain of kept edges through every value, so the graph draws every title
    for i in range(len(ids) - 1):
        h = seed.hypothesis(
            engine,
            s,
            from_value=ids[i],
            to_value=ids[i + 1],
            context_id=contexts[i % len(contexts)],
            story=ALL,
        )
        voters = [o for j, o in enumerate(owners) if j not in (i, i + 1)][:2]
        for voter in voters:
            seed.vote(engine, participant_id=voter, hypothesis_id=h, choice="upgrade", comment=ALL)
    # someone mid-interview whose words are every payload (the console shows the transcript)
    talker = journey.join(engine, slug=s.slug, consent=journey.Consent())
    journey.choose_question(engine, participant_id=talker.participant_id, question_id=q)
    state = interview.load_state(engine, participant_id=talker.participant_id, llm_available=False)
    interview.answer_form(
        engine, interview_id=state.interview_id, stage="story", text=ALL, max_chars=4000
    )
    llm = LLMProcess(mode="interviewer", card_after=99).start()
    app = AppServer(
        env={
            "DATABASE_URL": url,
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "test-key",
            "MGE_LLM_MAX_RETRIES": "0",
            "MGE_ADMIN_USER": ADMIN[0],
            "MGE_ADMIN_PASSWORD": ADMIN[1],
        }
    )
    try:
        app.start()
        yield Env(app, llm, engine, s)
    finally:
        app.stop()
        llm.stop()
        engine.dispose()


@pytest.fixture(scope="module")
def chrome(env: Env) -> Iterator[Any]:
    with browser() as b:
        yield b


def check(page: Any, watch: Watch, where: str, markers: list[str], *, fields: bool = False) -> None:
    """Nothing ran, and the markers are shown (as rendered text; with `fields`, text in form
    fields counts too)."""
    settle(page)
    shot(page, f"xss-{where}")
    assert_no_traceback(page)
    assert_clean(page, watch, where)
    text = shown_text(page) if fields else main_text(page)
    assert missing_markers(text, markers) == [], f"text not shown on {where}"


def shown_text(page: Any) -> str:
    """The main area's text and the values of its text fields."""
    values = page.evaluate(
        "() => Array.from(document.querySelectorAll("
        '\'[data-testid="stMainBlockContainer"] input, '
        "[data-testid=\"stMainBlockContainer\"] textarea')).map(e => e.value).join('\\n')"
    )
    return main_text(page) + "\n" + str(values)


def send(page: Any, text: str) -> None:
    users = page.locator('[data-testid="stChatMessageAvatarUser"]')
    before = users.count()
    chat(page, text)
    users.nth(before).wait_for(timeout=60_000)
    settle(page)


def test_participant_pages_show_payloads_as_text(env: Env, chrome: Any) -> None:
    page = chrome.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(30_000)
    watch = Watch().attach(page)

    page.goto(env.app.url)
    page.get_by_text("Choose a deliberation").wait_for(timeout=60_000)
    check(page, watch, "p1-landing", MARKERS)  # topic: every payload

    page.goto(f"{env.app.url}/?d={SLUG}")
    key(page, "consent_agree").wait_for(timeout=60_000)
    check(page, watch, "p2-consent", MARKERS)  # welcome text
    click(page, "consent_agree")

    key(page, "question_choice").wait_for(timeout=60_000)
    check(page, watch, "p3-question", MARKERS)  # the question as a choice
    key(page, "question_choice").locator("label:has(input)").first.click()
    settle(page)
    click(page, "question_start")

    page.locator('[data-testid="stChatInputTextArea"]').wait_for(timeout=60_000)
    check(page, watch, "p4-interview-opening", MARKERS)  # the question, quoted
    env.llm.script(Reply(text=ALL, chunk_delay_s=0.0))
    send(page, ALL)
    check(page, watch, "p5-interview-chat", MARKERS)
    assert main_text(page).count("X02") >= 3  # question, participant, LLM

    env.llm.script(Reply(text="Here is a card.", tool_calls=[ToolCall("submit_values_card", CARD)]))
    send(page, "Please write my card.")
    key(page, "card_title").wait_for(timeout=60_000)
    check(page, watch, "p6-card-shown", [])
    assert key(page, "card_title").locator("input").input_value() == CARD["title"]
    # the participant saves an executable title (saving has no rules), then fixes it
    fill(page, "card_title", PAYLOADS[1])
    click(page, "card_save")
    check(page, watch, "p7-card-saved-hostile", [])
    assert key(page, "card_title").locator("input").input_value() == PAYLOADS[1]
    fill(page, "card_title", CARD["title"])
    click(page, "card_confirm")

    key(page, "peers_submit").wait_for(timeout=60_000)
    check(page, watch, "p8-peers", MARKERS)  # the peers' titles, descriptions, policies
    page.locator("[class*='st-key-peer_']").filter(has_text="I find this wise").first.locator(
        "label"
    ).click()
    settle(page)
    click(page, "peers_submit")

    # a story about their own value, judged by two others, for "where my value landed"
    me = participant_value(env)
    dot = next(t for t in TITLES if "X35" in t)  # the DOT-injection payload, in the picture
    for source in (TITLES[0], dot):
        h = seed.hypothesis(
            env.engine,
            env.seeded,
            from_value=env.seeded.values[source],
            to_value=me,
            context_id=env.seeded.contexts[env.seeded.questions[0]][0],
            story=ALL,
        )
        voters = [t for t in TITLES if t not in (TITLES[0], dot)][:2]
        for voter in voters:
            seed.vote(
                env.engine,
                participant_id=env.seeded.peers[voter],
                hypothesis_id=h,
                choice="upgrade",
            )

    for n in (1, 2):
        page.get_by_text(f"Story {n} of 2").wait_for(timeout=60_000)
        shown = main_text(page)
        check(page, watch, f"p9-wiser-{n}", markers_in(ALL))  # the story holds every payload
        assert any(m in shown for m in markers_in(*CONTEXTS))
        choose(page, "wiser_choice", "Yes, they became wiser")
        fill(page, "wiser_comment", ALL)
        click(page, "wiser_submit")

    page.get_by_text("Where your value landed").wait_for(timeout=60_000)
    check(page, watch, "p10-landed", ["X41", *markers_in(TITLES[0], dot)])
    assert page.locator('[data-testid="stGraphVizChart"] svg').count() == 1
    click(page, "landed_next")

    page.get_by_text("Four last questions").wait_for(timeout=60_000)
    check(page, watch, "p11-survey", [])
    fill(page, "survey_comment", ALL)
    click(page, "survey_submit")
    page.get_by_text("Thank you!").wait_for(timeout=60_000)
    check(page, watch, "p12-finished", [])

    # a reload of the interview's transcript is not possible any more; the stored text is intact
    with session_scope(env.engine) as s:
        d = queries.get_deliberation(s, slug=SLUG)
        interviews = queries.list_interview_rows(s, deliberation_id=d.id, search="X37b")
    assert interviews, "the participant's message was stored as typed"
    page.close()


def participant_value(env: Env) -> int:
    """The canonical value of the participant who came in through the browser."""
    with session_scope(env.engine) as s:
        d = queries.get_deliberation(s, slug=SLUG)
        for v in queries.list_canonical_values(s, deliberation_id=d.id):
            if v.title == CARD["title"]:
                assert v.id is not None
                return v.id
    raise AssertionError("the participant's card was not placed")


# --- the console ------------------------------------------------------------------------------

CONSOLE_PAGES = [
    ("Deliberations", markers_in(TITLES[0])),
    ("Questions and contexts", markers_in(TITLES[1], *CONTEXTS)),
    ("Dashboard", []),
    ("Interviews and cards", MARKERS),
    ("Participant data", []),
    ("Accounts", []),
    ("Deduplication", []),
    ("Wiser-than hypotheses", MARKERS),
    ("Moral graph", []),
    ("Exports", []),
]


@pytest.fixture(scope="module")
def console(env: Env, chrome: Any) -> Iterator[tuple[Any, Watch]]:
    """One logged-in console tab for the module."""
    page = chrome.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    watch = Watch().attach(page)
    login(page, env.app.url, *ADMIN)
    yield page, watch
    page.close()


@pytest.mark.parametrize(("title", "markers"), CONSOLE_PAGES, ids=[t for t, _ in CONSOLE_PAGES])
def test_console_page_shows_payloads_as_text(
    env: Env, console: tuple[Any, Watch], title: str, markers: list[str]
) -> None:
    page, watch = console
    link = page.locator('[data-testid="stSidebarNavLink"]').filter(has_text=title)
    if link.count() == 0:
        pytest.skip(f"the console page {title!r} is not registered in streamlit_app.py yet")
    link.first.click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
    settle(page)
    if title == "Questions and contexts":
        for expander in page.locator('[data-testid="stExpander"] summary').all():
            expander.click()
        settle(page)
    if title == "Interviews and cards":  # the transcripts that hold the payloads
        fill(page, "iv_search", "X37b")
    if title == "Deduplication":
        click(page, "dd_dry_run")
    if title == "Moral graph":
        check_graph_iframe(page)
    check(page, watch, f"console-{title.lower().replace(' ', '-')}", markers, fields=True)


def check_graph_iframe(page: Any) -> None:
    """The pyvis iframe draws the graph and its node labels hold the titles as text."""
    frame_el = page.locator("iframe").first
    frame_el.wait_for(timeout=60_000)
    frame = frame_el.content_frame
    frame.locator("canvas").first.wait_for(timeout=60_000)
    labels = frame.locator("body").evaluate("() => nodes.get().map(n => n.label).join(' ')")
    assert missing_markers(labels, markers_in(*TITLES)) == []


def hover_node(page: Any, node: int) -> str:
    """Move the mouse onto a node; return the text of the tooltip that shows."""
    point = page.evaluate("(id) => network.canvasToDOM(network.getPositions([id])[id])", node)
    box = page.locator("#mynetwork").bounding_box()
    page.mouse.move(box["x"] + point["x"], box["y"] + point["y"])
    tip = page.locator("div.popup, div.vis-tooltip").filter(has_text="score:")
    tip.last.wait_for(state="visible", timeout=10_000)
    return str(tip.last.inner_text())


def test_graph_html_export_runs_no_payload(env: Env, chrome: Any, tmp_path: Path) -> None:
    """The standalone HTML graph (the export a facilitator opens or shares): the payloads are
    node labels and tooltips, shown as text; none runs."""
    from elicit import graphs

    with session_scope(env.engine) as s:
        files = graphs.render_export(s, deliberation_id=env.seeded.id, fmt="html")
    path = tmp_path / "graph.html"
    path.write_text(next(f for f in files if f.name.endswith(".html")).text, encoding="utf-8")
    page = chrome.new_page(viewport={"width": 1200, "height": 900})
    watch = Watch().attach(page)
    page.goto(path.as_uri())
    page.wait_for_function("() => typeof network !== 'undefined'", timeout=30_000)
    page.locator("canvas").first.wait_for(timeout=60_000)
    labels = page.evaluate("() => nodes.get().map(n => n.label)")
    # the titles themselves (not HTML entities); the participant's value joined the graph too
    assert set(TITLES) <= set(labels) <= {*TITLES, CARD["title"]}
    first = page.evaluate("(t) => nodes.get().find(n => n.label === t).id", TITLES[0])
    shown = hover_node(page, first)
    assert "<script>window.__xss=1</script>X01" in shown  # the card, as text
    shot(page, "xss-graph-export")
    assert_clean(page, watch, "graph html export")
    page.close()


def test_graph_labels_and_tooltips_show_plain_text(chrome: Any, tmp_path: Path) -> None:
    """Titles with &, quotes and angle brackets read the same on the graph as on the cards
    (vis-network draws labels and plain tooltips as text: no HTML entities)."""
    from graph.build import build_graph
    from graph.stats import edge_statistics
    from graph.types import Value, Vote
    from graph.visualise import render_html

    title = 'Care & <b>Trust</b> isn\'t "enough"'
    values = [
        Value(1, title, "Kids' <i>time</i> & rest.", "", ("MOMENTS of <calm> & quiet",)),
        Value(2, "Plain Value", "Plain.", "", ()),
    ]
    votes = [Vote(p, 1, 2, "When <x> & y", "upgrade") for p in "abc"]
    path = tmp_path / "plain.html"
    path.write_text(render_html(build_graph(values, edge_statistics(votes))), encoding="utf-8")
    page = chrome.new_page(viewport={"width": 1000, "height": 800})
    watch = Watch().attach(page)
    page.goto(path.as_uri())
    page.wait_for_function("() => typeof network !== 'undefined'", timeout=30_000)
    assert page.evaluate("() => nodes.get(1).label") == title
    shown = hover_node(page, 1)
    assert title in shown and "Kids' <i>time</i> & rest." in shown and "&amp;" not in shown
    assert_clean(page, watch, "plain graph")
    page.close()
