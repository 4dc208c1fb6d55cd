"""Simulated participants: LLM personas taken through the whole journey, to pilot a deliberation.

A facilitator runs N personas before launch (DESIGN.md 4) to see the interview, the cards, the
values, the stories and the dashboard fill up, and what the LLM calls cost. Each persona goes
through the participant functions a person's clicks call (`elicit.journey`, `elicit.interview`):
it joins (entry channel "simulated"; a closed deliberation and an invite code do not stop it),
takes the first question offered, answers the real interviewer (same prompt, gateway and
ledger as a person) until a card is shown, confirms that card, judges its peer values and the
wiser-than stories, answers the survey and finishes.

Its words come from a second conversation with the LLM (prompt `simulated_participant`, ledger
purpose "simulate", model MGE_MODEL_SIMULATE if set); its peer and wiser-than choices are seeded random draws: a
pilot checks that the process works, not what people think. Simulated participants are ordinary
participants marked by their entry channel: they show in the dashboard and in the graph (as
their own group) until `delete_simulated` removes them, with the same deletion a withdrawing
participant gets.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from db import queries
from db.engine import session_scope
from elicit import interview, journey, participants, values
from elicit.llm import CallMeta, Gateway, LLMError
from elicit.prompts import load_prompt
from graph.types import CHOICES

PROMPT_NAME = "simulated_participant"
PURPOSE = "simulate"  # MGE_MODEL_SIMULATE picks the personas' model
MAX_PARTICIPANTS = 50

# Our own sketches: different ages, situations and leanings, so the pilot's cards differ.
PERSONAS: tuple[str, ...] = (
    "A 67-year-old retired nurse who spent decades at bedsides; practical, warm, wary of "
    "advice that ignores a person's circumstances.",
    "A 24-year-old software tester who grew up in a strict religious family and later left it; "
    "values people reaching their own conclusions.",
    "A 41-year-old single father working night shifts; short on time, wants straight facts and "
    "concrete next steps.",
    "A 35-year-old hospital chaplain; listens for what people are afraid of and what gives them "
    "strength.",
    "A 52-year-old farmer in a small town; distrusts experts who talk down to people, trusts "
    "neighbours and lived experience.",
    "A 29-year-old public-health researcher; cares about accurate information and about not "
    "overstating what is known.",
    "A 46-year-old teacher who went through a hard medical decision herself; remembers which "
    "conversations helped and which felt cold.",
    "A 19-year-old first-year student who often turns to chatbots for advice and worries about "
    "being judged.",
    "A 58-year-old lawyer who has advised clients in crises; attends to consequences, rights and "
    "who else is affected.",
    "A 33-year-old social worker from a migrant family; notices language barriers, money worries "
    "and family pressure.",
    "A 71-year-old grandmother, devout and kind, with firm views she does not want to impose on "
    "her grandchildren.",
    "A 38-year-old emergency doctor; values calm, clarity and knowing when to say 'see someone "
    "in person now'.",
)


class SimulationError(RuntimeError):
    """The pilot cannot run at all (no LLM, too many personas); the message says what to do."""


@dataclass(frozen=True)
class SimulatedRun:
    """What happened to one persona: how far it got and why it stopped there."""

    participant_id: int
    persona: str
    step: str  # the participant's step at the end: "finished" when the whole journey ran
    turns: int  # its messages in the interview
    card_title: str | None
    peer_votes: int
    wiser_votes: int
    problem: str | None = None

    @property
    def finished(self) -> bool:
        return self.step == "finished"


def _persona_reply(
    gateway: Gateway,
    *,
    persona: str,
    state: interview.InterviewState,
    max_chars: int,
) -> str:
    """The persona's next message: the interviewer's messages are its "user" turns."""
    prompt = load_prompt(PROMPT_NAME)
    messages: list[dict[str, str]] = [
        {"role": "system", "content": prompt.render(persona=persona, question=state.question)}
    ]
    for m in state.messages:
        if m.role == "assistant" and m.content.strip():
            messages.append({"role": "user", "content": m.content})
        elif m.role == "user":
            messages.append({"role": "assistant", "content": m.content})
    if messages[-1]["role"] != "user":  # the interviewer has not spoken (yet): greet it
        messages.append({"role": "user", "content": "Please begin."})
    result = gateway.chat(
        messages,
        meta=CallMeta(
            purpose=PURPOSE,
            deliberation_id=state.deliberation_id,
            participant_id=state.participant_id,
            interview_id=state.interview_id,
        ),
        prompt=prompt,
        temperature=0.9,
    )
    text = " ".join((result.text or "").split())
    return text[:max_chars] or "I am not sure how to put it."


def _interview(
    engine: Engine,
    gateway: Gateway,
    *,
    participant_id: int,
    persona: str,
    max_turns: int,
    max_chars: int,
    turn_budget: int,
    embedder: Any,
) -> tuple[int, str | None, str | None]:
    """Talk until a card is shown, then confirm it: (turns, card title, problem)."""
    state = interview.load_state(engine, participant_id=participant_id, llm_available=True)
    iid = state.interview_id
    while state.card is None:
        if state.mode != "llm":
            return state.turns, None, "the interview switched to the guided form"
        if state.turns >= max_turns:
            return state.turns, None, f"no card after {max_turns} messages"
        try:
            text = _persona_reply(gateway, persona=persona, state=state, max_chars=max_chars)
        except LLMError as exc:
            return state.turns, None, f"the persona's reply failed: {exc.kind}: {exc.detail}"
        reply = interview.run_turn(
            engine,
            gateway,
            interview_id=iid,
            text=text,
            max_chars=max_chars,
            turn_budget=turn_budget,
        )
        state = interview.get_state(engine, interview_id=iid)
        if reply.outcome == "failed":  # the gateway has already retried what can be retried
            return state.turns, None, f"the interviewer's reply failed: {reply.error}"
    card = state.card
    if not card.submitted:
        try:
            card = interview.confirm_card(
                engine,
                interview_id=iid,
                title=card.title,
                description=card.description,
                policies=card.policies,
                embedder=embedder,
            )
        except interview.InterviewError as exc:
            return state.turns, None, f"the card shown could not be confirmed: {exc}"
    return state.turns, card.title, None


def _after_card(engine: Engine, *, participant_id: int, rng: random.Random) -> tuple[int, int]:
    """Peer values, wiser-than stories, where the value landed, survey, finish: (peer votes,
    wiser votes)."""
    peer_votes = wiser_votes = 0
    for _ in range(200):  # each pass moves at least one step or one story on
        step = journey.participant_view(engine, participant_id=participant_id).step
        if step == "peers":
            draw = journey.peer_draw(engine, participant_id=participant_id)
            ids = [v.id for v in draw.values]
            chosen = rng.sample(ids, k=rng.randint(0, len(ids))) if ids else []
            journey.submit_peer_votes(
                engine,
                participant_id=participant_id,
                draw_id=draw.draw_id,
                value_ids=chosen,
                none_wise=not chosen,
            )
            peer_votes += len(chosen)
        elif step == "wiser":
            progress = journey.wiser_progress(engine, participant_id=participant_id)
            if progress.item is None:
                journey.leave_wiser(engine, participant_id=participant_id)
                continue
            journey.record_wiser_vote(
                engine,
                participant_id=participant_id,
                hypothesis_id=progress.item.hypothesis_id,
                choice=rng.choice(CHOICES),
            )
            wiser_votes += 1
        elif step == "landed":
            journey.leave_landed(engine, participant_id=participant_id)
        elif step == "survey":
            scores = {item: rng.randint(2, 5) for item, _ in journey.SURVEY_ITEMS}
            journey.save_survey(engine, participant_id=participant_id, scores=scores)
        else:
            break
    return peer_votes, wiser_votes


def simulate(
    engine: Engine,
    gateway: Gateway | None,
    *,
    slug: str,
    n: int,
    seed: int = 0,
    max_turns: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> list[SimulatedRun]:
    """Run `n` personas through the deliberation `slug`, one after the other, with the
    gateway's settings (message limit, turn budget, embedder) as a person's page uses them.

    A persona that cannot go on (an LLM failure, no card after `max_turns` messages) stops
    where it is and says why in its run; the next persona still runs.
    """
    if gateway is None:
        raise SimulationError(
            "Simulated participants need an LLM: set OPENAI_BASE_URL (and OPENAI_API_KEY)."
        )
    if not 1 <= n <= MAX_PARTICIPANTS:
        raise SimulationError(f"Choose between 1 and {MAX_PARTICIPANTS} simulated participants.")
    settings = gateway.settings
    embedder = values.embedder_from_settings(settings, gateway)
    rng = random.Random(seed)
    runs: list[SimulatedRun] = []
    for k in range(n):
        persona = PERSONAS[(seed + k) % len(PERSONAS)]
        entry = journey.join(
            engine,
            slug=slug,
            consent=journey.Consent(sharing="publish", training=False),
            rng=rng,
            simulated=True,
        )
        pid = entry.participant_id
        if entry.step == "question":
            offered = journey.offered_questions(engine, participant_id=pid)
            journey.choose_question(engine, participant_id=pid, question_id=offered[0].id)
        turns, title, problem = _interview(
            engine,
            gateway,
            participant_id=pid,
            persona=persona,
            max_turns=max_turns,
            max_chars=settings.mge_max_message_chars,
            turn_budget=settings.mge_turn_budget,
            embedder=embedder,
        )
        peer_votes = wiser_votes = 0
        if problem is None:
            peer_votes, wiser_votes = _after_card(engine, participant_id=pid, rng=rng)
        step = journey.participant_view(engine, participant_id=pid).step
        runs.append(
            SimulatedRun(pid, persona, step, turns, title, peer_votes, wiser_votes, problem)
        )
        if progress is not None:
            progress(k + 1, n)
    return runs


def simulated_participant_ids(engine: Engine, *, deliberation_id: int) -> list[int]:
    with session_scope(engine) as s:
        return queries.list_participant_ids_by_channel(
            s, deliberation_id=deliberation_id, entry_channel=journey.SIMULATED_CHANNEL
        )


def delete_simulated(engine: Engine, *, deliberation_id: int) -> int:
    """Delete every simulated participant of the deliberation (their messages, cards, votes;
    values only they supported); returns how many."""
    ids = simulated_participant_ids(engine, deliberation_id=deliberation_id)
    for pid in ids:
        participants.delete_participant(engine, participant_id=pid)
    return len(ids)


def summary(runs: list[SimulatedRun]) -> str:
    done = sum(r.finished for r in runs)
    cards = sum(r.card_title is not None for r in runs)
    turns = sum(r.turns for r in runs)
    return (
        f"{len(runs)} simulated participant(s): {done} finished, {cards} card(s) confirmed, "
        f"{turns} interview message(s), {sum(r.peer_votes for r in runs)} peer vote(s), "
        f"{sum(r.wiser_votes for r in runs)} wiser-than vote(s)"
    )
