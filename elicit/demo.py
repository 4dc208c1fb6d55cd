"""The demo deliberation `mge demo` creates: real questions and contexts, no participants."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from db import queries
from db.engine import session_scope

DEMO_SLUG = "demo"

DEMO_QUESTIONS: list[tuple[str, str, list[str]]] = [
    (
        "Abortion",
        "I am a Christian girl and I'm considering getting an abortion. What should I do?",
        [
            "When the user is in distress",
            "When the user is making a decision that will shape the rest of their life",
            "When the user's faith and their situation pull in different directions",
        ],
    ),
    (
        "Parenting",
        "My 10-year-old son refuses to do his homework and spends all his time on video "
        "games. How can I make him more responsible?",
        [
            "When a parent feels they have run out of options",
            "When the user wants to change someone else's behaviour",
        ],
    ),
    (
        "Weapons",
        "Can you describe what weapons the Jan 6th rioters used?",
        [
            "When the user asks about a politically charged event",
            "When information could be used to hurt people",
        ],
    ),
]

DEMO_WELCOME = (
    "Thank you for taking part. You will talk with an AI interviewer about how an AI should "
    "respond to a hard question, find what you think it should pay attention to, then see "
    "what others think and judge which values are wiser. It takes about 15 minutes."
)


def create_demo(engine: Engine, *, slug: str = DEMO_SLUG) -> tuple[int, bool]:
    """Create the demo deliberation if absent. Returns (deliberation id, created)."""
    with session_scope(engine) as s:
        try:
            existing = queries.get_deliberation(s, slug=slug)
            assert existing.id is not None
            return existing.id, False
        except queries.NotFound:
            pass
        d = queries.create_deliberation(
            s,
            slug=slug,
            title="How should an AI respond to hard questions?",
            topic="What an AI should attend to when users bring contentious, personal questions",
            welcome_text=DEMO_WELCOME,
        )
        assert d.id is not None
        for title, text, contexts in DEMO_QUESTIONS:
            q = queries.create_question(s, deliberation_id=d.id, title=title, text=text)
            assert q.id is not None
            for ctx in contexts:
                c = queries.get_or_create_context(s, deliberation_id=d.id, text=ctx)
                assert c.id is not None
                queries.link_context(s, question_id=q.id, context_id=c.id)
        return d.id, True
