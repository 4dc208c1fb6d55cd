"""Canonical values, deduplication decisions and wiser-than hypotheses."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from db.models import CanonicalValue, DedupeDecision, ValuesCard, utcnow
from db.queries.core import NotFound, _commit

__all__ = [
    "create_canonical_value",
    "create_dedupe_decision",
    "get_card",
    "list_canonical_values",
    "link_card_to_value",
    "update_card_embedding",
]


def get_card(session: Session, *, card_id: int) -> ValuesCard:
    row = session.get(ValuesCard, card_id)
    if row is None:
        raise NotFound(f"no values card {card_id}")
    return row


def list_canonical_values(
    session: Session, *, deliberation_id: int, include_archived: bool = False
) -> list[CanonicalValue]:
    q = select(CanonicalValue).where(CanonicalValue.deliberation_id == deliberation_id)
    if not include_archived:
        q = q.where(col(CanonicalValue.archived).is_(False))
    return list(session.exec(q.order_by(col(CanonicalValue.id))))


def create_canonical_value(
    session: Session,
    *,
    deliberation_id: int,
    title: str,
    description: str = "",
    detail: str = "",
    policies: list[str] | None = None,
    embedding: list[float] | None = None,
    commit: bool = True,
    **extra: Any,
) -> CanonicalValue:
    row = CanonicalValue(
        deliberation_id=deliberation_id,
        title=title,
        description=description,
        detail=detail,
        policies=list(policies or []),
        embedding=embedding,
        **extra,
    )
    if commit:
        _commit(session, row)
    else:
        session.add(row)
        session.flush()
    return row


def update_card_embedding(
    session: Session, *, card_id: int, embedding: list[float], commit: bool = True
) -> None:
    card = get_card(session, card_id=card_id)
    card.embedding = embedding
    session.add(card)
    if commit:
        session.commit()


def link_card_to_value(
    session: Session, *, card_id: int, canonical_value_id: int | None, commit: bool = True
) -> ValuesCard:
    card = get_card(session, card_id=card_id)
    card.canonical_value_id = canonical_value_id
    card.updated_at = utcnow()
    session.add(card)
    if commit:
        session.commit()
        session.refresh(card)
    return card


def create_dedupe_decision(
    session: Session,
    *,
    deliberation_id: int,
    run_id: str,
    action: str,
    method: str,
    card_id: int | None = None,
    canonical_value_id: int | None = None,
    score: float | None = None,
    actor: str = "system",
    detail: dict[str, Any] | None = None,
    commit: bool = True,
) -> DedupeDecision:
    row = DedupeDecision(
        deliberation_id=deliberation_id,
        run_id=run_id,
        action=action,
        method=method,
        card_id=card_id,
        canonical_value_id=canonical_value_id,
        score=score,
        actor=actor,
        detail=detail or {},
    )
    if commit:
        _commit(session, row)
    else:
        session.add(row)
    return row
