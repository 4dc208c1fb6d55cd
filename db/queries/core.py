"""Core reads and writes: deliberations, questions, contexts, participants, accounts, the ledger."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.models import (
    Context,
    Deliberation,
    Facilitator,
    FacilitatorSession,
    LLMCall,
    Participant,
    Question,
    QuestionContext,
    utcnow,
)


class NotFound(LookupError):
    """The row asked for does not exist (or is not visible to the caller)."""


class Conflict(ValueError):
    """A uniqueness rule of the database refused the write; the message says which."""


def hash_token(token: str) -> str:
    """The stored form of a secret token (resume links, console sessions): SHA-256 hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _commit(session: Session, *rows: Any) -> None:
    for row in rows:
        session.add(row)
    session.commit()
    for row in rows:
        session.refresh(row)


# --- deliberations, questions, contexts -----------------------------------------------------


DELIBERATION_FIELDS = (
    "title",
    "topic",
    "welcome_text",
    "value_framing",
    "questions_per_participant",
    "stories_per_participant",
    "peer_values_per_participant",
    "invite_code",
    "completion_url",
    "languages",
    "is_open",
)


def create_deliberation(session: Session, *, slug: str, title: str, **fields: Any) -> Deliberation:
    unknown = set(fields) - set(DELIBERATION_FIELDS)
    if unknown:
        raise TypeError(f"unknown deliberation fields: {sorted(unknown)}")
    row = Deliberation(slug=slug, title=title, **fields)
    try:
        _commit(session, row)
    except IntegrityError:
        session.rollback()
        raise Conflict(f"a deliberation with the slug {slug!r} already exists") from None
    return row


def get_deliberation(
    session: Session, *, slug: str | None = None, id: int | None = None
) -> Deliberation:
    if id is not None:
        row = session.get(Deliberation, id)
    else:
        row = session.exec(select(Deliberation).where(Deliberation.slug == slug)).first()
    if row is None:
        raise NotFound(f"no deliberation {slug or id!r}")
    return row


def list_deliberations(session: Session) -> list[Deliberation]:
    return list(session.exec(select(Deliberation).order_by(col(Deliberation.created_at).desc())))


def update_deliberation(session: Session, *, deliberation_id: int, **fields: Any) -> Deliberation:
    row = get_deliberation(session, id=deliberation_id)
    for key, value in fields.items():
        if key not in DELIBERATION_FIELDS:
            raise TypeError(f"unknown deliberation field {key!r}")
        setattr(row, key, value)
    row.updated_at = utcnow()
    _commit(session, row)
    return row


def create_question(
    session: Session, *, deliberation_id: int, title: str, text: str, position: int | None = None
) -> Question:
    if position is None:
        position = session.exec(
            select(func.count())
            .select_from(Question)
            .where(Question.deliberation_id == deliberation_id)
        ).one()
    row = Question(deliberation_id=deliberation_id, title=title, text=text, position=position)
    _commit(session, row)
    return row


def list_questions(
    session: Session, *, deliberation_id: int, include_archived: bool = False
) -> list[Question]:
    q = select(Question).where(Question.deliberation_id == deliberation_id)
    if not include_archived:
        q = q.where(col(Question.archived).is_(False))
    return list(session.exec(q.order_by(col(Question.position), col(Question.id))))


def get_question(session: Session, *, question_id: int) -> Question:
    row = session.get(Question, question_id)
    if row is None:
        raise NotFound(f"no question {question_id}")
    return row


def get_or_create_context(session: Session, *, deliberation_id: int, text: str) -> Context:
    text = " ".join(text.split())
    row = session.exec(
        select(Context).where(Context.deliberation_id == deliberation_id, Context.text == text)
    ).first()
    if row is None:
        row = Context(deliberation_id=deliberation_id, text=text)
        try:
            _commit(session, row)
        except IntegrityError:  # created meanwhile by another process
            session.rollback()
            row = session.exec(
                select(Context).where(
                    Context.deliberation_id == deliberation_id, Context.text == text
                )
            ).one()
    return row


def link_context(session: Session, *, question_id: int, context_id: int) -> None:
    if session.get(QuestionContext, (question_id, context_id)) is None:
        try:
            _commit(session, QuestionContext(question_id=question_id, context_id=context_id))
        except IntegrityError:
            session.rollback()


def list_contexts(
    session: Session,
    *,
    deliberation_id: int,
    question_id: int | None = None,
    include_archived: bool = False,
) -> list[Context]:
    q = select(Context).where(Context.deliberation_id == deliberation_id)
    if question_id is not None:
        q = q.join(QuestionContext, col(QuestionContext.context_id) == col(Context.id)).where(
            QuestionContext.question_id == question_id
        )
    if not include_archived:
        q = q.where(col(Context.archived).is_(False))
    return list(session.exec(q.order_by(col(Context.id))))


# --- participants ---------------------------------------------------------------------------


def get_participant_by_token(
    session: Session, *, deliberation_id: int, token: str
) -> Participant | None:
    """The participant a resume token belongs to, only within that deliberation and not deleted."""
    row = session.exec(
        select(Participant).where(Participant.token_hash == hash_token(token))
    ).first()
    if row is None or row.deliberation_id != deliberation_id or row.deleted_at is not None:
        return None
    return row


def count_participants(session: Session, *, deliberation_id: int) -> int:
    return session.exec(
        select(func.count())
        .select_from(Participant)
        .where(
            Participant.deliberation_id == deliberation_id, col(Participant.deleted_at).is_(None)
        )
    ).one()


# --- facilitators -----------------------------------------------------------------------------


def create_facilitator(session: Session, *, username: str, password_hash: str) -> Facilitator:
    row = Facilitator(username=username, password_hash=password_hash)
    try:
        _commit(session, row)
    except IntegrityError:
        session.rollback()
        raise Conflict(f"a facilitator named {username!r} already exists") from None
    return row


def get_facilitator(session: Session, *, username: str) -> Facilitator | None:
    return session.exec(select(Facilitator).where(Facilitator.username == username)).first()


def update_facilitator_password(
    session: Session, *, facilitator_id: int, password_hash: str
) -> None:
    row = session.get(Facilitator, facilitator_id)
    if row is None:
        raise NotFound(f"no facilitator {facilitator_id}")
    row.password_hash = password_hash
    _commit(session, row)


def count_facilitators(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Facilitator)).one()


def create_facilitator_session(
    session: Session, *, facilitator_id: int, token: str, ttl: timedelta
) -> FacilitatorSession:
    row = FacilitatorSession(
        facilitator_id=facilitator_id, token_hash=hash_token(token), expires_at=utcnow() + ttl
    )
    fac = session.get(Facilitator, facilitator_id)
    if fac is not None:
        fac.last_login_at = utcnow()
        session.add(fac)
    _commit(session, row)
    return row


def get_facilitator_for_session(session: Session, *, token: str) -> Facilitator | None:
    """The facilitator a console session token belongs to, if the session has not expired."""
    row = session.exec(
        select(FacilitatorSession).where(FacilitatorSession.token_hash == hash_token(token))
    ).first()
    if row is None:
        return None
    expires = row.expires_at
    if expires.tzinfo is None:  # SQLite returns naive datetimes; they are stored as UTC
        from datetime import UTC

        expires = expires.replace(tzinfo=UTC)
    if expires <= utcnow():
        return None
    return session.get(Facilitator, row.facilitator_id)


def delete_facilitator_session(session: Session, *, token: str) -> None:
    row = session.exec(
        select(FacilitatorSession).where(FacilitatorSession.token_hash == hash_token(token))
    ).first()
    if row is not None:
        session.delete(row)
        session.commit()


# --- the LLM ledger ---------------------------------------------------------------------------


def create_llm_call(session: Session, **fields: Any) -> LLMCall:
    row = LLMCall(**fields)
    _commit(session, row)
    return row


def list_llm_calls(
    session: Session,
    *,
    limit: int = 50,
    deliberation_id: int | None = None,
    since: datetime | None = None,
    purposes: Sequence[str] | None = None,
) -> list[LLMCall]:
    """Newest first."""
    q = select(LLMCall)
    if deliberation_id is not None:
        q = q.where(LLMCall.deliberation_id == deliberation_id)
    if since is not None:
        q = q.where(LLMCall.created_at >= since)
    if purposes:
        q = q.where(col(LLMCall.purpose).in_(list(purposes)))
    return list(session.exec(q.order_by(col(LLMCall.id).desc()).limit(limit)))
