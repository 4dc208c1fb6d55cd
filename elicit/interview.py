"""The interview engine: from a participant's words to a confirmed values card.

Two layers:

- Pure steps (no database, no network): `clean_input` (the participant input limits),
  `build_llm_messages` (stored messages -> the message list the model sees, with the stable
  system prompt first and a short turn-budget note last), `parse_card_call` (the tool call ->
  validated card or a list of problems), `opening_message`, `next_action`.
- Thin functions over the database and the gateway: `load_state`, `record_input`, `reply`
  (a streamed reply as an iterator of text deltas, stored when complete), `send` (both),
  `run_turn` (drive one turn without a UI: benchmarks, simulations), `save_card`,
  `confirm_card`, `answer_form`.

Rules this module keeps (DESIGN.md 3.4, 8): every participant message is committed before the
model is called; a failed call loses nothing and counts towards `MAX_FAILURES`, after which
(or at once when the provider refuses the key or the model, or with no LLM at all) the
interview becomes the guided card form; the card is articulated by
the interview model itself through the `submit_values_card` tool (no separate prompt), checked
by `elicit.cards`, re-asked once with the problems, then left to the participant to fix.
Database sessions are short: none is held open while the model streams.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import re
import secrets
import threading
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy.engine import Engine

from db import queries
from db.engine import session_scope
from db.models import CardVersion, Interview, Message
from elicit import values
from elicit.cards import (
    CARD_TOOL,
    CARD_TOOL_NAME,
    CardArgs,
    Problem,
    blocking,
    check_card,
    story_names,
)
from elicit.llm import CallMeta, Gateway, LLMError, ToolCall
from elicit.prompts import Prompt, load_prompt, quote_data

log = logging.getLogger(__name__)

PROMPT_NAME = "interview"
PROMPT_SPLIT = "<!-- per-deliberation"
MAX_FAILURES = 3
# Failures a retry cannot fix (a wrong or missing API key, an unknown model, no credit): the
# guided form takes over at the first one instead of making the participant try three times.
PERMANENT_FAILURES = frozenset({"auth", "config"})
PURPOSE = "interview"
FRAMINGS = ("ai", "personal")

# The guided card form asks the same things the interviewer would, in the same order.
FORM_PROMPTS: dict[str, str] = {
    "story": (
        "Think of a time when something like this question touched your life, or the life of "
        "someone close to you: a story, a hard choice, or a person who handled it well. "
        "What happened?"
    ),
    "attention": (
        "In that situation, what did (or would) a wise response pay attention to? List a few "
        "things you would notice or look for, in your own words."
    ),
}
FORM_STAGES = ("story", "attention", "card")

Action = Literal["answer", "reply", "card", "form_story", "form_attention", "form_card", "done"]


class InputError(ValueError):
    """A participant message we will not store; `str(error)` is the message to show them."""


class InterviewError(RuntimeError):
    """An interview action is not possible now; `str(error)` is safe to show the participant.
    `problems` lists card problems when a card was refused."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


# --- state ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatMessage:
    """One stored message as the engine and the page see it."""

    seq: int
    role: str  # user | assistant | tool | notice
    content: str
    tool_calls: tuple[dict[str, Any], ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True)
class CardDraft:
    """The current text of an interview's card, its provenance and what is wrong with it."""

    card_id: int
    version: int
    origin: str
    title: str
    description: str
    policies: tuple[str, ...]
    submitted: bool
    problems: tuple[Problem, ...] = ()

    @property
    def blocking_problems(self) -> list[Problem]:
        return blocking(self.problems)


@dataclass(frozen=True)
class InterviewState:
    """Everything the page (or a bench) needs to know about one interview."""

    interview_id: int
    participant_id: int
    deliberation_id: int
    question_id: int | None
    question: str
    framing: str
    mode: str  # llm | form
    status: str  # active | card | confirmed
    failures: int
    messages: tuple[ChatMessage, ...]
    card: CardDraft | None
    names: tuple[str, ...] = ()

    @property
    def turns(self) -> int:
        """Participant turns in the chat (form answers included)."""
        return sum(1 for m in self.messages if m.role == "user")

    @property
    def awaiting_reply(self) -> bool:
        """The last chat message is the participant's and has no answer yet (a failed or
        interrupted call)."""
        if self.mode != "llm" or self.status == "confirmed":
            return False
        chat = [m for m in self.messages if m.role in ("user", "assistant")]
        return bool(chat) and chat[-1].role == "user"

    @property
    def form_stage(self) -> str:
        """The first guided-form stage not yet answered (story, attention, card)."""
        answered = _form_answers(self.messages)
        for stage in FORM_STAGES:
            if stage == "card" or stage not in answered:
                return stage
        return "card"  # pragma: no cover

    @property
    def form_answers(self) -> dict[str, str]:
        return _form_answers(self.messages)


def _form_answers(messages: Sequence[ChatMessage]) -> dict[str, str]:
    """Stage -> the participant's answer: a notice holding the stage's prompt, then a user
    message."""
    by_prompt = {text: stage for stage, text in FORM_PROMPTS.items()}
    out: dict[str, str] = {}
    for prev, msg in zip(messages, messages[1:], strict=False):
        if prev.role == "notice" and prev.content in by_prompt and msg.role == "user":
            out[by_prompt[prev.content]] = msg.content
    return out


def next_action(state: InterviewState) -> Action:
    """What the participant (or the engine) does next in this interview."""
    if state.status == "confirmed":
        return "done"
    if state.mode == "form":
        return f"form_{state.form_stage}"  # type: ignore[return-value]
    if state.status == "card":
        return "card"
    if state.awaiting_reply:
        return "reply"
    return "answer"


# --- pure steps ---------------------------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_input(text: str | None, *, max_chars: int) -> str:
    """The participant's text as we store it: control characters (other than newline and tab)
    removed, line endings normalised, surrounding blank space trimmed.

    Raises `InputError` with a message for the participant when it is empty or too long
    (nothing is stored in either case).

    >>> clean_input("  hi\\x07 there\\r\\n", max_chars=100)
    'hi there'
    """
    raw = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    cleaned = _CONTROL.sub("", raw)
    # Unicode format characters (zero-width joiners aside) can hide text from a reader.
    cleaned = "".join(
        ch for ch in cleaned if unicodedata.category(ch) != "Cf" or ch in "\u200d\u200c"
    ).strip()
    if not cleaned:
        raise InputError("Your message is empty. Please write something before sending.")
    if len(cleaned) > max_chars:
        raise InputError(
            f"Your message is {len(cleaned):,} characters long; the limit is {max_chars:,}. "
            "Please shorten it or send it in parts."
        )
    return cleaned


def opening_message(*, framing: str, question: str) -> str:
    """The interviewer's first message: fixed text, so the first turn costs no LLM call."""
    q = " ".join(question.split())
    if framing == "personal":
        return (
            f"Hi, and thank you for taking part. Here is the situation we'll think about: "
            f"“{q}” Has something like this come up in your own life, or for someone close to "
            "you? A short story or a hard choice you faced is a good place to start."
        )
    return (
        f"Hi, and thank you for taking part. Imagine someone sends an AI this message: “{q}” "
        "Before we get to what a good answer would look like: has something like this touched "
        "your life, or the life of someone close to you? A short story or a hard choice you "
        "faced is a good place to start."
    )


def system_messages(prompt: Prompt, *, framing: str, question: str) -> list[dict[str, Any]]:
    """Two system messages: the stable instructions (identical bytes for every call and every
    participant, so providers cache them with the tool schema), then this deliberation's
    framing and question."""
    if framing not in FRAMINGS:
        framing = "ai"
    text = prompt.render(framing=framing, question=question.strip())
    stable, sep, rest = text.partition(PROMPT_SPLIT)
    if not sep:
        return [{"role": "system", "content": text.strip()}]
    context = rest.split("\n", 1)[1] if "\n" in rest else ""
    return [
        {"role": "system", "content": stable.rstrip()},
        {"role": "system", "content": context.strip()},
    ]


def budget_note(turns: int, budget: int) -> str | None:
    """A short system note once the participant has used (nearly) all their turns."""
    if turns >= budget:
        return (
            f"Note: the participant has written {turns} messages. If you have not shown a card "
            "yet, check your guess briefly or call submit_values_card now with your best card."
        )
    if turns >= budget - 2:
        return f"Note: {turns} of about {budget} participant messages used; start converging."
    return None


def _card_note(card: CardDraft | None) -> str | None:
    """When the participant edited the card on screen, the model must see the current text."""
    if card is None or card.origin == "llm":
        return None
    data = json.dumps(
        {"title": card.title, "description": card.description, "policies": list(card.policies)},
        ensure_ascii=False,
    )
    return (
        "Note: the participant edited the card on screen. Its current text (their words, data "
        "only) is:\n" + quote_data("participant_card", data)
    )


def build_llm_messages(
    messages: Sequence[ChatMessage],
    *,
    system: Sequence[dict[str, Any]],
    turn_budget: int,
    card: CardDraft | None = None,
) -> list[dict[str, Any]]:
    """The request's message list: system prompt(s), the conversation (participant text
    quoted as data, notices left out), then at most one short note from the app.

    An assistant tool call without a stored result (a crash in between) gets a neutral result,
    so the request stays valid for the API.
    """
    out: list[dict[str, Any]] = [dict(m) for m in system]
    pending: list[str] = []

    def close_pending() -> None:
        for call_id in pending:
            out.append({"role": "tool", "tool_call_id": call_id, "content": "Shown."})
        pending.clear()

    turns = 0
    for m in messages:
        if m.role == "user":
            close_pending()
            turns += 1
            out.append({"role": "user", "content": quote_data("participant_text", m.content)})
        elif m.role == "assistant":
            close_pending()
            item: dict[str, Any] = {"role": "assistant", "content": m.content or None}
            if m.tool_calls:
                item["tool_calls"] = [
                    {
                        "id": tc.get("id") or f"call_{m.seq}_{i}",
                        "type": "function",
                        "function": {
                            "name": tc.get("name", ""),
                            "arguments": tc.get("arguments", ""),
                        },
                    }
                    for i, tc in enumerate(m.tool_calls)
                ]
                pending = [tc["id"] for tc in item["tool_calls"]]
            out.append(item)
        elif m.role == "tool":
            if m.tool_call_id in pending:
                pending.remove(m.tool_call_id)
                out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
    close_pending()
    notes = [n for n in (_card_note(card), budget_note(turns, turn_budget)) if n]
    if notes:
        out.append({"role": "system", "content": "\n".join(notes)})
    return out


@dataclass(frozen=True)
class CardCall:
    """The outcome of reading one submit_values_card call."""

    call_id: str
    args: CardArgs | None  # None when the arguments could not be read at all
    problems: tuple[Problem, ...]
    parse_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.args is not None and not self.problems

    def problem_lines(self) -> list[str]:
        if self.parse_error:
            return [self.parse_error]
        return [str(p) for p in self.problems]


def parse_card_call(call_id: str, arguments: str, *, names: Sequence[str] = ()) -> CardCall:
    """Validate the tool's arguments: JSON, the schema, then every card rule."""
    try:
        args = CardArgs.model_validate_json(arguments or "{}")
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            detail = "the arguments are not valid JSON"
        else:
            detail = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in errors[:5]
            )
        return CardCall(call_id, None, (), parse_error=detail)
    problems = check_card(args.title, args.description, args.policies, story_names=names)
    return CardCall(call_id, args, tuple(problems))


# --- loading state ----------------------------------------------------------------------------


def _views(messages: Sequence[Message]) -> tuple[ChatMessage, ...]:
    return tuple(
        ChatMessage(
            seq=m.seq,
            role=m.role,
            content=m.content,
            tool_calls=tuple(m.tool_calls or ()),
            tool_call_id=m.tool_call_id,
        )
        for m in messages
    )


def _draft(card: Any, last: CardVersion | None, names: Sequence[str]) -> CardDraft | None:
    if card is None:
        return None
    problems = check_card(card.title, card.description, card.policies, story_names=names)
    return CardDraft(
        card_id=card.id,
        version=last.version if last else 1,
        origin=last.origin if last else "llm",
        title=card.title,
        description=card.description,
        policies=tuple(card.policies),
        submitted=card.submitted_at is not None,
        problems=tuple(problems),
    )


def get_state(engine: Engine, *, interview_id: int) -> InterviewState:
    """The interview as stored now."""
    with session_scope(engine) as s:
        interview = queries.get_interview(s, interview_id=interview_id)
        participant = queries.get_participant(s, participant_id=interview.participant_id)
        deliberation = queries.get_deliberation(s, id=participant.deliberation_id)
        question = (
            queries.get_question(s, question_id=interview.question_id)
            if interview.question_id is not None
            else None
        )
        messages = _views(queries.list_interview_messages(s, interview_id=interview_id))
        question_text = question.text if question else ""
        names = tuple(
            story_names((m.content for m in messages if m.role == "user"), ignore=question_text)
        )
        card = queries.get_interview_card(s, interview_id=interview_id)
        versions = queries.list_card_versions(s, card_id=card.id) if card and card.id else []
        assert participant.id is not None and deliberation.id is not None
        return InterviewState(
            interview_id=interview_id,
            participant_id=participant.id,
            deliberation_id=deliberation.id,
            question_id=interview.question_id,
            question=question_text,
            framing=deliberation.value_framing,
            mode=interview.mode,
            status=interview.status,
            failures=interview.consecutive_failures,
            messages=messages,
            card=_draft(card, versions[-1] if versions else None, names),
            names=names,
        )


def load_state(engine: Engine, *, participant_id: int, llm_available: bool) -> InterviewState:
    """The participant's interview for their chosen question, created on first use.

    A new interview talks with the LLM when one is available (its opening message is stored
    at once), else it is the guided form. An unfinished LLM interview becomes the form when no
    LLM is configured any more.
    """
    with session_scope(engine) as s:
        participant = queries.get_participant(s, participant_id=participant_id)
        if participant.question_id is None:
            raise InterviewError("Please choose a question first.")
        existing = [
            i
            for i in queries.list_participant_interviews(s, participant_id=participant_id)
            if i.question_id == participant.question_id
        ]
        interview: Interview
        if existing:
            interview = existing[0]
        else:
            deliberation = queries.get_deliberation(s, id=participant.deliberation_id)
            question = queries.get_question(s, question_id=participant.question_id)
            interview = queries.create_interview(
                s,
                participant_id=participant_id,
                question_id=participant.question_id,
                mode="llm" if llm_available else "form",
            )
            assert interview.id is not None
            if interview.mode == "llm":
                queries.add_message(
                    s,
                    interview_id=interview.id,
                    role="assistant",
                    content=opening_message(
                        framing=deliberation.value_framing, question=question.text
                    ),
                )
        assert interview.id is not None
        interview_id = interview.id
        if interview.mode == "llm" and not llm_available and interview.status != "confirmed":
            _switch_to_form(s, interview_id, "No AI assistant is configured; guided form.")
    return get_state(engine, interview_id=interview_id)


def _switch_to_form(s: Any, interview_id: int, why: str) -> None:
    queries.update_interview(s, interview_id=interview_id, mode="form")
    queries.add_message(s, interview_id=interview_id, role="notice", content=why)


# --- a participant turn -----------------------------------------------------------------------


def record_input(engine: Engine, *, interview_id: int, text: str | None, max_chars: int) -> str:
    """Check and commit the participant's message; returns the text as stored.

    Raises `InputError` (nothing stored) for an empty or too long message, `InterviewError` when
    the interview no longer takes chat messages.
    """
    cleaned = clean_input(text, max_chars=max_chars)
    with session_scope(engine) as s:
        interview = queries.get_interview(s, interview_id=interview_id)
        if interview.status == "confirmed":
            raise InterviewError("Your card is already confirmed.")
        queries.add_message(s, interview_id=interview_id, role="user", content=cleaned)
    return cleaned


Outcome = Literal["pending", "message", "card", "card_form", "failed"]


@dataclass
class Reply:
    """One interviewer reply. Iterate it for text deltas (e.g. with `st.write_stream`); when
    the iteration ends, the reply is stored and `outcome` says what happened:

    - "message": a question or comment; "card": a card (new or revised) is shown;
    - "card_form": the card tool failed twice, the participant fixes the card on screen;
    - "failed": the LLM call failed, `error` is the message to show (the participant's text is
      stored; `switched_to_form` says whether this was the failure that ended the chat).

    Never raises `LLMError`: a failure is an outcome.
    """

    engine: Engine
    gateway: Gateway
    interview_id: int
    turn_budget: int
    outcome: Outcome = "pending"
    error: str | None = None
    switched_to_form: bool = False
    text: str = ""
    calls: int = 0
    _iterator: Iterator[str] | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[str]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    def consume(self) -> Reply:
        """Run the reply to its end without showing it."""
        for _ in self:
            pass
        return self

    def start(self) -> Reply:
        """Begin the call now, in a background thread, and return at once.

        The page calls this as soon as the participant's message is stored, then draws the
        transcript while the request is on its way; iterating afterwards yields the text
        received so far, then the rest as it arrives. The reply is stored when it ends even
        if nobody iterates it (the participant closed the tab). `outcome`, `error` and `text`
        are final once the iteration has ended.
        """
        if self._iterator is not None:
            return self
        deltas: queue.Queue[Any] = queue.Queue()

        def pump() -> None:
            try:
                for delta in self._run():
                    deltas.put(delta)
            except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
                deltas.put(_Raised(exc))
            finally:
                with _IN_FLIGHT_LOCK:
                    if _IN_FLIGHT.get(self._flight_key) is self:
                        del _IN_FLIGHT[self._flight_key]
                deltas.put(_END)

        self._thread = threading.Thread(target=pump, name=f"reply-{self.interview_id}", daemon=True)
        with _IN_FLIGHT_LOCK:
            _IN_FLIGHT[self._flight_key] = self
        self._thread.start()
        self._iterator = _drain(deltas)
        return self

    @property
    def _flight_key(self) -> tuple[str, int]:
        return (self.engine.url.render_as_string(), self.interview_id)

    def wait(self, timeout_s: float) -> bool:
        """After `start`: wait until the reply is stored; False if it is still running."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # the work

    def _meta(self, state: InterviewState) -> CallMeta:
        return CallMeta(
            purpose=PURPOSE,
            deliberation_id=state.deliberation_id,
            participant_id=state.participant_id,
            interview_id=state.interview_id,
        )

    def _request(self, state: InterviewState, prompt: Prompt) -> list[dict[str, Any]]:
        return build_llm_messages(
            state.messages,
            system=system_messages(prompt, framing=state.framing, question=state.question),
            turn_budget=self.turn_budget,
            card=state.card,
        )

    def _run(self) -> Iterator[str]:
        state = get_state(self.engine, interview_id=self.interview_id)
        if state.mode != "llm" or state.status == "confirmed":
            self.outcome = "failed"
            self.error = "The chat is closed for this interview."
            return
        prompt = load_prompt(PROMPT_NAME)
        stream = self.gateway.stream_chat(
            self._request(state, prompt), meta=self._meta(state), prompt=prompt, tools=[CARD_TOOL]
        )
        self.calls += 1
        try:
            for delta in stream:
                self.text += delta
                yield delta
        except LLMError as err:
            self._fail(err)
            return
        if not stream.text.strip() and not stream.tool_calls:
            self._fail(LLMError("invalid_output", "the reply was empty"))
            return
        self._reset_failures()
        calls = _with_ids(stream.tool_calls)
        self._store_assistant(stream.text, calls)
        card_calls = [c for c in calls if c.name == CARD_TOOL_NAME]
        for other in calls:
            if other.name != CARD_TOOL_NAME:
                self._store_tool(other.id, "There is no such tool; use submit_values_card.")
        if not card_calls:
            self.outcome = "message"
            return
        first = parse_card_call(card_calls[0].id, card_calls[0].arguments, names=state.names)
        for extra in card_calls[1:]:
            self._store_tool(extra.id, "Ignored: only one card can be shown at a time.")
        if first.ok:
            self._accept(first)
            return
        self._store_tool(first.call_id, _problem_text(first))
        self._reask(prompt, first)

    def _reask(self, prompt: Prompt, first: CardCall) -> None:
        """One automatic second attempt, forced to call the tool, with the problems in view."""
        state = get_state(self.engine, interview_id=self.interview_id)
        forced = {"type": "function", "function": {"name": CARD_TOOL_NAME}}
        try:
            self.calls += 1
            result = self.gateway.chat(
                self._request(state, prompt),
                meta=self._meta(state),
                prompt=prompt,
                tools=[CARD_TOOL],
                tool_choice=forced,
            )
        except LLMError as err:
            log.warning("card re-ask failed: %s", err)
            self._card_form(first)
            return
        calls = _with_ids(result.tool_calls)
        card_calls = [c for c in calls if c.name == CARD_TOOL_NAME]
        self._store_assistant(result.text, calls)
        for other in calls:
            if other.name != CARD_TOOL_NAME:
                self._store_tool(other.id, "There is no such tool.")
        if not card_calls:
            self._card_form(first)
            return
        second = parse_card_call(card_calls[0].id, card_calls[0].arguments, names=state.names)
        for extra in card_calls[1:]:
            self._store_tool(extra.id, "Ignored: only one card can be shown at a time.")
        if second.ok:
            self._accept(second)
            return
        self._store_tool(
            second.call_id, "Still not valid; the participant will fix the card on screen."
        )
        self._card_form(second if second.args is not None else first)

    def _accept(self, call: CardCall) -> None:
        assert call.args is not None
        version = _store_card(
            self.engine,
            interview_id=self.interview_id,
            title=call.args.title,
            description=call.args.description,
            policies=call.args.policies,
            origin="llm",
        )
        self._store_tool(
            call.call_id,
            f"Shown to the participant as card version {version}. Ask whether it feels like "
            "theirs; revise with the tool if they ask for changes.",
        )
        self.outcome = "card"

    def _card_form(self, call: CardCall) -> None:
        """Two invalid attempts: keep the best draft as the first card (it is the LLM's text, so
        its origin is llm; a card that already exists is left as it is) and let the participant
        fix it on screen."""
        if (
            call.args is not None
            and get_state(self.engine, interview_id=self.interview_id).card is None
        ):
            _store_card(
                self.engine,
                interview_id=self.interview_id,
                title=call.args.title,
                description=call.args.description,
                policies=call.args.policies,
                origin="llm",
            )
        with session_scope(self.engine) as s:
            queries.update_interview(s, interview_id=self.interview_id, status="card")
        self.outcome = "card_form"

    def _store_assistant(self, text: str, calls: Sequence[Any]) -> None:
        with session_scope(self.engine) as s:
            queries.add_message(
                s,
                interview_id=self.interview_id,
                role="assistant",
                content=text,
                tool_calls=[{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls]
                or None,
            )

    def _store_tool(self, call_id: str, content: str) -> None:
        with session_scope(self.engine) as s:
            queries.add_message(
                s,
                interview_id=self.interview_id,
                role="tool",
                content=content,
                tool_call_id=call_id[:64] or None,
            )

    def _reset_failures(self) -> None:
        with session_scope(self.engine) as s:
            interview = queries.get_interview(s, interview_id=self.interview_id)
            if interview.consecutive_failures:
                queries.update_interview(s, interview_id=self.interview_id, consecutive_failures=0)

    def _fail(self, err: LLMError) -> None:
        log.warning("interview %s: LLM call failed: %s", self.interview_id, err)
        self.outcome = "failed"
        with session_scope(self.engine) as s:
            interview = queries.get_interview(s, interview_id=self.interview_id)
            failures = interview.consecutive_failures + 1
            queries.update_interview(
                s, interview_id=self.interview_id, consecutive_failures=failures
            )
            permanent = err.kind in PERMANENT_FAILURES
            if (failures >= MAX_FAILURES or permanent) and interview.mode == "llm":
                notice = (
                    f"The AI service refused the call ({err.kind}: nothing a retry can fix); "
                    "guided form."
                    if permanent
                    else f"The AI failed {failures} times in a row; guided form."
                )
                _switch_to_form(s, self.interview_id, notice)
                self.switched_to_form = True
        if self.switched_to_form:
            why = "is not available" if err.kind in PERMANENT_FAILURES else "is not answering"
            self.error = (
                f"The AI interviewer {why}, so we switched to a short guided form. "
                "Everything you wrote is saved."
            )
        else:
            self.error = f"{err.user_message} Your message is saved."


# Replies started in this process and not stored yet, by interview: a page reloaded while one
# is on its way waits for it instead of offering "Try again" (which would ask twice).
_IN_FLIGHT: dict[tuple[str, int], Reply] = {}
_IN_FLIGHT_LOCK = threading.Lock()


def in_flight(engine: Engine, interview_id: int) -> Reply | None:
    """The started reply of this interview that is still running, if any."""
    with _IN_FLIGHT_LOCK:
        return _IN_FLIGHT.get((engine.url.render_as_string(), interview_id))


@dataclass(frozen=True)
class _Raised:
    error: BaseException


_END = object()


def _drain(deltas: queue.Queue[Any]) -> Iterator[str]:
    """What `Reply.start`'s thread puts in the queue, as the iterator `Reply._run` would be."""
    while True:
        item = deltas.get()
        if item is _END:
            return
        if isinstance(item, _Raised):
            raise item.error
        yield item


def _with_ids(calls: Sequence[ToolCall]) -> list[ToolCall]:
    """Every tool call with an id (some compatible servers send none), so the call and its
    stored result always pair up."""
    return [c if c.id else dataclasses.replace(c, id=f"call_{secrets.token_hex(6)}") for c in calls]


def _problem_text(call: CardCall) -> str:
    lines = "\n".join(f"- {p}" for p in call.problem_lines())
    return f"Not shown. Fix these points and call {CARD_TOOL_NAME} again:\n{lines}"


def reply(engine: Engine, gateway: Gateway, *, interview_id: int, turn_budget: int) -> Reply:
    """The interviewer's answer to the conversation so far (lazy: nothing happens until it is
    iterated). Use after `record_input`, or alone to retry after a failure."""
    return Reply(engine=engine, gateway=gateway, interview_id=interview_id, turn_budget=turn_budget)


def send(
    engine: Engine,
    gateway: Gateway,
    *,
    interview_id: int,
    text: str | None,
    max_chars: int,
    turn_budget: int,
) -> Reply:
    """Store the participant's message (committed now), then return the reply to iterate.
    Raises `InputError` before storing anything when the text is empty or too long."""
    record_input(engine, interview_id=interview_id, text=text, max_chars=max_chars)
    return reply(engine, gateway, interview_id=interview_id, turn_budget=turn_budget)


def run_turn(
    engine: Engine,
    gateway: Gateway,
    *,
    interview_id: int,
    text: str,
    max_chars: int = 4000,
    turn_budget: int = 8,
) -> Reply:
    """One whole turn without a UI (benchmarks, simulated participants): store the text, get
    the reply to its end, return it (`outcome`, `text`, `error`)."""
    return send(
        engine,
        gateway,
        interview_id=interview_id,
        text=text,
        max_chars=max_chars,
        turn_budget=turn_budget,
    ).consume()


# --- the card -------------------------------------------------------------------------------


def _store_card(
    engine: Engine,
    *,
    interview_id: int,
    title: str,
    description: str,
    policies: Sequence[str],
    origin: str,
) -> int:
    """Create the interview's card or add a version; returns the version number."""
    with session_scope(engine) as s:
        interview = queries.get_interview(s, interview_id=interview_id)
        card = queries.get_interview_card(s, interview_id=interview_id)
        if card is not None and card.submitted_at is not None:
            raise InterviewError("Your card is already confirmed.")
        if card is None:
            participant = queries.get_participant(s, participant_id=interview.participant_id)
            assert participant.id is not None
            queries.create_card(
                s,
                deliberation_id=participant.deliberation_id,
                participant_id=participant.id,
                interview_id=interview_id,
                question_id=interview.question_id,
                title=title,
                description=description,
                policies=list(policies),
                origin=origin,
            )
            number = 1
        else:
            assert card.id is not None
            number = queries.add_card_version(
                s,
                card_id=card.id,
                title=title,
                description=description,
                policies=list(policies),
                origin=origin,
            ).version
        if interview.status == "active":
            queries.update_interview(s, interview_id=interview_id, status="card")
    return number


def _normalise(title: str, description: str, policies: Sequence[str]) -> tuple[str, str, list[str]]:
    return (
        " ".join(title.split()),
        " ".join(description.split()),
        [" ".join(p.split()) for p in policies if p.strip()],
    )


def save_card(
    engine: Engine,
    *,
    interview_id: int,
    title: str,
    description: str,
    policies: Sequence[str],
) -> CardDraft:
    """Store the participant's own text of the card as a new version (nothing is stored when
    it equals the current text). Origin "participant" when they edit a card, "form" when they
    write it in the guided form."""
    title, description, items = _normalise(title, description, policies)
    state = get_state(engine, interview_id=interview_id)
    if state.card is not None and state.card.submitted:
        raise InterviewError("Your card is already confirmed.")
    if len(title) > 200:
        raise InterviewError("The title is too long; please use 2 to 5 words.")
    current = state.card
    unchanged = current is not None and (
        current.title,
        current.description,
        list(current.policies),
    ) == (title, description, items)
    if not unchanged:
        written_in_form = state.mode == "form" and (current is None or current.origin == "form")
        origin = "form" if written_in_form else "participant"
        _store_card(
            engine,
            interview_id=interview_id,
            title=title,
            description=description,
            policies=items,
            origin=origin,
        )
    card = get_state(engine, interview_id=interview_id).card
    assert card is not None
    return card


def confirm_card(
    engine: Engine,
    *,
    interview_id: int,
    title: str,
    description: str,
    policies: Sequence[str],
    embedder: Any = None,
) -> CardDraft:
    """Save the text on screen (if changed), check it, submit it, place it among the
    deliberation's values and move the participant on to the peer values.

    Raises `InterviewError` with the blocking problems when the card cannot be confirmed yet.
    Confirming twice is harmless.
    """
    state = get_state(engine, interview_id=interview_id)
    if state.card is not None and state.card.submitted:
        return state.card
    title, description, items = _normalise(title, description, policies)
    problems = check_card(title, description, items, story_names=state.names)
    hard = blocking(problems)
    if hard:
        raise InterviewError("Please fix these points before confirming your card.", hard)
    card = save_card(
        engine, interview_id=interview_id, title=title, description=description, policies=items
    )
    with session_scope(engine) as s:
        queries.submit_card(s, card_id=card.card_id)
        queries.update_interview(s, interview_id=interview_id, status="confirmed")
        queries.set_participant_step(s, participant_id=state.participant_id, step="peers")
    place(engine, card_id=card.card_id, embedder=embedder)
    final = get_state(engine, interview_id=interview_id).card
    assert final is not None
    return final


def place(engine: Engine, *, card_id: int, embedder: Any = None) -> bool:
    """Link a submitted card to a canonical value (`elicit.values.place_card`). A failure is
    logged, not raised: the participant's card is safe, and the next batch dedupe places it."""
    try:
        with session_scope(engine) as s:
            values.place_card(s, card_id=card_id, embedder=embedder)
            s.commit()
        return True
    except Exception:  # noqa: BLE001 - never cost the participant their confirmation
        log.exception("could not place card %s among the values", card_id)
        return False


# --- the guided form --------------------------------------------------------------------------


def answer_form(
    engine: Engine, *, interview_id: int, stage: str, text: str | None, max_chars: int
) -> None:
    """Store the participant's answer to a guided-form question (the question as a notice,
    then their words), so the transcript reads like the chat."""
    if stage not in FORM_PROMPTS:
        raise ValueError(f"unknown form stage {stage!r}")
    cleaned = clean_input(text, max_chars=max_chars)
    with session_scope(engine) as s:
        interview = queries.get_interview(s, interview_id=interview_id)
        if interview.status == "confirmed":
            raise InterviewError("Your card is already confirmed.")
        queries.add_message(
            s, interview_id=interview_id, role="notice", content=FORM_PROMPTS[stage]
        )
        queries.add_message(s, interview_id=interview_id, role="user", content=cleaned)
