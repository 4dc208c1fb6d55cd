"""Participant data: lookup by token or panel id, JSON export, deletion that propagates."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, col, func, select

from db import queries
from db.models import (
    CanonicalValue,
    CardVersion,
    Hypothesis,
    Interview,
    LLMCall,
    Message,
    Participant,
    SurveyAnswer,
    ValueImpression,
    ValuesCard,
    ValueVote,
    WiserVote,
)
from elicit import participants
from tests import factories
from tests.console_seed import contributor, hypothesis_and_vote


def _count(s: Session, model, *where) -> int:
    return s.exec(select(func.count()).select_from(model).where(*where)).one()


@pytest.fixture
def world(engine):
    """Deliberation with A (sole supporter of value VA), B and C (both support VB), votes
    between VA and VB by everyone, and an unrelated deliberation."""
    with Session(engine, expire_on_commit=False) as s:
        d = factories.deliberation(s, slug="withdrawal")
        q = factories.question(s, d)
        ctx = factories.context(s, d, q)
        a = contributor(s, d, q, panel_pid="PID-A", card_title="Alone Value")
        b = contributor(s, d, q, panel_pid="PID-B", card_title="Shared Value")
        c = contributor(s, d, q, value=b.value, card_title="Shared Value")
        for voter in (a, b, c):
            hypothesis_and_vote(s, d, ctx, voter.participant, a.value, b.value)
        extra = factories.value(s, d, title="Third value")
        hypothesis_and_vote(s, d, ctx, b.participant, b.value, extra)
        other = factories.deliberation(s, slug="elsewhere")
        oq = factories.question(s, other)
        o = contributor(s, other, oq, panel_pid="PID-A")
    return {"d": d, "ctx": ctx, "a": a, "b": b, "c": c, "extra": extra, "other": o}


def test_find_participant_by_token_and_by_panel_id(engine, world):
    d, a = world["d"], world["a"]
    by_token = participants.find_participant(engine, deliberation_id=d.id, token=a.token)
    by_pid = participants.find_participant(engine, deliberation_id=d.id, panel_id=" PID-A ")
    assert by_token.id == by_pid.id == a.participant.id
    assert (by_token.interviews, by_token.messages, by_token.cards) == (1, 3, 1)
    assert by_token.wiser_votes == 1 and by_token.survey_answers == 1


def test_find_participant_only_within_its_deliberation(engine, world):
    other = world["other"]
    with pytest.raises(participants.ParticipantNotFound):
        participants.find_participant(engine, deliberation_id=world["d"].id, token=other.token)
    found = participants.find_participant(
        engine, deliberation_id=other.participant.deliberation_id, panel_id="PID-A"
    )
    assert found.id == other.participant.id


def test_find_participant_needs_exactly_one_key(sqlite_engine):
    for kwargs in ({}, {"token": "t", "panel_id": "p"}, {"token": "  "}):
        with pytest.raises(participants.LookupInputError):
            participants.find_participant(sqlite_engine, deliberation_id=1, **kwargs)


def test_export_holds_their_rows_and_no_secrets(engine, world):
    a = world["a"]
    doc = json.loads(participants.export_participant_json(engine, participant_id=a.participant.id))
    assert doc["format"] == "mge-participant-export" and doc["version"] == 1
    assert doc["deliberation"]["slug"] == "withdrawal"
    assert doc["participant"]["panel_pid"] == "PID-A"
    (interview,) = doc["interviews"]
    assert [m["content"] for m in interview["messages"]][1] == (
        "I care about honesty when someone is scared."
    )
    assert interview["messages"][2]["tool_calls"][0]["function"]["name"] == "submit_values_card"
    (card,) = doc["cards"]
    assert [v["origin"] for v in card["versions"]] == ["llm", "participant"]
    assert doc["wiser_votes"][0]["context"] == "When the user is in distress"
    assert len(doc["value_impressions"]) == len(doc["value_votes"]) == 1
    assert doc["survey_answers"][0]["score"] == 4
    assert {c["purpose"] for c in doc["llm_calls"]} == {"interview", "articulate"}
    text = json.dumps(doc)
    assert a.participant.token_hash not in text and a.token not in text


def test_delete_removes_everything_they_contributed(engine, world):
    d, a, b, c = world["d"], world["a"], world["b"], world["c"]
    pid, iid, card_id = a.participant.id, a.interview.id, a.card.id
    counts = participants.delete_participant(engine, participant_id=pid)
    assert counts["participants"] == 1 and counts["messages"] == 3 and counts["cards"] == 1
    assert counts["canonical_values"] == 1 and counts["hypotheses"] == 1
    with Session(engine) as s:
        assert s.get(Participant, pid) is None
        assert _count(s, Interview, Interview.participant_id == pid) == 0
        assert _count(s, Message, Message.interview_id == iid) == 0
        assert _count(s, ValuesCard, ValuesCard.id == card_id) == 0
        assert _count(s, CardVersion, CardVersion.card_id == card_id) == 0
        for model in (WiserVote, ValueImpression, ValueVote, SurveyAnswer):
            assert _count(s, model, model.participant_id == pid) == 0
        # the value only A supported is gone, with its hypotheses and others' votes on them
        assert s.get(CanonicalValue, a.value.id) is None
        assert _count(s, Hypothesis, Hypothesis.from_value_id == a.value.id) == 0
        # the ledger keeps its rows but loses the link
        assert _count(s, LLMCall, LLMCall.participant_id == pid) == 0
        assert _count(s, LLMCall, col(LLMCall.interview_id) == iid) == 0
        assert _count(s, LLMCall, col(LLMCall.participant_id).is_(None)) == 2
        # B and C keep their data; the shared value stays
        assert s.get(CanonicalValue, b.value.id) is not None
        for other in (b, c):
            assert s.get(Participant, other.participant.id) is not None
            assert _count(s, Message, Message.interview_id == other.interview.id) == 3
        # what the graph engine reads: only the B -> third value vote is left
        votes = queries.list_deliberation_wiser_votes(s, deliberation_id=d.id)
        assert [(v.participant_id, v.from_value_id) for v, _ in votes] == [
            (b.participant.id, b.value.id)
        ]
        assert a.value.id not in {
            v.id for v in queries.list_canonical_values(s, deliberation_id=d.id)
        }
        assert queries.count_participants(s, deliberation_id=d.id) == 2


def test_delete_keeps_a_value_others_still_support(engine, world):
    b, c = world["b"], world["c"]
    counts = participants.delete_participant(engine, participant_id=b.participant.id)
    assert counts["canonical_values"] == 0
    with Session(engine) as s:
        assert s.get(CanonicalValue, b.value.id) is not None
        assert _count(s, ValuesCard, ValuesCard.canonical_value_id == b.value.id) == 1
        assert _count(s, WiserVote, WiserVote.participant_id == c.participant.id) == 1


def test_deleted_participant_cannot_be_found_or_exported_again(engine, world):
    d, a = world["d"], world["a"]
    participants.delete_participant(engine, participant_id=a.participant.id)
    with pytest.raises(participants.ParticipantNotFound):
        participants.find_participant(engine, deliberation_id=d.id, token=a.token)
    with pytest.raises(queries.NotFound):
        participants.export_participant(engine, participant_id=a.participant.id)
    with pytest.raises(queries.NotFound):
        participants.delete_participant(engine, participant_id=a.participant.id)


def test_set_flag_marks_the_participant(sqlite_engine):
    with Session(sqlite_engine, expire_on_commit=False) as s:
        d = factories.deliberation(s)
        p, token = factories.participant(s, d)
    participants.set_flag(sqlite_engine, deliberation_id=d.id, participant_id=p.id, flagged=True)
    summary = participants.find_participant(sqlite_engine, deliberation_id=d.id, token=token)
    assert summary.flagged
    with pytest.raises(queries.NotFound):
        participants.set_flag(
            sqlite_engine, deliberation_id=d.id + 1, participant_id=p.id, flagged=False
        )
