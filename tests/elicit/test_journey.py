"""The journey's step machine on SQLite and PostgreSQL: entry and resume, consent, question,
peer values, wiser-than routing and votes, where the value landed, survey, finish.

Helpers here (`make_deliberation`, `confirmed_card`, `fake_place_card`, the `placed` fixture)
are shared with the interview and page tests.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db import queries
from db.engine import session_scope
from db.models import (
    CanonicalValue,
    Hypothesis,
    Participant,
    SurveyAnswer,
    ValueImpression,
    ValuesCard,
    ValueVote,
    WiserVote,
)
from elicit import journey
from tests import factories

GOOD = {
    "title": "Room to decide",
    "description": "Helping them see their own way forward.",
    "policies": [
        "MOMENTS when a plain fact would help them choose",
        "SMALL STEPS they could take today",
        "FEELINGS of relief that show what they want",
    ],
}


# --- shared helpers --------------------------------------------------------------------------


def fake_place_card(session: Session, *, card_id: int, embedder: Any = None) -> CanonicalValue:
    """Stand-in for `elicit.values.place_card`: cards with the same title share a value."""
    card = queries.get_card(session, card_id=card_id)
    same = [
        v
        for v in queries.list_canonical_values(session, deliberation_id=card.deliberation_id)
        if v.title.lower() == card.title.lower()
    ]
    value = (
        same[0]
        if same
        else queries.create_canonical_value(
            session,
            deliberation_id=card.deliberation_id,
            title=card.title,
            description=card.description,
            policies=list(card.policies),
        )
    )
    assert card.id is not None and value.id is not None
    queries.link_card_to_value(session, card_id=card.id, canonical_value_id=value.id)
    return value


def install_fake_place(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Route `elicit.values.place_card` to `fake_place_card`; returns the placed card ids."""
    calls: list[int] = []

    def place_card(session: Session, *, card_id: int, embedder: Any = None) -> CanonicalValue:
        calls.append(card_id)
        return fake_place_card(session, card_id=card_id, embedder=embedder)

    import elicit.values

    monkeypatch.setattr(elicit.values, "place_card", place_card)
    return calls


@pytest.fixture
def placed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return install_fake_place(monkeypatch)


def make_deliberation(
    engine: Engine, *, n_questions: int = 2, contexts: int = 2, **fields: Any
) -> dict[str, Any]:
    """A deliberation with questions, each with its own contexts. Returns slug and ids."""
    with session_scope(engine) as s:
        d = factories.deliberation(s, **fields)
        questions, ctx = [], {}
        for i in range(n_questions):
            q = factories.question(s, d, text=f"Question {i}: what should I do?")
            questions.append(q.id)
            ctx[q.id] = [
                factories.context(s, d, q, text=f"When case {i}.{j} happens").id
                for j in range(contexts)
            ]
        return {"slug": d.slug, "id": d.id, "questions": questions, "contexts": ctx}


def add_card(
    engine: Engine,
    deliberation_id: int,
    question_id: int,
    *,
    title: str,
    participant_id: int | None = None,
    embedding: list[float] | None = None,
) -> tuple[int, int]:
    """A submitted card of someone else (or of `participant_id`), placed. (card id, value id)"""
    with session_scope(engine) as s:
        if participant_id is None:
            d = queries.get_deliberation(s, id=deliberation_id)
            p, _ = factories.participant(s, d)
            participant_id = p.id
        interview = queries.create_interview(
            s, participant_id=participant_id, question_id=question_id, mode="form"
        )
        card = queries.create_card(
            s,
            deliberation_id=deliberation_id,
            participant_id=participant_id,
            interview_id=interview.id,
            question_id=question_id,
            title=title,
            description=f"{title}, described.",
            policies=GOOD["policies"],
            origin="form",
        )
        card.embedding = embedding
        s.add(card)
        s.commit()
        queries.submit_card(s, card_id=card.id)
        value = fake_place_card(s, card_id=card.id)
        if embedding is not None:
            value.embedding = embedding
            s.add(value)
            s.commit()
        return card.id, value.id


def joined(engine: Engine, d: dict[str, Any], **kw: Any) -> journey.Entry:
    return journey.join(engine, slug=d["slug"], consent=journey.Consent(), **kw)


def confirmed_card(
    engine: Engine, d: dict[str, Any], *, title: str = "Room to decide"
) -> tuple[int, int]:
    """A participant who chose the first question and confirmed a card. (participant, value)"""
    entry = joined(engine, d, rng=random.Random(1))
    if entry.step == "question":
        q = journey.offered_questions(engine, participant_id=entry.participant_id)[0]
        journey.choose_question(engine, participant_id=entry.participant_id, question_id=q.id)
    with session_scope(engine) as s:
        p = queries.get_participant(s, participant_id=entry.participant_id)
        qid = p.question_id
    assert qid is not None
    card_id, value_id = add_card(
        engine, d["id"], qid, title=title, participant_id=entry.participant_id
    )
    with session_scope(engine) as s:
        queries.set_participant_step(s, participant_id=entry.participant_id, step="peers")
    return entry.participant_id, value_id


def hypothesis(
    engine: Engine, d: dict[str, Any], a: int, b: int, context_id: int, story: str = "A story."
) -> int:
    with session_scope(engine) as s:
        h = Hypothesis(
            deliberation_id=d["id"],
            from_value_id=a,
            to_value_id=b,
            context_id=context_id,
            story=story,
        )
        s.add(h)
        s.commit()
        s.refresh(h)
        assert h.id is not None
        return h.id


def participant_row(engine: Engine, participant_id: int) -> Participant:
    with session_scope(engine) as s:
        return queries.get_participant(s, participant_id=participant_id)


# --- entry -----------------------------------------------------------------------------------


def test_join_stores_consent_and_only_the_token_hash(engine: Engine) -> None:
    d = make_deliberation(engine)
    arrived = datetime(2024, 5, 1, 12, 0)
    entry = journey.join(
        engine,
        slug=d["slug"],
        consent=journey.Consent(sharing="aggregate", training=True),
        arrived_at=arrived,
    )
    assert len(entry.token) == 43  # 32 bytes = 256 bits, URL-safe base64
    p = participant_row(engine, entry.participant_id)
    assert p.token_hash == queries.hash_token(entry.token) and entry.token not in p.token_hash
    assert (p.consent_publish, p.consent_aggregate_only, p.consent_training) == (False, True, True)
    assert p.consented_at is not None and p.entry_channel == "anonymous"
    assert p.step == "question" and p.step_times["consent"] == arrived.isoformat()
    assert set(p.step_times) == {"consent", "question"}
    assert sorted(p.offered_question_ids) == sorted(d["questions"])


def test_join_single_question_skips_the_choice(engine: Engine) -> None:
    d = make_deliberation(engine, n_questions=1)
    entry = joined(engine, d)
    p = participant_row(engine, entry.participant_id)
    assert entry.step == p.step == "interview"
    assert p.question_id == d["questions"][0]
    assert "question" not in p.step_times and "interview" in p.step_times


def test_join_offers_questions_per_participant_and_a_reload_shows_the_same(engine: Engine) -> None:
    d = make_deliberation(engine, n_questions=5, questions_per_participant=3)
    entry = joined(engine, d, rng=random.Random(7))
    first = journey.offered_questions(engine, participant_id=entry.participant_id)
    again = journey.offered_questions(engine, participant_id=entry.participant_id)
    assert len(first) == 3 and first == again
    assert [q.id for q in first] == participant_row(
        engine, entry.participant_id
    ).offered_question_ids


def test_choose_question_only_among_offered(engine: Engine) -> None:
    d = make_deliberation(engine, n_questions=4, questions_per_participant=2)
    entry = joined(engine, d, rng=random.Random(3))
    offered = {q.id for q in journey.offered_questions(engine, participant_id=entry.participant_id)}
    other = next(q for q in d["questions"] if q not in offered)
    with pytest.raises(journey.JourneyError):
        journey.choose_question(engine, participant_id=entry.participant_id, question_id=other)
    chosen = min(offered)
    journey.choose_question(engine, participant_id=entry.participant_id, question_id=chosen)
    journey.choose_question(engine, participant_id=entry.participant_id, question_id=chosen)
    p = participant_row(engine, entry.participant_id)
    assert (p.step, p.question_id) == ("interview", chosen)


def test_visit_resumes_by_token_only_in_its_own_deliberation(engine: Engine) -> None:
    d1, d2 = make_deliberation(engine), make_deliberation(engine)
    entry = joined(engine, d1)
    v = journey.visit(engine, slug=d1["slug"], resume_token=entry.token)
    assert (v.participant_id, v.token, v.step) == (entry.participant_id, entry.token, "question")
    other = journey.visit(engine, slug=d2["slug"], resume_token=entry.token)
    assert other.participant_id is None and other.bad_token
    junk = journey.visit(engine, slug=d1["slug"], resume_token="not-a-token")
    assert junk.participant_id is None and junk.bad_token


def test_visit_unknown_slug(engine: Engine) -> None:
    with pytest.raises(journey.DeliberationNotFound):
        journey.visit(engine, slug="nope")


def test_closed_deliberation_says_so_but_a_finished_participant_sees_their_page(
    engine: Engine,
) -> None:
    d = make_deliberation(engine)
    done = joined(engine, d)
    busy = joined(engine, d)
    with session_scope(engine) as s:
        queries.set_participant_step(s, participant_id=done.participant_id, step="finished")
        queries.update_deliberation(s, deliberation_id=d["id"], is_open=False)
    with pytest.raises(journey.DeliberationClosed, match="closed"):
        journey.visit(engine, slug=d["slug"])
    with pytest.raises(journey.DeliberationClosed):
        joined(engine, d)
    with pytest.raises(journey.DeliberationClosed):
        journey.visit(engine, slug=d["slug"], resume_token=busy.token)
    assert journey.visit(engine, slug=d["slug"], resume_token=done.token).step == "finished"


def test_invite_code_required_when_set(engine: Engine) -> None:
    d = make_deliberation(engine, invite_code="Spring24")
    with pytest.raises(journey.InviteRequired, match="enter the invite code"):
        joined(engine, d)
    with pytest.raises(journey.InviteRequired, match="not right"):
        joined(engine, d, invite_code="autumn")
    entry = joined(engine, d, invite_code=" spring24 ")
    assert participant_row(engine, entry.participant_id).entry_channel == "invite"
    assert journey.visit(engine, slug=d["slug"]).deliberation.needs_invite


def test_same_panel_pid_resumes_the_same_participant(engine: Engine) -> None:
    d = make_deliberation(engine)
    panel = journey.PanelIds("5f0c1a2b3c4d5e6f7a8b9c0d", "study1", "sess1")
    first = joined(engine, d, panel=panel)
    p = participant_row(engine, first.participant_id)
    assert (p.entry_channel, p.panel_pid, p.panel_study_id, p.panel_session_id) == (
        "panel",
        panel.pid,
        "study1",
        "sess1",
    )
    again = journey.visit(engine, slug=d["slug"], panel=panel)
    assert again.participant_id == first.participant_id and again.token != first.token
    # the fresh token replaced the old one
    assert journey.visit(engine, slug=d["slug"], resume_token=first.token).bad_token
    third = joined(engine, d, panel=panel)
    assert third.resumed and third.participant_id == first.participant_id
    with session_scope(engine) as s:
        assert queries.count_participants(s, deliberation_id=d["id"]) == 1


def test_panel_pid_race_is_decided_by_the_unique_constraint(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = make_deliberation(engine)
    panel = journey.PanelIds("PIDRACE", "study-race", "session-race")
    first = joined(engine, d, panel=panel)
    real = queries.get_participant_by_panel_pid
    calls = {"n": 0}

    def stale_first_read(session: Session, **kw: Any) -> Participant | None:
        calls["n"] += 1
        return None if calls["n"] == 1 else real(session, **kw)  # the other request won

    monkeypatch.setattr(queries, "get_participant_by_panel_pid", stale_first_read)
    second = joined(engine, d, panel=panel)
    assert second.resumed and second.participant_id == first.participant_id
    assert calls["n"] == 2


@pytest.mark.parametrize("pid", ["{{%PROLIFIC_PID%}}", "a" * 200, "x y"])
def test_panel_ids_malformed_are_refused(pid: str) -> None:
    with pytest.raises(journey.JourneyError, match="not complete"):
        journey.PanelIds.from_params({"PROLIFIC_PID": pid})
    assert journey.PanelIds.from_params({"STUDY_ID": "s"}) is None


def test_step_times_record_first_entry_and_never_go_back(engine: Engine) -> None:
    d = make_deliberation(engine)
    entry = joined(engine, d)
    with session_scope(engine) as s:
        first = queries.set_participant_step(s, participant_id=entry.participant_id, step="peers")
        stamp = first.step_times["peers"]
        later = queries.set_participant_step(
            s, participant_id=entry.participant_id, step="interview"
        )
        assert later.step == "peers" and later.step_times["peers"] == stamp
        assert "interview" not in later.step_times  # skipped, never entered


# --- peers -----------------------------------------------------------------------------------


def test_peer_draw_refused_before_the_own_card_is_submitted(engine: Engine) -> None:
    d = make_deliberation(engine)
    entry = joined(engine, d)
    with pytest.raises(journey.StepError):
        journey.peer_draw(engine, participant_id=entry.participant_id)


def test_peer_draw_excludes_own_value_orders_by_impressions_and_is_stable(engine: Engine) -> None:
    d = make_deliberation(engine, n_questions=1, peer_values_per_participant=2)
    q = d["questions"][0]
    pid, own = confirmed_card(engine, d, title="Room to decide")
    add_card(engine, d["id"], q, title="Room to decide")  # same value as theirs
    _, seen = add_card(engine, d["id"], q, title="Often seen value")
    _, fresh1 = add_card(engine, d["id"], q, title="Fresh value one")
    _, fresh2 = add_card(engine, d["id"], q, title="Fresh value two")
    other_q = make_deliberation(engine)  # another deliberation's values never show
    add_card(engine, other_q["id"], other_q["questions"][0], title="Elsewhere")
    with session_scope(engine) as s:
        someone, _ = factories.participant(s, queries.get_deliberation(s, id=d["id"]))
        queries.create_value_impressions(
            s, participant_id=someone.id, draw_id="old", value_ids=[seen]
        )
    draw = journey.peer_draw(engine, participant_id=pid)
    ids = [v.id for v in draw.values]
    assert own not in ids
    assert ids == [fresh1, fresh2]  # never-seen values first, then by similarity/age
    assert journey.peer_draw(engine, participant_id=pid) == draw
    with session_scope(engine) as s:
        rows = s.exec(select(ValueImpression).where(ValueImpression.participant_id == pid)).all()
        assert [(r.draw_id, r.canonical_value_id, r.position) for r in rows] == [
            (draw.draw_id, fresh1, 0),
            (draw.draw_id, fresh2, 1),
        ]


def test_peer_draw_prefers_values_similar_to_the_own_card_among_equals(engine: Engine) -> None:
    d = make_deliberation(engine, n_questions=1, peer_values_per_participant=1)
    q = d["questions"][0]
    pid, _ = confirmed_card(engine, d)
    with session_scope(engine) as s:
        card = queries.get_participant_card(s, participant_id=pid)
        card.embedding = [1.0, 0.0]
        s.add(card)
        s.commit()
    add_card(engine, d["id"], q, title="Far away", embedding=[0.0, 1.0])
    _, near = add_card(engine, d["id"], q, title="Close by", embedding=[0.9, 0.1])
    assert [v.id for v in journey.peer_draw(engine, participant_id=pid).values] == [near]


def test_submit_peer_votes_needs_one_or_an_explicit_none(engine: Engine) -> None:
    d = make_deliberation(engine, n_questions=1)
    q = d["questions"][0]
    pid, _ = confirmed_card(engine, d)
    _, a = add_card(engine, d["id"], q, title="Value A here")
    _, b = add_card(engine, d["id"], q, title="Value B here")
    draw = journey.peer_draw(engine, participant_id=pid)
    with pytest.raises(journey.JourneyError, match="at least one"):
        journey.submit_peer_votes(engine, participant_id=pid, draw_id=draw.draw_id, value_ids=[])
    with pytest.raises(journey.JourneyError):
        journey.submit_peer_votes(engine, participant_id=pid, draw_id=draw.draw_id, value_ids=[999])
    moved = journey.submit_peer_votes(
        engine, participant_id=pid, draw_id=draw.draw_id, value_ids=[b]
    )
    assert moved == journey.Moved("landed", journey.NO_STORIES)  # no stories to judge: skipped
    # resubmitting (another tab) is harmless
    journey.submit_peer_votes(engine, participant_id=pid, draw_id=draw.draw_id, value_ids=[b])
    with session_scope(engine) as s:
        votes = s.exec(select(ValueVote).where(ValueVote.participant_id == pid)).all()
        assert [(v.draw_id, v.canonical_value_id) for v in votes] == [(draw.draw_id, b)]
    p = participant_row(engine, pid)
    assert p.step == "landed" and {"wiser", "landed"} <= set(p.step_times)
    assert a in [v.id for v in draw.values]


def test_submit_peer_votes_none_stores_no_vote(engine: Engine) -> None:
    d = make_deliberation(engine, n_questions=1)
    pid, _ = confirmed_card(engine, d)
    add_card(engine, d["id"], d["questions"][0], title="Value A here")
    draw = journey.peer_draw(engine, participant_id=pid)
    journey.submit_peer_votes(
        engine, participant_id=pid, draw_id=draw.draw_id, value_ids=[], none_wise=True
    )
    with session_scope(engine) as s:
        assert s.exec(select(ValueVote).where(ValueVote.participant_id == pid)).all() == []


# --- wiser-than ------------------------------------------------------------------------------


def _h(id: int, a: int, b: int, c: int) -> Hypothesis:
    return Hypothesis(id=id, deliberation_id=1, from_value_id=a, to_value_id=b, context_id=c)


def test_route_hypotheses_excludes_judged_reverse_and_own_value() -> None:
    hs = [
        _h(1, 1, 2, 10),
        _h(2, 2, 1, 10),
        _h(3, 1, 2, 11),
        _h(4, 3, 9, 10),
        _h(5, 9, 4, 10),
        _h(6, 3, 4, 10),
    ]
    out = journey.route_hypotheses(
        hs,
        judged={(1, 2, 10)},
        own_value_ids={9},
        question_context_ids=set(),
        vote_counts={},
        uncertainty={},
    )
    assert [h.id for h in out] == [3, 6]


def test_route_hypotheses_order_question_contexts_votes_uncertainty() -> None:
    hs = [_h(1, 1, 2, 20), _h(2, 3, 4, 10), _h(3, 5, 6, 10), _h(4, 7, 8, 10), _h(5, 1, 3, 10)]
    out = journey.route_hypotheses(
        hs,
        judged=set(),
        own_value_ids=set(),
        question_context_ids={10},
        vote_counts={(3, 4, 10): 2, (5, 6, 10): 1, (7, 8, 10): 1, (1, 3, 10): 1},
        uncertainty={(5, 6, 10): (0.9, 0.5), (7, 8, 10): (0.1, 1.2), (1, 3, 10): (-0.1, 1.5)},
    )
    # own question's contexts first; fewest votes; likelihood nearest 0; highest entropy
    assert [h.id for h in out] == [5, 4, 3, 2, 1]


def wiser_setup(engine: Engine, **fields: Any) -> tuple[dict[str, Any], int, int, list[int]]:
    d = make_deliberation(engine, n_questions=1, **fields)
    q = d["questions"][0]
    c1, c2 = d["contexts"][q]
    pid, own = confirmed_card(engine, d)
    values = [add_card(engine, d["id"], q, title=f"Peer value {i}")[1] for i in range(3)]
    a, b, c = values
    hyps = [
        hypothesis(engine, d, a, b, c1),
        hypothesis(engine, d, b, a, c1),  # reverse of the first: never both for one person
        hypothesis(engine, d, a, c, c2),
        hypothesis(engine, d, own, a, c1),  # involves their own value: never shown
        hypothesis(engine, d, b, own, c2),
    ]
    return d, pid, own, hyps


def test_wiser_never_shows_own_value_nor_a_judged_pair(engine: Engine) -> None:
    d, pid, own, hyps = wiser_setup(engine, stories_per_participant=5)
    seen = []
    while True:
        progress = journey.wiser_progress(engine, participant_id=pid)
        if progress.item is None:
            break
        item = progress.item
        assert own not in (item.from_value.id, item.to_value.id)
        assert item.hypothesis_id not in seen
        seen.append(item.hypothesis_id)
        journey.record_wiser_vote(
            engine,
            participant_id=pid,
            hypothesis_id=item.hypothesis_id,
            choice="upgrade",
            comment="because",
        )
    assert len(seen) == 2 and hyps[0] in seen and hyps[2] in seen and hyps[1] not in seen
    p = participant_row(engine, pid)
    assert p.step == "landed"
    with session_scope(engine) as s:
        votes = s.exec(select(WiserVote).where(WiserVote.participant_id == pid)).all()
        assert {v.hypothesis_id for v in votes} == set(seen)
        assert all(v.comment == "because" and v.choice == "upgrade" for v in votes)


def test_wiser_second_vote_on_same_pair_is_refused_by_the_database(engine: Engine) -> None:
    d, pid, own, hyps = wiser_setup(engine)
    journey.record_wiser_vote(engine, participant_id=pid, hypothesis_id=hyps[0], choice="not_sure")
    with pytest.raises(journey.AlreadyVoted, match="already judged"):
        journey.record_wiser_vote(
            engine, participant_id=pid, hypothesis_id=hyps[0], choice="upgrade"
        )
    with session_scope(engine) as s:  # the constraint itself, below our code
        h = s.get(Hypothesis, hyps[0])
        assert h is not None
        with pytest.raises(queries.Conflict):
            queries.create_wiser_vote(
                s,
                deliberation_id=d["id"],
                participant_id=pid,
                hypothesis_id=None,
                from_value_id=h.from_value_id,
                to_value_id=h.to_value_id,
                context_id=h.context_id,
                choice="upgrade",
            )


def test_wiser_refuses_own_value_and_bad_choice(engine: Engine) -> None:
    d, pid, own, hyps = wiser_setup(engine)
    with pytest.raises(journey.JourneyError, match="your own value"):
        journey.record_wiser_vote(
            engine, participant_id=pid, hypothesis_id=hyps[3], choice="upgrade"
        )
    with pytest.raises(journey.JourneyError):
        journey.record_wiser_vote(engine, participant_id=pid, hypothesis_id=hyps[0], choice="maybe")


def test_wiser_stops_at_stories_per_participant(engine: Engine) -> None:
    d, pid, own, hyps = wiser_setup(engine, stories_per_participant=1)
    item = journey.wiser_progress(engine, participant_id=pid).item
    assert item is not None
    progress = journey.record_wiser_vote(
        engine, participant_id=pid, hypothesis_id=item.hypothesis_id, choice="upgrade"
    )
    assert progress.complete and progress.done == progress.target == 1
    assert participant_row(engine, pid).step == "landed"


def test_wiser_none_available_skips_with_a_kind_message(engine: Engine) -> None:
    d = make_deliberation(engine, n_questions=1)
    pid, _ = confirmed_card(engine, d)
    assert journey.wiser_progress(engine, participant_id=pid).item is None
    moved = journey.leave_wiser(engine, participant_id=pid)
    assert moved.step == "landed" and moved.notice == journey.NO_STORIES


def test_wiser_template_story_when_none_stored(engine: Engine) -> None:
    d, pid, own, hyps = wiser_setup(engine)
    with session_scope(engine) as s:
        for h in s.exec(select(Hypothesis)).all():
            h.story = ""
            s.add(h)
        s.commit()
    item = journey.wiser_progress(engine, participant_id=pid).item
    assert (
        item is not None
        and item.from_value.title in item.story
        and item.to_value.title in item.story
    )


# --- landed, survey, finish ------------------------------------------------------------------


def test_landed_shows_neighbours_contributors_and_peer_votes(engine: Engine) -> None:
    d, pid, own, hyps = wiser_setup(engine)
    q = d["questions"][0]
    c1 = d["contexts"][q][0]
    with session_scope(engine) as s:
        dd = queries.get_deliberation(s, id=d["id"])
        voters = [factories.participant(s, dd)[0].id for _ in range(3)]
        values = [v.id for v in queries.list_canonical_values(s, deliberation_id=d["id"])]
    a = next(v for v in values if v != own)
    add_card(engine, d["id"], q, title="Room to decide")  # a second contributor
    with session_scope(engine) as s:
        for voter in voters[:2]:
            queries.create_wiser_vote(
                s,
                deliberation_id=d["id"],
                participant_id=voter,
                hypothesis_id=hyps[3],
                from_value_id=own,
                to_value_id=a,
                context_id=c1,
                choice="upgrade",
            )
        queries.create_wiser_vote(
            s,
            deliberation_id=d["id"],
            participant_id=voters[2],
            hypothesis_id=hyps[3],
            from_value_id=own,
            to_value_id=a,
            context_id=c1,
            choice="no_upgrade",
        )
        queries.replace_value_votes(s, participant_id=voters[0], draw_id="x", value_ids=[own])
    view = journey.landed(engine, participant_id=pid)
    assert view.value is not None and view.value.id == own
    assert view.contributors == 2
    assert [n.value.id for n in view.leads_to] == [a] and view.leads_to[0].marked_wiser == 2
    assert view.leads_to[0].kept  # W=2, likelihood 2/3, entropy low enough
    assert view.came_from == () and view.judged_less_wise == 2 and view.peer_votes == 1
    dot = journey.landed_dot(view)
    assert dot is not None and dot.startswith("digraph") and "->" in dot


def test_landed_dot_escapes_titles() -> None:
    v = journey.ValueView(1, 'Say "hi" \\ bye', "", ())
    n = journey.Neighbour(journey.ValueView(2, 'x"];evil[label="y', "", ()), 2, 0, 0, (), True)
    view = journey.Landed("t", v, 1, (n,), (), 2, 0, 0, 0)
    dot = journey.landed_dot(view)
    assert dot is not None
    assert '\\"hi\\" \\\\ bye' in dot and 'x\\"];evil[label=\\"y' in dot


def test_survey_is_idempotent_per_item_and_finishes(engine: Engine) -> None:
    d = make_deliberation(engine)
    entry = joined(engine, d)
    pid = entry.participant_id
    journey.save_survey(
        engine, participant_id=pid, scores={"expressed": 4, "fair": None}, comment="ok"
    )
    journey.save_survey(
        engine, participant_id=pid, scores={"expressed": 5, "trust": 2}, comment="thanks"
    )
    with session_scope(engine) as s:
        rows = s.exec(select(SurveyAnswer).where(SurveyAnswer.participant_id == pid)).all()
        got = {r.item: (r.score, r.text) for r in rows}
    assert got == {"expressed": (5, ""), "trust": (2, ""), "comment": (None, "thanks")}
    p = participant_row(engine, pid)
    assert p.step == "finished" and p.finished_at is not None
    with pytest.raises(journey.JourneyError):
        journey.save_survey(engine, participant_id=pid, scores={"fair": 6})


def test_finish_completion_link_carries_the_panel_ids(engine: Engine) -> None:
    d = make_deliberation(
        engine, completion_url="https://app.prolific.com/submissions/complete?cc=C0DE"
    )
    entry = joined(engine, d, panel=journey.PanelIds("PID1", "STUDY1", "SESSION1"))
    view = journey.finish(engine, participant_id=entry.participant_id)
    parts = urlsplit(view.completion_url or "")
    assert (parts.netloc, parts.path) == ("app.prolific.com", "/submissions/complete")
    assert parse_qs(parts.query) == {
        "cc": ["C0DE"],
        "PROLIFIC_PID": ["PID1"],
        "STUDY_ID": ["STUDY1"],
        "SESSION_ID": ["SESSION1"],
    }
    assert view.panel and view.participants == 1


def test_completion_link_without_url_or_panel() -> None:
    assert journey.completion_link(None, journey.PanelIds("p")) is None
    assert journey.completion_link("https://x.org/done", None) == "https://x.org/done"


def test_resume_link_format() -> None:
    link = journey.resume_link("http://host:8501/", slug="demo", token="abc-_")
    assert link == "http://host:8501/?d=demo&r=abc-_"


def test_cards_of_the_participant_never_leak_into_their_peer_draw_across_questions(
    engine: Engine,
) -> None:
    d = make_deliberation(engine, n_questions=2, questions_per_participant=1)
    pid, own = confirmed_card(engine, d)
    with session_scope(engine) as s:
        p = queries.get_participant(s, participant_id=pid)
        other_q = next(q for q in d["questions"] if q != p.question_id)
    add_card(engine, d["id"], other_q, title="Other question value")
    assert journey.peer_draw(engine, participant_id=pid).values == ()
    with session_scope(engine) as s:
        assert s.exec(select(ValuesCard)).all()


def test_real_placement_links_the_card_and_keeps_it_out_of_its_peers(engine: Engine) -> None:
    from elicit import interview
    from elicit.embeddings import LocalEmbedder

    d = make_deliberation(engine, n_questions=1)
    q = d["questions"][0]
    with session_scope(engine) as s:  # a peer whose card says something else entirely
        dd = queries.get_deliberation(s, id=d["id"])
        other, _ = factories.participant(s, dd)
        iv = queries.create_interview(s, participant_id=other.id, question_id=q, mode="form")
        peer = queries.create_card(
            s,
            deliberation_id=d["id"],
            participant_id=other.id,
            interview_id=iv.id,
            question_id=q,
            title="Courage to speak",
            description="Saying the hard thing kindly.",
            policies=[
                "WORDS that name the elephant",
                "SILENCES that hide fear",
                "RISKS worth taking for honesty",
            ],
            origin="form",
        )
        queries.submit_card(s, card_id=peer.id)
    assert interview.place(engine, card_id=peer.id, embedder=LocalEmbedder())
    entry = joined(engine, d)
    state = interview.load_state(engine, participant_id=entry.participant_id, llm_available=False)
    interview.confirm_card(
        engine, interview_id=state.interview_id, embedder=LocalEmbedder(), **GOOD
    )
    with session_scope(engine) as s:
        mine = queries.get_participant_card(s, participant_id=entry.participant_id)
        theirs = queries.get_card(s, card_id=peer.id)
        assert mine is not None and mine.canonical_value_id is not None
        assert mine.canonical_value_id != theirs.canonical_value_id
    draw = journey.peer_draw(engine, participant_id=entry.participant_id)
    assert [v.id for v in draw.values] == [theirs.canonical_value_id]
