"""Many people at once on PostgreSQL, through the same functions the pages call.

Behaviours:
- 20 threads x 50 wiser-than votes (`journey.record_wiser_vote`): each of 10 voters is two
  "tabs" casting the same 40 judgements in different orders plus 10 repeats of their own. Every
  judgement is stored exactly once, every second attempt is refused by the database and
  reported as `AlreadyVoted`, the per-edge counts are exact and nothing deadlocks.
- 20 participants confirm their cards at the same moment (`interview.confirm_card`, which
  places each card on a canonical value): every card is submitted and placed exactly once, with
  one logged decision each, and every participant moves on to the peer values.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from db import queries
from db.engine import make_engine, session_scope
from db.models import DedupeDecision, Hypothesis, Participant, ValuesCard, WiserVote
from elicit import interview, journey
from elicit.embeddings import LocalEmbedder
from tests.e2e import seed

THREADS = 20
VOTES_PER_THREAD = 50
DISTINCT_PER_VOTER = 40
SUBJECTS = [
    (
        "Patient Listening",
        "Letting people finish their thoughts before advice.",
        "PAUSES",
        "WORRIES",
    ),
    ("Practical Steps", "Turning worry into a small plan for tomorrow.", "TASKS", "RESOURCES"),
    ("Family Ties", "Keeping loved ones close while deciding.", "RELATIVES", "TRADITIONS"),
    ("Quiet Courage", "Facing fear without making a show of it.", "FEARS", "RISKS"),
    ("Honest Limits", "Saying clearly what one cannot promise.", "PROMISES", "BOUNDARIES"),
    ("Playful Curiosity", "Meeting hard things with open questions.", "QUESTIONS", "SURPRISES"),
    ("Shared Meals", "Deciding together around ordinary routines.", "MEALS", "ROUTINES"),
    ("Slow Trust", "Letting trust grow through small kept words.", "GESTURES", "HABITS"),
]


def card(title: str, description: str, first: str, second: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "policies": [
            f"{first} that show what {title.lower()} asks of me",
            f"{second} that make {title.lower()} easier to live",
            "CHOICES that keep the other person free",
        ],
    }


def run_at_once(work: list[Callable[[], None]]) -> list[BaseException]:
    """Run each callable in its own thread, all released together; return what they raised."""
    barrier = threading.Barrier(len(work))
    errors: list[BaseException] = []
    lock = threading.Lock()

    def go(fn: Callable[[], None]) -> None:
        try:
            barrier.wait(timeout=60)
            fn()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=go, args=(fn,)) for fn in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (deadlock?)"
    return errors


def choice_for(voter: int, hypothesis_id: int) -> str:
    """The same judgement whichever tab gets there first, so the expected counts are exact."""
    digest = hashlib.sha256(f"{voter}:{hypothesis_id}".encode()).digest()[0]
    return ("upgrade", "no_upgrade", "not_sure")[digest % 3]


@pytest.fixture
def pg_engine(pg_url: str) -> Engine:
    eng = make_engine(pg_url, pool_size=THREADS, max_overflow=10)
    yield eng
    eng.dispose()


def test_concurrent_wiser_votes_are_counted_exactly_once(pg_engine: Engine) -> None:
    d = seed.deliberation(
        pg_engine,
        slug="votes",
        title="Votes",
        questions=[
            (
                "Job",
                "I lost my job. What should I do?",
                [f"When case {i} happens" for i in range(5)],
            )
        ],
        questions_per_participant=1,
        stories_per_participant=1,
    )
    q = d.questions[0]
    subjects = [seed.peer(pg_engine, d, question_id=q, **card(*row))[1] for row in SUBJECTS]
    assert len(set(subjects)) == len(SUBJECTS)
    voters = [
        seed.peer(
            pg_engine,
            d,
            question_id=q,
            **card(f"Voter Value {n}", f"Voter {n} cares about its own thing.", "MOMENTS", "SIGNS"),
        )[0]
        for n in "ABCDEFGHIJ"
    ]
    for a in subjects:
        for b in subjects:
            if a != b:
                for ctx in d.contexts[q]:
                    seed.hypothesis(
                        pg_engine, d, from_value=a, to_value=b, context_id=ctx, story="S."
                    )
    assert len(d.hypotheses) == 8 * 7 * 5

    rng = random.Random(7)
    plans: list[tuple[int, list[int]]] = []
    expected: dict[int, set[int]] = {}
    for voter in voters:
        mine = rng.sample(d.hypotheses, DISTINCT_PER_VOTER)
        expected[voter] = set(mine)
        for _tab in range(2):
            order = rng.sample(mine, len(mine))
            repeats = rng.sample(mine, VOTES_PER_THREAD - DISTINCT_PER_VOTER)
            plan = order + repeats
            rng.shuffle(plan)
            plans.append((voter, plan))
    assert len(plans) == THREADS and all(len(p) == VOTES_PER_THREAD for _, p in plans)

    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def tab(voter: int, plan: list[int]) -> Callable[[], None]:
        def cast() -> None:
            for h in plan:
                try:
                    journey.record_wiser_vote(
                        pg_engine,
                        participant_id=voter,
                        hypothesis_id=h,
                        choice=choice_for(voter, h),
                    )
                    result = "stored"
                except journey.AlreadyVoted as exc:
                    assert "already judged" in str(exc)
                    result = "already_voted"
                with lock:
                    outcomes[result] += 1

        return cast

    errors = run_at_once([tab(voter, plan) for voter, plan in plans])
    assert errors == [], [repr(e) for e in errors[:5]]  # no deadlock, no other error

    attempts = THREADS * VOTES_PER_THREAD
    distinct = sum(len(v) for v in expected.values())
    assert outcomes == {"stored": distinct, "already_voted": attempts - distinct}
    with session_scope(pg_engine) as s:
        votes = s.exec(select(WiserVote).where(WiserVote.deliberation_id == d.id)).all()
        hyps = {h.id: h for h in s.exec(select(Hypothesis)).all()}
        by_triple = queries.count_wiser_votes_by_triple(s, deliberation_id=d.id)
    assert len(votes) == distinct
    assert {(v.participant_id, v.hypothesis_id) for v in votes} == {
        (voter, h) for voter, hs in expected.items() for h in hs
    }
    assert all(v.choice == choice_for(v.participant_id, v.hypothesis_id) for v in votes)
    want: Counter[tuple[int, int, int]] = Counter()
    for hs in expected.values():
        for h in hs:
            want[(hyps[h].from_value_id, hyps[h].to_value_id, hyps[h].context_id)] += 1
    assert by_triple == dict(want)


def test_twenty_cards_confirmed_at_once_are_each_placed_once(pg_engine: Engine) -> None:
    d = seed.deliberation(
        pg_engine,
        slug="cards",
        title="Cards",
        questions=[("Job", "I lost my job. What should I do?", ["When the user feels ashamed"])],
        questions_per_participant=1,
    )
    texts = [card(*row) for row in SUBJECTS[:5]]
    ready: list[tuple[int, int, dict[str, Any]]] = []
    for i in range(THREADS):
        entry = journey.join(pg_engine, slug=d.slug, consent=journey.Consent())
        state = interview.load_state(
            pg_engine, participant_id=entry.participant_id, llm_available=False
        )
        for stage in ("story", "attention"):
            interview.answer_form(
                pg_engine,
                interview_id=state.interview_id,
                stage=stage,
                text=f"answer {stage} {i}",
                max_chars=4000,
            )
        ready.append((entry.participant_id, state.interview_id, texts[i % len(texts)]))

    def confirm(interview_id: int, text: dict[str, Any]) -> Callable[[], None]:
        def go() -> None:
            interview.confirm_card(
                pg_engine, interview_id=interview_id, embedder=LocalEmbedder(), **text
            )

        return go

    errors = run_at_once([confirm(iid, text) for _, iid, text in ready])
    assert errors == [], [repr(e) for e in errors[:5]]

    with session_scope(pg_engine) as s:
        cards = s.exec(select(ValuesCard).where(ValuesCard.deliberation_id == d.id)).all()
        decisions = s.exec(
            select(DedupeDecision).where(DedupeDecision.deliberation_id == d.id)
        ).all()
        people = s.exec(select(Participant).where(Participant.deliberation_id == d.id)).all()
        values = queries.list_canonical_values(s, deliberation_id=d.id)
    assert len(cards) == THREADS
    assert all(c.submitted_at is not None for c in cards)
    assert all(c.canonical_value_id is not None for c in cards), "a card was left unplaced"
    assert Counter(dd.card_id for dd in decisions) == {c.id: 1 for c in cards}
    assert {p.step for p in people} == {"peers"}
    # every value is backed by a card; the same text never lands on two values' worth of
    # different texts (a value holds one text only)
    value_ids = {c.canonical_value_id for c in cards}
    assert value_ids == {v.id for v in values}
    for vid in value_ids:
        assert len({c.title for c in cards if c.canonical_value_id == vid}) == 1
    # placement serialises per deliberation: 5 distinct texts give exactly 5 values
    assert len(values) == len(texts), f"{THREADS} cards, {len(texts)} texts -> {len(values)} values"
