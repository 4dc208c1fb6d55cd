"""Participant journey: entry, steps, interviews, messages, cards, peers, wiser votes, survey."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.models import (
    STEPS,
    CanonicalValue,
    CardVersion,
    Context,
    Hypothesis,
    Interview,
    Message,
    Participant,
    QuestionContext,
    SurveyAnswer,
    ValueImpression,
    ValuesCard,
    ValueVote,
    WiserVote,
    utcnow,
)
from db.queries.core import Conflict, NotFound, _commit

__all__ = [
    "add_card_version",
    "add_message",
    "count_value_impressions",
    "count_value_votes",
    "count_wiser_votes_by_triple",
    "create_card",
    "create_interview",
    "create_participant",
    "create_value_impressions",
    "create_wiser_vote",
    "get_interview",
    "get_interview_card",
    "get_participant",
    "get_participant_by_panel_pid",
    "get_participant_card",
    "list_card_versions",
    "list_deliberation_wiser_votes",
    "list_hypotheses",
    "list_interview_messages",
    "list_participant_interviews",
    "list_participant_wiser_votes",
    "list_peer_candidates",
    "list_question_context_ids",
    "list_survey_answers",
    "list_value_contributors",
    "list_value_impressions",
    "list_value_votes",
    "replace_value_votes",
    "set_participant_step",
    "submit_card",
    "update_interview",
    "update_participant",
    "update_participant_token",
    "upsert_survey_answer",
]

PARTICIPANT_FIELDS = (
    "consent_publish",
    "consent_aggregate_only",
    "consent_training",
    "consented_at",
    "question_id",
    "offered_question_ids",
    "finished_at",
)


# --- participants -------------------------------------------------------------------------------


def create_participant(
    session: Session,
    *,
    deliberation_id: int,
    token_hash: str,
    entry_channel: str = "anonymous",
    panel_pid: str | None = None,
    panel_study_id: str | None = None,
    panel_session_id: str | None = None,
    step: str = "consent",
    step_times: dict[str, str] | None = None,
    **fields: Any,
) -> Participant:
    """Insert a participant. A second one with the same panel PID in the deliberation is refused
    by the database's unique constraint and raised as `Conflict` (the caller re-reads)."""
    unknown = set(fields) - set(PARTICIPANT_FIELDS)
    if unknown:
        raise TypeError(f"unknown participant fields: {sorted(unknown)}")
    row = Participant(
        deliberation_id=deliberation_id,
        token_hash=token_hash,
        entry_channel=entry_channel,
        panel_pid=panel_pid,
        panel_study_id=panel_study_id,
        panel_session_id=panel_session_id,
        step=step,
        step_times=dict(step_times or {}),
        **fields,
    )
    try:
        _commit(session, row)
    except IntegrityError:
        session.rollback()
        raise Conflict("a participant with this panel id already exists here") from None
    return row


def get_participant(session: Session, *, participant_id: int) -> Participant:
    row = session.get(Participant, participant_id)
    if row is None or row.deleted_at is not None:
        raise NotFound(f"no participant {participant_id}")
    return row


def get_participant_by_panel_pid(
    session: Session, *, deliberation_id: int, panel_pid: str
) -> Participant | None:
    return session.exec(
        select(Participant).where(
            Participant.deliberation_id == deliberation_id,
            Participant.panel_pid == panel_pid,
            col(Participant.deleted_at).is_(None),
        )
    ).first()


def update_participant(session: Session, *, participant_id: int, **fields: Any) -> Participant:
    row = get_participant(session, participant_id=participant_id)
    for key, value in fields.items():
        if key not in PARTICIPANT_FIELDS:
            raise TypeError(f"unknown participant field {key!r}")
        setattr(row, key, list(value) if isinstance(value, list) else value)
    row.updated_at = utcnow()
    _commit(session, row)
    return row


def update_participant_token(session: Session, *, participant_id: int, token_hash: str) -> None:
    row = get_participant(session, participant_id=participant_id)
    row.token_hash = token_hash
    row.updated_at = utcnow()
    _commit(session, row)


def set_participant_step(
    session: Session, *, participant_id: int, step: str, at: datetime | None = None
) -> Participant:
    """Move a participant forward to `step` (never backwards), recording when each step was
    first entered. Steps skipped on the way get no time: they were never entered."""
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}")
    row = get_participant(session, participant_id=participant_id)
    if STEPS.index(step) <= STEPS.index(row.step):
        return row
    times = dict(row.step_times)  # a new dict, so SQLAlchemy sees the JSON column change
    times.setdefault(step, (at or utcnow()).isoformat())
    row.step_times = times
    row.step = step
    if step == "finished" and row.finished_at is None:
        row.finished_at = at or utcnow()
    row.updated_at = utcnow()
    _commit(session, row)
    return row


# --- interviews and messages ----------------------------------------------------------------


def create_interview(
    session: Session, *, participant_id: int, question_id: int | None, mode: str
) -> Interview:
    row = Interview(participant_id=participant_id, question_id=question_id, mode=mode)
    _commit(session, row)
    return row


def get_interview(session: Session, *, interview_id: int) -> Interview:
    row = session.get(Interview, interview_id)
    if row is None:
        raise NotFound(f"no interview {interview_id}")
    return row


def list_participant_interviews(session: Session, *, participant_id: int) -> list[Interview]:
    """Oldest first; archived interviews left out."""
    return list(
        session.exec(
            select(Interview)
            .where(Interview.participant_id == participant_id, col(Interview.archived).is_(False))
            .order_by(col(Interview.id))
        )
    )


def update_interview(session: Session, *, interview_id: int, **fields: Any) -> Interview:
    row = get_interview(session, interview_id=interview_id)
    for key, value in fields.items():
        if key not in ("mode", "status", "consecutive_failures"):
            raise TypeError(f"unknown interview field {key!r}")
        setattr(row, key, value)
    row.updated_at = utcnow()
    _commit(session, row)
    return row


def add_message(
    session: Session,
    *,
    interview_id: int,
    role: str,
    content: str,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str | None = None,
) -> Message:
    """Append a message and commit it. The next `seq` is read then inserted; a concurrent
    append (the same participant in two tabs) trips the unique (interview, seq) constraint, and
    we simply take the next number."""
    for _attempt in range(5):
        seq = session.exec(
            select(func.coalesce(func.max(Message.seq), 0)).where(
                Message.interview_id == interview_id
            )
        ).one()
        row = Message(
            interview_id=interview_id,
            seq=int(seq) + 1,
            role=role,
            content=content,
            tool_calls=tool_calls,
            tool_call_id=tool_call_id,
        )
        try:
            _commit(session, row)
        except IntegrityError:
            session.rollback()
            continue
        interview = session.get(Interview, interview_id)
        if interview is not None:
            interview.updated_at = utcnow()
            session.add(interview)
            session.commit()
        return row
    raise Conflict("could not store the message; please try again")


def list_interview_messages(session: Session, *, interview_id: int) -> list[Message]:
    return list(
        session.exec(
            select(Message).where(Message.interview_id == interview_id).order_by(col(Message.seq))
        )
    )


# --- cards ------------------------------------------------------------------------------------


def create_card(
    session: Session,
    *,
    deliberation_id: int,
    participant_id: int,
    interview_id: int,
    question_id: int | None,
    title: str,
    description: str,
    policies: Sequence[str],
    origin: str,
) -> ValuesCard:
    """A new card and its version 1, in one transaction."""
    card = ValuesCard(
        deliberation_id=deliberation_id,
        participant_id=participant_id,
        interview_id=interview_id,
        question_id=question_id,
        title=title,
        description=description,
        policies=list(policies),
    )
    session.add(card)
    session.flush()
    assert card.id is not None
    version = CardVersion(
        card_id=card.id,
        version=1,
        origin=origin,
        title=title,
        description=description,
        policies=list(policies),
    )
    _commit(session, card, version)
    return card


def add_card_version(
    session: Session,
    *,
    card_id: int,
    title: str,
    description: str,
    policies: Sequence[str],
    origin: str,
) -> CardVersion:
    """Record a new text of the card and make it the card's current text."""
    card = session.get(ValuesCard, card_id)
    if card is None:
        raise NotFound(f"no values card {card_id}")
    for _attempt in range(5):
        last = session.exec(
            select(func.coalesce(func.max(CardVersion.version), 0)).where(
                CardVersion.card_id == card_id
            )
        ).one()
        version = CardVersion(
            card_id=card_id,
            version=int(last) + 1,
            origin=origin,
            title=title,
            description=description,
            policies=list(policies),
        )
        card.title, card.description, card.policies = title, description, list(policies)
        card.updated_at = utcnow()
        try:
            _commit(session, card, version)
        except IntegrityError:
            session.rollback()
            card = session.get(ValuesCard, card_id)
            assert card is not None
            continue
        return version
    raise Conflict("could not store the card; please try again")


def list_card_versions(session: Session, *, card_id: int) -> list[CardVersion]:
    return list(
        session.exec(
            select(CardVersion)
            .where(CardVersion.card_id == card_id)
            .order_by(col(CardVersion.version))
        )
    )


def get_interview_card(session: Session, *, interview_id: int) -> ValuesCard | None:
    return session.exec(
        select(ValuesCard)
        .where(ValuesCard.interview_id == interview_id, col(ValuesCard.archived).is_(False))
        .order_by(col(ValuesCard.id))
    ).first()


def get_participant_card(session: Session, *, participant_id: int) -> ValuesCard | None:
    """The participant's submitted card (the first, if there were several)."""
    return session.exec(
        select(ValuesCard)
        .where(
            ValuesCard.participant_id == participant_id,
            col(ValuesCard.submitted_at).is_not(None),
            col(ValuesCard.archived).is_(False),
        )
        .order_by(col(ValuesCard.id))
    ).first()


def submit_card(session: Session, *, card_id: int) -> ValuesCard:
    card = session.get(ValuesCard, card_id)
    if card is None:
        raise NotFound(f"no values card {card_id}")
    if card.submitted_at is None:
        card.submitted_at = utcnow()
        card.updated_at = utcnow()
        _commit(session, card)
    return card


def list_value_contributors(session: Session, *, canonical_value_id: int) -> int:
    """How many distinct people submitted a card that expresses this value (imported cards
    without a participant count one each)."""
    rows = session.exec(
        select(ValuesCard.participant_id, ValuesCard.id).where(
            ValuesCard.canonical_value_id == canonical_value_id,
            col(ValuesCard.archived).is_(False),
            col(ValuesCard.submitted_at).is_not(None) | col(ValuesCard.ref_id).is_not(None),
        )
    ).all()
    return len({pid if pid is not None else f"card{cid}" for pid, cid in rows})


# --- peer values ------------------------------------------------------------------------------


def list_peer_candidates(
    session: Session,
    *,
    deliberation_id: int,
    question_id: int | None,
    exclude_value_ids: Sequence[int] = (),
) -> list[CanonicalValue]:
    """Canonical values that cards of the same question express (submitted or imported),
    not archived, without the excluded ones. Ordered by id."""
    cards = select(ValuesCard.canonical_value_id).where(
        ValuesCard.deliberation_id == deliberation_id,
        col(ValuesCard.canonical_value_id).is_not(None),
        col(ValuesCard.archived).is_(False),
        col(ValuesCard.submitted_at).is_not(None) | col(ValuesCard.ref_id).is_not(None),
    )
    if question_id is not None:
        cards = cards.where(ValuesCard.question_id == question_id)
    q = select(CanonicalValue).where(
        CanonicalValue.deliberation_id == deliberation_id,
        col(CanonicalValue.archived).is_(False),
        col(CanonicalValue.id).in_(cards),
    )
    if exclude_value_ids:
        q = q.where(col(CanonicalValue.id).not_in(list(exclude_value_ids)))
    return list(session.exec(q.order_by(col(CanonicalValue.id))))


def count_value_impressions(session: Session, *, value_ids: Sequence[int]) -> dict[int, int]:
    if not value_ids:
        return {}
    rows = session.exec(
        select(ValueImpression.canonical_value_id, func.count())
        .where(col(ValueImpression.canonical_value_id).in_(list(value_ids)))
        .group_by(col(ValueImpression.canonical_value_id))
    ).all()
    return {int(v): int(n) for v, n in rows}


def count_value_votes(session: Session, *, value_ids: Sequence[int]) -> dict[int, int]:
    if not value_ids:
        return {}
    rows = session.exec(
        select(ValueVote.canonical_value_id, func.count())
        .where(col(ValueVote.canonical_value_id).in_(list(value_ids)))
        .group_by(col(ValueVote.canonical_value_id))
    ).all()
    return {int(v): int(n) for v, n in rows}


def create_value_impressions(
    session: Session, *, participant_id: int, draw_id: str, value_ids: Sequence[int]
) -> list[ValueImpression]:
    rows = [
        ValueImpression(
            participant_id=participant_id, draw_id=draw_id, canonical_value_id=v, position=i
        )
        for i, v in enumerate(value_ids)
    ]
    try:
        _commit(session, *rows)
    except IntegrityError:
        session.rollback()
        raise Conflict("this draw was already stored") from None
    return rows


def list_value_impressions(session: Session, *, participant_id: int) -> list[ValueImpression]:
    """Every impression of the participant, in draw order then position."""
    return list(
        session.exec(
            select(ValueImpression)
            .where(ValueImpression.participant_id == participant_id)
            .order_by(col(ValueImpression.id))
        )
    )


def list_value_votes(
    session: Session, *, participant_id: int, draw_id: str | None = None
) -> list[ValueVote]:
    q = select(ValueVote).where(ValueVote.participant_id == participant_id)
    if draw_id is not None:
        q = q.where(ValueVote.draw_id == draw_id)
    return list(session.exec(q.order_by(col(ValueVote.id))))


def replace_value_votes(
    session: Session, *, participant_id: int, draw_id: str, value_ids: Sequence[int]
) -> list[ValueVote]:
    """Make the participant's votes in this draw exactly `value_ids` (idempotent)."""
    existing = {
        v.canonical_value_id: v
        for v in list_value_votes(session, participant_id=participant_id, draw_id=draw_id)
    }
    wanted = list(dict.fromkeys(value_ids))
    for value_id, row in existing.items():
        if value_id not in wanted:
            session.delete(row)
    new = [
        ValueVote(participant_id=participant_id, draw_id=draw_id, canonical_value_id=v)
        for v in wanted
        if v not in existing
    ]
    try:
        _commit(session, *new)
    except IntegrityError:  # the same submission from another tab got there first
        session.rollback()
    return list_value_votes(session, participant_id=participant_id, draw_id=draw_id)


# --- wiser-than --------------------------------------------------------------------------------


def list_hypotheses(session: Session, *, deliberation_id: int) -> list[Hypothesis]:
    """Hypotheses open for judging: not archived, in a live context, between live values."""
    # SQLModel sets __table__ on table models at runtime but its stubs don't declare it.
    from_value = CanonicalValue.__table__.alias("from_value")  # type: ignore[attr-defined]
    to_value = CanonicalValue.__table__.alias("to_value")  # type: ignore[attr-defined]
    q = (
        select(Hypothesis)
        .join(Context, col(Context.id) == col(Hypothesis.context_id))
        .join(from_value, from_value.c.id == col(Hypothesis.from_value_id))
        .join(to_value, to_value.c.id == col(Hypothesis.to_value_id))
        .where(
            Hypothesis.deliberation_id == deliberation_id,
            col(Hypothesis.archived).is_(False),
            col(Context.archived).is_(False),
            from_value.c.archived.is_(False),
            to_value.c.archived.is_(False),
        )
        .order_by(col(Hypothesis.id))
    )
    return list(session.exec(q))


def list_question_context_ids(session: Session, *, question_id: int) -> set[int]:
    return set(
        session.exec(
            select(QuestionContext.context_id).where(QuestionContext.question_id == question_id)
        ).all()
    )


def count_wiser_votes_by_triple(
    session: Session, *, deliberation_id: int
) -> dict[tuple[int, int, int], int]:
    """(from, to, context) -> number of votes in the deliberation."""
    rows = session.exec(
        select(WiserVote.from_value_id, WiserVote.to_value_id, WiserVote.context_id, func.count())
        .where(WiserVote.deliberation_id == deliberation_id)
        .group_by(
            col(WiserVote.from_value_id), col(WiserVote.to_value_id), col(WiserVote.context_id)
        )
    ).all()
    return {(int(a), int(b), int(c)): int(n) for a, b, c, n in rows}


def list_participant_wiser_votes(session: Session, *, participant_id: int) -> list[WiserVote]:
    return list(
        session.exec(
            select(WiserVote)
            .where(WiserVote.participant_id == participant_id)
            .order_by(col(WiserVote.id))
        )
    )


def list_deliberation_wiser_votes(
    session: Session, *, deliberation_id: int
) -> list[tuple[WiserVote, str]]:
    """Every vote of the deliberation with its context's text, in creation order."""
    rows = session.exec(
        select(WiserVote, Context.text)
        .join(Context, col(Context.id) == col(WiserVote.context_id))
        .where(WiserVote.deliberation_id == deliberation_id)
        .order_by(col(WiserVote.created_at), col(WiserVote.id))
    ).all()
    return [(v, str(t)) for v, t in rows]


def create_wiser_vote(
    session: Session,
    *,
    deliberation_id: int,
    participant_id: int,
    hypothesis_id: int | None,
    from_value_id: int,
    to_value_id: int,
    context_id: int,
    choice: str,
    comment: str = "",
) -> WiserVote:
    """Store a judgement. A second vote by the same participant on the same (from, to,
    context) is refused by the database's unique constraint: `Conflict`."""
    row = WiserVote(
        deliberation_id=deliberation_id,
        participant_id=participant_id,
        hypothesis_id=hypothesis_id,
        from_value_id=from_value_id,
        to_value_id=to_value_id,
        context_id=context_id,
        choice=choice,
        comment=comment,
    )
    try:
        _commit(session, row)
    except IntegrityError:
        session.rollback()
        raise Conflict("this participant already judged this pair in this context") from None
    return row


# --- survey -------------------------------------------------------------------------------------


def upsert_survey_answer(
    session: Session, *, participant_id: int, item: str, score: int | None = None, text: str = ""
) -> SurveyAnswer:
    """One answer per item: a second answer replaces the first (so a resubmission is harmless)."""
    row = session.exec(
        select(SurveyAnswer).where(
            SurveyAnswer.participant_id == participant_id, SurveyAnswer.item == item
        )
    ).first()
    if row is None:
        row = SurveyAnswer(participant_id=participant_id, item=item, score=score, text=text)
        try:
            _commit(session, row)
            return row
        except IntegrityError:  # inserted meanwhile by another tab: update that one
            session.rollback()
            row = session.exec(
                select(SurveyAnswer).where(
                    SurveyAnswer.participant_id == participant_id, SurveyAnswer.item == item
                )
            ).one()
    row.score, row.text = score, text
    _commit(session, row)
    return row


def list_survey_answers(session: Session, *, participant_id: int) -> list[SurveyAnswer]:
    return list(
        session.exec(
            select(SurveyAnswer)
            .where(SurveyAnswer.participant_id == participant_id)
            .order_by(col(SurveyAnswer.id))
        )
    )
