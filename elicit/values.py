"""Placing a confirmed card on a canonical value, and choosing the embedder.

When a participant confirms a card it joins the nearest canonical value of its deliberation if
one is close enough (the same rule batch deduplication uses), or becomes a new canonical value.
So the graph, peer values and hypotheses always have values to work with; batch dedupe later
merges what this online step kept apart.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
from sqlmodel import Session

from db import queries
from elicit.clustering import DEFAULT_THRESHOLD, nearest_existing
from elicit.config import Settings
from elicit.embeddings import Embedder, LocalEmbedder, OpenAIEmbedder, card_text


def embedder_from_settings(settings: Settings, gateway: Any | None) -> Embedder:
    """The API embedder when configured and an LLM gateway exists; else the offline default."""
    if settings.mge_embedding_provider == "openai" and gateway is not None:
        from elicit.llm import CallMeta

        model = settings.mge_embedding_model

        def embed_fn(texts: list[str]) -> list[list[float]]:
            return gateway.embed(texts, meta=CallMeta(purpose="embed"), model=model)

        return OpenAIEmbedder(embed_fn, model)
    return LocalEmbedder()


def threshold_for(embedder: Embedder) -> float:
    """The similarity at which two cards count as one value, for this kind of embedder."""
    # The default was chosen for the local TF-IDF embedder; dense API embeddings put unrelated
    # texts on the same topic much closer together, so they need a higher bar.
    return DEFAULT_THRESHOLD if isinstance(embedder, LocalEmbedder) else 0.8


def place_card(
    session: Session, *, card_id: int, embedder: Embedder, threshold: float | None = None
) -> int:
    """Link a confirmed card to a canonical value (existing or new); returns the value's id.

    Every placement is logged as a dedupe decision. Placing an already placed card changes
    nothing and returns its value.
    """
    card = queries.get_card(session, card_id=card_id)
    if card.canonical_value_id is not None:
        return card.canonical_value_id
    threshold = threshold_for(embedder) if threshold is None else threshold
    text = card_text(card.title, card.description, card.policies, card.detail)
    local = isinstance(embedder, LocalEmbedder)
    # A provider's embedding is a network call: make it before taking the lock.
    vec = None if local else embedder.embed([text])[0]
    # From here to the commit, no other placement (or batch dedupe) of this deliberation runs,
    # so cards confirmed at the same instant see each other's new values.
    queries.lock_values(session, deliberation_id=card.deliberation_id)
    session.refresh(card)
    if card.canonical_value_id is not None:
        return card.canonical_value_id
    values = queries.list_canonical_values(session, deliberation_id=card.deliberation_id)
    if vec is None:
        # Local weights depend on the corpus: embed the card with every value in one call.
        texts = [text] + [card_text(v.title, v.description, v.policies, v.detail) for v in values]
        matrix = embedder.embed(texts)
        vec, value_vecs = matrix[0], matrix[1:]
    else:
        missing = [v for v in values if not v.embedding]
        if missing:
            fresh = embedder.embed(
                [card_text(v.title, v.description, v.policies, v.detail) for v in missing]
            )
            for v, row in zip(missing, fresh, strict=True):
                v.embedding = [float(x) for x in row]
                session.add(v)
        value_vecs = np.array([v.embedding for v in values], dtype=np.float32).reshape(
            len(values), len(vec)
        )
    ids = [v.id for v in values if v.id is not None]
    match = nearest_existing(vec, value_vecs, ids, threshold=threshold) if ids else None
    run_id = uuid.uuid4().hex[:16]
    stable_vec = None if local else [float(x) for x in vec]
    if stable_vec is not None:
        card.embedding = stable_vec
    if match is None:
        value = queries.create_canonical_value(
            session,
            deliberation_id=card.deliberation_id,
            title=card.title,
            description=card.description,
            detail=card.detail,
            policies=list(card.policies),
            embedding=stable_vec,
            commit=False,
        )
        assert value.id is not None
        value_id, action, score = value.id, "create", None
    else:
        sims = value_vecs @ vec
        value_id, action = match, "assign"
        score = float(sims[ids.index(match)])
    queries.link_card_to_value(session, card_id=card_id, canonical_value_id=value_id, commit=False)
    queries.create_dedupe_decision(
        session,
        deliberation_id=card.deliberation_id,
        run_id=run_id,
        action=action,
        method="embedding",
        card_id=card_id,
        canonical_value_id=value_id,
        score=score,
        detail={"embedder": embedder.name, "threshold": threshold, "online": True},
        commit=False,
    )
    session.commit()
    return value_id
