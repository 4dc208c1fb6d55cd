"""Placing confirmed cards on canonical values."""

from __future__ import annotations

from sqlmodel import Session, select

from db.models import DedupeDecision, ValuesCard
from elicit.embeddings import LocalEmbedder, OpenAIEmbedder
from elicit.values import place_card
from tests import factories

AUTONOMY = dict(
    title="Own Conclusions",
    description="Help the user reach their own conclusion about the choice.",
    policies=[
        "OPPORTUNITIES for the user to reach their own conclusion",
        "QUESTIONS that help the user hear what they already know",
        "MOMENTS when the user's fear hides what they actually want",
    ],
)
SAFETY = dict(
    title="Medical Safety Facts",
    description="Give accurate medical information about procedures and risks.",
    policies=[
        "FACTS about medical risks stated plainly",
        "SOURCES of reliable clinical information",
        "SIGNS that the user needs a doctor urgently",
    ],
)


def _card(s: Session, d, **fields) -> ValuesCard:
    card = ValuesCard(deliberation_id=d.id, **fields)
    s.add(card)
    s.commit()
    s.refresh(card)
    return card


def test_place_card_creates_value_then_joins_near_duplicate(engine):
    with Session(engine) as s:
        d = factories.deliberation(s)
        first = _card(s, d, **AUTONOMY)
        v1 = place_card(s, card_id=first.id, embedder=LocalEmbedder())
        twin = dict(AUTONOMY, title="Their Own Conclusions")
        second = _card(s, d, **twin)
        assert place_card(s, card_id=second.id, embedder=LocalEmbedder()) == v1
        other = _card(s, d, **SAFETY)
        v3 = place_card(s, card_id=other.id, embedder=LocalEmbedder())
        assert v3 != v1
        actions = [r.action for r in s.exec(select(DedupeDecision).order_by(DedupeDecision.id))]
        assert actions == ["create", "assign", "create"]


def test_place_card_twice_changes_nothing(sqlite_engine):
    with Session(sqlite_engine) as s:
        d = factories.deliberation(s)
        card = _card(s, d, **AUTONOMY)
        v = place_card(s, card_id=card.id, embedder=LocalEmbedder())
        assert place_card(s, card_id=card.id, embedder=LocalEmbedder()) == v
        assert len(list(s.exec(select(DedupeDecision)))) == 1


def test_place_card_with_api_embedder_stores_vectors(sqlite_engine):
    calls: list[list[str]] = []

    def fake_embed(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        return [[1.0, 0.0] if "Conclusions" in t else [0.0, 1.0] for t in texts]

    emb = OpenAIEmbedder(fake_embed, "m")
    with Session(sqlite_engine) as s:
        d = factories.deliberation(s)
        a = _card(s, d, **AUTONOMY)
        va = place_card(s, card_id=a.id, embedder=emb)
        b = _card(s, d, **dict(AUTONOMY, title="More Own Conclusions"))
        assert place_card(s, card_id=b.id, embedder=emb) == va
        c = _card(s, d, **SAFETY)
        assert place_card(s, card_id=c.id, embedder=emb) != va
        assert s.get(ValuesCard, a.id).embedding == [1.0, 0.0]


def test_cards_placed_at_the_same_instant_share_values(engine):
    """Identical cards confirmed together must land on one value per text, not one each: the
    placement holds the deliberation's values lock (SQLite's write lock, a PostgreSQL advisory
    lock) from reading the values to creating one. Runs on SQLite and PostgreSQL."""
    import threading

    with Session(engine) as s:
        d = factories.deliberation(s)
        ids = [_card(s, d, **(AUTONOMY if i % 2 else SAFETY)).id for i in range(8)]
        deliberation_id = d.id
    barrier = threading.Barrier(len(ids))
    errors: list[BaseException] = []

    def go(card_id: int) -> None:
        try:
            barrier.wait(timeout=30)
            with Session(engine) as s:
                place_card(s, card_id=card_id, embedder=LocalEmbedder())
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with Session(engine) as s:
        cards = s.exec(
            select(ValuesCard).where(ValuesCard.deliberation_id == deliberation_id)
        ).all()
        actions = [r.action for r in s.exec(select(DedupeDecision))]
    by_title = {c.title: {x.canonical_value_id for x in cards if x.title == c.title} for c in cards}
    assert all(c.canonical_value_id is not None for c in cards)
    assert [len(v) for v in by_title.values()] == [1, 1]
    assert len({c.canonical_value_id for c in cards}) == 2
    assert sorted(actions) == ["assign"] * 6 + ["create"] * 2
