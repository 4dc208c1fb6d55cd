"""The facilitator console's logic, free of Streamlit.

What lives here:

- `ConsoleError`: a facilitator's mistake, with a message fit to show as is.
- Deliberations: `validate_slug`, `clean_settings`, `create_deliberation`, `update_deliberation`,
  `set_open`, `duplicate_deliberation`, `list_deliberations`, `get_deliberation`.
- Questions and contexts: `clean_context` (must start with "When"), `question_board`,
  `add_question`, `edit_question`, `set_question_archived`, `add_context`, `edit_context`,
  `set_context_archived`, `set_question_contexts`.
- The dashboard: pure helpers (`step_funnel`, `median_minutes_per_step`, `price_for`,
  `estimate_cost`, `summarise_ledger`) and `build_dashboard`, which reads the database once and
  returns plain dataclasses. Token and cost totals are sums of the ledger (`LLMCall`) rows.
- Browsing: `search_interviews`, `interview_detail` (transcript and card versions with their
  origin), `search_cards`, and the flag/archive marks.
- Accounts: `change_password`, `create_facilitator`, `list_accounts`.

Pages check the facilitator's login before calling any of these.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from db import queries
from db.engine import session_scope
from db.models import STEPS, Context, Deliberation, Question, utcnow
from elicit import auth

# --- errors and labels ------------------------------------------------------------------------


class ConsoleError(ValueError):
    """A facilitator's input cannot be used; the message says why and what to do."""


FRAMINGS: dict[str, str] = {
    "ai": "How the AI should respond (default)",
    "personal": "What I attend to (personal)",
}

STEP_LABELS: dict[str, str] = {
    "consent": "Consent",
    "question": "Question",
    "interview": "Interview",
    "peers": "Peer values",
    "wiser": "Wiser-than votes",
    "landed": "Where my value landed",
    "survey": "Survey",
    "finished": "Finished",
}

ORIGIN_LABELS: dict[str, str] = {
    "llm": "LLM articulation",
    "participant": "Participant edit",
    "form": "Guided form",
    "import": "Imported",
}

_MARKDOWN_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def escape_markdown(text: str) -> str:
    """Text with every ASCII punctuation character backslash-escaped, so a Markdown renderer
    shows it literally (no links, images, emphasis, colour directives or maths).

    >>> print(escape_markdown("**hi** [x](http://e)"))
    \\*\\*hi\\*\\* \\[x\\]\\(http\\:\\/\\/e\\)
    """
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)


# --- deliberations ----------------------------------------------------------------------------

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
INVITE_RE = re.compile(r"^[A-Za-z0-9_-]+$")
SETTING_NAMES = queries.DELIBERATION_FIELDS


def validate_slug(slug: str) -> str:
    """The slug, stripped, or `ConsoleError` saying what a slug may contain."""
    slug = (slug or "").strip()
    if not slug:
        raise ConsoleError(
            "Give the deliberation a slug: the short name in its link, e.g. ai-and-parenting."
        )
    if len(slug) > 64:
        raise ConsoleError(f"The slug is {len(slug)} characters long; use at most 64.")
    if not SLUG_RE.match(slug):
        raise ConsoleError(
            f"The slug {slug!r} may contain only lowercase letters (a-z), digits and hyphens, "
            "and must start and end with a letter or digit, e.g. ai-and-parenting."
        )
    return slug


def _text(value: Any, name: str, *, limit: int, required: bool = False) -> str:
    text = str(value or "").strip()
    if required and not text:
        raise ConsoleError(f"The {name} cannot be empty.")
    if len(text) > limit:
        raise ConsoleError(f"The {name} is {len(text)} characters long; use at most {limit}.")
    return text


def _whole(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ConsoleError(f"The {name} must be a whole number.")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConsoleError(f"The {name} must be a whole number.") from None
    if not low <= number <= high:
        raise ConsoleError(f"The {name} must be between {low} and {high}.")
    return number


def clean_settings(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Check and normalise deliberation settings (any subset of `SETTING_NAMES`).

    Blank invite codes and completion URLs become None (no invite code, no redirect).
    """
    unknown = set(fields) - set(SETTING_NAMES)
    if unknown:
        raise ConsoleError(f"Unknown settings: {', '.join(sorted(unknown))}.")
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "title":
            out[name] = _text(value, "title", limit=200, required=True)
        elif name == "topic":
            out[name] = _text(value, "topic", limit=2000)
        elif name == "welcome_text":
            out[name] = _text(value, "welcome text", limit=20_000)
        elif name == "value_framing":
            if value not in FRAMINGS:
                raise ConsoleError("The value framing must be 'ai' or 'personal'.")
            out[name] = value
        elif name == "questions_per_participant":
            out[name] = _whole(value, "number of questions per participant", 1, 10)
        elif name == "stories_per_participant":
            out[name] = _whole(value, "number of stories per participant", 1, 20)
        elif name == "peer_values_per_participant":
            out[name] = _whole(value, "number of peer values per participant", 0, 20)
        elif name == "invite_code":
            code = _text(value, "invite code", limit=64)
            if code and not INVITE_RE.match(code):
                raise ConsoleError(
                    "The invite code may contain only letters, digits, hyphens and underscores."
                )
            out[name] = code or None
        elif name == "completion_url":
            url = _text(value, "panel completion URL", limit=500)
            if url and not re.match(r"^https?://[^\s/]+\S*$", url):
                raise ConsoleError(
                    "The panel completion URL must be a full web address starting with "
                    "https:// (or http://), e.g. https://app.prolific.com/submissions/complete?cc=XXXX."
                )
            out[name] = url or None
        elif name == "languages":
            out[name] = _text(value, "languages", limit=100) or "en"
        elif name == "is_open":
            out[name] = bool(value)
    return out


@dataclass(frozen=True)
class DeliberationRow:
    """A deliberation with the counts the console lists beside it."""

    deliberation: Deliberation
    questions: int
    participants: int


def list_deliberations(engine: Engine) -> list[DeliberationRow]:
    """Every deliberation, newest first, with its question and participant counts."""
    with session_scope(engine) as s:
        rows = []
        for d in queries.list_deliberations(s):
            assert d.id is not None
            rows.append(
                DeliberationRow(
                    deliberation=d,
                    questions=len(queries.list_questions(s, deliberation_id=d.id)),
                    participants=queries.count_participants(s, deliberation_id=d.id),
                )
            )
        return rows


def get_deliberation(
    engine: Engine, *, slug: str | None = None, id: int | None = None
) -> Deliberation:
    with session_scope(engine) as s:
        return queries.get_deliberation(s, slug=slug, id=id)


def create_deliberation(engine: Engine, *, slug: str, title: str, **settings: Any) -> Deliberation:
    """Create a deliberation (closed unless `is_open=True`); `ConsoleError` for bad input or a
    slug already in use."""
    slug = validate_slug(slug)
    cleaned = clean_settings({"title": title, **settings})
    cleaned.setdefault("is_open", False)
    with session_scope(engine) as s:
        try:
            return queries.create_deliberation(s, slug=slug, **cleaned)
        except queries.Conflict:
            raise ConsoleError(
                f"The slug {slug!r} is already used by another deliberation; choose another."
            ) from None


def update_deliberation(engine: Engine, *, deliberation_id: int, **settings: Any) -> Deliberation:
    cleaned = clean_settings(settings)
    with session_scope(engine) as s:
        return queries.update_deliberation(s, deliberation_id=deliberation_id, **cleaned)


def set_open(engine: Engine, *, deliberation_id: int, is_open: bool) -> Deliberation:
    """Open a deliberation to participants, or close it."""
    return update_deliberation(engine, deliberation_id=deliberation_id, is_open=is_open)


def duplicate_deliberation(
    engine: Engine, *, source_id: int, slug: str, title: str | None = None
) -> Deliberation:
    """A closed copy with the same settings, questions and contexts; no participants."""
    slug = validate_slug(slug)
    with session_scope(engine) as s:
        source = queries.get_deliberation(s, id=source_id)
        new_title = _text(title or f"{source.title} (copy)", "title", limit=200, required=True)
        try:
            return queries.copy_deliberation(s, source_id=source_id, slug=slug, title=new_title)
        except queries.Conflict:
            raise ConsoleError(
                f"The slug {slug!r} is already used by another deliberation; choose another."
            ) from None


# --- questions and contexts -----------------------------------------------------------------


def clean_context(text: str) -> str:
    """A context phrase with its whitespace collapsed and "When" capitalised; it must start
    with "When" and say something after it."""
    text = " ".join((text or "").split())
    if not re.match(r"^when\b", text, re.IGNORECASE):
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ConsoleError(
            f'A context is a situation that starts with "When", e.g. "When the user is in '
            f'distress". This one does not: "{shown}".'
        )
    if len(text.split()) < 2:
        raise ConsoleError(
            'Say what the situation is after "When", e.g. "When the user is grieving".'
        )
    if len(text) > 500:
        raise ConsoleError(f"The context is {len(text)} characters long; use at most 500.")
    return "When" + text[4:]


def clean_question(title: str, text: str) -> tuple[str, str]:
    return (
        _text(title, "question's title", limit=200, required=True),
        _text(text, "question's text", limit=4000, required=True),
    )


@dataclass(frozen=True)
class QuestionView:
    id: int
    title: str
    text: str
    position: int
    archived: bool
    context_ids: tuple[int, ...]


@dataclass(frozen=True)
class ContextView:
    id: int
    text: str
    archived: bool


@dataclass(frozen=True)
class QuestionBoard:
    """A deliberation's questions (with the ids of their contexts) and contexts."""

    questions: list[QuestionView]
    contexts: list[ContextView]

    def context_text(self, context_id: int) -> str:
        return next((c.text for c in self.contexts if c.id == context_id), "")


def question_board(engine: Engine, *, deliberation_id: int) -> QuestionBoard:
    """Every question and context of a deliberation, archived ones included."""
    with session_scope(engine) as s:
        links = queries.list_question_links(s, deliberation_id=deliberation_id)
        questions = [
            QuestionView(
                id=q.id,
                title=q.title,
                text=q.text,
                position=q.position,
                archived=q.archived,
                context_ids=tuple(links.get(q.id, ())),
            )
            for q in queries.list_questions(
                s, deliberation_id=deliberation_id, include_archived=True
            )
            if q.id is not None
        ]
        contexts = [
            ContextView(id=c.id, text=c.text, archived=c.archived)
            for c in queries.list_contexts(
                s, deliberation_id=deliberation_id, include_archived=True
            )
            if c.id is not None
        ]
        return QuestionBoard(questions=questions, contexts=contexts)


def _question_in(s: Any, deliberation_id: int, question_id: int) -> Question:
    q = queries.get_question(s, question_id=question_id)
    if q.deliberation_id != deliberation_id:
        raise queries.NotFound(f"no question {question_id} in this deliberation")
    return q


def _context_in(s: Any, deliberation_id: int, context_id: int) -> Context:
    c = s.get(Context, context_id)
    if c is None or c.deliberation_id != deliberation_id:
        raise queries.NotFound(f"no context {context_id} in this deliberation")
    return c


def add_question(
    engine: Engine,
    *,
    deliberation_id: int,
    title: str,
    text: str,
    contexts: Sequence[str] = (),
    context_ids: Iterable[int] = (),
) -> int:
    """Add a question with new context phrases (created, or found when they exist) and
    existing contexts by id. Everything is checked before anything is written."""
    title, text = clean_question(title, text)
    phrases = list(dict.fromkeys(clean_context(c) for c in contexts if c and c.strip()))
    with session_scope(engine) as s:
        queries.get_deliberation(s, id=deliberation_id)
        known = [_context_in(s, deliberation_id, cid).id for cid in context_ids]
        q = queries.create_question(s, deliberation_id=deliberation_id, title=title, text=text)
        assert q.id is not None
        for phrase in phrases:
            c = queries.get_or_create_context(s, deliberation_id=deliberation_id, text=phrase)
            known.append(c.id)
        for cid in dict.fromkeys(known):
            assert cid is not None
            queries.link_context(s, question_id=q.id, context_id=cid)
        return q.id


def edit_question(
    engine: Engine, *, deliberation_id: int, question_id: int, title: str, text: str
) -> None:
    title, text = clean_question(title, text)
    with session_scope(engine) as s:
        _question_in(s, deliberation_id, question_id)
        queries.update_question(s, question_id=question_id, title=title, text=text)


def set_question_archived(
    engine: Engine, *, deliberation_id: int, question_id: int, archived: bool
) -> None:
    with session_scope(engine) as s:
        _question_in(s, deliberation_id, question_id)
        queries.update_question(s, question_id=question_id, archived=archived)


def add_context(
    engine: Engine, *, deliberation_id: int, text: str, question_ids: Iterable[int] = ()
) -> int:
    """Add a context (or find the same phrase) and link it to the given questions."""
    phrase = clean_context(text)
    with session_scope(engine) as s:
        qids = [_question_in(s, deliberation_id, qid).id for qid in question_ids]
        c = queries.get_or_create_context(s, deliberation_id=deliberation_id, text=phrase)
        assert c.id is not None
        for qid in qids:
            assert qid is not None
            queries.link_context(s, question_id=qid, context_id=c.id)
        return c.id


def edit_context(engine: Engine, *, deliberation_id: int, context_id: int, text: str) -> None:
    phrase = clean_context(text)
    with session_scope(engine) as s:
        _context_in(s, deliberation_id, context_id)
        try:
            queries.update_context(s, context_id=context_id, text=phrase)
        except queries.Conflict:
            raise ConsoleError(f'The context "{phrase}" already exists here.') from None


def set_context_archived(
    engine: Engine, *, deliberation_id: int, context_id: int, archived: bool
) -> None:
    with session_scope(engine) as s:
        _context_in(s, deliberation_id, context_id)
        queries.update_context(s, context_id=context_id, archived=archived)


def set_question_contexts(
    engine: Engine, *, deliberation_id: int, question_id: int, context_ids: Iterable[int]
) -> None:
    """Link exactly these contexts to the question (links to others are removed)."""
    wanted = set(context_ids)
    with session_scope(engine) as s:
        _question_in(s, deliberation_id, question_id)
        for cid in wanted:
            _context_in(s, deliberation_id, cid)
        current = set(
            queries.list_question_links(s, deliberation_id=deliberation_id).get(question_id, ())
        )
        for cid in sorted(current - wanted):
            queries.unlink_context(s, question_id=question_id, context_id=cid)
        for cid in sorted(wanted - current):
            queries.link_context(s, question_id=question_id, context_id=cid)


# --- the dashboard: pure helpers ---------------------------------------------------------------

Prices = Mapping[str, tuple[float, float, float]]


@dataclass(frozen=True)
class StepStat:
    """One step of the participant journey on the dashboard."""

    step: str
    label: str
    reached: int  # participants at this step or past it
    current: int  # participants whose current step this is
    median_minutes: float | None  # median time spent in the step (None: nobody has left it)
    timed: int  # participants the median is computed from


def step_funnel(steps: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Step -> (participants at or past it, participants currently at it), in journey order.

    A participant counts as having reached every step up to their current one, skipped
    steps included (the question step is skipped when there is only one question), so the
    funnel never grows. Unknown step names count nowhere.

    >>> step_funnel(["consent", "interview", "finished"])["question"]
    (2, 0)
    """
    index = {name: i for i, name in enumerate(STEPS)}
    current = [0] * len(STEPS)
    for step in steps:
        if step in index:
            current[index[step]] += 1
    out: dict[str, tuple[int, int]] = {}
    for i, name in enumerate(STEPS):
        out[name] = (sum(current[i:]), current[i])
    return out


def _parse_time(value: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def median_minutes_per_step(
    step_times: Iterable[Mapping[str, str]],
) -> dict[str, tuple[float | None, int]]:
    """Step -> (median minutes spent in it, how many participants that is computed from).

    Time in a step is from entering it to entering the next step the participant reached
    (in journey order). The last step has no duration; unreadable times and negative spans
    are ignored.

    >>> t = {"consent": "2024-01-01T10:00:00+00:00", "interview": "2024-01-01T10:03:00+00:00",
    ...      "peers": "2024-01-01T10:13:00+00:00"}
    >>> median_minutes_per_step([t])["interview"], median_minutes_per_step([t])["question"]
    ((10.0, 1), (None, 0))
    """
    spans: dict[str, list[float]] = {name: [] for name in STEPS}
    for times in step_times:
        entered = [
            (name, when)
            for name in STEPS
            if isinstance(times.get(name), str) and (when := _parse_time(times[name])) is not None
        ]
        for (name, start), (_, end) in zip(entered, entered[1:], strict=False):
            minutes = (end - start).total_seconds() / 60
            if minutes >= 0:
                spans[name].append(minutes)
    return {
        name: (statistics.median(values) if values else None, len(values))
        for name, values in spans.items()
    }


def price_for(model: str, prices: Prices) -> tuple[float, float, float] | None:
    """The (input, cached input, output) USD per 1M tokens for a model: an exact entry, else the
    longest entry the model name starts with (dated snapshots such as gpt-4o-2024-08-06), after
    dropping a provider prefix ("openai/gpt-4o"). None when the table has no price.

    >>> price_for("gpt-4o-mini-2024-07-18", {"gpt-4o": (2.5, 1.25, 10), "gpt-4o-mini": (1, 1, 1)})
    (1, 1, 1)
    """
    if model in prices:
        return prices[model]
    name = model.rsplit("/", 1)[-1]
    if name in prices:
        return prices[name]
    matches = [key for key in prices if name.startswith(key + "-")]
    return prices[max(matches, key=len)] if matches else None


def estimate_cost(
    model: str, input_tokens: int, cached_input_tokens: int, output_tokens: int, prices: Prices
) -> float | None:
    """Estimated USD for token counts of one model; None when the model has no price.

    `input_tokens` includes the cached ones (as OpenAI reports `prompt_tokens`), so uncached
    input is charged at the input price and cached input at the cached price.

    >>> estimate_cost("gpt-4o", 1_000_000, 200_000, 100_000, {"gpt-4o": (2.5, 1.25, 10.0)})
    3.25
    """
    price = price_for(model, prices)
    if price is None:
        return None
    uncached = max(input_tokens - cached_input_tokens, 0)
    return (
        uncached * price[0] + cached_input_tokens * price[1] + output_tokens * price[2]
    ) / 1_000_000


@dataclass(frozen=True)
class UsageRow:
    """Ledger sums for one (purpose, model)."""

    purpose: str
    model: str
    calls: int
    errors: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: float | None


@dataclass(frozen=True)
class LedgerSummary:
    """LLM calls, tokens and estimated cost: sums of the ledger rows in scope."""

    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_models: tuple[str, ...] = ()
    rows: tuple[UsageRow, ...] = ()


def summarise_ledger(sums: Iterable[Mapping[str, Any]], prices: Prices) -> LedgerSummary:
    """Totals over `queries.sum_llm_usage` rows; models without a price add no cost and are
    listed in `unpriced_models`."""
    rows = []
    for r in sums:
        cost = estimate_cost(
            r["model"], r["input_tokens"], r["cached_input_tokens"], r["output_tokens"], prices
        )
        rows.append(
            UsageRow(
                purpose=r["purpose"],
                model=r["model"],
                calls=r["calls"],
                errors=r["errors"],
                input_tokens=r["input_tokens"],
                cached_input_tokens=r["cached_input_tokens"],
                output_tokens=r["output_tokens"],
                cost_usd=cost,
            )
        )
    return LedgerSummary(
        calls=sum(r.calls for r in rows),
        errors=sum(r.errors for r in rows),
        input_tokens=sum(r.input_tokens for r in rows),
        cached_input_tokens=sum(r.cached_input_tokens for r in rows),
        output_tokens=sum(r.output_tokens for r in rows),
        cost_usd=sum(r.cost_usd for r in rows if r.cost_usd is not None),
        unpriced_models=tuple(sorted({r.model for r in rows if r.cost_usd is None})),
        rows=tuple(rows),
    )


@dataclass(frozen=True)
class Dashboard:
    """Everything the live dashboard shows, computed in one read."""

    deliberation_id: int
    slug: str
    title: str
    is_open: bool
    participants: int
    finished: int
    completion_rate: float | None  # finished / participants; None with no participants
    steps: tuple[StepStat, ...]
    counts: dict[str, int]
    ledger: LedgerSummary
    ledger_scope: str  # "deliberation" | "all"
    computed_at: datetime = field(default_factory=utcnow)


def build_dashboard(
    engine: Engine, *, deliberation_id: int, prices: Prices, whole_ledger: bool = False
) -> Dashboard:
    """The dashboard of one deliberation; the ledger part covers its calls, or every call of
    the deployment with `whole_ledger=True`."""
    with session_scope(engine) as s:
        d = queries.get_deliberation(s, id=deliberation_id)
        progress = queries.list_participant_progress(s, deliberation_id=deliberation_id)
        counts = queries.count_deliberation_rows(s, deliberation_id=deliberation_id)
        sums = queries.sum_llm_usage(s, deliberation_id=None if whole_ledger else deliberation_id)
    funnel = step_funnel(step for step, _, _ in progress)
    medians = median_minutes_per_step(times for _, times, _ in progress)
    steps = tuple(
        StepStat(
            step=name,
            label=STEP_LABELS.get(name, name),
            reached=funnel[name][0],
            current=funnel[name][1],
            median_minutes=medians[name][0],
            timed=medians[name][1],
        )
        for name in STEPS
    )
    total = len(progress)
    finished = sum(1 for _, _, done in progress if done)
    return Dashboard(
        deliberation_id=deliberation_id,
        slug=d.slug,
        title=d.title,
        is_open=d.is_open,
        participants=total,
        finished=finished,
        completion_rate=finished / total if total else None,
        steps=steps,
        counts=counts,
        ledger=summarise_ledger(sums, prices),
        ledger_scope="all" if whole_ledger else "deliberation",
    )


# --- interviews and cards ---------------------------------------------------------------------

ROLE_LABELS = {
    "user": "Participant",
    "assistant": "Interviewer",
    "tool": "Tool",
    "notice": "Notice",
}


def search_interviews(
    engine: Engine,
    *,
    deliberation_id: int,
    search: str = "",
    flagged_only: bool = False,
    include_archived: bool = True,
) -> list[dict[str, Any]]:
    """Interviews (newest first) whose messages contain `search` (all when blank)."""
    with session_scope(engine) as s:
        return queries.list_interview_rows(
            s,
            deliberation_id=deliberation_id,
            search=search,
            flagged_only=flagged_only,
            include_archived=include_archived,
        )


@dataclass(frozen=True)
class TranscriptLine:
    seq: int
    role: str
    speaker: str
    text: str  # the message, plus any tool call's arguments as JSON text
    created_at: datetime


@dataclass(frozen=True)
class VersionView:
    version: int
    origin: str
    origin_label: str
    title: str
    description: str
    policies: tuple[str, ...]
    changed: tuple[str, ...]  # fields that differ from the previous version
    created_at: datetime


@dataclass(frozen=True)
class CardView:
    id: int
    title: str
    description: str
    policies: tuple[str, ...]
    submitted: bool
    flagged: bool
    archived: bool
    canonical_value_id: int | None
    versions: tuple[VersionView, ...]


@dataclass(frozen=True)
class InterviewDetail:
    id: int
    participant_id: int
    question_id: int | None
    mode: str
    status: str
    flagged: bool
    archived: bool
    participant_flagged: bool
    transcript: tuple[TranscriptLine, ...]
    cards: tuple[CardView, ...]


def _line(m: Any) -> TranscriptLine:
    text = m.content or ""
    for call in m.tool_calls or []:
        fn = call.get("function", call) if isinstance(call, Mapping) else {}
        name = fn.get("name", "tool") if isinstance(fn, Mapping) else "tool"
        args = fn.get("arguments", "") if isinstance(fn, Mapping) else ""
        if not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False)
        text += ("\n" if text else "") + f"[tool call {name}] {args}"
    return TranscriptLine(
        seq=m.seq,
        role=m.role,
        speaker=ROLE_LABELS.get(m.role, m.role),
        text=text,
        created_at=m.created_at,
    )


def _versions(versions: Sequence[Any]) -> tuple[VersionView, ...]:
    out = []
    previous = None
    for v in versions:
        changed: tuple[str, ...] = ()
        if previous is not None:
            changed = tuple(
                name
                for name in ("title", "description", "policies")
                if getattr(v, name) != getattr(previous, name)
            )
        out.append(
            VersionView(
                version=v.version,
                origin=v.origin,
                origin_label=ORIGIN_LABELS.get(v.origin, v.origin),
                title=v.title,
                description=v.description,
                policies=tuple(v.policies or ()),
                changed=changed,
                created_at=v.created_at,
            )
        )
        previous = v
    return tuple(out)


def interview_detail(engine: Engine, *, deliberation_id: int, interview_id: int) -> InterviewDetail:
    """An interview's transcript and its cards with every version and where it came from."""
    with session_scope(engine) as s:
        interview, messages = queries.list_transcript(
            s, deliberation_id=deliberation_id, interview_id=interview_id
        )
        participant = queries.find_participant(
            s, deliberation_id=deliberation_id, participant_id=interview.participant_id
        )
        cards = queries.list_interview_cards(
            s, deliberation_id=deliberation_id, interview_id=interview_id
        )
        assert interview.id is not None
        return InterviewDetail(
            id=interview.id,
            participant_id=interview.participant_id,
            question_id=interview.question_id,
            mode=interview.mode,
            status=interview.status,
            flagged=interview.flagged,
            archived=interview.archived,
            participant_flagged=bool(participant and participant.flagged),
            transcript=tuple(_line(m) for m in messages),
            cards=tuple(
                CardView(
                    id=card.id,
                    title=card.title,
                    description=card.description,
                    policies=tuple(card.policies or ()),
                    submitted=card.submitted_at is not None,
                    flagged=card.flagged,
                    archived=card.archived,
                    canonical_value_id=card.canonical_value_id,
                    versions=_versions(versions),
                )
                for card, versions in cards
                if card.id is not None
            ),
        )


def search_cards(
    engine: Engine,
    *,
    deliberation_id: int,
    search: str = "",
    flagged_only: bool = False,
    include_archived: bool = True,
) -> list[dict[str, Any]]:
    """Cards (newest first) whose title, description or detail contain `search`."""
    with session_scope(engine) as s:
        rows = queries.list_card_rows(
            s,
            deliberation_id=deliberation_id,
            search=search,
            flagged_only=flagged_only,
            include_archived=include_archived,
        )
        return [
            {
                "card_id": c.id,
                "participant_id": c.participant_id,
                "interview_id": c.interview_id,
                "title": c.title,
                "description": c.description,
                "policies": "\n".join(c.policies or ()),
                "submitted": c.submitted_at is not None,
                "canonical_value_id": c.canonical_value_id,
                "flagged": c.flagged,
                "archived": c.archived,
            }
            for c in rows
        ]


def mark_interview(
    engine: Engine,
    *,
    deliberation_id: int,
    interview_id: int,
    flagged: bool | None = None,
    archived: bool | None = None,
) -> None:
    """Flag/unflag or archive/restore an interview."""
    with session_scope(engine) as s:
        queries.set_interview_flags(
            s,
            deliberation_id=deliberation_id,
            interview_id=interview_id,
            flagged=flagged,
            archived=archived,
        )


def mark_card(
    engine: Engine,
    *,
    deliberation_id: int,
    card_id: int,
    flagged: bool | None = None,
    archived: bool | None = None,
) -> None:
    """Flag/unflag or archive/restore a values card."""
    with session_scope(engine) as s:
        queries.set_card_flags(
            s, deliberation_id=deliberation_id, card_id=card_id, flagged=flagged, archived=archived
        )


def mark_participant(
    engine: Engine, *, deliberation_id: int, participant_id: int, flagged: bool
) -> None:
    """Flag or unflag a participant."""
    with session_scope(engine) as s:
        queries.set_participant_flag(
            s, deliberation_id=deliberation_id, participant_id=participant_id, flagged=flagged
        )


# --- accounts -------------------------------------------------------------------------------


def change_password(engine: Engine, *, token: str, current: str, new: str, repeat: str) -> None:
    """Change the password of the facilitator this console session belongs to, after checking
    the current one; their other sessions end."""
    if new != repeat:
        raise ConsoleError("The new passwords do not match.")
    if len(new) < auth.MIN_PASSWORD:
        raise ConsoleError(f"The new password must be at least {auth.MIN_PASSWORD} characters.")
    with session_scope(engine) as s:
        fac = queries.get_facilitator_for_session(s, token=token)
        if fac is None or fac.id is None:
            raise ConsoleError("Your session has ended; log in again.")
        if not auth.verify_password(current, fac.password_hash):
            raise ConsoleError("The current password is wrong.")
        queries.update_facilitator_password(
            s, facilitator_id=fac.id, password_hash=auth.hash_password(new)
        )
        queries.delete_other_facilitator_sessions(s, facilitator_id=fac.id, keep_token=token)


def create_facilitator(engine: Engine, *, username: str, password: str, repeat: str) -> int:
    """Create another facilitator account."""
    if password != repeat:
        raise ConsoleError("The passwords do not match.")
    try:
        return auth.create_account(engine, username=username, password=password)
    except auth.AuthError as exc:
        message = str(exc)
        raise ConsoleError(message[:1].upper() + message[1:] + ".") from None


@dataclass(frozen=True)
class AccountRow:
    username: str
    created_at: datetime
    last_login_at: datetime | None


def list_accounts(engine: Engine) -> list[AccountRow]:
    with session_scope(engine) as s:
        return [
            AccountRow(f.username, f.created_at, f.last_login_at)
            for f in queries.list_facilitators(s)
        ]
