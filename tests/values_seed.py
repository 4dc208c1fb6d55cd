"""Seed rows for the deduplication tests: cards with known similarities, on canonical values.

`seed(engine, layout)` writes one deliberation with a question and a context, and for each named
value its named, submitted cards. The texts were checked with `LocalEmbedder`: AUTONOMY and
TWIN are near-duplicates; SAFETY, CARE and NEAR_SAFETY are distinct, NEAR_SAFETY is related to
SAFETY (about 0.26) - below the threshold, above the LLM check's candidate floor.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from db.models import CanonicalValue, ValuesCard, utcnow
from tests import factories

AUTONOMY = {
    "title": "Own Conclusions",
    "description": "Help the user reach their own conclusion about the choice.",
    "policies": [
        "OPPORTUNITIES for the user to reach their own conclusion",
        "QUESTIONS that help the user hear what they already know",
        "MOMENTS when the user's fear hides what they actually want",
    ],
}
TWIN = dict(
    AUTONOMY,
    title="Their Own Conclusions",
    description="Help the user come to their own conclusion about the choice.",
)
SAFETY = {
    "title": "Medical Safety Facts",
    "description": "Give accurate medical information about procedures and risks.",
    "policies": [
        "FACTS about medical risks stated plainly",
        "SOURCES of reliable clinical information",
        "SIGNS that the user needs a doctor urgently",
    ],
}
CARE = {
    "title": "Gentle Presence",
    "description": "Stay with the user's feelings before offering anything.",
    "policies": [
        "FEELINGS the user has not yet named",
        "PAUSES that let the user breathe",
        "WORDS that show the user is not alone",
    ],
}
# Related to SAFETY (cosine about 0.26 among these cards): below the threshold, above the
# candidate floor, so only an LLM check can merge the two.
NEAR_SAFETY = {
    "title": "Honest Health Information",
    "description": "Explain what each option involves for her health, honestly.",
    "policies": [
        "RISKS of each procedure explained in plain words",
        "DOCTORS and clinics the user can trust",
        "WARNINGS about symptoms that need care",
    ],
}


@dataclass
class World:
    deliberation_id: int
    question_id: int
    context_id: int
    values: dict[str, int]
    cards: dict[str, int]


def _value(s: Session, d_id: int, text: dict) -> int:
    v = CanonicalValue(deliberation_id=d_id, **text)
    s.add(v)
    s.commit()
    s.refresh(v)
    return v.id


def _card(s: Session, d_id: int, q_id: int, value_id: int | None, text: dict) -> int:
    c = ValuesCard(
        deliberation_id=d_id,
        question_id=q_id,
        canonical_value_id=value_id,
        submitted_at=utcnow(),
        **text,
    )
    s.add(c)
    s.commit()
    s.refresh(c)
    return c.id


def seed(
    engine: Engine, layout: dict[str, list[tuple[str, dict]]], *, slug: str | None = None
) -> World:
    """Values named by the layout's keys, each with its named cards; key "" = cards with no
    value."""
    with Session(engine) as s:
        d = factories.deliberation(s, slug=slug)
        q = factories.question(s, d)
        ctx = factories.context(s, d, q)
        world = World(d.id, q.id, ctx.id, {}, {})
        for value_name, cards in layout.items():
            value_id = None
            if value_name:
                value_id = _value(s, d.id, cards[0][1] if cards else AUTONOMY)
                world.values[value_name] = value_id
            for card_name, text in cards:
                world.cards[card_name] = _card(s, d.id, q.id, value_id, text)
    return world


FIVE = {
    "a": [("a", AUTONOMY)],
    "b": [("b", TWIN)],
    "s": [("s", SAFETY)],
    "c": [("c", CARE)],
    "n": [("n", NEAR_SAFETY)],
}


def links(engine: Engine, world: World) -> dict[str, int | None]:
    """Card name -> its canonical value now."""
    with Session(engine) as s:
        return {
            name: s.get(ValuesCard, cid).canonical_value_id for name, cid in world.cards.items()
        }


def count(engine: Engine, model, *where) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def archived(engine: Engine, value_id: int) -> bool:
    with Session(engine) as s:
        return s.get(CanonicalValue, value_id).archived
