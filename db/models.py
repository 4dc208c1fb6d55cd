"""Every table of the app. The schema changes only through Alembic migrations (db/migrations).

Conventions: timezone-aware UTC timestamps from `utcnow`; `max_length` on strings; a unique
constraint for every "at most one per ..." rule, so the database, not only the code, enforces it.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, MetaData, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# Stable constraint names so migrations diff cleanly on SQLite (batch mode) and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata

STEPS = ("consent", "question", "interview", "peers", "wiser", "landed", "survey", "finished")
CHOICES = ("upgrade", "no_upgrade", "not_sure")


def utcnow() -> datetime:
    return datetime.now(UTC)


def time_id() -> str:
    """A 26-character id that sorts by creation time (ns clock + 48 random bits)."""
    return f"{time.time_ns():016x}{os.urandom(5).hex()}"


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), **kw)


def _ts_opt(**kw: Any) -> Any:
    return Field(default=None, sa_type=DateTime(timezone=True), **kw)


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


def _text(**kw: Any) -> Any:
    return Field(default="", sa_column=Column(Text, nullable=False), **kw)


# --- deliberations ------------------------------------------------------------------------------


class Deliberation(SQLModel, table=True):
    """One elicitation event: its texts and settings."""

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=64, unique=True, index=True)
    title: str = Field(max_length=200)
    topic: str = Field(default="", max_length=2000)
    welcome_text: str = _text()
    value_framing: str = Field(default="ai", max_length=16)  # "ai" | "personal"
    questions_per_participant: int = 3
    stories_per_participant: int = 4
    peer_values_per_participant: int = 6
    invite_code: str | None = Field(default=None, max_length=64)
    completion_url: str | None = Field(default=None, max_length=500)
    languages: str = Field(default="en", max_length=100)
    is_open: bool = True
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Question(SQLModel, table=True):
    """A contentious prompt a user might send an AI."""

    id: int | None = Field(default=None, primary_key=True)
    deliberation_id: int = Field(foreign_key="deliberation.id", index=True, ondelete="CASCADE")
    title: str = Field(max_length=200)
    text: str = Field(max_length=4000)
    position: int = 0
    archived: bool = False
    created_at: datetime = _ts()


class Context(SQLModel, table=True):
    """A situation phrase ("When ..."); values and wisdom judgements hold in a context."""

    __table_args__ = (UniqueConstraint("deliberation_id", "text"),)
    id: int | None = Field(default=None, primary_key=True)
    deliberation_id: int = Field(foreign_key="deliberation.id", index=True, ondelete="CASCADE")
    text: str = Field(max_length=500)
    archived: bool = False
    created_at: datetime = _ts()


class QuestionContext(SQLModel, table=True):
    """Which contexts belong to which question."""

    question_id: int = Field(foreign_key="question.id", primary_key=True, ondelete="CASCADE")
    context_id: int = Field(
        foreign_key="context.id", primary_key=True, index=True, ondelete="CASCADE"
    )


# --- participants and interviews -------------------------------------------------------------


class Participant(SQLModel, table=True):
    """A person taking part; only the hash of their resume token is stored."""

    __table_args__ = (UniqueConstraint("deliberation_id", "panel_pid"),)
    id: int | None = Field(default=None, primary_key=True)
    deliberation_id: int = Field(foreign_key="deliberation.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True, index=True)
    entry_channel: str = Field(default="anonymous", max_length=16)  # anonymous|invite|panel|import
    panel_pid: str | None = Field(default=None, max_length=128)
    panel_study_id: str | None = Field(default=None, max_length=128)
    panel_session_id: str | None = Field(default=None, max_length=128)
    external_ref: str | None = Field(default=None, max_length=128, index=True)  # imported userId
    consent_publish: bool = False
    consent_aggregate_only: bool = False
    consent_training: bool = False
    consented_at: datetime | None = _ts_opt()
    demographics: dict[str, Any] = _json(dict)
    question_id: int | None = Field(default=None, foreign_key="question.id", ondelete="SET NULL")
    offered_question_ids: list[int] = _json(list)
    step: str = Field(default="consent", max_length=16)
    step_times: dict[str, str] = _json(dict)  # step -> ISO time first entered
    flagged: bool = False
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    finished_at: datetime | None = _ts_opt()
    deleted_at: datetime | None = _ts_opt()


class Interview(SQLModel, table=True):
    """One conversation that articulates one values card."""

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True, ondelete="CASCADE")
    question_id: int | None = Field(default=None, foreign_key="question.id", ondelete="SET NULL")
    mode: str = Field(default="llm", max_length=8)  # llm | form
    status: str = Field(default="active", max_length=16)  # active | card | confirmed
    consecutive_failures: int = 0
    flagged: bool = False
    archived: bool = False
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Message(SQLModel, table=True):
    """One message of an interview, in order; assistant tool calls kept as JSON."""

    __table_args__ = (UniqueConstraint("interview_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    interview_id: int = Field(foreign_key="interview.id", index=True, ondelete="CASCADE")
    seq: int
    role: str = Field(max_length=16)  # user | assistant | tool | notice
    content: str = _text()
    tool_calls: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    tool_call_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = _ts()


# --- values -------------------------------------------------------------------------------------


class CanonicalValue(SQLModel, table=True):
    """The deduplicated value that one or more participants' cards express."""

    id: int | None = Field(default=None, primary_key=True)
    deliberation_id: int = Field(foreign_key="deliberation.id", index=True, ondelete="CASCADE")
    title: str = Field(max_length=200)
    description: str = _text()
    detail: str = _text()
    policies: list[str] = _json(list)
    embedding: list[float] | None = Field(default=None, sa_column=Column(JSON))
    ref_id: int | None = Field(default=None, index=True)  # id in an imported reference dataset
    archived: bool = False
    ref_created_at: str | None = Field(default=None, max_length=40)
    ref_updated_at: str | None = Field(default=None, max_length=40)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class ValuesCard(SQLModel, table=True):
    """A participant's values card; its text is the newest of its versions."""

    id: int | None = Field(default=None, primary_key=True)
    deliberation_id: int = Field(foreign_key="deliberation.id", index=True, ondelete="CASCADE")
    participant_id: int | None = Field(
        default=None, foreign_key="participant.id", index=True, ondelete="CASCADE"
    )
    interview_id: int | None = Field(
        default=None, foreign_key="interview.id", index=True, ondelete="CASCADE"
    )
    question_id: int | None = Field(default=None, foreign_key="question.id", ondelete="SET NULL")
    canonical_value_id: int | None = Field(
        default=None, foreign_key="canonicalvalue.id", index=True, ondelete="SET NULL"
    )
    title: str = Field(max_length=200)
    description: str = _text()
    detail: str = _text()
    policies: list[str] = _json(list)
    embedding: list[float] | None = Field(default=None, sa_column=Column(JSON))
    ref_id: int | None = Field(default=None, index=True)
    submitted_at: datetime | None = _ts_opt()
    flagged: bool = False
    archived: bool = False
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class CardVersion(SQLModel, table=True):
    """Every text a card has had: each LLM articulation and each participant edit."""

    __table_args__ = (UniqueConstraint("card_id", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    card_id: int = Field(foreign_key="valuescard.id", index=True, ondelete="CASCADE")
    version: int
    origin: str = Field(max_length=16)  # llm | participant | form | import
    title: str = Field(max_length=200)
    description: str = _text()
    policies: list[str] = _json(list)
    created_at: datetime = _ts()


class DedupeDecision(SQLModel, table=True):
    """The log of every deduplication decision, automatic or by hand."""

    id: int | None = Field(default=None, primary_key=True)
    deliberation_id: int = Field(foreign_key="deliberation.id", index=True, ondelete="CASCADE")
    run_id: str = Field(max_length=32, index=True)
    action: str = Field(max_length=16)  # assign | create | merge | split | keep
    method: str = Field(max_length=16)  # embedding | llm | manual | import
    card_id: int | None = Field(default=None, foreign_key="valuescard.id", ondelete="SET NULL")
    canonical_value_id: int | None = Field(
        default=None, foreign_key="canonicalvalue.id", ondelete="SET NULL"
    )
    score: float | None = None
    actor: str = Field(default="system", max_length=64)
    detail: dict[str, Any] = _json(dict)
    created_at: datetime = _ts()


# --- wisdom ---------------------------------------------------------------------------------


class Hypothesis(SQLModel, table=True):
    """A wiser-than hypothesis: in context C, value B (to) is wiser than value A (from)."""

    __table_args__ = (UniqueConstraint("from_value_id", "to_value_id", "context_id"),)
    id: int | None = Field(default=None, primary_key=True)
    deliberation_id: int = Field(foreign_key="deliberation.id", index=True, ondelete="CASCADE")
    from_value_id: int = Field(foreign_key="canonicalvalue.id", index=True, ondelete="CASCADE")
    to_value_id: int = Field(foreign_key="canonicalvalue.id", index=True, ondelete="CASCADE")
    context_id: int = Field(foreign_key="context.id", index=True, ondelete="CASCADE")
    story: str = _text()
    origin: str = Field(default="llm", max_length=16)  # llm | template | manual | import
    archived: bool = False
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class WiserVote(SQLModel, table=True):
    """A participant's judgement of one hypothesis; at most one per (from, to, context)."""

    __table_args__ = (
        UniqueConstraint("participant_id", "from_value_id", "to_value_id", "context_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    deliberation_id: int = Field(foreign_key="deliberation.id", index=True, ondelete="CASCADE")
    participant_id: int = Field(foreign_key="participant.id", index=True, ondelete="CASCADE")
    hypothesis_id: int | None = Field(
        default=None, foreign_key="hypothesis.id", index=True, ondelete="SET NULL"
    )
    from_value_id: int = Field(foreign_key="canonicalvalue.id", index=True, ondelete="CASCADE")
    to_value_id: int = Field(foreign_key="canonicalvalue.id", index=True, ondelete="CASCADE")
    context_id: int = Field(foreign_key="context.id", index=True, ondelete="CASCADE")
    choice: str = Field(max_length=16)  # upgrade | no_upgrade | not_sure
    comment: str = Field(default="", max_length=2000)
    created_at: datetime = _ts()


class ValueImpression(SQLModel, table=True):
    """A peer value shown to a participant in one draw of the peer-values step."""

    __table_args__ = (UniqueConstraint("participant_id", "draw_id", "canonical_value_id"),)
    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True, ondelete="CASCADE")
    draw_id: str = Field(max_length=32)
    canonical_value_id: int = Field(foreign_key="canonicalvalue.id", index=True, ondelete="CASCADE")
    position: int = 0
    created_at: datetime = _ts()


class ValueVote(SQLModel, table=True):
    """A peer value the participant found wise, in one draw."""

    __table_args__ = (UniqueConstraint("participant_id", "draw_id", "canonical_value_id"),)
    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True, ondelete="CASCADE")
    draw_id: str = Field(max_length=32)
    canonical_value_id: int = Field(foreign_key="canonicalvalue.id", index=True, ondelete="CASCADE")
    created_at: datetime = _ts()


class SurveyAnswer(SQLModel, table=True):
    """One answer to the closing survey (a 1-5 item or free text)."""

    __table_args__ = (UniqueConstraint("participant_id", "item"),)
    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True, ondelete="CASCADE")
    item: str = Field(max_length=32)
    score: int | None = None
    text: str = Field(default="", max_length=4000)
    created_at: datetime = _ts()


# --- facilitators and the ledger ---------------------------------------------------------------


class Facilitator(SQLModel, table=True):
    """A console account; the password is stored as a scrypt hash."""

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    created_at: datetime = _ts()
    last_login_at: datetime | None = _ts_opt()


class FacilitatorSession(SQLModel, table=True):
    """A logged-in console session; only the token's hash is stored, and it expires."""

    id: int | None = Field(default=None, primary_key=True)
    facilitator_id: int = Field(foreign_key="facilitator.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True, index=True)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    created_at: datetime = _ts()


class LLMCall(SQLModel, table=True):
    """The ledger: one row per LLM or embedding request, failed ones included."""

    id: str = Field(default_factory=time_id, primary_key=True, max_length=32)
    created_at: datetime = _ts()
    purpose: str = Field(max_length=32, index=True)
    model: str = Field(max_length=128)
    deliberation_id: int | None = Field(default=None, index=True)
    participant_id: int | None = Field(default=None, index=True)
    interview_id: int | None = Field(default=None, index=True)
    prompt_name: str | None = Field(default=None, max_length=64)
    prompt_hash: str | None = Field(default=None, max_length=16)
    streamed: bool = False
    attempt: int = 1
    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    duration_ms: int = 0
    outcome: str = Field(max_length=16)  # ok | error
    error_type: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, max_length=1000)
