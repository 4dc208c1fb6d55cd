"""Factories for test rows: small, explicit, one function a kind."""

from __future__ import annotations

import secrets
from typing import Any

from sqlmodel import Session

from db import queries
from db.models import CanonicalValue, Context, Deliberation, Participant, Question


def deliberation(s: Session, *, slug: str | None = None, **fields: Any) -> Deliberation:
    return queries.create_deliberation(
        s, slug=slug or f"d-{secrets.token_hex(4)}", title=fields.pop("title", "Test"), **fields
    )


def question(s: Session, d: Deliberation, *, text: str = "What should I do?") -> Question:
    assert d.id is not None
    return queries.create_question(s, deliberation_id=d.id, title=text[:30], text=text)


def context(
    s: Session,
    d: Deliberation,
    q: Question | None = None,
    *,
    text: str = "When the user is in distress",
) -> Context:
    assert d.id is not None
    c = queries.get_or_create_context(s, deliberation_id=d.id, text=text)
    if q is not None:
        assert q.id is not None and c.id is not None
        queries.link_context(s, question_id=q.id, context_id=c.id)
    return c


def participant(s: Session, d: Deliberation, **fields: Any) -> tuple[Participant, str]:
    token = secrets.token_urlsafe(24)
    p = Participant(deliberation_id=d.id, token_hash=queries.hash_token(token), **fields)
    s.add(p)
    s.commit()
    s.refresh(p)
    return p, token


def value(
    s: Session, d: Deliberation, *, title: str = "Value", policies: list[str] | None = None
) -> CanonicalValue:
    v = CanonicalValue(
        deliberation_id=d.id,
        title=title,
        description=f"{title} description",
        policies=policies or ["MOMENTS when things matter", "CHOICES that open paths"],
    )
    s.add(v)
    s.commit()
    s.refresh(v)
    return v
