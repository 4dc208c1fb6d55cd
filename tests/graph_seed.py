"""Test data for the graph glue: a synthetic reference dump on disk and a native deliberation.

`write_dump` writes a reference database dump (DESIGN.md section 7) whose votes lean towards a
hidden order of the values, so some edges clear the thresholds. `seed_native` writes a
deliberation the way the app would (participants with panel ids, tokens, consent choices,
submitted cards, votes with comments) holding every kind of personal data an export must not
leak.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from db import queries
from db.models import CanonicalValue, Participant, ValuesCard, WiserVote
from tests import factories

DUMP_START = datetime(2023, 10, 1, 12, 0, tzinfo=UTC)
DUMP_CONTEXTS = ("When the user is in distress", "When making decisions")


def iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_dump(
    folder: Path,
    *,
    n_users: int = 14,
    seed: int = 0,
    cards: bool = True,
    demographics: bool = True,
) -> list[dict[str, Any]]:
    """Write a dump folder; return the edge.json rows (one per vote, in time order)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = [101, 102, 103, 104, 105]
    values = []
    for n, vid in enumerate(ids):
        criteria: Any = [f"MOMENTS of kind {vid}", f"CHOICES that open path {vid}"]
        if n == 1:
            criteria = str(criteria)  # a string holding a list, single quotes
        elif n == 2:
            criteria = json.dumps(criteria)
        values.append(
            {
                "id": vid,
                "title": f"Value {vid}",
                "instructionsShort": f"Short {vid}.",
                "instructionsDetailed": f"Detailed {vid}.",
                "evaluationCriteria": criteria,
                "createdAt": iso(DUMP_START - timedelta(days=10 - n)),
                "updatedAt": iso(DUMP_START - timedelta(days=5 - n)),
            }
        )
    rank = {vid: i for i, vid in enumerate(ids)}  # later ids are wiser
    pairs = [(a, b) for a in ids for b in ids if a != b and abs(rank[a] - rank[b]) <= 2]
    edges = []
    t = DUMP_START
    for u in range(n_users):
        user = 1000 + u
        for a, b in rng.sample(pairs, 6):
            context = rng.choice(DUMP_CONTEXTS)
            wiser = rank[b] > rank[a]
            r = rng.random()
            if wiser:
                rel = "upgrade" if r < 0.75 else ("not_sure" if r < 0.9 else "no_upgrade")
            else:
                rel = "no_upgrade" if r < 0.7 else ("upgrade" if r < 0.85 else "not_sure")
            t += timedelta(minutes=rng.randint(1, 90))
            edges.append(
                {
                    "userId": user,
                    "fromId": a,
                    "toId": b,
                    "contextId": context,
                    "relationship": rel,
                    "comment": f"because {user} thinks so" if r < 0.3 else None,
                    "story": f"I used to live by {a}, then I saw {b} in '{context}'.",
                    "createdAt": iso(t),
                }
            )
    (folder / "canonicalValuesCard.json").write_text(json.dumps(values), encoding="utf-8")
    (folder / "edge.json").write_text(json.dumps(edges, indent=1), encoding="utf-8")
    if cards:
        rows = []
        for n in range(8):
            vid = ids[n % len(ids)]
            rows.append(
                {
                    "id": 500 + n,
                    "title": f"Card {n}",
                    "instructionsShort": "s",
                    "instructionsDetailed": "d",
                    "evaluationCriteria": ["THINGS that matter"],
                    "canonicalCardId": vid if n < 6 else None,
                    "userId": 1000 + n,
                    "createdAt": iso(DUMP_START - timedelta(days=3)),
                }
            )
        (folder / "valuesCard.json").write_text(json.dumps(rows), encoding="utf-8")
    if demographics:
        rows = [
            {"userId": 1000 + u, "party": "D" if u % 2 else "R", "age": 20 + u}
            for u in range(n_users)
        ]
        (folder / "demographic.json").write_text(json.dumps(rows), encoding="utf-8")
    return edges


SECRET_EMAIL = "secret.person@example.org"
SECRET_PANEL = "PROLIFIC-5f3a9c0ffee"
SECRET_COMMENT = "my private reason nobody may publish"
PUBLIC_COMMENT = "a reason I agreed to publish"


@dataclass
class Native:
    deliberation_id: int
    slug: str
    question_id: int
    contexts: list[str]
    values: list[CanonicalValue]
    participants: list[Participant]
    tokens: list[str]
    secrets: list[str] = field(default_factory=list)


def seed_native(engine: Engine, *, slug: str = "native", voters: int = 6) -> Native:
    """A deliberation with one question, two contexts, four values (with cards), and
    ``voters`` participants voting that value 2 is wiser than 1 and 3 wiser than 2."""
    with Session(engine, expire_on_commit=False) as s:
        d = factories.deliberation(s, slug=slug)
        q = factories.question(s, d, text="My teenager lies to me, what should I do?")
        c1 = factories.context(s, d, q, text="When trust is broken")
        c2 = factories.context(s, d, q, text="When the user is angry")
        values = [factories.value(s, d, title=f"Native value {i}") for i in range(4)]
        people, tokens = [], []
        for i in range(voters):
            p, token = factories.participant(
                s,
                d,
                panel_pid=f"{SECRET_PANEL}-{i}",
                consent_publish=i == 0,
                demographics={"party": "D" if i % 2 else "R", "email": SECRET_EMAIL},
                question_id=q.id,
            )
            people.append(p)
            tokens.append(token)
            card = ValuesCard(
                deliberation_id=d.id,
                participant_id=p.id,
                canonical_value_id=values[i % 4].id,
                title=f"Card of {i}",
                submitted_at=datetime.now(UTC),
            )
            s.add(card)
        s.commit()
        t = datetime.now(UTC) - timedelta(hours=1)
        for i, p in enumerate(people):
            for a, b, context in ((0, 1, c1), (1, 2, c1), (0, 1, c2)):
                t += timedelta(seconds=1)
                s.add(
                    WiserVote(
                        deliberation_id=d.id,
                        participant_id=p.id,
                        from_value_id=values[a].id,
                        to_value_id=values[b].id,
                        context_id=context.id,
                        choice="upgrade" if (i + a) % 5 else "not_sure",
                        comment=PUBLIC_COMMENT if i == 0 else f"{SECRET_COMMENT} {i}",
                        created_at=t,
                    )
                )
        s.commit()
        assert d.id is not None and q.id is not None
        return Native(
            deliberation_id=d.id,
            slug=d.slug,
            question_id=q.id,
            contexts=[c1.text, c2.text],
            values=values,
            participants=people,
            tokens=tokens,
            secrets=[
                SECRET_EMAIL,
                SECRET_PANEL,
                SECRET_COMMENT,
                *tokens,
                *(p.token_hash for p in people),
            ],
        )


def deliberation_id(engine: Engine, slug: str) -> int | None:
    with Session(engine) as s:
        try:
            return queries.get_deliberation(s, slug=slug).id
        except queries.NotFound:
            return None
