"""Canonical values, deduplication decisions and wiser-than hypotheses.

Merging two canonical values (`merge_value_rows`) moves everything that hangs on the merged one
(cards, wiser-than votes, hypotheses, peer-value impressions and votes) onto the value kept,
within the caller's transaction, without breaking the unique constraints: where two rows would
become one, the earliest stays and the later one is deleted and described in the returned
report, so the caller can keep it in the decision log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, or_, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.models import (
    CanonicalValue,
    DedupeDecision,
    Hypothesis,
    QuestionContext,
    ValueImpression,
    ValuesCard,
    ValueVote,
    WiserVote,
    utcnow,
)
from db.queries.core import Conflict, NotFound, _commit

__all__ = [
    "lock_values",
    "count_run_decisions",
    "count_wiser_votes_by_choice",
    "create_canonical_value",
    "create_dedupe_decision",
    "create_hypothesis",
    "get_canonical_value",
    "get_card",
    "get_hypothesis",
    "link_card_to_value",
    "list_canonical_values",
    "list_context_question_ids",
    "list_dedupe_decisions",
    "list_hypothesis_triples",
    "list_review_hypotheses",
    "list_submitted_cards",
    "list_value_card_links",
    "list_value_cards",
    "merge_value_rows",
    "update_canonical_value",
    "update_card_embedding",
    "update_hypothesis",
]


# First key of the PostgreSQL advisory lock that serialises changes to a deliberation's values
# (the second is the deliberation id). Any 32-bit constant of our own will do.
VALUES_LOCK_KEY = 0x4D474556


def lock_values(session: Session, *, deliberation_id: int) -> None:
    """Serialise changes to one deliberation's canonical values until the transaction ends.

    Online placement reads the values, then creates one when none is close enough; two cards
    confirmed at the same instant would otherwise both miss each other and create two values
    for one text. PostgreSQL takes a transaction-scoped advisory lock on (key, deliberation),
    which blocks no reader and no other deliberation. SQLite has one writer at a time: a no-op
    write takes the database's write lock now (waiting out the busy timeout), so the reads that
    follow see every value committed before it.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.exec(  # type: ignore[call-overload]
            text("SELECT pg_advisory_xact_lock(:key, :id)"),
            params={"key": VALUES_LOCK_KEY, "id": deliberation_id},
        )
    else:
        session.exec(
            update(CanonicalValue)
            .where(col(CanonicalValue.deliberation_id) == deliberation_id)
            .where(col(CanonicalValue.id) == -1)
            .values(title=CanonicalValue.title)
        )


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


def get_canonical_value(session: Session, *, value_id: int) -> CanonicalValue:
    row = session.get(CanonicalValue, value_id)
    if row is None:
        raise NotFound(f"no canonical value {value_id}")
    return row


VALUE_TEXT_FIELDS = ("title", "description", "detail", "policies", "archived", "embedding")


def update_canonical_value(
    session: Session, *, value_id: int, commit: bool = True, **fields: Any
) -> CanonicalValue:
    unknown = set(fields) - set(VALUE_TEXT_FIELDS)
    if unknown:
        raise TypeError(f"unknown canonical value fields: {sorted(unknown)}")
    row = get_canonical_value(session, value_id=value_id)
    for name, value in fields.items():
        setattr(row, name, list(value) if name == "policies" else value)
    row.updated_at = utcnow()
    session.add(row)
    if commit:
        session.commit()
        session.refresh(row)
    return row


def list_submitted_cards(session: Session, *, deliberation_id: int) -> list[ValuesCard]:
    """Submitted, not archived cards of a deliberation, oldest first: what deduplication sees."""
    return list(
        session.exec(
            select(ValuesCard)
            .where(
                ValuesCard.deliberation_id == deliberation_id,
                col(ValuesCard.submitted_at).is_not(None),
                col(ValuesCard.archived).is_(False),
            )
            .order_by(col(ValuesCard.id))
        )
    )


def list_value_cards(session: Session, *, value_id: int) -> list[ValuesCard]:
    """Every card linked to a canonical value (drafts and archived cards included)."""
    return list(
        session.exec(
            select(ValuesCard)
            .where(ValuesCard.canonical_value_id == value_id)
            .order_by(col(ValuesCard.id))
        )
    )


def list_value_card_links(
    session: Session, *, deliberation_id: int
) -> list[tuple[int, int | None, bool]]:
    """(value id, question id, live) for every card of a deliberation that has a value; live
    means submitted and not archived."""
    rows = session.exec(
        select(
            ValuesCard.canonical_value_id,
            ValuesCard.question_id,
            ValuesCard.submitted_at,
            ValuesCard.archived,
        ).where(
            ValuesCard.deliberation_id == deliberation_id,
            col(ValuesCard.canonical_value_id).is_not(None),
        )
    ).all()
    return [
        (int(v), int(q) if q is not None else None, sub is not None and not arch)
        for v, q, sub, arch in rows
        if v is not None
    ]


def list_dedupe_decisions(
    session: Session,
    *,
    deliberation_id: int,
    run_id: str | None = None,
    methods: Iterable[str] | None = None,
    limit: int | None = None,
) -> list[DedupeDecision]:
    """The decision log of a deliberation, newest first."""
    q = select(DedupeDecision).where(DedupeDecision.deliberation_id == deliberation_id)
    if run_id is not None:
        q = q.where(DedupeDecision.run_id == run_id)
    if methods is not None:
        q = q.where(col(DedupeDecision.method).in_(list(methods)))
    q = q.order_by(col(DedupeDecision.id).desc())
    if limit is not None:
        q = q.limit(limit)
    return list(session.exec(q))


def count_run_decisions(session: Session, *, run_id: str) -> int:
    return int(
        session.exec(
            select(func.count()).select_from(DedupeDecision).where(DedupeDecision.run_id == run_id)
        ).one()
    )


# --- merging two values ------------------------------------------------------------------------


def _vote_record(v: WiserVote) -> dict[str, Any]:
    return {
        "vote_id": v.id,
        "participant_id": v.participant_id,
        "from_value_id": v.from_value_id,
        "to_value_id": v.to_value_id,
        "context_id": v.context_id,
        "choice": v.choice,
        "comment": v.comment,
        "created_at": v.created_at.isoformat() if v.created_at else None,
    }


def _hypothesis_record(h: Hypothesis) -> dict[str, Any]:
    return {
        "hypothesis_id": h.id,
        "from_value_id": h.from_value_id,
        "to_value_id": h.to_value_id,
        "context_id": h.context_id,
        "story": h.story,
        "origin": h.origin,
        "archived": h.archived,
    }


def merge_value_rows(session: Session, *, keep_id: int, merge_id: int) -> dict[str, Any]:
    """Move everything on value `merge_id` onto `keep_id` and archive `merge_id` (no commit).

    - cards: relinked.
    - hypotheses: (merge -> X, c) becomes (keep -> X, c), and likewise for the target side. Where
      that triple already exists the earlier hypothesis stays and votes on the later one are
      pointed at it; a hypothesis between the two merged values (now keep -> keep) is deleted.
    - wiser-than votes: moved the same way. When one participant has now judged the same
      (from, to, context) twice, the earliest vote stays and the later one is deleted; votes
      between the two merged values compare a value with itself and are deleted.
    - peer-value impressions and votes: moved; a duplicate within one draw is deleted.

    Returns a report (ids and counts, and the full content of every deleted vote and
    hypothesis) for the decision log.
    """
    if keep_id == merge_id:
        raise ValueError("a value cannot be merged into itself")
    keep = get_canonical_value(session, value_id=keep_id)
    merged = get_canonical_value(session, value_id=merge_id)
    if keep.deliberation_id != merged.deliberation_id:
        raise ValueError("values of different deliberations cannot be merged")
    session.flush()

    def remap(value_id: int) -> int:
        return keep_id if value_id == merge_id else value_id

    report: dict[str, Any] = {"keep_id": keep_id, "merged_value_id": merge_id}
    card_ids = [c.id for c in list_value_cards(session, value_id=merge_id)]
    session.execute(
        update(ValuesCard)
        .where(col(ValuesCard.canonical_value_id) == merge_id)
        .values(canonical_value_id=keep_id, updated_at=utcnow())
    )
    report["card_ids"] = card_ids

    # Hypotheses first, so that moved votes can point at the surviving hypothesis.
    hypotheses = list(
        session.exec(
            select(Hypothesis)
            .where(
                or_(
                    col(Hypothesis.from_value_id).in_([keep_id, merge_id]),
                    col(Hypothesis.to_value_id).in_([keep_id, merge_id]),
                )
            )
            .order_by(col(Hypothesis.created_at), col(Hypothesis.id))
        )
    )
    h_groups: dict[tuple[int, int, int], list[Hypothesis]] = {}
    for h in hypotheses:
        triple = (remap(h.from_value_id), remap(h.to_value_id), h.context_id)
        h_groups.setdefault(triple, []).append(h)
    points_at: dict[int, int | None] = {}  # hypothesis id -> the id its votes now point at
    moved_h: list[int] = []
    dropped_h: list[dict[str, Any]] = []
    renamed: list[tuple[Hypothesis, tuple[int, int, int], bool]] = []
    for triple, group in h_groups.items():  # each group is in creation order
        if triple[0] == triple[1]:
            for h in group:
                assert h.id is not None
                points_at[h.id] = None
                dropped_h.append(dict(_hypothesis_record(h), reason="same value on both sides"))
            continue
        first, rest = group[0], group[1:]
        assert first.id is not None
        for h in rest:
            assert h.id is not None
            points_at[h.id] = first.id
            dropped_h.append(
                dict(_hypothesis_record(h), reason="duplicate after merge", kept=first.id)
            )
        archived = all(h.archived for h in group)
        if (first.from_value_id, first.to_value_id) != triple[:2] or archived != first.archived:
            renamed.append((first, triple, archived))
            if merge_id in (first.from_value_id, first.to_value_id):
                moved_h.append(first.id)
    for old, new in points_at.items():
        session.execute(
            update(WiserVote).where(col(WiserVote.hypothesis_id) == old).values(hypothesis_id=new)
        )
    if dropped_h:
        ids = [d["hypothesis_id"] for d in dropped_h]
        session.execute(delete(Hypothesis).where(col(Hypothesis.id).in_(ids)))
    for h, triple, archived in renamed:
        session.execute(
            update(Hypothesis)
            .where(col(Hypothesis.id) == h.id)
            .values(
                from_value_id=triple[0],
                to_value_id=triple[1],
                archived=archived,
                updated_at=utcnow(),
            )
        )
    report["hypotheses_moved"] = moved_h
    report["hypotheses_dropped"] = dropped_h

    # Votes: the earliest judgement of a (participant, from, to, context) stays.
    votes = list(
        session.exec(
            select(WiserVote)
            .where(
                or_(
                    col(WiserVote.from_value_id).in_([keep_id, merge_id]),
                    col(WiserVote.to_value_id).in_([keep_id, merge_id]),
                )
            )
            .order_by(col(WiserVote.created_at), col(WiserVote.id))
        )
    )
    vote_groups: dict[tuple[int, int, int, int], list[WiserVote]] = {}
    for v in votes:
        key = (v.participant_id, remap(v.from_value_id), remap(v.to_value_id), v.context_id)
        vote_groups.setdefault(key, []).append(v)
    dropped_v: list[dict[str, Any]] = []
    moved_v: list[tuple[int, int, int]] = []
    for (_, f, t, _c), same_key in vote_groups.items():
        if f == t:
            dropped_v += [
                dict(_vote_record(v), reason="same value on both sides") for v in same_key
            ]
            continue
        earliest = same_key[0]
        dropped_v += [
            dict(_vote_record(v), reason="duplicate after merge", kept=earliest.id)
            for v in same_key[1:]
        ]
        if (earliest.from_value_id, earliest.to_value_id) != (f, t):
            assert earliest.id is not None
            moved_v.append((earliest.id, f, t))
    if dropped_v:
        ids = [d["vote_id"] for d in dropped_v]
        session.execute(delete(WiserVote).where(col(WiserVote.id).in_(ids)))
    for vote_id, f, t in moved_v:
        session.execute(
            update(WiserVote)
            .where(col(WiserVote.id) == vote_id)
            .values(from_value_id=f, to_value_id=t)
        )
    report["votes_moved"] = len(moved_v)
    report["votes_dropped"] = dropped_v

    peer_tables: tuple[tuple[Any, str], ...] = (
        (ValueImpression, "impressions"),
        (ValueVote, "value_votes"),
    )
    for model, name in peer_tables:
        rows: list[Any] = list(
            session.exec(
                select(model)
                .where(col(model.canonical_value_id).in_([keep_id, merge_id]))
                .order_by(col(model.created_at), col(model.id))
            )
        )
        seen: dict[tuple[int, str], Any] = {
            (r.participant_id, r.draw_id): r for r in rows if r.canonical_value_id == keep_id
        }
        gone: list[int] = []
        moved = 0
        for r in rows:
            if r.canonical_value_id != merge_id:
                continue
            if (r.participant_id, r.draw_id) in seen:
                gone.append(r.id)
            else:
                seen[(r.participant_id, r.draw_id)] = r
                moved += 1
        if gone:
            session.execute(delete(model).where(col(model.id).in_(gone)))
        session.execute(
            update(model)
            .where(col(model.canonical_value_id) == merge_id)
            .values(canonical_value_id=keep_id)
        )
        report[f"{name}_moved"] = moved
        report[f"{name}_dropped"] = len(gone)

    session.execute(
        update(CanonicalValue)
        .where(col(CanonicalValue.id) == merge_id)
        .values(archived=True, updated_at=utcnow())
    )
    session.expire_all()
    return report


# --- hypotheses --------------------------------------------------------------------------------


def list_context_question_ids(session: Session, *, deliberation_id: int) -> dict[int, set[int]]:
    """Context id -> ids of the questions it is linked to, for one deliberation."""
    from db.models import Context

    rows = session.exec(
        select(QuestionContext.context_id, QuestionContext.question_id)
        .join(Context, col(Context.id) == col(QuestionContext.context_id))
        .where(Context.deliberation_id == deliberation_id)
    ).all()
    out: dict[int, set[int]] = {}
    for context_id, question_id in rows:
        out.setdefault(int(context_id), set()).add(int(question_id))
    return out


def get_hypothesis(session: Session, *, hypothesis_id: int) -> Hypothesis:
    row = session.get(Hypothesis, hypothesis_id)
    if row is None:
        raise NotFound(f"no hypothesis {hypothesis_id}")
    return row


def list_review_hypotheses(
    session: Session,
    *,
    deliberation_id: int,
    context_id: int | None = None,
    include_archived: bool = True,
) -> list[Hypothesis]:
    """Hypotheses of a deliberation for the console, archived ones included unless asked."""
    q = select(Hypothesis).where(Hypothesis.deliberation_id == deliberation_id)
    if context_id is not None:
        q = q.where(Hypothesis.context_id == context_id)
    if not include_archived:
        q = q.where(col(Hypothesis.archived).is_(False))
    return list(session.exec(q.order_by(col(Hypothesis.context_id), col(Hypothesis.id))))


def list_hypothesis_triples(session: Session, *, deliberation_id: int) -> set[tuple[int, int, int]]:
    """(from, to, context) of every hypothesis of the deliberation, archived ones included."""
    rows = session.exec(
        select(Hypothesis.from_value_id, Hypothesis.to_value_id, Hypothesis.context_id).where(
            Hypothesis.deliberation_id == deliberation_id
        )
    ).all()
    return {(int(a), int(b), int(c)) for a, b, c in rows}


def create_hypothesis(
    session: Session,
    *,
    deliberation_id: int,
    from_value_id: int,
    to_value_id: int,
    context_id: int,
    story: str,
    origin: str,
    commit: bool = True,
) -> Hypothesis:
    """A new hypothesis; `Conflict` when (from, to, context) exists already (with commit)."""
    row = Hypothesis(
        deliberation_id=deliberation_id,
        from_value_id=from_value_id,
        to_value_id=to_value_id,
        context_id=context_id,
        story=story,
        origin=origin,
    )
    if not commit:
        session.add(row)
        return row
    try:
        _commit(session, row)
    except IntegrityError:
        session.rollback()
        raise Conflict("this hypothesis exists already in this context") from None
    return row


def update_hypothesis(
    session: Session, *, hypothesis_id: int, story: str | None = None, archived: bool | None = None
) -> Hypothesis:
    row = get_hypothesis(session, hypothesis_id=hypothesis_id)
    if story is not None:
        row.story = story
    if archived is not None:
        row.archived = archived
    row.updated_at = utcnow()
    _commit(session, row)
    return row


def count_wiser_votes_by_choice(
    session: Session, *, deliberation_id: int
) -> dict[tuple[int, int, int], dict[str, int]]:
    """(from, to, context) -> {choice: number of votes} in the deliberation."""
    rows = session.execute(
        sa_select(
            col(WiserVote.from_value_id),
            col(WiserVote.to_value_id),
            col(WiserVote.context_id),
            col(WiserVote.choice),
            func.count(),
        )
        .where(col(WiserVote.deliberation_id) == deliberation_id)
        .group_by(
            col(WiserVote.from_value_id),
            col(WiserVote.to_value_id),
            col(WiserVote.context_id),
            col(WiserVote.choice),
        )
    ).all()
    out: dict[tuple[int, int, int], dict[str, int]] = {}
    for a, b, c, choice, n in rows:
        out.setdefault((int(a), int(b), int(c)), {})[str(choice)] = int(n)
    return out
