"""Seed rows for the console tests: a participant who went through the whole journey.

Rows are written with the models directly, so these tests do not depend on the journey code.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session

from db import queries
from db.models import (
    CanonicalValue,
    CardVersion,
    Context,
    Deliberation,
    Hypothesis,
    Interview,
    LLMCall,
    Message,
    Participant,
    Question,
    SurveyAnswer,
    ValueImpression,
    ValuesCard,
    ValueVote,
    WiserVote,
    utcnow,
)

HOSTILE = "**bold** <script>alert('x')</script> [click](http://evil.example) :red[red] $x^2$"


@dataclass
class Seeded:
    participant: Participant
    token: str
    interview: Interview
    card: ValuesCard
    value: CanonicalValue


def add(s: Session, *rows: object) -> None:
    for row in rows:
        s.add(row)
    s.commit()
    for row in rows:
        s.refresh(row)


def contributor(
    s: Session,
    d: Deliberation,
    q: Question,
    *,
    value: CanonicalValue | None = None,
    panel_pid: str | None = None,
    step: str = "finished",
    words: str = "I care about honesty when someone is scared.",
    card_title: str = "Grounded Honesty",
    minutes: tuple[int, ...] = (1, 2, 10, 3, 4, 1, 2),
) -> Seeded:
    """A participant with an interview (messages, a card with an LLM and a participant version)
    supporting `value` (a new canonical value when None), a survey answer, an impression and a
    value vote on that value, and two ledger rows. `minutes` are the times spent in each step
    from consent on, up to `step`."""
    token = secrets.token_urlsafe(16)
    start = utcnow() - timedelta(hours=2)
    times: dict[str, str] = {}
    at = start
    steps = ["consent", "question", "interview", "peers", "wiser", "landed", "survey", "finished"]
    for i, name in enumerate(steps[: steps.index(step) + 1]):
        times[name] = at.isoformat()
        if i < len(minutes):
            at += timedelta(minutes=minutes[i])
    p = Participant(
        deliberation_id=d.id,
        token_hash=queries.hash_token(token),
        entry_channel="panel" if panel_pid else "anonymous",
        panel_pid=panel_pid,
        question_id=q.id,
        step=step,
        step_times=times,
        finished_at=utcnow() if step == "finished" else None,
    )
    add(s, p)
    if value is None:
        value = CanonicalValue(
            deliberation_id=d.id, title=card_title, description="d", policies=["MOMENTS of x"]
        )
        add(s, value)
    iv = Interview(participant_id=p.id, question_id=q.id, status="confirmed")
    add(s, iv)
    add(
        s,
        Message(interview_id=iv.id, seq=1, role="assistant", content="What matters to you here?"),
        Message(interview_id=iv.id, seq=2, role="user", content=words),
        Message(
            interview_id=iv.id,
            seq=3,
            role="assistant",
            content="",
            tool_calls=[
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "submit_values_card", "arguments": '{"title": "T"}'},
                }
            ],
        ),
    )
    card = ValuesCard(
        deliberation_id=d.id,
        participant_id=p.id,
        interview_id=iv.id,
        question_id=q.id,
        canonical_value_id=value.id,
        title=card_title,
        description="Being truthful in a steadying way.",
        policies=["MOMENTS when a plain fact helps", "SIGNS that they feel safe"],
        submitted_at=utcnow(),
    )
    add(s, card)
    add(
        s,
        CardVersion(
            card_id=card.id,
            version=1,
            origin="llm",
            title="Honesty",
            description="Being truthful.",
            policies=["MOMENTS when a plain fact helps"],
        ),
        CardVersion(
            card_id=card.id,
            version=2,
            origin="participant",
            title=card_title,
            description="Being truthful in a steadying way.",
            policies=["MOMENTS when a plain fact helps", "SIGNS that they feel safe"],
        ),
        SurveyAnswer(participant_id=p.id, item="fair", score=4),
        ValueImpression(participant_id=p.id, draw_id="draw1", canonical_value_id=value.id),
        ValueVote(participant_id=p.id, draw_id="draw1", canonical_value_id=value.id),
        LLMCall(
            purpose="interview",
            model="gpt-4o",
            deliberation_id=d.id,
            participant_id=p.id,
            interview_id=iv.id,
            input_tokens=1000,
            cached_input_tokens=200,
            output_tokens=50,
            outcome="ok",
        ),
        LLMCall(
            purpose="articulate",
            model="gpt-4o",
            deliberation_id=d.id,
            participant_id=p.id,
            interview_id=iv.id,
            input_tokens=1500,
            cached_input_tokens=0,
            output_tokens=120,
            outcome="ok",
        ),
    )
    return Seeded(participant=p, token=token, interview=iv, card=card, value=value)


def hypothesis_and_vote(
    s: Session,
    d: Deliberation,
    ctx: Context,
    voter: Participant,
    from_value: CanonicalValue,
    to_value: CanonicalValue,
    *,
    choice: str = "upgrade",
) -> tuple[Hypothesis, WiserVote]:
    """A hypothesis from -> to in the context (created once) and `voter`'s vote on it."""
    from sqlmodel import select

    h = s.exec(
        select(Hypothesis).where(
            Hypothesis.from_value_id == from_value.id,
            Hypothesis.to_value_id == to_value.id,
            Hypothesis.context_id == ctx.id,
        )
    ).first()
    if h is None:
        h = Hypothesis(
            deliberation_id=d.id,
            from_value_id=from_value.id,
            to_value_id=to_value.id,
            context_id=ctx.id,
            story="I used to ... and then ...",
        )
        add(s, h)
    v = WiserVote(
        deliberation_id=d.id,
        participant_id=voter.id,
        hypothesis_id=h.id,
        from_value_id=from_value.id,
        to_value_id=to_value.id,
        context_id=ctx.id,
        choice=choice,
    )
    add(s, v)
    return h, v
