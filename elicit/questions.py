"""LLM proposals of questions and contexts, for the facilitator to review before saving.

`propose_questions` asks the model (through the gateway's structured output, purpose
"questions", prompt `propose_questions.md`) for N questions on the deliberation's topic with M
contexts each; `propose_contexts` (purpose "contexts", prompt `propose_contexts.md`) asks for
more contexts for one question. Replies are validated (counts, "When ...", no repeats of what
exists) and invalid ones get the gateway's one repair attempt. Nothing is saved here until the
facilitator accepts: `save_question_proposals` writes the reviewed drafts.

The facilitator's topic and existing questions enter the prompt as quoted data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from elicit import console
from elicit.prompts import load_prompt, quote_data

if TYPE_CHECKING:  # the gateway (and openai) load only when an LLM is configured
    from elicit.llm import Gateway

MAX_QUESTIONS = 10
MAX_CONTEXTS = 8


class ProposedQuestion(BaseModel):
    """One drafted question with its contexts."""

    title: str = Field(
        min_length=1, max_length=80, description="Two to five words naming the dilemma."
    )
    text: str = Field(
        min_length=1,
        max_length=1000,
        description="The question as a user would write it to an AI assistant, first person.",
    )
    contexts: list[str] = Field(
        description='Situations in which a response is judged; each starts with "When".'
    )


class QuestionProposals(BaseModel):
    """What the propose_questions tool returns."""

    questions: list[ProposedQuestion]


class ContextProposals(BaseModel):
    """What the propose_contexts tool returns."""

    contexts: list[str] = Field(description='Situation phrases; each starts with "When".')


@dataclass(frozen=True)
class Draft:
    """A reviewed draft as the facilitator left it, not yet checked."""

    title: str
    text: str
    contexts: Sequence[str] = ()


class ProposalError(Exception):
    """The proposals could not be made; the message is fit to show a facilitator."""


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def _context_problems(contexts: Sequence[str], *, want: int, where: str) -> list[str]:
    problems = []
    if len(contexts) < want:
        problems.append(f"{where} has {len(contexts)} contexts; give exactly {want}")
    for text in contexts:
        try:
            console.clean_context(text)
        except console.ConsoleError:
            problems.append(f'{where}: the context "{text[:80]}" must start with "When"')
    seen = [_norm(c) for c in contexts]
    if len(set(seen)) < len(seen):
        problems.append(f"{where} repeats a context; make each one different")
    return problems


def question_problems(
    proposals: QuestionProposals,
    *,
    n_questions: int,
    contexts_per_question: int,
    existing: Sequence[str] = (),
) -> list[str]:
    """What is wrong with a proposal (empty when it is usable)."""
    problems = []
    if len(proposals.questions) < n_questions:
        problems.append(
            f"there are {len(proposals.questions)} questions; give exactly {n_questions}"
        )
    known = {_norm(t) for t in existing}
    seen: set[str] = set()
    for i, q in enumerate(proposals.questions[:n_questions], start=1):
        key = _norm(q.text)
        if key in known:
            problems.append(f"question {i} repeats a question the organisers already have")
        if key in seen:
            problems.append(f"question {i} repeats another proposed question")
        seen.add(key)
        problems += _context_problems(q.contexts, want=contexts_per_question, where=f"question {i}")
    return problems


def _bounded(value: int, name: str, high: int) -> int:
    if not 1 <= int(value) <= high:
        raise ProposalError(f"Ask for between 1 and {high} {name}.")
    return int(value)


def _llm_error(exc: Exception, what: str) -> ProposalError:
    user = getattr(exc, "user_message", "")
    return ProposalError(f"The LLM could not propose {what}. {user} (Detail: {exc})".strip())


def _call(gateway: Gateway, *args: Any, what: str, **kwargs: Any) -> Any:
    from elicit.llm import LLMError

    try:
        return gateway.structured(*args, **kwargs)
    except LLMError as exc:
        raise _llm_error(exc, what) from exc


def propose_questions(
    gateway: Gateway,
    *,
    deliberation_id: int,
    topic: str,
    n_questions: int,
    contexts_per_question: int,
    existing_questions: Sequence[str] = (),
) -> list[ProposedQuestion]:
    """Draft `n_questions` questions with `contexts_per_question` contexts each (contexts
    normalised: whitespace collapsed, "When" capitalised). Raises `ProposalError`."""
    from elicit.llm import CallMeta

    n_questions = _bounded(n_questions, "questions", MAX_QUESTIONS)
    contexts_per_question = _bounded(contexts_per_question, "contexts per question", MAX_CONTEXTS)
    if not topic.strip():
        raise ProposalError("Write the deliberation's topic first; the LLM drafts from it.")
    prompt = load_prompt("propose_questions")
    system = prompt.render(
        n_questions=n_questions,
        contexts_per_question=contexts_per_question,
        topic=quote_data("topic", topic.strip()),
        existing_questions=quote_data(
            "existing_questions", "\n".join(f"- {q}" for q in existing_questions) or "(none yet)"
        ),
    )
    result: QuestionProposals = _call(
        gateway,
        [
            {"role": "system", "content": system},
            {"role": "user", "content": "Draft the questions now with the propose_questions tool."},
        ],
        QuestionProposals,
        what="questions",
        meta=CallMeta(purpose="questions", deliberation_id=deliberation_id),
        prompt=prompt,
        tool_name="propose_questions",
        tool_description="Return the drafted questions, each with its contexts.",
        validate=lambda p: question_problems(
            p,
            n_questions=n_questions,
            contexts_per_question=contexts_per_question,
            existing=existing_questions,
        ),
    )
    return [
        ProposedQuestion(
            title=q.title.strip(),
            text=q.text.strip(),
            contexts=[console.clean_context(c) for c in q.contexts[:contexts_per_question]],
        )
        for q in result.questions[:n_questions]
    ]


def propose_contexts(
    gateway: Gateway,
    *,
    deliberation_id: int,
    question_text: str,
    n_contexts: int,
    existing_contexts: Sequence[str] = (),
) -> list[str]:
    """Draft `n_contexts` new contexts for one question. Raises `ProposalError`."""
    from elicit.llm import CallMeta

    n_contexts = _bounded(n_contexts, "contexts", MAX_CONTEXTS)
    prompt = load_prompt("propose_contexts")
    system = prompt.render(
        n_contexts=n_contexts,
        question=quote_data("question", question_text.strip()),
        existing_contexts=quote_data(
            "existing_contexts", "\n".join(f"- {c}" for c in existing_contexts) or "(none yet)"
        ),
    )
    known = {_norm(c) for c in existing_contexts}

    def problems(p: ContextProposals) -> list[str]:
        found = _context_problems(p.contexts, want=n_contexts, where="the list")
        repeats = [c for c in p.contexts if _norm(c) in known]
        if repeats:
            found.append(f'"{repeats[0][:80]}" is a context the question already has')
        return found

    result: ContextProposals = _call(
        gateway,
        [
            {"role": "system", "content": system},
            {"role": "user", "content": "Draft the contexts now with the propose_contexts tool."},
        ],
        ContextProposals,
        what="contexts",
        meta=CallMeta(purpose="contexts", deliberation_id=deliberation_id),
        prompt=prompt,
        tool_name="propose_contexts",
        tool_description="Return the drafted contexts for the question.",
        validate=problems,
    )
    return [console.clean_context(c) for c in result.contexts[:n_contexts]]


def save_question_proposals(
    engine: Engine, *, deliberation_id: int, proposals: Sequence[Draft | ProposedQuestion]
) -> list[int]:
    """Save reviewed drafts as questions with their contexts. Every draft is checked first
    (`console.ConsoleError` names the first bad one), so a mistake saves nothing."""
    for i, p in enumerate(proposals, start=1):
        try:
            console.clean_question(p.title, p.text)
            for c in p.contexts:
                if c.strip():
                    console.clean_context(c)
        except console.ConsoleError as exc:
            raise console.ConsoleError(f"Draft {i}: {exc}") from None
    return [
        console.add_question(
            engine, deliberation_id=deliberation_id, title=p.title, text=p.text, contexts=p.contexts
        )
        for p in proposals
    ]


def save_context_proposals(
    engine: Engine, *, deliberation_id: int, question_id: int, texts: Sequence[str]
) -> list[int]:
    """Save reviewed context drafts and link them to the question. All are checked first
    (`console.ConsoleError` for the first bad one), so a mistake saves nothing."""
    for text in texts:
        console.clean_context(text)
    return [
        console.add_context(
            engine, deliberation_id=deliberation_id, text=text, question_ids=[question_id]
        )
        for text in texts
    ]
