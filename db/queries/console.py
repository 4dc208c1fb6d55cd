"""Facilitator console: dashboard counts, browsing, flags, participant data export and deletion."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import case, delete, func, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from db.models import (
    CanonicalValue,
    CardVersion,
    Context,
    DedupeDecision,
    Deliberation,
    Facilitator,
    FacilitatorSession,
    Hypothesis,
    Interview,
    LLMCall,
    Message,
    Participant,
    Question,
    QuestionContext,
    SurveyAnswer,
    ValueImpression,
    ValuesCard,
    ValueVote,
    WiserVote,
    utcnow,
)
from db.queries.core import Conflict, NotFound, _commit, get_deliberation, hash_token

__all__ = [
    "copy_deliberation",
    "count_deliberation_rows",
    "delete_other_facilitator_sessions",
    "delete_participant_rows",
    "find_participant",
    "get_participant_data",
    "list_card_rows",
    "list_facilitators",
    "list_interview_cards",
    "list_interview_rows",
    "list_participant_ids_by_channel",
    "list_participant_progress",
    "list_question_links",
    "list_transcript",
    "set_card_flags",
    "set_interview_flags",
    "set_participant_flag",
    "sum_llm_usage",
    "unlink_context",
    "update_context",
    "update_question",
]


# --- deliberations, questions, contexts -----------------------------------------------------


_COPIED_FIELDS = (
    "topic",
    "welcome_text",
    "value_framing",
    "questions_per_participant",
    "stories_per_participant",
    "peer_values_per_participant",
    "invite_code",
    "completion_url",
    "languages",
)


def copy_deliberation(
    session: Session, *, source_id: int, slug: str, title: str, is_open: bool = False
) -> Deliberation:
    """A new deliberation with the source's settings, questions, contexts and their links
    (archived flags kept); no participants or anything they made. One transaction."""
    source = get_deliberation(session, id=source_id)
    copy = Deliberation(
        slug=slug,
        title=title,
        is_open=is_open,
        **{name: getattr(source, name) for name in _COPIED_FIELDS},
    )
    try:
        session.add(copy)
        session.flush()
        assert copy.id is not None
        question_ids: dict[int, int] = {}
        for q in session.exec(select(Question).where(Question.deliberation_id == source_id)):
            new_q = Question(
                deliberation_id=copy.id,
                title=q.title,
                text=q.text,
                position=q.position,
                archived=q.archived,
            )
            session.add(new_q)
            session.flush()
            assert q.id is not None and new_q.id is not None
            question_ids[q.id] = new_q.id
        context_ids: dict[int, int] = {}
        for c in session.exec(select(Context).where(Context.deliberation_id == source_id)):
            new_c = Context(deliberation_id=copy.id, text=c.text, archived=c.archived)
            session.add(new_c)
            session.flush()
            assert c.id is not None and new_c.id is not None
            context_ids[c.id] = new_c.id
        links = session.exec(
            select(QuestionContext).where(col(QuestionContext.question_id).in_(list(question_ids)))
        ).all()
        for link in links:
            session.add(
                QuestionContext(
                    question_id=question_ids[link.question_id],
                    context_id=context_ids[link.context_id],
                )
            )
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"a deliberation with the slug {slug!r} already exists") from None
    session.refresh(copy)
    return copy


def update_question(
    session: Session,
    *,
    question_id: int,
    title: str | None = None,
    text: str | None = None,
    position: int | None = None,
    archived: bool | None = None,
) -> Question:
    row = session.get(Question, question_id)
    if row is None:
        raise NotFound(f"no question {question_id}")
    for name, value in (("title", title), ("text", text), ("position", position)):
        if value is not None:
            setattr(row, name, value)
    if archived is not None:
        row.archived = archived
    _commit(session, row)
    return row


def update_context(
    session: Session, *, context_id: int, text: str | None = None, archived: bool | None = None
) -> Context:
    row = session.get(Context, context_id)
    if row is None:
        raise NotFound(f"no context {context_id}")
    if text is not None:
        row.text = text
    if archived is not None:
        row.archived = archived
    try:
        _commit(session, row)
    except IntegrityError:
        session.rollback()
        raise Conflict(f"the context {text!r} already exists in this deliberation") from None
    return row


def unlink_context(session: Session, *, question_id: int, context_id: int) -> None:
    row = session.get(QuestionContext, (question_id, context_id))
    if row is not None:
        session.delete(row)
        session.commit()


def list_question_links(session: Session, *, deliberation_id: int) -> dict[int, list[int]]:
    """Question id -> ids of its linked contexts (archived ones included), for one deliberation."""
    rows = session.exec(
        select(QuestionContext.question_id, QuestionContext.context_id)
        .join(Question, col(Question.id) == col(QuestionContext.question_id))
        .where(Question.deliberation_id == deliberation_id)
        .order_by(col(QuestionContext.question_id), col(QuestionContext.context_id))
    ).all()
    links: dict[int, list[int]] = {}
    for question_id, context_id in rows:
        links.setdefault(question_id, []).append(context_id)
    return links


# --- the dashboard --------------------------------------------------------------------------


def list_participant_progress(
    session: Session, *, deliberation_id: int
) -> list[tuple[str, dict[str, str], bool]]:
    """(current step, step -> ISO time first entered, finished) per participant not deleted."""
    rows = session.exec(
        select(Participant.step, Participant.step_times, Participant.finished_at).where(
            Participant.deliberation_id == deliberation_id, col(Participant.deleted_at).is_(None)
        )
    ).all()
    return [
        (step, dict(times or {}), finished_at is not None or step == "finished")
        for step, times, finished_at in rows
    ]


def _count(session: Session, model: Any, *where: Any) -> int:
    return int(session.exec(select(func.count()).select_from(model).where(*where)).one())


def count_deliberation_rows(session: Session, *, deliberation_id: int) -> dict[str, int]:
    """Counts for the dashboard: interviews, cards, canonical values, hypotheses, votes."""
    live_participants = select(Participant.id).where(
        Participant.deliberation_id == deliberation_id, col(Participant.deleted_at).is_(None)
    )
    card_filter = (
        ValuesCard.deliberation_id == deliberation_id,
        col(ValuesCard.archived).is_(False),
    )
    return {
        "interviews": _count(
            session, Interview, col(Interview.participant_id).in_(live_participants)
        ),
        "cards_submitted": _count(
            session, ValuesCard, *card_filter, col(ValuesCard.submitted_at).is_not(None)
        ),
        "cards_draft": _count(
            session, ValuesCard, *card_filter, col(ValuesCard.submitted_at).is_(None)
        ),
        "canonical_values": _count(
            session,
            CanonicalValue,
            CanonicalValue.deliberation_id == deliberation_id,
            col(CanonicalValue.archived).is_(False),
        ),
        "hypotheses": _count(
            session,
            Hypothesis,
            Hypothesis.deliberation_id == deliberation_id,
            col(Hypothesis.archived).is_(False),
        ),
        "wiser_votes": _count(session, WiserVote, WiserVote.deliberation_id == deliberation_id),
        "value_votes": _count(
            session, ValueVote, col(ValueVote.participant_id).in_(live_participants)
        ),
        "questions": _count(
            session,
            Question,
            Question.deliberation_id == deliberation_id,
            col(Question.archived).is_(False),
        ),
        "contexts": _count(
            session,
            Context,
            Context.deliberation_id == deliberation_id,
            col(Context.archived).is_(False),
        ),
    }


def sum_llm_usage(session: Session, *, deliberation_id: int | None = None) -> list[dict[str, Any]]:
    """Ledger sums per (purpose, model): calls, errors and the three token counts.

    `deliberation_id=None` sums the whole ledger. Missing token counts add nothing.
    """
    # sqlalchemy's select: sqlmodel's select() is only typed for up to 4 columns.
    q = sa_select(
        col(LLMCall.purpose),
        col(LLMCall.model),
        func.count(),
        func.sum(case((col(LLMCall.outcome) == "ok", 0), else_=1)),
        func.coalesce(func.sum(col(LLMCall.input_tokens)), 0),
        func.coalesce(func.sum(col(LLMCall.cached_input_tokens)), 0),
        func.coalesce(func.sum(col(LLMCall.output_tokens)), 0),
        func.coalesce(func.sum(col(LLMCall.duration_ms)), 0),
    )
    if deliberation_id is not None:
        q = q.where(col(LLMCall.deliberation_id) == deliberation_id)
    rows = session.execute(
        q.group_by(col(LLMCall.purpose), col(LLMCall.model)).order_by(
            col(LLMCall.purpose), col(LLMCall.model)
        )
    ).all()
    return [
        {
            "purpose": purpose,
            "model": model,
            "calls": int(calls),
            "errors": int(errors or 0),
            "input_tokens": int(inp),
            "cached_input_tokens": int(cached),
            "output_tokens": int(out),
            "duration_ms": int(duration),
        }
        for purpose, model, calls, errors, inp, cached, out, duration in rows
    ]


# --- interviews and cards -------------------------------------------------------------------


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_interview_rows(
    session: Session,
    *,
    deliberation_id: int,
    search: str | None = None,
    flagged_only: bool = False,
    include_archived: bool = True,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Interviews of a deliberation, newest first, with their message counts; `search` keeps
    those with a message containing the text (case-insensitive)."""
    messages = (
        select(Message.interview_id, func.count().label("n"))
        .group_by(col(Message.interview_id))
        .subquery()
    )
    q = (
        select(
            Interview,
            Participant.flagged,
            Question.title,
            func.coalesce(messages.c.n, 0),
        )
        .join(Participant, col(Participant.id) == col(Interview.participant_id))
        .join(Question, col(Question.id) == col(Interview.question_id), isouter=True)
        .join(messages, messages.c.interview_id == col(Interview.id), isouter=True)
        .where(Participant.deliberation_id == deliberation_id)
    )
    if search and search.strip():
        hits = select(Message.interview_id).where(
            col(Message.content).ilike(_like(search.strip()), escape="\\")
        )
        q = q.where(col(Interview.id).in_(hits))
    if flagged_only:
        q = q.where(or_(col(Interview.flagged).is_(True), col(Participant.flagged).is_(True)))
    if not include_archived:
        q = q.where(col(Interview.archived).is_(False))
    rows = session.exec(q.order_by(col(Interview.id).desc()).limit(limit)).all()
    return [
        {
            "interview_id": i.id,
            "participant_id": i.participant_id,
            "question": question_title or "",
            "mode": i.mode,
            "status": i.status,
            "messages": int(n),
            "flagged": i.flagged,
            "participant_flagged": bool(p_flagged),
            "archived": i.archived,
            "created_at": i.created_at,
        }
        for i, p_flagged, question_title, n in rows
    ]


def _interview_in(session: Session, *, interview_id: int, deliberation_id: int) -> Interview:
    row = session.exec(
        select(Interview)
        .join(Participant, col(Participant.id) == col(Interview.participant_id))
        .where(Interview.id == interview_id, Participant.deliberation_id == deliberation_id)
    ).first()
    if row is None:
        raise NotFound(f"no interview {interview_id} in this deliberation")
    return row


def list_transcript(
    session: Session, *, deliberation_id: int, interview_id: int
) -> tuple[Interview, list[Message]]:
    """An interview of the deliberation and its messages in order."""
    interview = _interview_in(session, interview_id=interview_id, deliberation_id=deliberation_id)
    messages = session.exec(
        select(Message).where(Message.interview_id == interview_id).order_by(col(Message.seq))
    ).all()
    return interview, list(messages)


def list_interview_cards(
    session: Session, *, deliberation_id: int, interview_id: int
) -> list[tuple[ValuesCard, list[CardVersion]]]:
    """The cards an interview produced, each with its versions (oldest first)."""
    _interview_in(session, interview_id=interview_id, deliberation_id=deliberation_id)
    cards = session.exec(
        select(ValuesCard)
        .where(ValuesCard.interview_id == interview_id)
        .order_by(col(ValuesCard.id))
    ).all()
    out = []
    for card in cards:
        versions = session.exec(
            select(CardVersion)
            .where(CardVersion.card_id == card.id)
            .order_by(col(CardVersion.version))
        ).all()
        out.append((card, list(versions)))
    return out


def list_card_rows(
    session: Session,
    *,
    deliberation_id: int,
    search: str | None = None,
    flagged_only: bool = False,
    include_archived: bool = True,
    limit: int = 500,
) -> list[ValuesCard]:
    """Cards of a deliberation, newest first; `search` matches title, description or detail."""
    q = select(ValuesCard).where(ValuesCard.deliberation_id == deliberation_id)
    if search and search.strip():
        pattern = _like(search.strip())
        q = q.where(
            or_(
                col(ValuesCard.title).ilike(pattern, escape="\\"),
                col(ValuesCard.description).ilike(pattern, escape="\\"),
                col(ValuesCard.detail).ilike(pattern, escape="\\"),
            )
        )
    if flagged_only:
        q = q.where(col(ValuesCard.flagged).is_(True))
    if not include_archived:
        q = q.where(col(ValuesCard.archived).is_(False))
    return list(session.exec(q.order_by(col(ValuesCard.id).desc()).limit(limit)))


def set_interview_flags(
    session: Session,
    *,
    deliberation_id: int,
    interview_id: int,
    flagged: bool | None = None,
    archived: bool | None = None,
) -> Interview:
    row = _interview_in(session, interview_id=interview_id, deliberation_id=deliberation_id)
    if flagged is not None:
        row.flagged = flagged
    if archived is not None:
        row.archived = archived
    row.updated_at = utcnow()
    _commit(session, row)
    return row


def set_card_flags(
    session: Session,
    *,
    deliberation_id: int,
    card_id: int,
    flagged: bool | None = None,
    archived: bool | None = None,
) -> ValuesCard:
    row = session.get(ValuesCard, card_id)
    if row is None or row.deliberation_id != deliberation_id:
        raise NotFound(f"no values card {card_id} in this deliberation")
    if flagged is not None:
        row.flagged = flagged
    if archived is not None:
        row.archived = archived
    row.updated_at = utcnow()
    _commit(session, row)
    return row


def set_participant_flag(
    session: Session, *, deliberation_id: int, participant_id: int, flagged: bool
) -> Participant:
    row = session.get(Participant, participant_id)
    if row is None or row.deliberation_id != deliberation_id or row.deleted_at is not None:
        raise NotFound(f"no participant {participant_id} in this deliberation")
    row.flagged = flagged
    row.updated_at = utcnow()
    _commit(session, row)
    return row


# --- participant data -----------------------------------------------------------------------


def find_participant(
    session: Session,
    *,
    deliberation_id: int,
    token: str | None = None,
    panel_pid: str | None = None,
    participant_id: int | None = None,
) -> Participant | None:
    """A participant of the deliberation by resume token, panel id or id (not deleted ones)."""
    q = select(Participant).where(
        Participant.deliberation_id == deliberation_id, col(Participant.deleted_at).is_(None)
    )
    if token is not None:
        q = q.where(Participant.token_hash == hash_token(token))
    elif panel_pid is not None:
        q = q.where(Participant.panel_pid == panel_pid)
    elif participant_id is not None:
        q = q.where(Participant.id == participant_id)
    else:
        raise TypeError("find_participant needs token, panel_pid or participant_id")
    return session.exec(q).first()


def list_participant_ids_by_channel(
    session: Session, *, deliberation_id: int, entry_channel: str
) -> list[int]:
    """Ids of the deliberation's (not deleted) participants who came in by `entry_channel`."""
    q = (
        select(Participant.id)
        .where(
            Participant.deliberation_id == deliberation_id,
            Participant.entry_channel == entry_channel,
            col(Participant.deleted_at).is_(None),
        )
        .order_by(col(Participant.id))
    )
    return _ids(session, q)


def _ids(session: Session, q: Any) -> list[int]:
    return [int(x) for x in session.exec(q).all()]


def get_participant_data(session: Session, *, participant_id: int) -> dict[str, Any]:
    """Every row that belongs to a participant, as model objects grouped by table."""
    participant = session.get(Participant, participant_id)
    if participant is None:
        raise NotFound(f"no participant {participant_id}")
    interviews = list(
        session.exec(
            select(Interview)
            .where(Interview.participant_id == participant_id)
            .order_by(col(Interview.id))
        )
    )
    interview_ids = [i.id for i in interviews]
    messages = list(
        session.exec(
            select(Message)
            .where(col(Message.interview_id).in_(interview_ids))
            .order_by(col(Message.interview_id), col(Message.seq))
        )
    )
    cards = list(
        session.exec(
            select(ValuesCard)
            .where(
                or_(
                    col(ValuesCard.participant_id) == participant_id,
                    col(ValuesCard.interview_id).in_(interview_ids),
                )
            )
            .order_by(col(ValuesCard.id))
        )
    )
    versions = list(
        session.exec(
            select(CardVersion)
            .where(col(CardVersion.card_id).in_([c.id for c in cards]))
            .order_by(col(CardVersion.card_id), col(CardVersion.version))
        )
    )
    votes = session.exec(
        select(WiserVote, Context.text)
        .join(Context, col(Context.id) == col(WiserVote.context_id))
        .where(WiserVote.participant_id == participant_id)
        .order_by(col(WiserVote.id))
    ).all()

    def by_participant(model: Any) -> list[Any]:
        return list(
            session.exec(
                select(model).where(model.participant_id == participant_id).order_by(col(model.id))
            )
        )

    calls = list(
        session.exec(
            select(LLMCall)
            .where(LLMCall.participant_id == participant_id)
            .order_by(col(LLMCall.id))
        )
    )
    return {
        "participant": participant,
        "interviews": interviews,
        "messages": messages,
        "cards": cards,
        "card_versions": versions,
        "wiser_votes": list(votes),
        "value_impressions": by_participant(ValueImpression),
        "value_votes": by_participant(ValueVote),
        "survey_answers": by_participant(SurveyAnswer),
        "llm_calls": calls,
    }


def _delete_values(session: Session, value_ids: Iterable[int]) -> int:
    """Delete canonical values and everything that hangs on them (no commit)."""
    ids = list(value_ids)
    if not ids:
        return 0
    session.execute(
        delete(WiserVote).where(
            or_(col(WiserVote.from_value_id).in_(ids), col(WiserVote.to_value_id).in_(ids))
        )
    )
    session.execute(
        delete(Hypothesis).where(
            or_(col(Hypothesis.from_value_id).in_(ids), col(Hypothesis.to_value_id).in_(ids))
        )
    )
    session.execute(delete(ValueImpression).where(col(ValueImpression.canonical_value_id).in_(ids)))
    session.execute(delete(ValueVote).where(col(ValueVote.canonical_value_id).in_(ids)))
    session.execute(
        update(DedupeDecision)
        .where(col(DedupeDecision.canonical_value_id).in_(ids))
        .values(canonical_value_id=None)
    )
    session.execute(
        update(ValuesCard)
        .where(col(ValuesCard.canonical_value_id).in_(ids))
        .values(canonical_value_id=None)
    )
    session.execute(delete(CanonicalValue).where(col(CanonicalValue.id).in_(ids)))
    return len(ids)


def delete_participant_rows(session: Session, *, participant_id: int) -> dict[str, int]:
    """Withdraw a participant, in one transaction: delete their interviews, messages, cards
    (and versions and dedupe log rows about them), wiser votes, impressions, value votes,
    survey answers and the participant row; delete the canonical values no other card supports
    any more (with their hypotheses and every vote on them); unlink their ledger rows.

    Returns how many rows of each kind went. Explicit deletes, so nothing depends on the
    database enforcing ON DELETE CASCADE.
    """
    participant = session.get(Participant, participant_id)
    if participant is None:
        raise NotFound(f"no participant {participant_id}")
    interview_ids = _ids(
        session, select(Interview.id).where(Interview.participant_id == participant_id)
    )
    card_ids = _ids(
        session,
        select(ValuesCard.id).where(
            or_(
                col(ValuesCard.participant_id) == participant_id,
                col(ValuesCard.interview_id).in_(interview_ids),
            )
        ),
    )
    value_ids = {
        int(v)
        for v in session.exec(
            select(ValuesCard.canonical_value_id).where(
                col(ValuesCard.id).in_(card_ids), col(ValuesCard.canonical_value_id).is_not(None)
            )
        ).all()
        if v is not None
    }

    def run(stmt: Any) -> int:
        # Session.execute is typed as returning Result; for DML it is a CursorResult (rowcount).
        return int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]

    counts: dict[str, int] = {}
    try:
        counts["llm_calls_unlinked"] = run(
            update(LLMCall)
            .where(
                or_(
                    col(LLMCall.participant_id) == participant_id,
                    col(LLMCall.interview_id).in_(interview_ids),
                )
            )
            .values(participant_id=None, interview_id=None)
        )
        counts["card_versions"] = run(
            delete(CardVersion).where(col(CardVersion.card_id).in_(card_ids))
        )
        counts["dedupe_decisions"] = run(
            delete(DedupeDecision).where(col(DedupeDecision.card_id).in_(card_ids))
        )
        counts["cards"] = run(delete(ValuesCard).where(col(ValuesCard.id).in_(card_ids)))
        counts["messages"] = run(
            delete(Message).where(col(Message.interview_id).in_(interview_ids))
        )
        counts["interviews"] = run(delete(Interview).where(col(Interview.id).in_(interview_ids)))
        for name, model in (
            ("wiser_votes", WiserVote),
            ("value_impressions", ValueImpression),
            ("value_votes", ValueVote),
            ("survey_answers", SurveyAnswer),
        ):
            counts[name] = run(delete(model).where(col(model.participant_id) == participant_id))
        still_supported = {
            int(v)
            for v in session.exec(
                select(ValuesCard.canonical_value_id).where(
                    col(ValuesCard.canonical_value_id).in_(list(value_ids))
                )
            ).all()
            if v is not None
        }
        orphans = sorted(value_ids - still_supported)
        counts["hypotheses"] = _count(
            session,
            Hypothesis,
            or_(
                col(Hypothesis.from_value_id).in_(orphans), col(Hypothesis.to_value_id).in_(orphans)
            ),
        )
        counts["canonical_values"] = _delete_values(session, orphans)
        session.execute(delete(Participant).where(col(Participant.id) == participant_id))
        counts["participants"] = 1
        session.commit()
    except Exception:
        session.rollback()
        raise
    session.expunge_all()
    return counts


# --- accounts -------------------------------------------------------------------------------


def list_facilitators(session: Session) -> list[Facilitator]:
    return list(session.exec(select(Facilitator).order_by(col(Facilitator.username))))


def delete_other_facilitator_sessions(
    session: Session, *, facilitator_id: int, keep_token: str | None = None
) -> int:
    """End a facilitator's console sessions except the one `keep_token` belongs to."""
    stmt = delete(FacilitatorSession).where(
        col(FacilitatorSession.facilitator_id) == facilitator_id
    )
    if keep_token is not None:
        stmt = stmt.where(col(FacilitatorSession.token_hash) != hash_token(keep_token))
    # Session.execute is typed as returning Result; for DML it is a CursorResult (rowcount).
    count = int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]
    session.commit()
    return count
