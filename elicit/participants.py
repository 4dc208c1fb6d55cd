"""Participant data for facilitators: look a participant up, export their data, delete them.

A participant is found within one deliberation by their resume token or their panel id
(e.g. a Prolific PID). `export_participant` returns everything stored about them as a
JSON-ready dict (`export_participant_json` as text); `delete_participant` withdraws them:
their interviews, messages, cards, votes, impressions and survey answers are deleted, the
canonical values no one else supports go with their hypotheses and every vote on them, and
their ledger rows stay but lose the link. Graphs and exports computed afterwards read the
remaining rows only, so they no longer count the participant.

The console page and `mge participant ...` both call these functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from db import queries
from db.engine import session_scope

EXPORT_FORMAT = "mge-participant-export"
EXPORT_VERSION = 1


class ParticipantNotFound(queries.NotFound):
    """No participant of this deliberation matches the token or panel id."""


class LookupInputError(ValueError):
    """The lookup was asked with neither or both of a token and a panel id."""


@dataclass(frozen=True)
class ParticipantSummary:
    """Who a participant is and how much they have contributed."""

    id: int
    deliberation_id: int
    entry_channel: str
    panel_pid: str | None
    step: str
    flagged: bool
    created_at: datetime
    finished_at: datetime | None
    interviews: int
    messages: int
    cards: int
    wiser_votes: int
    value_votes: int
    survey_answers: int


def _summary(s: Any, participant_id: int) -> ParticipantSummary:
    data = queries.get_participant_data(s, participant_id=participant_id)
    row = data["participant"]
    return ParticipantSummary(
        id=participant_id,
        deliberation_id=row.deliberation_id,
        entry_channel=row.entry_channel,
        panel_pid=row.panel_pid,
        step=row.step,
        flagged=row.flagged,
        created_at=row.created_at,
        finished_at=row.finished_at,
        interviews=len(data["interviews"]),
        messages=len(data["messages"]),
        cards=len(data["cards"]),
        wiser_votes=len(data["wiser_votes"]),
        value_votes=len(data["value_votes"]),
        survey_answers=len(data["survey_answers"]),
    )


def find_participant(
    engine: Engine, *, deliberation_id: int, token: str | None = None, panel_id: str | None = None
) -> ParticipantSummary:
    """The participant with this resume token or panel id in the deliberation (give one)."""
    token = (token or "").strip() or None
    panel_id = (panel_id or "").strip() or None
    if (token is None) == (panel_id is None):
        raise LookupInputError("give either a resume token or a panel id (one of them)")
    with session_scope(engine) as s:
        row = queries.find_participant(
            s, deliberation_id=deliberation_id, token=token, panel_pid=panel_id
        )
        if row is None or row.id is None:
            what = "resume token" if token else f"panel id {panel_id!r}"
            raise ParticipantNotFound(f"no participant with that {what} in this deliberation")
        return _summary(s, row.id)


def participant_summary(
    engine: Engine, *, deliberation_id: int, participant_id: int
) -> ParticipantSummary:
    """A participant of the deliberation by id (as found earlier by `find_participant`)."""
    with session_scope(engine) as s:
        row = queries.find_participant(
            s, deliberation_id=deliberation_id, participant_id=participant_id
        )
        if row is None:
            raise ParticipantNotFound(f"no participant {participant_id} in this deliberation")
        return _summary(s, participant_id)


def set_flag(engine: Engine, *, deliberation_id: int, participant_id: int, flagged: bool) -> None:
    """Flag or unflag a participant (for review; it changes nothing they see)."""
    with session_scope(engine) as s:
        queries.set_participant_flag(
            s, deliberation_id=deliberation_id, participant_id=participant_id, flagged=flagged
        )


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_participant(engine: Engine, *, participant_id: int) -> dict[str, Any]:
    """Everything stored about one participant, as a JSON-ready dict (no token hash)."""
    with session_scope(engine) as s:
        data = queries.get_participant_data(s, participant_id=participant_id)
        p = data["participant"]
        deliberation = queries.get_deliberation(s, id=p.deliberation_id)
    messages_by_interview: dict[int, list[dict[str, Any]]] = {}
    for m in data["messages"]:
        messages_by_interview.setdefault(m.interview_id, []).append(
            {
                "seq": m.seq,
                "role": m.role,
                "content": m.content,
                "tool_calls": m.tool_calls,
                "created_at": _time(m.created_at),
            }
        )
    versions_by_card: dict[int, list[dict[str, Any]]] = {}
    for v in data["card_versions"]:
        versions_by_card.setdefault(v.card_id, []).append(
            {
                "version": v.version,
                "origin": v.origin,
                "title": v.title,
                "description": v.description,
                "policies": list(v.policies or []),
                "created_at": _time(v.created_at),
            }
        )
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "deliberation": {"slug": deliberation.slug, "title": deliberation.title},
        "participant": {
            "id": p.id,
            "entry_channel": p.entry_channel,
            "panel_pid": p.panel_pid,
            "panel_study_id": p.panel_study_id,
            "panel_session_id": p.panel_session_id,
            "external_ref": p.external_ref,
            "consent_publish": p.consent_publish,
            "consent_aggregate_only": p.consent_aggregate_only,
            "consent_training": p.consent_training,
            "consented_at": _time(p.consented_at),
            "demographics": p.demographics,
            "question_id": p.question_id,
            "offered_question_ids": list(p.offered_question_ids or []),
            "step": p.step,
            "step_times": p.step_times,
            "flagged": p.flagged,
            "created_at": _time(p.created_at),
            "finished_at": _time(p.finished_at),
        },
        "interviews": [
            {
                "id": i.id,
                "question_id": i.question_id,
                "mode": i.mode,
                "status": i.status,
                "created_at": _time(i.created_at),
                "messages": messages_by_interview.get(i.id, []),
            }
            for i in data["interviews"]
        ],
        "cards": [
            {
                "id": c.id,
                "interview_id": c.interview_id,
                "question_id": c.question_id,
                "canonical_value_id": c.canonical_value_id,
                "title": c.title,
                "description": c.description,
                "detail": c.detail,
                "policies": list(c.policies or []),
                "submitted_at": _time(c.submitted_at),
                "created_at": _time(c.created_at),
                "versions": versions_by_card.get(c.id, []),
            }
            for c in data["cards"]
        ],
        "wiser_votes": [
            {
                "hypothesis_id": v.hypothesis_id,
                "from_value_id": v.from_value_id,
                "to_value_id": v.to_value_id,
                "context": context,
                "choice": v.choice,
                "comment": v.comment,
                "created_at": _time(v.created_at),
            }
            for v, context in data["wiser_votes"]
        ],
        "value_impressions": [
            {
                "draw_id": r.draw_id,
                "canonical_value_id": r.canonical_value_id,
                "position": r.position,
                "created_at": _time(r.created_at),
            }
            for r in data["value_impressions"]
        ],
        "value_votes": [
            {
                "draw_id": r.draw_id,
                "canonical_value_id": r.canonical_value_id,
                "created_at": _time(r.created_at),
            }
            for r in data["value_votes"]
        ],
        "survey_answers": [
            {"item": r.item, "score": r.score, "text": r.text, "created_at": _time(r.created_at)}
            for r in data["survey_answers"]
        ],
        "llm_calls": [
            {
                "id": c.id,
                "created_at": _time(c.created_at),
                "purpose": c.purpose,
                "model": c.model,
                "input_tokens": c.input_tokens,
                "cached_input_tokens": c.cached_input_tokens,
                "output_tokens": c.output_tokens,
                "outcome": c.outcome,
            }
            for c in data["llm_calls"]
        ],
    }


def export_participant_json(engine: Engine, *, participant_id: int) -> str:
    """`export_participant` as indented JSON text (UTF-8, stable key order)."""
    return json.dumps(
        export_participant(engine, participant_id=participant_id),
        indent=2,
        ensure_ascii=False,
        sort_keys=True,
    )


def delete_participant(engine: Engine, *, participant_id: int) -> dict[str, int]:
    """Withdraw a participant (see the module docstring); returns rows deleted per kind."""
    with session_scope(engine) as s:
        return queries.delete_participant_rows(s, participant_id=participant_id)
