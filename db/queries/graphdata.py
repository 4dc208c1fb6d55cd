"""Reading votes and values for the graph engine; writing imported reference data.

Reads return plain named tuples whose fields are those of the graph engine's input types
(``GraphVoteRow`` -> ``graph.types.Vote``, ``GraphValueRow`` -> ``graph.types.Value``): ``db``
imports nothing of ours, and ``elicit.graphs`` turns the rows into engine types. What the
engine reads:

* votes of non-deleted participants on non-archived canonical values, in creation order
  (``created_at``, then ``id``), optionally only those cast up to ``until``, in the contexts of
  one question, or in one context;
* every non-archived canonical value, with ``contributors`` = distinct non-deleted participants
  whose submitted cards express it (an imported card without a participant counts as one, as in
  :func:`db.queries.journey.list_value_contributors`);
* participant groups: each participant's demographics plus ``entry_channel``.

:func:`create_import` writes a whole import (values, contexts, pseudonymous participants,
votes, stories as hypotheses, cards) in ONE transaction and skips every row that already exists,
so importing the same data twice adds nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import case, func, insert
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from db.models import (
    CHOICES,
    CanonicalValue,
    CardVersion,
    Context,
    Deliberation,
    Hypothesis,
    Participant,
    Question,
    QuestionContext,
    ValuesCard,
    WiserVote,
    utcnow,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd


__all__ = [
    "GraphComment",
    "GraphValueRow",
    "GraphVoteRow",
    "ImportBatch",
    "ImportCard",
    "ImportResult",
    "ImportStory",
    "ImportValue",
    "ImportVote",
    "IMPORT_CHANNEL",
    "count_import_rows",
    "create_import",
    "get_context_by_text",
    "list_graph_comments",
    "list_graph_values",
    "list_graph_votes",
    "list_participant_groups",
    "list_question_context_texts",
    "list_value_ref_ids",
    "list_withheld_value_ids",
    "read_graph_vote_frame",
]


class GraphVoteRow(NamedTuple):
    """One wiser vote as the graph engine reads it (the fields of ``graph.types.Vote``)."""

    participant: str
    from_id: int
    to_id: int
    context: str
    choice: str
    created_at: datetime | None
    question_id: int | None


class GraphValueRow(NamedTuple):
    """One canonical value as the graph engine reads it (the fields of ``graph.types.Value``)."""

    id: int
    title: str
    description: str
    detail: str
    policies: tuple[str, ...]
    created_at: str | None
    updated_at: str | None
    contributors: int


IMPORT_CHANNEL = "import"
"""``Participant.entry_channel`` of the pseudonymous participants an import creates."""

_CHUNK = 5000


def _int(value: int | None) -> int:
    """A key read back from the database (never NULL there, Optional only in the models)."""
    assert value is not None
    return value


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken to be UTC, as SQLite returns
    them)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    """The reference's timestamp style: ``2023-09-30T06:00:09.346Z``."""
    return as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def normalise_context(text: str) -> str:
    """Context texts are stored with runs of whitespace collapsed (as ``get_or_create_context``)."""
    return " ".join(text.split())


# --- reads ------------------------------------------------------------------------------------


def get_context_by_text(session: Session, *, deliberation_id: int, text: str) -> Context | None:
    return session.exec(
        select(Context).where(
            Context.deliberation_id == deliberation_id, Context.text == normalise_context(text)
        )
    ).first()


def _vote_filter(
    stmt: Any,
    *,
    deliberation_id: int,
    until: datetime | None,
    question_id: int | None,
    context_id: int | None,
) -> Any:
    deleted = select(Participant.id).where(
        Participant.deliberation_id == deliberation_id, col(Participant.deleted_at).is_not(None)
    )
    archived = select(CanonicalValue.id).where(
        CanonicalValue.deliberation_id == deliberation_id, col(CanonicalValue.archived).is_(True)
    )
    stmt = stmt.where(
        WiserVote.deliberation_id == deliberation_id,
        col(WiserVote.participant_id).not_in(deleted),
        col(WiserVote.from_value_id).not_in(archived),
        col(WiserVote.to_value_id).not_in(archived),
    )
    if until is not None:
        stmt = stmt.where(col(WiserVote.created_at) <= as_utc(until))
    if question_id is not None:
        stmt = stmt.where(
            col(WiserVote.context_id).in_(
                select(QuestionContext.context_id).where(QuestionContext.question_id == question_id)
            )
        )
    if context_id is not None:
        stmt = stmt.where(WiserVote.context_id == context_id)
    return stmt


def _context_id(
    session: Session, deliberation_id: int, context_id: int | None, context: str | None
) -> int | None:
    """The context filter as an id: ``context_id``, else the id of the ``context`` text
    (-1, which matches nothing, when the deliberation has no such context)."""
    if context_id is not None or context is None:
        return context_id
    row = get_context_by_text(session, deliberation_id=deliberation_id, text=context)
    return -1 if row is None or row.id is None else row.id


def _context_texts(session: Session, *, deliberation_id: int) -> dict[int, str]:
    rows = session.exec(
        select(Context.id, Context.text).where(Context.deliberation_id == deliberation_id)
    ).all()
    return {int(i): str(t) for i, t in rows if i is not None}


def _vote_statement(
    *,
    deliberation_id: int,
    until: datetime | None,
    question_id: int | None,
    context_id: int | None,
    columns: Sequence[Any],
) -> Any:
    return _vote_filter(
        select(*columns),
        deliberation_id=deliberation_id,
        until=until,
        question_id=question_id,
        context_id=context_id,
    ).order_by(col(WiserVote.created_at), col(WiserVote.id))


def _raw_rows(session: Session, stmt: Any) -> list[tuple[Any, ...]]:
    """Run a query and return the driver's own rows, skipping SQLAlchemy's per-row Result
    objects and type processing, which cost more than the query itself at a million rows: on
    PostgreSQL through a binary psycopg cursor, on SQLite from the statement's own cursor
    (timestamps then come back as SQLite's text)."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        compiled = stmt.compile(dialect=conn.dialect)
        dbapi: Any = conn.connection.dbapi_connection  # psycopg's, for its binary cursor
        with dbapi.cursor(binary=True) as cur:
            cur.execute(compiled.string, compiled.params)
            return list(cur.fetchall())
    result = conn.execute(stmt)
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def _int_rows(session: Session, stmt: Any, width: int) -> npt.NDArray[np.int64]:
    """Run a query of integer columns; return an (n, width) int64 array."""
    import itertools

    import numpy as np

    rows = _raw_rows(session, stmt)
    flat = itertools.chain.from_iterable(rows)
    return np.fromiter(flat, dtype=np.int64, count=len(rows) * width).reshape(len(rows), width)


def _timestamp(value: Any) -> datetime | None:
    """A timestamp as the driver returns it (datetime, or naive UTC text on SQLite), aware."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    stamp: datetime = value
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def list_graph_votes(
    session: Session,
    *,
    deliberation_id: int,
    until: datetime | None = None,
    question_id: int | None = None,
    context_id: int | None = None,
    context: str | None = None,
) -> list[GraphVoteRow]:
    """The votes the graph engine reads (see the module docstring), in creation order.

    Filters: ``until`` (cast at or before), ``question_id`` (in that question's contexts),
    ``context_id`` or ``context`` (its text; no votes when the deliberation has no such context).

    ``participant`` is ``str(participant_id)``; ``question_id`` is the question the vote was cast
    for when it can be told: the participant's chosen question when the context belongs to it,
    else the context's only question, else None (or ``question_id`` when filtering by it).
    """
    stmt = _vote_statement(
        deliberation_id=deliberation_id,
        until=until,
        question_id=question_id,
        context_id=_context_id(session, deliberation_id, context_id, context),
        columns=(
            WiserVote.participant_id,
            WiserVote.from_value_id,
            WiserVote.to_value_id,
            WiserVote.context_id,
            WiserVote.choice,
            WiserVote.created_at,
        ),
    )
    rows = _raw_rows(session, stmt)
    texts = _context_texts(session, deliberation_id=deliberation_id)
    questions_of: dict[int, set[int]] = {}
    for q, c in session.exec(
        select(QuestionContext.question_id, QuestionContext.context_id)
        .join(Question, col(Question.id) == col(QuestionContext.question_id))
        .where(Question.deliberation_id == deliberation_id)
    ).all():
        questions_of.setdefault(int(c), set()).add(int(q))
    chosen = {
        _int(p): q
        for p, q in session.exec(
            select(Participant.id, Participant.question_id).where(
                Participant.deliberation_id == deliberation_id,
                col(Participant.question_id).is_not(None),
            )
        ).all()
    }

    only = {c: next(iter(qs)) if len(qs) == 1 else None for c, qs in questions_of.items()}
    nothing: set[int] = set()

    def question_for(participant: int, context: int) -> int | None:
        if question_id is not None:
            return question_id
        mine = chosen.get(participant)
        if mine is not None and mine in questions_of.get(context, nothing):
            return mine
        return only.get(context)

    names: dict[int, str] = {}
    return [
        GraphVoteRow(
            names.get(p) or names.setdefault(p, str(p)),
            a,
            b,
            texts[c],
            choice,
            _timestamp(created),
            question_for(p, c),
        )
        for p, a, b, c, choice, created in rows
    ]


def read_graph_vote_frame(
    session: Session,
    *,
    deliberation_id: int,
    until: datetime | None = None,
    question_id: int | None = None,
    context_id: int | None = None,
    context: str | None = None,
) -> pd.DataFrame:
    """The same votes as :func:`list_graph_votes` as a DataFrame (the fast path at scale).

    Columns ``participant`` (int ids), ``from_id``, ``to_id``, ``context`` and ``choice``
    (categoricals), rows in creation order: what ``graph.stats.vote_table`` reads fastest.
    """
    import pandas as pd

    choice_code = case(
        *((col(WiserVote.choice) == name, code) for code, name in enumerate(CHOICES)), else_=-1
    )
    stmt = _vote_statement(
        deliberation_id=deliberation_id,
        until=until,
        question_id=question_id,
        context_id=_context_id(session, deliberation_id, context_id, context),
        columns=(
            WiserVote.participant_id,
            WiserVote.from_value_id,
            WiserVote.to_value_id,
            WiserVote.context_id,
            choice_code,
        ),
    )
    rows = _int_rows(session, stmt, 5)
    texts = _context_texts(session, deliberation_id=deliberation_id)
    codes, uniques = pd.factorize(rows[:, 3])
    labels = pd.Index([texts[int(u)] for u in uniques], dtype=object)
    return pd.DataFrame(
        {
            "participant": rows[:, 0],
            "from_id": rows[:, 1],
            "to_id": rows[:, 2],
            "context": pd.Categorical.from_codes(codes, categories=labels),
            "choice": pd.Categorical.from_codes(rows[:, 4], categories=pd.Index(list(CHOICES))),
        }
    )


def list_graph_values(
    session: Session, *, deliberation_id: int, until: datetime | None = None
) -> list[GraphValueRow]:
    """Every non-archived canonical value, ordered by id (the fields of ``graph.types.Value``).

    ``created_at``/``updated_at`` are the imported reference timestamps when the value was
    imported, else ours (ISO 8601, UTC). ``contributors`` counts cards submitted up to ``until``.
    """
    rows = session.exec(
        select(CanonicalValue)
        .where(
            CanonicalValue.deliberation_id == deliberation_id,
            col(CanonicalValue.archived).is_(False),
        )
        .order_by(col(CanonicalValue.id))
    ).all()
    contributors = _contributors(session, deliberation_id=deliberation_id, until=until)
    out = []
    for row in rows:
        assert row.id is not None
        imported = row.ref_id is not None
        out.append(
            GraphValueRow(
                id=row.id,
                title=row.title,
                description=row.description,
                detail=row.detail,
                policies=tuple(row.policies or ()),
                created_at=row.ref_created_at if imported else _iso(row.created_at),
                updated_at=row.ref_updated_at if imported else _iso(row.updated_at),
                contributors=contributors.get(row.id, 0),
            )
        )
    return out


def _contributors(
    session: Session, *, deliberation_id: int, until: datetime | None
) -> dict[int, int]:
    stmt = (
        select(ValuesCard.canonical_value_id, ValuesCard.participant_id, ValuesCard.id)
        .outerjoin(Participant, col(Participant.id) == col(ValuesCard.participant_id))
        .where(
            ValuesCard.deliberation_id == deliberation_id,
            col(ValuesCard.canonical_value_id).is_not(None),
            col(ValuesCard.archived).is_(False),
            col(ValuesCard.submitted_at).is_not(None) | col(ValuesCard.ref_id).is_not(None),
            col(Participant.deleted_at).is_(None),
        )
    )
    if until is not None:
        stmt = stmt.where(
            col(ValuesCard.submitted_at).is_(None) | (col(ValuesCard.submitted_at) <= as_utc(until))
        )
    who: dict[int, set[str]] = {}
    for value_id, participant_id, card_id in session.exec(stmt).all():
        key = f"p{participant_id}" if participant_id is not None else f"card{card_id}"
        who.setdefault(_int(value_id), set()).add(key)
    return {v: len(s) for v, s in who.items()}


def list_withheld_value_ids(session: Session, *, deliberation_id: int) -> set[int]:
    """Values whose text no contributor agreed to publish (every card's participant chose
    "aggregate only"); exports show such values without their text. Imported data (already
    published by its source) and values with no participant cards are publishable."""
    stmt = (
        select(
            ValuesCard.canonical_value_id,
            ValuesCard.participant_id,
            Participant.consent_publish,
            Participant.entry_channel,
        )
        .outerjoin(Participant, col(Participant.id) == col(ValuesCard.participant_id))
        .where(
            ValuesCard.deliberation_id == deliberation_id,
            col(ValuesCard.canonical_value_id).is_not(None),
            col(ValuesCard.archived).is_(False),
            col(ValuesCard.submitted_at).is_not(None) | col(ValuesCard.ref_id).is_not(None),
            col(Participant.deleted_at).is_(None),
        )
    )
    seen: set[int] = set()
    publishable: set[int] = set()
    for value_id, participant_id, publish, channel in session.exec(stmt).all():
        seen.add(_int(value_id))
        if participant_id is None or publish or channel == IMPORT_CHANNEL:
            publishable.add(_int(value_id))
    return seen - publishable


def list_value_ref_ids(session: Session, *, deliberation_id: int) -> dict[int, int]:
    """Our canonical value id -> its id in the imported reference data, for imported values."""
    rows = session.exec(
        select(CanonicalValue.id, CanonicalValue.ref_id).where(
            CanonicalValue.deliberation_id == deliberation_id,
            col(CanonicalValue.ref_id).is_not(None),
        )
    ).all()
    return {int(i): int(r) for i, r in rows if i is not None and r is not None}


def list_participant_groups(session: Session, *, deliberation_id: int) -> dict[str, dict[str, str]]:
    """Participant id (as a string) -> {field: label}: scalar demographics plus
    ``entry_channel``, for every non-deleted participant of the deliberation."""
    rows = session.exec(
        select(Participant.id, Participant.entry_channel, Participant.demographics).where(
            Participant.deliberation_id == deliberation_id,
            col(Participant.deleted_at).is_(None),
        )
    ).all()
    out: dict[str, dict[str, str]] = {}
    for pid, channel, demographics in rows:
        fields = {
            str(k): str(v)
            for k, v in (demographics or {}).items()
            if v is not None and not isinstance(v, dict | list)
        }
        fields["entry_channel"] = str(channel)
        out[str(pid)] = fields
    return out


def list_question_context_texts(
    session: Session, *, deliberation_id: int, question_id: int | None = None
) -> dict[str, list[str]]:
    """Question text -> its context texts (by context id), for non-archived questions."""
    stmt = (
        select(Question.text, Context.text)
        .join(QuestionContext, col(QuestionContext.question_id) == col(Question.id))
        .join(Context, col(Context.id) == col(QuestionContext.context_id))
        .where(Question.deliberation_id == deliberation_id, col(Question.archived).is_(False))
        .order_by(col(Question.position), col(Question.id), col(Context.id))
    )
    if question_id is not None:
        stmt = stmt.where(Question.id == question_id)
    out: dict[str, list[str]] = {}
    for q_text, c_text in session.exec(stmt).all():
        out.setdefault(str(q_text), []).append(str(c_text))
    return out


@dataclass(frozen=True, slots=True)
class GraphComment:
    """A participant's "why" on a judgement, from a participant who consented to publishing."""

    from_id: int
    to_id: int
    context: str
    choice: str
    text: str


def list_graph_comments(
    session: Session,
    *,
    deliberation_id: int,
    until: datetime | None = None,
    question_id: int | None = None,
    context_id: int | None = None,
    context: str | None = None,
) -> list[GraphComment]:
    """Non-empty comments on the votes the engine reads, only from participants who consented
    to publishing (``consent_publish`` and not ``consent_aggregate_only``); no participant ids."""
    stmt = _vote_filter(
        sa_select(
            col(WiserVote.from_value_id),
            col(WiserVote.to_value_id),
            col(Context.text),
            col(WiserVote.choice),
            col(WiserVote.comment),
        )
        .join(Context, col(Context.id) == col(WiserVote.context_id))
        .join(Participant, col(Participant.id) == col(WiserVote.participant_id))
        .where(
            col(Participant.consent_publish).is_(True),
            col(Participant.consent_aggregate_only).is_(False),
            col(WiserVote.comment) != "",
        ),
        deliberation_id=deliberation_id,
        until=until,
        question_id=question_id,
        context_id=_context_id(session, deliberation_id, context_id, context),
    ).order_by(col(WiserVote.created_at), col(WiserVote.id))
    return [
        GraphComment(int(a), int(b), str(c), str(choice), str(text))
        for a, b, c, choice, text in session.execute(stmt).all()
    ]


# --- imports ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportValue:
    """A canonical value of the imported data; ``ref_id`` is its id there."""

    ref_id: int
    title: str
    description: str
    detail: str
    policies: tuple[str, ...]
    created_at: str | None = None
    updated_at: str | None = None


@dataclass(frozen=True, slots=True)
class ImportVote:
    """One judgement by the imported user ``user`` on ``from_ref -> to_ref`` in ``context``."""

    user: str
    from_ref: int
    to_ref: int
    context: str
    choice: str
    created_at: datetime
    comment: str = ""


@dataclass(frozen=True, slots=True)
class ImportStory:
    from_ref: int
    to_ref: int
    context: str
    story: str


@dataclass(frozen=True, slots=True)
class ImportCard:
    """A participant's values card; linked to a canonical value only with ``canonical_ref``."""

    ref_id: int
    user: str | None
    canonical_ref: int | None
    title: str
    description: str
    detail: str
    policies: tuple[str, ...]
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ImportBatch:
    """Everything one import writes. ``users`` lists every imported user id (in first-seen
    order); ``demographics`` maps some of them to their answers."""

    values: Sequence[ImportValue]
    votes: Sequence[ImportVote] = ()
    stories: Sequence[ImportStory] = ()
    cards: Sequence[ImportCard] = ()
    users: Sequence[str] = ()
    demographics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """How many rows the import added (0 everywhere when it had been imported before)."""

    deliberation_id: int
    deliberation_created: bool
    values: int
    contexts: int
    participants: int
    votes: int
    hypotheses: int
    cards: int


def _insert(session: Session, table: Any, rows: Iterable[Mapping[str, Any]]) -> int:
    """Core executemany in chunks (no ORM objects): fast for hundreds of thousands of rows."""
    batch: list[Mapping[str, Any]] = []
    total = 0
    for row in rows:
        batch.append(row)
        if len(batch) >= _CHUNK:
            session.execute(insert(table), batch)
            total += len(batch)
            batch = []
    if batch:
        session.execute(insert(table), batch)
        total += len(batch)
    return total


def _deliberation(session: Session, *, slug: str, title: str) -> tuple[int, bool]:
    row = session.exec(select(Deliberation).where(Deliberation.slug == slug)).first()
    if row is not None:
        assert row.id is not None
        return row.id, False
    row = Deliberation(slug=slug, title=title)
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id, True


def _values(
    session: Session, did: int, values: Sequence[ImportValue]
) -> tuple[dict[int, int], int]:
    existing = {
        _int(r): _int(i)
        for i, r in session.exec(
            select(CanonicalValue.id, CanonicalValue.ref_id).where(
                CanonicalValue.deliberation_id == did, col(CanonicalValue.ref_id).is_not(None)
            )
        ).all()
    }
    new = [
        CanonicalValue(
            deliberation_id=did,
            title=v.title,
            description=v.description,
            detail=v.detail,
            policies=list(v.policies),
            ref_id=v.ref_id,
            ref_created_at=v.created_at,
            ref_updated_at=v.updated_at,
        )
        for v in values
        if v.ref_id not in existing
    ]
    session.add_all(new)
    session.flush()
    for row in new:
        assert row.id is not None and row.ref_id is not None
        existing[row.ref_id] = row.id
    return existing, len(new)


def _contexts(session: Session, did: int, texts: Iterable[str]) -> tuple[dict[str, int], int]:
    existing = {
        str(t): _int(i)
        for i, t in session.exec(
            select(Context.id, Context.text).where(Context.deliberation_id == did)
        ).all()
    }
    wanted = list(dict.fromkeys(normalise_context(t) for t in texts))
    new = [Context(deliberation_id=did, text=t) for t in wanted if t not in existing]
    session.add_all(new)
    session.flush()
    for row in new:
        assert row.id is not None
        existing[row.text] = row.id
    return existing, len(new)


def _participants(
    session: Session,
    did: int,
    users: Sequence[str],
    demographics: Mapping[str, Mapping[str, Any]],
) -> tuple[dict[str, int], int]:
    def current() -> dict[str, Participant]:
        return {
            str(p.external_ref): p
            for p in session.exec(
                select(Participant).where(
                    Participant.deliberation_id == did,
                    Participant.entry_channel == IMPORT_CHANNEL,
                    col(Participant.external_ref).is_not(None),
                )
            ).all()
        }

    existing = current()
    now = utcnow()
    wanted = list(dict.fromkeys(users))
    added = _insert(
        session,
        Participant,
        (
            {
                "deliberation_id": did,
                # A random hash nobody holds the token for: the row can never be resumed.
                "token_hash": secrets.token_hex(32),
                "entry_channel": IMPORT_CHANNEL,
                "external_ref": user,
                "demographics": dict(demographics.get(user, {})),
                "offered_question_ids": [],
                "step_times": {},
                "step": "finished",
                "created_at": now,
                "updated_at": now,
            }
            for user in wanted
            if user not in existing
        ),
    )
    rows = current() if added else existing
    for user, answers in demographics.items():
        p = rows.get(user)
        if p is not None and answers and {**(p.demographics or {}), **answers} != p.demographics:
            p.demographics = {**(p.demographics or {}), **answers}
            session.add(p)
    session.flush()
    return {user: int(p.id) for user, p in rows.items() if p.id is not None}, added


def create_import(session: Session, *, slug: str, title: str, batch: ImportBatch) -> ImportResult:
    """Write ``batch`` into the deliberation ``slug`` (created with ``title`` when missing).

    One transaction: on any error nothing is written. Rows that exist already are kept as they
    are and not added again: values by ``ref_id``, contexts by text, participants by
    ``external_ref``, votes by the unique (participant, from, to, context), hypotheses by the
    unique (from, to, context) (the first story wins), cards by ``ref_id``. Votes whose values
    are not in the deliberation raise ``KeyError`` (the caller validates references first).
    """
    try:
        did, created = _deliberation(session, slug=slug, title=title)
        value_ids, n_values = _values(session, did, batch.values)
        context_ids, n_contexts = _contexts(
            session, did, [v.context for v in batch.votes] + [s.context for s in batch.stories]
        )
        users = [*batch.users, *(v.user for v in batch.votes)]
        users += [c.user for c in batch.cards if c.user is not None]
        people, n_people = _participants(session, did, users, batch.demographics)

        hyp_ids = {
            (int(a), int(b), int(c)): _int(i)
            for i, a, b, c in session.exec(
                select(
                    Hypothesis.id,
                    Hypothesis.from_value_id,
                    Hypothesis.to_value_id,
                    Hypothesis.context_id,
                ).where(Hypothesis.deliberation_id == did)
            ).all()
        }
        now = utcnow()
        new_hyps: list[Hypothesis] = []
        for s in batch.stories:
            key = (
                value_ids[s.from_ref],
                value_ids[s.to_ref],
                context_ids[normalise_context(s.context)],
            )
            if key in hyp_ids or not s.story.strip():
                continue
            row = Hypothesis(
                deliberation_id=did,
                from_value_id=key[0],
                to_value_id=key[1],
                context_id=key[2],
                story=s.story,
                origin=IMPORT_CHANNEL,
            )
            new_hyps.append(row)
            hyp_ids[key] = -1
        session.add_all(new_hyps)
        session.flush()
        for h in new_hyps:
            assert h.id is not None
            hyp_ids[(h.from_value_id, h.to_value_id, h.context_id)] = h.id

        mine = set(people.values())
        seen = {
            (int(p), int(a), int(b), int(c))
            for p, a, b, c in session.exec(
                select(
                    WiserVote.participant_id,
                    WiserVote.from_value_id,
                    WiserVote.to_value_id,
                    WiserVote.context_id,
                ).where(WiserVote.deliberation_id == did)
            ).all()
            if int(p) in mine
        }

        def vote_rows() -> Iterable[dict[str, Any]]:
            for v in batch.votes:
                key = (
                    people[v.user],
                    value_ids[v.from_ref],
                    value_ids[v.to_ref],
                    context_ids[normalise_context(v.context)],
                )
                if key in seen:
                    continue
                seen.add(key)
                yield {
                    "deliberation_id": did,
                    "participant_id": key[0],
                    "hypothesis_id": hyp_ids.get(key[1:]),
                    "from_value_id": key[1],
                    "to_value_id": key[2],
                    "context_id": key[3],
                    "choice": v.choice,
                    "comment": v.comment,
                    "created_at": as_utc(v.created_at),
                }

        n_votes = _insert(session, WiserVote, vote_rows())

        card_refs = {
            _int(r)
            for r in session.exec(
                select(ValuesCard.ref_id).where(
                    ValuesCard.deliberation_id == did, col(ValuesCard.ref_id).is_not(None)
                )
            ).all()
        }
        new_cards: list[ValuesCard] = []
        for c in batch.cards:
            if c.ref_id in card_refs:
                continue
            card_refs.add(c.ref_id)
            stamp = as_utc(c.created_at) if c.created_at is not None else now
            new_cards.append(
                ValuesCard(
                    deliberation_id=did,
                    participant_id=None if c.user is None else people[c.user],
                    canonical_value_id=None
                    if c.canonical_ref is None
                    else value_ids[c.canonical_ref],
                    title=c.title,
                    description=c.description,
                    detail=c.detail,
                    policies=list(c.policies),
                    ref_id=c.ref_id,
                    submitted_at=stamp,
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
        session.add_all(new_cards)
        session.flush()
        _insert(
            session,
            CardVersion,
            (
                {
                    "card_id": card.id,
                    "version": 1,
                    "origin": IMPORT_CHANNEL,
                    "title": card.title,
                    "description": card.description,
                    "policies": list(card.policies),
                    "created_at": card.created_at,
                }
                for card in new_cards
            ),
        )
        session.commit()
    except Exception:
        session.rollback()
        raise
    return ImportResult(
        deliberation_id=did,
        deliberation_created=created,
        values=n_values,
        contexts=n_contexts,
        participants=n_people,
        votes=n_votes,
        hypotheses=len(new_hyps),
        cards=len(new_cards),
    )


def count_import_rows(session: Session, *, deliberation_id: int) -> dict[str, int]:
    """Rows of each kind in a deliberation (used to check that an import changed nothing)."""
    models: tuple[tuple[str, Any], ...] = (
        ("values", CanonicalValue),
        ("contexts", Context),
        ("participants", Participant),
        ("votes", WiserVote),
        ("hypotheses", Hypothesis),
        ("cards", ValuesCard),
    )
    return {
        name: int(
            session.exec(
                select(func.count())
                .select_from(model)
                .where(model.deliberation_id == deliberation_id)
            ).one()
        )
        for name, model in models
    }
