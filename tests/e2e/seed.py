"""Seed what the browser runs need through the app's own functions (elicit/db), never raw SQL.

Other participants are real participants: they join, choose their question, write their card in
the guided form and confirm it, so their cards are placed among the canonical values exactly as
a participant's would be. Hypotheses are added as a facilitator adds one by hand
(`elicit.hypotheses.add_hypothesis`); votes go through `journey.record_wiser_vote`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from db import queries
from db.engine import session_scope
from elicit import console, interview, journey
from elicit.embeddings import LocalEmbedder


def sqlite_copy(template: Path, folder: Path) -> str:
    """A fresh, migrated SQLite database (a copy of the session's template) as a URL."""
    path = folder / "app.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


@dataclass
class Seeded:
    slug: str
    id: int
    questions: list[int]
    contexts: dict[int, list[int]]
    values: dict[str, int] = field(default_factory=dict)  # card title -> canonical value id
    peers: dict[str, int] = field(default_factory=dict)  # card title -> participant id
    hypotheses: list[int] = field(default_factory=list)


def deliberation(
    engine: Engine,
    *,
    slug: str,
    title: str,
    questions: list[tuple[str, str, list[str]]],
    **settings: Any,
) -> Seeded:
    """An open deliberation with questions (title, text, contexts) via the console's functions."""
    d = console.create_deliberation(engine, slug=slug, title=title, is_open=True, **settings)
    assert d.id is not None
    qids, contexts = [], {}
    for q_title, text, phrases in questions:
        qid = console.add_question(
            engine, deliberation_id=d.id, title=q_title, text=text, contexts=phrases
        )
        qids.append(qid)
        with session_scope(engine) as s:
            contexts[qid] = sorted(queries.list_question_context_ids(s, question_id=qid))
    return Seeded(slug=d.slug, id=d.id, questions=qids, contexts=contexts)


def peer(
    engine: Engine,
    seeded: Seeded,
    *,
    question_id: int,
    title: str,
    description: str,
    policies: list[str],
) -> tuple[int, int]:
    """Another participant who wrote and confirmed a card for `question_id` (guided form).
    Returns (participant id, canonical value id)."""
    entry = journey.join(engine, slug=seeded.slug, consent=journey.Consent())
    pid = entry.participant_id
    if entry.step == "question":
        offered = {q.id for q in journey.offered_questions(engine, participant_id=pid)}
        assert question_id in offered, "seed with questions_per_participant >= the questions"
        journey.choose_question(engine, participant_id=pid, question_id=question_id)
    state = interview.load_state(engine, participant_id=pid, llm_available=False)
    for stage, text in (("story", "a time when this mattered to me."), ("attention", description)):
        interview.answer_form(
            engine, interview_id=state.interview_id, stage=stage, text=text, max_chars=4000
        )
    interview.confirm_card(
        engine,
        interview_id=state.interview_id,
        title=title,
        description=description,
        policies=policies,
        embedder=LocalEmbedder(),
    )
    with session_scope(engine) as s:
        card = queries.get_participant_card(s, participant_id=pid)
        assert card is not None and card.canonical_value_id is not None
        value_id = card.canonical_value_id
    seeded.values[title] = value_id
    seeded.peers[title] = pid
    return pid, value_id


def unchecked_peer(
    engine: Engine,
    seeded: Seeded,
    *,
    question_id: int,
    title: str,
    description: str,
    policies: list[str],
    publish: bool = True,
) -> tuple[int, int]:
    """Another participant whose card text skipped the card rules, as text arriving by an
    import can (any length, any characters): saved as their own card text, submitted, and made
    a canonical value of its own. Returns (participant id, canonical value id)."""
    entry = journey.join(
        engine,
        slug=seeded.slug,
        consent=journey.Consent(sharing="publish" if publish else "aggregate"),
    )
    pid = entry.participant_id
    if entry.step == "question":
        journey.choose_question(engine, participant_id=pid, question_id=question_id)
    state = interview.load_state(engine, participant_id=pid, llm_available=False)
    draft = interview.save_card(
        engine,
        interview_id=state.interview_id,
        title=title,
        description=description,
        policies=policies,
    )
    with session_scope(engine) as s:
        queries.submit_card(s, card_id=draft.card_id)
        queries.update_interview(s, interview_id=state.interview_id, status="confirmed")
        queries.set_participant_step(s, participant_id=pid, step="peers")
        value = queries.create_canonical_value(
            s,
            deliberation_id=seeded.id,
            title=title,
            description=description,
            policies=policies,
        )
        assert value.id is not None
        queries.link_card_to_value(s, card_id=draft.card_id, canonical_value_id=value.id)
        value_id = value.id
    seeded.values[title] = value_id
    seeded.peers[title] = pid
    return pid, value_id


def hypothesis(
    engine: Engine, seeded: Seeded, *, from_value: int, to_value: int, context_id: int, story: str
) -> int:
    """A wiser-than hypothesis A -> B in a context, with its story (as a facilitator adds one)."""
    from elicit import hypotheses

    hid = hypotheses.add_hypothesis(
        engine,
        deliberation_id=seeded.id,
        from_value_id=from_value,
        to_value_id=to_value,
        context_id=context_id,
        story=story,
    )
    seeded.hypotheses.append(hid)
    return hid


def vote(
    engine: Engine, *, participant_id: int, hypothesis_id: int, choice: str, comment: str = ""
) -> None:
    journey.record_wiser_vote(
        engine,
        participant_id=participant_id,
        hypothesis_id=hypothesis_id,
        choice=choice,
        comment=comment,
    )
