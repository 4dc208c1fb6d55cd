"""The participant journey as plain functions: entry, consent, question, peers, wiser-than votes,
where the value landed, survey, finish (DESIGN.md 3). The interview itself is `elicit.interview`.

Each function takes the engine and a participant id (resolved from the resume token by `visit`
or created by `join`), opens short sessions, and returns frozen views the page renders. Errors a
participant may see are `JourneyError`s whose text is safe to show.

Steps only move forward (`db.models.STEPS`); `step_times[step]` is when a step was first entered.
Identity: a resume token is 256 random bits (`secrets.token_urlsafe(32)`); only its hash is
stored, and it opens only its own deliberation's participant. Panel entries (Prolific) are one
participant per PID per deliberation, enforced by a unique constraint: the same PID again
resumes that participant, even when two requests race.
"""

from __future__ import annotations

import hmac
import math
import random
import re
import secrets
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy.engine import Engine

from db import queries
from db.engine import session_scope
from db.models import CHOICES, CanonicalValue, Hypothesis, Participant, utcnow
from elicit import interview as interview_engine
from graph.types import EdgeStats, Vote

TOKEN_BYTES = 32  # 256 bits
PANEL_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
_PANEL_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
COMMENT_MAX_CHARS = 2000
SURVEY_TEXT_MAX_CHARS = 4000

SIMULATED_CHANNEL = "simulated"  # entry channel of pilot personas (elicit.simulate)
SURVEY_ITEMS: tuple[tuple[str, str], ...] = (
    ("expressed", "The values I submitted express what I care about."),
    ("fair", "The final graph is fair, even if my value isn't the wisest."),
    ("clarified", "The process clarified my thinking."),
    ("trust", "I trust this process to produce a wise AI."),
)
SURVEY_COMMENT = "comment"
CHOICE_LABELS: dict[str, str] = {
    "upgrade": "Yes, they became wiser",
    "no_upgrade": "No, they did not become wiser",
    "not_sure": "I'm not sure",
}


# --- errors -------------------------------------------------------------------------------------


class JourneyError(Exception):
    """Something a participant asked for cannot happen; `str(error)` is safe to show them."""


class DeliberationNotFound(JourneyError):
    pass


class DeliberationClosed(JourneyError):
    pass


class InviteRequired(JourneyError):
    pass


class StepError(JourneyError):
    """The action belongs to another step of the journey."""


class AlreadyVoted(JourneyError):
    """The database refused a second judgement of the same pair in the same context."""


# --- views --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliberationInfo:
    id: int
    slug: str
    title: str
    topic: str
    welcome_text: str
    value_framing: str
    is_open: bool
    needs_invite: bool
    n_questions: int


@dataclass(frozen=True)
class PanelIds:
    """A panel entry's ids (Prolific: PROLIFIC_PID, STUDY_ID, SESSION_ID)."""

    pid: str
    study_id: str | None = None
    session_id: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> PanelIds | None:
        """The panel ids in a link's query parameters; None when there is no PID.

        Raises `JourneyError` when the ids are malformed (e.g. the panel's placeholder
        `{{%PROLIFIC_PID%}}` was not filled in), so nobody is admitted under a junk id."""

        def one(name: str) -> str | None:
            raw = params.get(name)
            if isinstance(raw, list):
                raw = raw[0] if raw else None
            value = str(raw).strip() if raw is not None else ""
            if not value:
                return None
            if not _PANEL_ID.match(value):
                raise JourneyError(
                    "This study link is not complete. Please go back to the study page and "
                    "open the link from there."
                )
            return value

        pid = one("PROLIFIC_PID")
        if pid is None:
            return None
        return cls(pid=pid, study_id=one("STUDY_ID"), session_id=one("SESSION_ID"))

    def as_params(self) -> dict[str, str]:
        out = {"PROLIFIC_PID": self.pid}
        if self.study_id:
            out["STUDY_ID"] = self.study_id
        if self.session_id:
            out["SESSION_ID"] = self.session_id
        return out


@dataclass(frozen=True)
class Consent:
    """DESIGN 3.2: share the card text, or only aggregates; and whether training use is allowed."""

    sharing: Literal["publish", "aggregate"] = "publish"
    training: bool = False


@dataclass(frozen=True)
class Visit:
    """Who opened the page: the deliberation, and the participant when one was recognised.

    `token` is the resume token to keep in the URL (a fresh one when a panel PID resumed);
    `bad_token` is set when a resume token was given that opens nothing here."""

    deliberation: DeliberationInfo
    participant_id: int | None = None
    token: str | None = None
    step: str | None = None
    bad_token: bool = False


@dataclass(frozen=True)
class Entry:
    participant_id: int
    token: str
    step: str
    resumed: bool = False


@dataclass(frozen=True)
class ParticipantView:
    participant_id: int
    deliberation_id: int
    step: str
    question_id: int | None
    entry_channel: str
    panel: PanelIds | None
    step_times: dict[str, str]


@dataclass(frozen=True)
class QuestionView:
    id: int
    title: str
    text: str


@dataclass(frozen=True)
class ValueView:
    id: int
    title: str
    description: str
    policies: tuple[str, ...]


@dataclass(frozen=True)
class PeerDraw:
    """Peer values shown to a participant; `draw_id` None when there was nobody to show."""

    draw_id: str | None
    values: tuple[ValueView, ...]
    chosen: tuple[int, ...] = ()


@dataclass(frozen=True)
class WiserItem:
    hypothesis_id: int
    context: str
    story: str
    from_value: ValueView
    to_value: ValueView


@dataclass(frozen=True)
class WiserProgress:
    done: int
    target: int
    item: WiserItem | None

    @property
    def complete(self) -> bool:
        return self.item is None


@dataclass(frozen=True)
class Neighbour:
    value: ValueView
    marked_wiser: int
    marked_not_wiser: int
    marked_unsure: int
    contexts: tuple[str, ...]
    kept: bool


@dataclass(frozen=True)
class Landed:
    """Where the participant's value sits in the current graph."""

    card_title: str
    value: ValueView | None
    contributors: int
    came_from: tuple[Neighbour, ...]  # values people moved FROM to reach this one
    leads_to: tuple[Neighbour, ...]  # values people found wiser than this one
    judged_wiser: int  # votes saying this value is wiser than another
    judged_less_wise: int  # votes saying another value is wiser than this one
    peer_votes: int
    peer_impressions: int


@dataclass(frozen=True)
class Finish:
    participants: int
    values: int
    your_wiser_votes: int
    your_peer_votes: int
    completion_url: str | None
    panel: bool


# --- helpers ------------------------------------------------------------------------------------


def new_token() -> str:
    """A resume token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def resume_link(public_url: str, *, slug: str, token: str) -> str:
    """The link that brings a participant back to where they were (`?d=SLUG&r=TOKEN`)."""
    return f"{public_url.rstrip('/')}/?{urlencode({'d': slug, 'r': token})}"


def completion_link(url: str | None, panel: PanelIds | None) -> str | None:
    """The deliberation's completion URL with the panel ids appended (kept as they are when
    the URL already has them)."""
    if not url:
        return None
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {k for k, _ in query}
    if panel is not None:
        query += [(k, v) for k, v in panel.as_params().items() if k not in present]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _clean_text(text: str | None, *, max_chars: int) -> str:
    raw = (text or "").replace("\r\n", "\n")
    kept = "".join(ch for ch in raw if ch in "\n\t" or unicodedata.category(ch)[0] != "C").strip()
    if len(kept) > max_chars:
        raise JourneyError(f"Please keep this under {max_chars:,} characters.")
    return kept


def _info(s: Any, slug: str) -> DeliberationInfo:
    try:
        d = queries.get_deliberation(s, slug=slug)
    except queries.NotFound:
        raise DeliberationNotFound(
            "We could not find this deliberation. Please check the link you were given."
        ) from None
    assert d.id is not None
    return DeliberationInfo(
        id=d.id,
        slug=d.slug,
        title=d.title,
        topic=d.topic,
        welcome_text=d.welcome_text,
        value_framing=d.value_framing,
        is_open=d.is_open,
        needs_invite=bool(d.invite_code),
        n_questions=len(queries.list_questions(s, deliberation_id=d.id)),
    )


def _invite_ok(expected: str | None, given: str | None) -> bool:
    if not expected:
        return True
    return hmac.compare_digest(
        expected.strip().casefold().encode(), (given or "").strip().casefold().encode()
    )


def _closed() -> DeliberationClosed:
    return DeliberationClosed(
        "This deliberation is closed and no longer takes part. Thank you for your interest."
    )


def _value_view(v: CanonicalValue) -> ValueView:
    assert v.id is not None
    return ValueView(v.id, v.title, v.description, tuple(v.policies))


def _participant(s: Any, participant_id: int) -> Participant:
    try:
        return queries.get_participant(s, participant_id=participant_id)
    except queries.NotFound:
        raise JourneyError("We could not find your answers. Please use your resume link.") from None


# --- entry --------------------------------------------------------------------------------------


def list_open(engine: Engine) -> list[DeliberationInfo]:
    """Open deliberations for the landing page."""
    with session_scope(engine) as s:
        return [_info(s, d.slug) for d in queries.list_deliberations(s) if d.is_open]


def deliberation_info(engine: Engine, *, slug: str) -> DeliberationInfo:
    with session_scope(engine) as s:
        return _info(s, slug)


def visit(
    engine: Engine,
    *,
    slug: str,
    resume_token: str | None = None,
    panel: PanelIds | None = None,
    invite_code: str | None = None,
) -> Visit:
    """Recognise who opened `?d=SLUG`: by resume token (only within this deliberation), else by
    panel PID (a returning PID resumes and gets a fresh token). Nobody is created here: a new
    participant exists only once they consent (`join`).

    Raises `DeliberationNotFound`, or `DeliberationClosed` for a closed deliberation (a
    participant who already finished may still see their last page).
    """
    with session_scope(engine) as s:
        info = _info(s, slug)
        participant: Participant | None = None
        token: str | None = None
        bad_token = False
        if resume_token:
            participant = queries.get_participant_by_token(
                s, deliberation_id=info.id, token=resume_token
            )
            if participant is None:
                bad_token = True
            else:
                token = resume_token
        if participant is None and panel is not None:
            d = queries.get_deliberation(s, id=info.id)
            if _invite_ok(d.invite_code, invite_code):
                participant = queries.get_participant_by_panel_pid(
                    s, deliberation_id=info.id, panel_pid=panel.pid
                )
                if participant is not None and not _panel_matches(participant, panel):
                    participant = None  # a PID alone is not a secret: it must come with its session
                if participant is not None and (info.is_open or participant.step == "finished"):
                    assert participant.id is not None
                    token = new_token()
                    queries.update_participant_token(
                        s, participant_id=participant.id, token_hash=queries.hash_token(token)
                    )
        if participant is None:
            if not info.is_open:
                raise _closed()
            return Visit(info, bad_token=bad_token)
        if not info.is_open and participant.step != "finished":
            raise _closed()
        return Visit(info, participant.id, token, participant.step, bad_token=False)


def join(
    engine: Engine,
    *,
    slug: str,
    consent: Consent,
    invite_code: str | None = None,
    panel: PanelIds | None = None,
    arrived_at: datetime | None = None,
    rng: random.Random | None = None,
    simulated: bool = False,
) -> Entry:
    """Create the participant once they consent, draw the questions they are offered (the
    question step is skipped when there is only one), and issue their resume token.

    ``simulated``: a pilot persona (`elicit.simulate`), entry channel "simulated"; it may join
    a closed deliberation and needs no invite code, since pilots run before launch.

    A panel PID that already has a participant here resumes that participant (also when two
    requests race: the database's unique constraint decides, and the loser re-reads).
    """
    now = utcnow()
    token = new_token()
    with session_scope(engine) as s:
        info = _info(s, slug)
        if not info.is_open and not simulated:
            raise _closed()
        d = queries.get_deliberation(s, id=info.id)
        if not simulated and not _invite_ok(d.invite_code, invite_code):
            raise InviteRequired(
                "Please enter the invite code you were given."
                if not invite_code
                else "That invite code is not right. Please check it and try again."
            )
        if panel is not None:
            existing = queries.get_participant_by_panel_pid(
                s, deliberation_id=info.id, panel_pid=panel.pid
            )
            if existing is not None:
                if not _panel_matches(existing, panel):
                    raise JourneyError(PANEL_TAKEN)
                return _resume_panel(s, existing, token)
        questions = queries.list_questions(s, deliberation_id=info.id)
        if not questions:
            raise JourneyError("This deliberation has no questions yet. Please come back later.")
        offered = _draw_questions(questions, d.questions_per_participant, rng)
        times = {"consent": (arrived_at or now).isoformat()}
        fields: dict[str, Any] = {
            "consent_publish": consent.sharing == "publish",
            "consent_aggregate_only": consent.sharing == "aggregate",
            "consent_training": consent.training,
            "consented_at": now,
            "offered_question_ids": offered,
        }
        if len(offered) == 1:
            step = "interview"
            fields["question_id"] = offered[0]
        else:
            step = "question"
        times[step] = now.isoformat()
        if simulated:
            channel = SIMULATED_CHANNEL
        elif panel is not None:
            channel = "panel"
        elif d.invite_code:
            channel = "invite"
        else:
            channel = "anonymous"
        try:
            p = queries.create_participant(
                s,
                deliberation_id=info.id,
                token_hash=queries.hash_token(token),
                entry_channel=channel,
                panel_pid=panel.pid if panel else None,
                panel_study_id=panel.study_id if panel else None,
                panel_session_id=panel.session_id if panel else None,
                step=step,
                step_times=times,
                **fields,
            )
        except queries.Conflict:
            assert panel is not None  # only the panel PID is unique among these fields
            existing = queries.get_participant_by_panel_pid(
                s, deliberation_id=info.id, panel_pid=panel.pid
            )
            if existing is None:  # a withdrawn participant keeps their PID's place
                raise JourneyError(
                    "This study link has already been used. Please contact the organisers."
                ) from None
            if not _panel_matches(existing, panel):
                raise JourneyError(PANEL_TAKEN) from None
            return _resume_panel(s, existing, token)
        assert p.id is not None
        return Entry(p.id, token, p.step)


PANEL_TAKEN = (
    "This study link has already been used in another session. Please use your resume link, "
    "or contact the organisers."
)


def _panel_matches(participant: Participant, panel: PanelIds) -> bool:
    """A returning panel participant is recognised by PID *and* the panel's session id.

    Panel ids travel in URLs and are often visible to others, so a PID alone must not open
    anyone's answers; the session id the panel issued with the first visit must match too.
    """
    stored, given = participant.panel_session_id, panel.session_id
    if not stored or not given or not hmac.compare_digest(stored, given):
        return False
    return not (participant.panel_study_id and panel.study_id != participant.panel_study_id)


def _resume_panel(s: Any, participant: Participant, token: str) -> Entry:
    assert participant.id is not None
    queries.update_participant_token(
        s, participant_id=participant.id, token_hash=queries.hash_token(token)
    )
    return Entry(participant.id, token, participant.step, resumed=True)


def _draw_questions(questions: Sequence[Any], limit: int, rng: random.Random | None) -> list[int]:
    ids = [q.id for q in questions]
    k = max(1, min(limit or 1, len(ids)))
    chosen = set((rng or random.SystemRandom()).sample(ids, k))
    return [i for i in ids if i in chosen]  # shown in the facilitator's order


def participant_view(engine: Engine, *, participant_id: int) -> ParticipantView:
    with session_scope(engine) as s:
        p = _participant(s, participant_id)
        panel = PanelIds(p.panel_pid, p.panel_study_id, p.panel_session_id) if p.panel_pid else None
        assert p.id is not None
        return ParticipantView(
            p.id,
            p.deliberation_id,
            p.step,
            p.question_id,
            p.entry_channel,
            panel,
            dict(p.step_times),
        )


# --- question -----------------------------------------------------------------------------------


def offered_questions(
    engine: Engine, *, participant_id: int, rng: random.Random | None = None
) -> list[QuestionView]:
    """The questions this participant chooses from: the same ones on every reload. Questions
    archived since the draw are left out; when none is left, a new draw is stored."""
    with session_scope(engine) as s:
        p = _participant(s, participant_id)
        live = queries.list_questions(s, deliberation_id=p.deliberation_id)
        by_id = {q.id: q for q in live}
        offered = [by_id[i] for i in p.offered_question_ids if i in by_id]
        if not offered and live:
            d = queries.get_deliberation(s, id=p.deliberation_id)
            ids = _draw_questions(live, d.questions_per_participant, rng)
            assert p.id is not None
            queries.update_participant(s, participant_id=p.id, offered_question_ids=ids)
            offered = [by_id[i] for i in ids]
        return [QuestionView(q.id, q.title, q.text) for q in offered if q.id is not None]


def choose_question(engine: Engine, *, participant_id: int, question_id: int) -> None:
    """Record the participant's question and move on to the interview (a repeated click with
    the same question is harmless)."""
    offered = {q.id for q in offered_questions(engine, participant_id=participant_id)}
    with session_scope(engine) as s:
        p = _participant(s, participant_id)
        if p.step not in ("consent", "question"):
            if p.question_id == question_id:
                return
            raise StepError("You have already chosen your question.")
        if question_id not in offered:
            raise JourneyError("Please choose one of the questions shown.")
        queries.update_participant(s, participant_id=participant_id, question_id=question_id)
        queries.set_participant_step(s, participant_id=participant_id, step="interview")


# --- peer values --------------------------------------------------------------------------------


def _cosine(a: Sequence[float] | None, b: Sequence[float] | None) -> float:
    if not a or not b or len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def rank_peer_values(
    candidates: Sequence[CanonicalValue],
    *,
    impressions: Mapping[int, int],
    own_embedding: Sequence[float] | None,
) -> list[CanonicalValue]:
    """Fewest impressions first (so every value gets seen), then the most similar to the
    participant's own card (so they judge values that speak to theirs), then oldest."""
    return sorted(
        candidates,
        key=lambda v: (
            impressions.get(v.id or 0, 0),
            -_cosine(own_embedding, v.embedding),
            v.id or 0,
        ),
    )


def peer_draw(engine: Engine, *, participant_id: int) -> PeerDraw:
    """The peers' values this participant judges, drawn once (a reload shows the same draw).

    Only after their own card is submitted; never their own value; values expressed by cards
    of the same question."""
    with session_scope(engine) as s:
        p = _participant(s, participant_id)
        card = queries.get_participant_card(s, participant_id=participant_id)
        if card is None:
            raise StepError("Please confirm your own card first.")
        shown = queries.list_value_impressions(s, participant_id=participant_id)
        if shown:
            draw_id = shown[-1].draw_id
            rows = sorted((i for i in shown if i.draw_id == draw_id), key=lambda i: i.position)
            values = {
                v.id: v
                for v in queries.list_canonical_values(
                    s, deliberation_id=p.deliberation_id, include_archived=True
                )
            }
            chosen = tuple(
                v.canonical_value_id
                for v in queries.list_value_votes(s, participant_id=participant_id, draw_id=draw_id)
            )
            return PeerDraw(
                draw_id,
                tuple(
                    _value_view(values[i.canonical_value_id])
                    for i in rows
                    if i.canonical_value_id in values
                ),
                chosen,
            )
        own = {card.canonical_value_id} - {None}
        d = queries.get_deliberation(s, id=p.deliberation_id)
        candidates = queries.list_peer_candidates(
            s,
            deliberation_id=p.deliberation_id,
            question_id=card.question_id,
            exclude_value_ids=[v for v in own if v is not None],
        )
        counts = queries.count_value_impressions(
            s, value_ids=[v.id for v in candidates if v.id is not None]
        )
        ranked = rank_peer_values(candidates, impressions=counts, own_embedding=card.embedding)
        chosen_values = ranked[: max(0, d.peer_values_per_participant)]
        if not chosen_values:
            return PeerDraw(None, ())
        draw_id = secrets.token_hex(8)
        queries.create_value_impressions(
            s,
            participant_id=participant_id,
            draw_id=draw_id,
            value_ids=[v.id for v in chosen_values if v.id is not None],
        )
        return PeerDraw(draw_id, tuple(_value_view(v) for v in chosen_values))


@dataclass(frozen=True)
class Moved:
    """Where an action took the participant, and a kind note to show there (if any)."""

    step: str
    notice: str | None = None


NO_STORIES = (
    "There are no stories for you to judge yet, so we skipped that part. Thank you for your "
    "patience!"
)


def submit_peer_votes(
    engine: Engine,
    *,
    participant_id: int,
    draw_id: str | None,
    value_ids: Iterable[int],
    none_wise: bool = False,
) -> Moved:
    """Store which peer values the participant found wise (at least one, or an explicit "none"),
    then move on to the wiser-than stories (skipped when there are none to judge)."""
    chosen = list(dict.fromkeys(value_ids))
    draw = peer_draw(engine, participant_id=participant_id)
    if draw.draw_id is not None:
        if draw_id != draw.draw_id:
            raise JourneyError("These values are out of date. Please reload the page.")
        allowed = {v.id for v in draw.values}
        if not set(chosen) <= allowed:
            raise JourneyError("Please choose among the values shown.")
        if not chosen and not none_wise:
            raise JourneyError('Please choose at least one value, or tick "None of these".')
        if none_wise:
            chosen = []
        with session_scope(engine) as s:
            queries.replace_value_votes(
                s, participant_id=participant_id, draw_id=draw.draw_id, value_ids=chosen
            )
    with session_scope(engine) as s:
        queries.set_participant_step(s, participant_id=participant_id, step="wiser")
    progress = wiser_progress(engine, participant_id=participant_id)
    if progress.complete:
        return leave_wiser(engine, participant_id=participant_id)
    return Moved("wiser")


# --- wiser-than ---------------------------------------------------------------------------------


Triple = tuple[int, int, int]


def route_hypotheses(
    hypotheses: Sequence[Hypothesis],
    *,
    judged: set[Triple],
    own_value_ids: set[int],
    question_context_ids: set[int],
    vote_counts: Mapping[Triple, int],
    uncertainty: Mapping[Triple, tuple[float, float]],
) -> list[Hypothesis]:
    """The hypotheses a participant may judge, most needed first (a pure function).

    Left out: any (from, to, context) they already judged, its reverse in the same context
    (judging both directions adds little and confuses), and any involving their own value on
    either side. Order: contexts of their own question first; then fewest votes; then the most
    uncertain (wiser-likelihood closest to 0, then highest entropy); then oldest.
    """
    reverse_judged = {(b, a, c) for a, b, c in judged}
    out = []
    for h in hypotheses:
        triple = (h.from_value_id, h.to_value_id, h.context_id)
        if triple in judged or triple in reverse_judged:
            continue
        if h.from_value_id in own_value_ids or h.to_value_id in own_value_ids:
            continue
        out.append(h)

    def key(h: Hypothesis) -> tuple[int, int, float, float, int]:
        triple = (h.from_value_id, h.to_value_id, h.context_id)
        likelihood, entropy = uncertainty.get(triple, (0.0, 0.0))
        return (
            0 if h.context_id in question_context_ids else 1,
            vote_counts.get(triple, 0),
            abs(likelihood),
            -entropy,
            h.id or 0,
        )

    return sorted(out, key=key)


def _uncertainty(votes: Sequence[tuple[Any, str]]) -> dict[Triple, tuple[float, float]]:
    """(from, to, context id) -> (wiser likelihood, entropy) from this deliberation's votes, per
    context (votes are not pooled across contexts)."""
    if not votes:
        return {}
    table = [
        Vote(str(v.participant_id), v.from_value_id, v.to_value_id, str(v.context_id), v.choice)
        for v, _text in votes
    ]
    from graph.stats import edge_statistics_by_context  # pandas: only once votes exist

    out: dict[Triple, tuple[float, float]] = {}
    for context, edges in edge_statistics_by_context(table, min_wiser=1).items():
        for e in edges:
            out[(e.source_id, e.wiser_id, int(context))] = (e.wiser_likelihood, e.entropy)
    return out


def wiser_progress(engine: Engine, *, participant_id: int) -> WiserProgress:
    """How many stories the participant judged, and the next one to show (None when done or
    when none is left for them). Deterministic, so a reload shows the same story."""
    with session_scope(engine) as s:
        p = _participant(s, participant_id)
        d = queries.get_deliberation(s, id=p.deliberation_id)
        mine = queries.list_participant_wiser_votes(s, participant_id=participant_id)
        target = max(0, d.stories_per_participant)
        if len(mine) >= target:
            return WiserProgress(len(mine), target, None)
        card = queries.get_participant_card(s, participant_id=participant_id)
        own = {card.canonical_value_id} if card and card.canonical_value_id else set()
        question_id = (card.question_id if card else None) or p.question_id
        hypotheses = queries.list_hypotheses(s, deliberation_id=p.deliberation_id)
        ranked = route_hypotheses(
            hypotheses,
            judged={(v.from_value_id, v.to_value_id, v.context_id) for v in mine},
            own_value_ids={v for v in own if v is not None},
            question_context_ids=(
                queries.list_question_context_ids(s, question_id=question_id)
                if question_id
                else set()
            ),
            vote_counts=queries.count_wiser_votes_by_triple(s, deliberation_id=p.deliberation_id),
            uncertainty=_uncertainty(
                queries.list_deliberation_wiser_votes(s, deliberation_id=p.deliberation_id)
            ),
        )
        if not ranked:
            return WiserProgress(len(mine), target, None)
        h = ranked[0]
        return WiserProgress(len(mine), target, _wiser_item(s, h))


def _wiser_item(s: Any, h: Hypothesis) -> WiserItem:
    from db.models import Context

    from_value = s.get(CanonicalValue, h.from_value_id)
    to_value = s.get(CanonicalValue, h.to_value_id)
    context = s.get(Context, h.context_id)
    assert h.id is not None and from_value and to_value and context
    story = h.story.strip() or _template_story(from_value, to_value, context.text)
    return WiserItem(h.id, context.text, story, _value_view(from_value), _value_view(to_value))


def _template_story(a: CanonicalValue, b: CanonicalValue, context: str) -> str:
    """A plain story from the two cards, for hypotheses stored without one (offline mode)."""
    lower = context[:1].lower() + context[1:] if context else "in this situation"
    return (
        f"{context}, I used to focus on “{a.title}”: {a.description} Over time I came to see "
        f"that “{b.title}” keeps what mattered to me in that and goes further: {b.description} "
        f"Now, {lower}, that is what I pay attention to."
    )


def record_wiser_vote(
    engine: Engine,
    *,
    participant_id: int,
    hypothesis_id: int,
    choice: str,
    comment: str = "",
) -> WiserProgress:
    """Store the participant's judgement of a story. A second judgement of the same (from, to,
    context) is refused by the database: `AlreadyVoted`. Moves on to "where my value landed"
    when the participant has judged enough stories or none is left."""
    if choice not in CHOICES:
        raise JourneyError("Please choose one of the answers.")
    text = _clean_text(comment, max_chars=COMMENT_MAX_CHARS)
    with session_scope(engine) as s:
        p = _participant(s, participant_id)
        h = s.get(Hypothesis, hypothesis_id)
        if h is None or h.deliberation_id != p.deliberation_id or h.archived:
            raise JourneyError("This story is no longer available. Please reload the page.")
        card = queries.get_participant_card(s, participant_id=participant_id)
        if card is None:
            raise StepError("Please confirm your own card first.")
        if card.canonical_value_id in (h.from_value_id, h.to_value_id):
            raise JourneyError("This story involves your own value; you cannot judge it.")
        try:
            queries.create_wiser_vote(
                s,
                deliberation_id=p.deliberation_id,
                participant_id=participant_id,
                hypothesis_id=h.id,
                from_value_id=h.from_value_id,
                to_value_id=h.to_value_id,
                context_id=h.context_id,
                choice=choice,
                comment=text,
            )
        except queries.Conflict:
            raise AlreadyVoted("You have already judged this story. Thank you!") from None
    progress = wiser_progress(engine, participant_id=participant_id)
    if progress.complete:
        leave_wiser(engine, participant_id=participant_id)
    return progress


def leave_wiser(engine: Engine, *, participant_id: int) -> Moved:
    """Move on to "where my value landed"; with a kind note when nothing was judged."""
    with session_scope(engine) as s:
        done = len(queries.list_participant_wiser_votes(s, participant_id=participant_id))
        queries.set_participant_step(s, participant_id=participant_id, step="landed")
    return Moved("landed", None if done else NO_STORIES)


# --- where my value landed ---------------------------------------------------------------------


def _neighbour(values: Mapping[int, CanonicalValue], e: EdgeStats, other: int) -> Neighbour | None:
    v = values.get(other)
    if v is None:
        return None
    return Neighbour(
        _value_view(v), e.marked_wiser, e.marked_not_wiser, e.marked_unsure, e.contexts, e.kept
    )


def landed(engine: Engine, *, participant_id: int, embedder: Any = None) -> Landed:
    """The participant's value in the current graph: who shares it, which values people moved
    from to reach it and which they found wiser than it (pooled over contexts, DESIGN 5.1),
    and how peers judged it."""
    with session_scope(engine) as s:
        card = queries.get_participant_card(s, participant_id=participant_id)
        if card is None:
            raise StepError("Please confirm your own card first.")
        card_id, placed = card.id, card.canonical_value_id
    if placed is None and card_id is not None:
        interview_engine.place(engine, card_id=card_id, embedder=embedder)  # try again now
    with session_scope(engine) as s:
        p = _participant(s, participant_id)
        card = queries.get_participant_card(s, participant_id=participant_id)
        assert card is not None
        mine = card.canonical_value_id
        value = s.get(CanonicalValue, mine) if mine else None
        if value is None or mine is None:
            return Landed(card.title, None, 1, (), (), 0, 0, 0, 0)
        values = {
            v.id: v
            for v in queries.list_canonical_values(
                s, deliberation_id=p.deliberation_id, include_archived=True
            )
            if v.id is not None
        }
        votes = queries.list_deliberation_wiser_votes(s, deliberation_id=p.deliberation_id)
        table = [
            Vote(str(v.participant_id), v.from_value_id, v.to_value_id, text, v.choice)
            for v, text in votes
        ]
        from graph.stats import edge_statistics  # pandas: only on the last step

        edges = edge_statistics(table) if table else []
        came_from, leads_to = [], []
        judged_wiser = judged_less = 0
        for e in edges:
            if e.wiser_id == mine:
                judged_wiser += e.marked_wiser
                n = _neighbour(values, e, e.source_id)
                if n and e.marked_wiser:
                    came_from.append(n)
            elif e.source_id == mine:
                judged_less += e.marked_wiser
                n = _neighbour(values, e, e.wiser_id)
                if n and e.marked_wiser:
                    leads_to.append(n)

        def rank(n: Neighbour) -> tuple[int, int]:
            return (0 if n.kept else 1, -n.marked_wiser)

        return Landed(
            card_title=card.title,
            value=_value_view(value),
            contributors=queries.list_value_contributors(s, canonical_value_id=mine),
            came_from=tuple(sorted(came_from, key=rank)),
            leads_to=tuple(sorted(leads_to, key=rank)),
            judged_wiser=judged_wiser,
            judged_less_wise=judged_less,
            peer_votes=queries.count_value_votes(s, value_ids=[mine]).get(mine, 0),
            peer_impressions=queries.count_value_impressions(s, value_ids=[mine]).get(mine, 0),
        )


def _dot_label(text: str, width: int = 28) -> str:
    """A DOT string literal: quotes and backslashes escaped (so nothing is interpreted), and
    wrapped to a few short lines."""
    words, lines, line = " ".join(text.split()).split(" "), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    body = "\\n".join(ln.replace("\\", "\\\\").replace('"', '\\"') for ln in lines[:4])
    return f'"{body}"'


def landed_dot(view: Landed, *, limit: int = 4) -> str | None:
    """A small graphviz picture: the participant's value in the middle, values people moved
    from on the left, values found wiser on the right. None when there is nothing to draw."""
    if view.value is None or not (view.came_from or view.leads_to):
        return None
    lines = [
        "digraph {",
        "rankdir=LR; bgcolor=transparent;",
        'node [shape=box style="rounded,filled" fillcolor="#f0f2f6" fontname="sans-serif" '
        "fontsize=11];",
        f'me [label={_dot_label(view.value.title)} fillcolor="#ffd966"];',
    ]
    for i, n in enumerate(view.came_from[:limit]):
        lines.append(f"f{i} [label={_dot_label(n.value.title)}];")
        lines.append(f'f{i} -> me [label="{n.marked_wiser}"];')
    for i, n in enumerate(view.leads_to[:limit]):
        lines.append(f"t{i} [label={_dot_label(n.value.title)}];")
        lines.append(f't{i} -> me [dir=back label="{n.marked_wiser}"];')
    lines.append("}")
    return "\n".join(lines)


def leave_landed(engine: Engine, *, participant_id: int) -> None:
    with session_scope(engine) as s:
        queries.set_participant_step(s, participant_id=participant_id, step="survey")


# --- survey and finish -------------------------------------------------------------------------


def save_survey(
    engine: Engine,
    *,
    participant_id: int,
    scores: Mapping[str, int | None],
    comment: str = "",
) -> None:
    """Store the legitimacy items (1-5; unanswered ones are left out) and the free text, then
    finish. Submitting again replaces the answers."""
    known = {item for item, _ in SURVEY_ITEMS}
    for item, score in scores.items():
        if item not in known:
            raise ValueError(f"unknown survey item {item!r}")
        if score is not None and not (isinstance(score, int) and 1 <= score <= 5):
            raise JourneyError("Please answer each statement on the scale from 1 to 5.")
    text = _clean_text(comment, max_chars=SURVEY_TEXT_MAX_CHARS)
    with session_scope(engine) as s:
        _participant(s, participant_id)
        for item, score in scores.items():
            if score is not None:
                queries.upsert_survey_answer(
                    s, participant_id=participant_id, item=item, score=score
                )
        if text:
            queries.upsert_survey_answer(
                s, participant_id=participant_id, item=SURVEY_COMMENT, text=text
            )
        queries.set_participant_step(s, participant_id=participant_id, step="finished")


def finish(engine: Engine, *, participant_id: int) -> Finish:
    """Thanks, counts, and the panel completion link."""
    with session_scope(engine) as s:
        p = _participant(s, participant_id)
        d = queries.get_deliberation(s, id=p.deliberation_id)
        panel = PanelIds(p.panel_pid, p.panel_study_id, p.panel_session_id) if p.panel_pid else None
        return Finish(
            participants=queries.count_participants(s, deliberation_id=p.deliberation_id),
            values=len(queries.list_canonical_values(s, deliberation_id=p.deliberation_id)),
            your_wiser_votes=len(
                queries.list_participant_wiser_votes(s, participant_id=participant_id)
            ),
            your_peer_votes=len(queries.list_value_votes(s, participant_id=participant_id)),
            completion_url=completion_link(d.completion_url, panel),
            panel=panel is not None,
        )
