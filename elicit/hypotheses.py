"""Wiser-than hypotheses: which value pairs to ask about in each context, their stories, review.

- `plan_hypotheses` chooses, for each live context, pairs among the values relevant to it:
  canonical values with submitted cards on a question linked to the context (values with no
  cards at all, as after an import, count for every context). Related pairs come first (cosine
  similarity of the values' texts, all embedded in one call), because a wiser value deepens a
  value rather than changing the subject; a per-value limit keeps one value from taking every
  slot, and `per_context` caps the pairs. Each pair gives two hypotheses, A -> B and B -> A.
- `generate_hypotheses` writes the missing ones. With an LLM each direction gets its own story
  (prompt `hypothesis_story.md`, purpose "hypothesis", card texts quoted as data); without one
  the story is templated from the two cards (origin "template"). A (from, to, context) that
  exists already is never written again, so re-running only fills gaps; both directions of a
  pair are written together or not at all.
- Review: `list_for_review` (both cards, story, origin, vote counts per choice),
  `edit_story`, `set_archived`, and `add_hypothesis` for a facilitator's own (origin "manual").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session

from db import queries
from db.engine import session_scope
from db.models import CHOICES, CanonicalValue, Context, Hypothesis
from elicit.embeddings import Embedder, card_text
from elicit.prompts import load_prompt, quote_data

if TYPE_CHECKING:  # the gateway (and openai) load only when an LLM is configured
    from elicit.llm import Gateway

__all__ = [
    "DEFAULT_PER_CONTEXT",
    "ContextPlan",
    "GenerateResult",
    "HypothesisError",
    "HypothesisView",
    "PlannedPair",
    "StoryDraft",
    "ValueView",
    "add_hypothesis",
    "edit_story",
    "generate_hypotheses",
    "list_contexts",
    "list_for_review",
    "list_value_options",
    "plan_hypotheses",
    "set_archived",
    "story_problems",
    "template_story",
    "write_story",
]

Progress = Callable[[int, int], None]
#: Value pairs per context (each gives two hypotheses, one per direction).
DEFAULT_PER_CONTEXT = 6
#: A value takes part in at most this many chosen pairs of a context while others are left.
MAX_PAIRS_PER_VALUE = 3
STORY_MAX_CHARS = 3000
PROMPT_NAME = "hypothesis_story"
TOOL_NAME = "write_story"
# The prompt's data tags; look-alikes inside participant text are neutralised in every block
# (`quote_data` handles only the block's own label).
_DATA_TAG = re.compile(r"<(\s*/?\s*(?:context|question|earlier_value|later_value))", re.I)
_CAPS_RUN = re.compile(r"\b[A-Z]{4,}(?:\s+[A-Z]{2,})*\b")


class HypothesisError(Exception):
    """The hypotheses cannot be made or changed; the message is fit to show a facilitator."""


# --- plain results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedPair:
    """Two values of a context, most related first; `missing` are the directions to write."""

    first_id: int
    second_id: int
    similarity: float
    missing: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ContextPlan:
    """The pairs chosen for one context."""

    context_id: int
    context_text: str
    value_ids: tuple[int, ...]
    pairs: tuple[PlannedPair, ...]

    @property
    def missing(self) -> int:
        return sum(len(p.missing) for p in self.pairs)


@dataclass(frozen=True)
class GenerateResult:
    """What `generate_hypotheses` wrote. `existing` counts directions skipped as already there."""

    created: int
    existing: int
    origin: str
    per_context: dict[int, int] = field(default_factory=dict)

    def summary(self) -> str:
        how = "with LLM stories" if self.origin == "llm" else "with templated stories (no LLM)"
        return (
            f"{self.created} hypothesis(es) created {how}; "
            f"{self.existing} existed already and were kept"
        )


@dataclass(frozen=True)
class ValueView:
    """A canonical value as the review page shows it."""

    id: int
    title: str
    description: str
    policies: tuple[str, ...]
    archived: bool


@dataclass(frozen=True)
class HypothesisView:
    """One hypothesis with both values, its story and the votes on it (per choice)."""

    id: int
    context_id: int
    context_text: str
    from_value: ValueView
    to_value: ValueView
    story: str
    origin: str
    archived: bool
    votes: dict[str, int]

    @property
    def vote_total(self) -> int:
        return sum(self.votes.values())


# --- choosing pairs -----------------------------------------------------------------------------


def _value_text(v: CanonicalValue) -> str:
    return card_text(v.title, v.description, v.policies, v.detail)


def _relevant_values(
    session: Session, deliberation_id: int, values: Sequence[CanonicalValue]
) -> dict[int, set[int]]:
    """Context id -> ids of the live values relevant to it."""
    live = {v.id for v in values if v.id is not None}
    with_cards: set[int] = set()
    by_question: dict[int | None, set[int]] = {}
    for value_id, question_id, is_live in queries.list_value_card_links(
        session, deliberation_id=deliberation_id
    ):
        with_cards.add(value_id)
        if is_live and value_id in live:
            by_question.setdefault(question_id, set()).add(value_id)
    everywhere = (live - with_cards) | by_question.get(None, set())
    links = queries.list_context_question_ids(session, deliberation_id=deliberation_id)
    out: dict[int, set[int]] = {}
    for c in queries.list_contexts(session, deliberation_id=deliberation_id):
        assert c.id is not None
        ids = set(everywhere)
        for question_id in links.get(c.id, set()):
            ids |= by_question.get(question_id, set())
        out[c.id] = ids
    return out


def _choose_pairs(
    ids: Sequence[int], sim: np.ndarray, per_context: int
) -> list[tuple[int, int, float]]:
    """The `per_context` most similar pairs, spread so that no value takes more than
    `MAX_PAIRS_PER_VALUE` of them while other pairs remain (a pure function).

    >>> s = np.array([[1, .9, .8, .1], [.9, 1, .7, .2], [.8, .7, 1, .3], [.1, .2, .3, 1]])
    >>> [(a, b) for a, b, _ in _choose_pairs([1, 2, 3, 4], s, 2)]
    [(1, 2), (1, 3)]
    """
    n = len(ids)
    if n < 2 or per_context < 1:
        return []
    upper = np.triu_indices(n, k=1)
    sims = sim[upper]
    rows: list[int] = upper[0].tolist()
    cols: list[int] = upper[1].tolist()
    order = sorted(range(len(rows)), key=lambda k: (-float(sims[k]), ids[rows[k]], ids[cols[k]]))
    chosen: list[int] = []
    uses = dict.fromkeys(ids, 0)
    for k in order:
        if len(chosen) == per_context:
            break
        a, b = ids[rows[k]], ids[cols[k]]
        if uses[a] < MAX_PAIRS_PER_VALUE and uses[b] < MAX_PAIRS_PER_VALUE:
            chosen.append(k)
            uses[a] += 1
            uses[b] += 1
    if len(chosen) < per_context:  # few values: fill up regardless of the limit
        taken = set(chosen)
        chosen += [k for k in order if k not in taken][: per_context - len(chosen)]
    out = [(ids[rows[k]], ids[cols[k]], float(sims[k])) for k in chosen]
    return sorted(out, key=lambda p: (-p[2], p[0], p[1]))


def plan_hypotheses(
    engine: Engine,
    *,
    deliberation_id: int,
    embedder: Embedder,
    per_context: int = DEFAULT_PER_CONTEXT,
    context_ids: Iterable[int] | None = None,
) -> list[ContextPlan]:
    """The pairs each live context gets and which directions are still missing (no writes).

    Raises `HypothesisError` when the values cannot be embedded.
    """
    if per_context < 1:
        raise HypothesisError("Ask for at least one pair per context.")
    wanted = set(context_ids) if context_ids is not None else None
    with session_scope(engine) as s:
        queries.get_deliberation(s, id=deliberation_id)
        values = queries.list_canonical_values(s, deliberation_id=deliberation_id)
        relevant = _relevant_values(s, deliberation_id, values)
        contexts = {c.id: c.text for c in queries.list_contexts(s, deliberation_id=deliberation_id)}
        existing = queries.list_hypothesis_triples(s, deliberation_id=deliberation_id)
    if wanted is not None:
        unknown = wanted - set(contexts)
        if unknown:
            raise HypothesisError(f"Context {min(unknown)} is not a live context of this study.")
    ids = [v.id for v in values if v.id is not None]
    index = {v: i for i, v in enumerate(ids)}
    if len(ids) >= 2:
        try:
            vectors = embedder.embed([_value_text(v) for v in values])
        except Exception as exc:
            raise _as_error(exc, "compare the values") from exc
        sim = vectors @ vectors.T
    else:
        sim = np.zeros((len(ids), len(ids)), dtype=np.float32)
    plans = []
    for context_id, text in contexts.items():
        assert context_id is not None
        if wanted is not None and context_id not in wanted:
            continue
        members = sorted(relevant.get(context_id, set()))
        rows = [index[m] for m in members]
        sub = sim[np.ix_(rows, rows)] if rows else np.zeros((0, 0))
        pairs = []
        for a, b, score in _choose_pairs(members, sub, per_context):
            missing = tuple(
                (f, t) for f, t in ((a, b), (b, a)) if (f, t, context_id) not in existing
            )
            pairs.append(PlannedPair(a, b, score, missing))
        plans.append(ContextPlan(context_id, text, tuple(members), tuple(pairs)))
    return plans


# --- stories ------------------------------------------------------------------------------------


class StoryDraft(BaseModel):
    """What the write_story tool returns."""

    story: str = Field(
        min_length=1,
        max_length=STORY_MAX_CHARS,
        description="The first-person story, 90 to 180 words, one or two paragraphs.",
    )


def story_problems(story: str) -> list[str]:
    """What is wrong with a drafted story (empty when it is usable).

    >>> story_problems("I used to rush. " * 20)
    []
    >>> story_problems("The user should be told. " * 20)[0]
    'write it in the first person (I, me, my)'
    """
    problems = []
    words = len(story.split())
    if words < 40:
        problems.append(f"the story has {words} words; write 90 to 180")
    elif words > 300:
        problems.append(f"the story has {words} words; keep it under 180")
    if not re.search(r"\b(I|me|my|I'm|I've)\b", story):
        problems.append("write it in the first person (I, me, my)")
    caps = [m for m in _CAPS_RUN.findall(story) if m not in ("AI",)]
    if caps:
        problems.append(
            f'do not list the cards\' capitalised items (found "{caps[0]}"); tell the story'
        )
    return problems


def _value_block(v: CanonicalValue) -> str:
    lines = [f"Title: {v.title}", f"Description: {v.description}"]
    if v.policies:
        lines.append("What they attend to:")
        lines += [f"- {p}" for p in v.policies]
    return _neutral("\n".join(lines))


def _neutral(text: str) -> str:
    return _DATA_TAG.sub(lambda m: "&lt;" + m.group(1), text)


def write_story(
    gateway: Gateway,
    *,
    deliberation_id: int,
    earlier: CanonicalValue,
    later: CanonicalValue,
    context_text: str,
    question_text: str,
) -> str:
    """One LLM story for "`later` is wiser than `earlier` in this context" (purpose
    "hypothesis"). Raises `elicit.llm.LLMError` (kind "invalid_output" when even the repair
    attempt gives no usable story)."""
    from elicit.llm import CallMeta

    prompt = load_prompt(PROMPT_NAME)
    system = prompt.render(
        context=quote_data("context", _neutral(context_text)),
        question=quote_data("question", _neutral(question_text or "(no question given)")),
        earlier_value=quote_data("earlier_value", _value_block(earlier)),
        later_value=quote_data("later_value", _value_block(later)),
    )
    draft = gateway.structured(
        [
            {"role": "system", "content": system},
            {"role": "user", "content": "Write the story now with the write_story tool."},
        ],
        StoryDraft,
        meta=CallMeta(purpose="hypothesis", deliberation_id=deliberation_id),
        prompt=prompt,
        tool_name=TOOL_NAME,
        tool_description="Submit the story of how the narrator came to the later value.",
        validate=lambda d: story_problems(d.story),
    )
    return draft.story.strip()


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return ""
    return text if text[-1] in ".!?" else text + "."


def template_story(earlier: CanonicalValue, later: CanonicalValue, context_text: str) -> str:
    """A plain first-person story built from the two cards, for when no LLM is configured.

    >>> a = CanonicalValue(deliberation_id=1, title="Clear Facts", description="Give the facts")
    >>> b = CanonicalValue(deliberation_id=1, title="Own Choice", description="Help them decide")
    >>> print(template_story(a, b, "When the user is scared"))  # doctest: +NORMALIZE_WHITESPACE
    When the user is scared, I used to hold on to "Clear Facts": give the facts. It came from
    something I cared about, but it saw only part of what was at stake. Then I began to pay
    attention to "Own Choice": help them decide. It keeps what mattered to me about "Clear
    Facts" and goes further, so this is what I attend to now.
    """
    situation = " ".join(context_text.split()).rstrip(".") or "In this situation"
    if not situation.lower().startswith(("when", "in ", "if ")):
        situation = f"In this situation ({situation})"
    before = _sentence(earlier.description)
    after = _sentence(later.description)
    before = before[:1].lower() + before[1:] if before else ""
    after = after[:1].lower() + after[1:] if after else ""
    return (
        f'{situation}, I used to hold on to "{earlier.title}"'
        + (f": {before}" if before else ".")
        + " It came from something I cared about, but it saw only part of what was at stake."
        + f' Then I began to pay attention to "{later.title}"'
        + (f": {after}" if after else ".")
        + f' It keeps what mattered to me about "{earlier.title}" and goes further, so this is'
        + " what I attend to now."
    )


def _as_error(exc: Exception, what: str) -> HypothesisError:
    from elicit.llm import LLMError

    if isinstance(exc, LLMError):
        return HypothesisError(f"Could not {what}: {exc.user_message} (Detail: {exc})")
    if isinstance(exc, HypothesisError):
        return exc
    if isinstance(exc, ValueError):
        return HypothesisError(f"Could not {what}: {exc}")
    raise exc


# --- generating ---------------------------------------------------------------------------------


def generate_hypotheses(
    engine: Engine,
    *,
    deliberation_id: int,
    embedder: Embedder,
    gateway: Gateway | None = None,
    per_context: int = DEFAULT_PER_CONTEXT,
    context_ids: Iterable[int] | None = None,
    progress: Progress | None = None,
) -> GenerateResult:
    """Write the missing hypotheses of `plan_hypotheses`, both directions of each pair.

    With a gateway each direction gets an LLM story; without one, a templated story. Each
    pair's new hypotheses are written in one transaction once all their stories exist, so a
    failure leaves no half-written pair; what was written before it stays, and running again
    continues from there.

    Raises
    ------
    HypothesisError
        When the LLM fails; the message says how many were written before it stopped.
    """
    plans = plan_hypotheses(
        engine,
        deliberation_id=deliberation_id,
        embedder=embedder,
        per_context=per_context,
        context_ids=context_ids,
    )
    total = sum(p.missing for p in plans)
    with session_scope(engine) as s:
        values = {
            v.id: v for v in queries.list_canonical_values(s, deliberation_id=deliberation_id)
        }
        questions = {
            q.id: q.text for q in queries.list_questions(s, deliberation_id=deliberation_id)
        }
        links = queries.list_context_question_ids(s, deliberation_id=deliberation_id)
    origin = "llm" if gateway is not None else "template"
    done = created = 0
    existing = sum(2 * len(p.pairs) for p in plans) - total
    per: dict[int, int] = {}
    if progress is not None:
        progress(0, total)
    for plan in plans:
        question = next(
            (questions[q] for q in sorted(links.get(plan.context_id, set())) if q in questions), ""
        )
        for pair in plan.pairs:
            stories: list[tuple[int, int, str]] = []
            for f, t in pair.missing:
                earlier, later = values[f], values[t]
                if gateway is None:
                    story = template_story(earlier, later, plan.context_text)
                else:
                    try:
                        story = write_story(
                            gateway,
                            deliberation_id=deliberation_id,
                            earlier=earlier,
                            later=later,
                            context_text=plan.context_text,
                            question_text=question,
                        )
                    except Exception as exc:
                        err = _as_error(exc, "write a story")
                        raise HypothesisError(
                            f"{err} {created} hypothesis(es) were written before this; "
                            "run again to continue."
                        ) from exc
                stories.append((f, t, story))
                done += 1
                if progress is not None:
                    progress(done, total)
            written = _write_pair(engine, deliberation_id, plan.context_id, stories, origin)
            created += written
            existing += len(stories) - written
            per[plan.context_id] = per.get(plan.context_id, 0) + written
    return GenerateResult(created, existing, origin, per)


def _write_pair(
    engine: Engine,
    deliberation_id: int,
    context_id: int,
    stories: Sequence[tuple[int, int, str]],
    origin: str,
) -> int:
    """Write a pair's new hypotheses together; ones another run wrote meanwhile are skipped."""
    if not stories:
        return 0
    with session_scope(engine) as s:
        there = queries.list_hypothesis_triples(s, deliberation_id=deliberation_id)
        new = [(f, t, story) for f, t, story in stories if (f, t, context_id) not in there]
        for f, t, story in new:
            queries.create_hypothesis(
                s,
                deliberation_id=deliberation_id,
                from_value_id=f,
                to_value_id=t,
                context_id=context_id,
                story=story,
                origin=origin,
                commit=False,
            )
        try:
            s.commit()
        except Exception as exc:  # a concurrent run wrote one of them first
            from sqlalchemy.exc import IntegrityError

            if not isinstance(exc, IntegrityError):
                raise
            s.rollback()
            return 0
        return len(new)


# --- review -------------------------------------------------------------------------------------


def _view(v: CanonicalValue) -> ValueView:
    assert v.id is not None
    return ValueView(v.id, v.title, v.description, tuple(v.policies), v.archived)


def list_for_review(
    engine: Engine,
    *,
    deliberation_id: int,
    context_id: int | None = None,
    include_archived: bool = True,
) -> list[HypothesisView]:
    """Hypotheses with both values, story and votes per choice, grouped by context."""
    with session_scope(engine) as s:
        rows = queries.list_review_hypotheses(
            s,
            deliberation_id=deliberation_id,
            context_id=context_id,
            include_archived=include_archived,
        )
        values = {
            v.id: v
            for v in queries.list_canonical_values(
                s, deliberation_id=deliberation_id, include_archived=True
            )
        }
        contexts = {
            c.id: c.text
            for c in queries.list_contexts(
                s, deliberation_id=deliberation_id, include_archived=True
            )
        }
        votes = queries.count_wiser_votes_by_choice(s, deliberation_id=deliberation_id)
    out = []
    for h in rows:
        assert h.id is not None
        counts = votes.get((h.from_value_id, h.to_value_id, h.context_id), {})
        out.append(
            HypothesisView(
                id=h.id,
                context_id=h.context_id,
                context_text=contexts.get(h.context_id, ""),
                from_value=_view(values[h.from_value_id]),
                to_value=_view(values[h.to_value_id]),
                story=h.story,
                origin=h.origin,
                archived=h.archived,
                votes={c: counts.get(c, 0) for c in CHOICES},
            )
        )
    return out


def list_contexts(engine: Engine, *, deliberation_id: int) -> list[tuple[int, str]]:
    """(id, text) of the live contexts of a deliberation."""
    with session_scope(engine) as s:
        return [
            (c.id, c.text)
            for c in queries.list_contexts(s, deliberation_id=deliberation_id)
            if c.id is not None
        ]


def list_value_options(engine: Engine, *, deliberation_id: int) -> list[tuple[int, str]]:
    """(id, title) of the live canonical values of a deliberation."""
    with session_scope(engine) as s:
        return [
            (v.id, v.title)
            for v in queries.list_canonical_values(s, deliberation_id=deliberation_id)
            if v.id is not None
        ]


def _clean_story(story: str) -> str:
    text = story.strip()
    if not text:
        raise HypothesisError("Write a story: it is what participants judge.")
    if len(text) > STORY_MAX_CHARS:
        raise HypothesisError(f"Keep the story under {STORY_MAX_CHARS} characters.")
    return text


def _owned(session: Session, deliberation_id: int, hypothesis_id: int) -> Hypothesis:
    try:
        h = queries.get_hypothesis(session, hypothesis_id=hypothesis_id)
    except queries.NotFound:
        raise HypothesisError("This hypothesis no longer exists; reload the page.") from None
    if h.deliberation_id != deliberation_id:
        raise HypothesisError("This hypothesis belongs to another deliberation.")
    return h


def edit_story(engine: Engine, *, deliberation_id: int, hypothesis_id: int, story: str) -> None:
    """Replace a hypothesis's story (its votes stay)."""
    text = _clean_story(story)
    with session_scope(engine) as s:
        _owned(s, deliberation_id, hypothesis_id)
        queries.update_hypothesis(s, hypothesis_id=hypothesis_id, story=text)


def set_archived(
    engine: Engine, *, deliberation_id: int, hypothesis_id: int, archived: bool
) -> None:
    """Archive (participants stop seeing it) or restore a hypothesis."""
    with session_scope(engine) as s:
        _owned(s, deliberation_id, hypothesis_id)
        queries.update_hypothesis(s, hypothesis_id=hypothesis_id, archived=archived)


def add_hypothesis(
    engine: Engine,
    *,
    deliberation_id: int,
    from_value_id: int,
    to_value_id: int,
    context_id: int,
    story: str,
) -> int:
    """A facilitator's own hypothesis "`to` is wiser than `from` in the context" (origin
    "manual"); returns its id. Refuses a (from, to, context) that exists already."""
    text = _clean_story(story)
    if from_value_id == to_value_id:
        raise HypothesisError("Pick two different values.")
    with session_scope(engine) as s:
        for value_id in (from_value_id, to_value_id):
            try:
                v = queries.get_canonical_value(s, value_id=value_id)
            except queries.NotFound:
                v = None
            if v is None or v.deliberation_id != deliberation_id or v.archived:
                raise HypothesisError(f"Value {value_id} is not a live value of this study.")
        c = s.get(Context, context_id)
        if c is None or c.deliberation_id != deliberation_id or c.archived:
            raise HypothesisError("Pick a live context of this study.")
        try:
            row = queries.create_hypothesis(
                s,
                deliberation_id=deliberation_id,
                from_value_id=from_value_id,
                to_value_id=to_value_id,
                context_id=context_id,
                story=text,
                origin="manual",
            )
        except queries.Conflict:
            raise HypothesisError(
                "This hypothesis exists already in this context; edit its story instead."
            ) from None
        assert row.id is not None
        return row.id
