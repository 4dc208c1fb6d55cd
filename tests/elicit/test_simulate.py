"""Simulated participants against the scripted LLM server, on SQLite and PostgreSQL: a pilot
takes each persona through the whole journey (also on a closed deliberation), a failure stops
only that persona, the pilot's rows can be deleted without touching real participants, and the
`mge simulate` command."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from db.models import Interview, LLMCall, Message, Participant, SurveyAnswer, ValuesCard, WiserVote
from elicit import journey, simulate
from elicit.cli import app
from elicit.config import Settings, get_settings
from elicit.llm import Gateway
from tests.elicit.test_journey import (
    GOOD,
    add_card,
    hypothesis,
    install_fake_place,
    joined,
    make_deliberation,
)
from tests.llm_server import Fault, Reply, ScriptedLLMServer, ToolCall, tool_names, user_turns

TOOL = "submit_values_card"
TITLES = ("Room to decide", "Steady facts", "Quiet company")


class Pilot:
    """Answers persona calls (no tools) with a story, and plays a short interviewer that shows
    a card, a different one each time, at the persona's second message."""

    def __init__(self) -> None:
        self.cards = 0
        self.persona_systems: list[str] = []
        self.models: dict[str, set[str]] = {"persona": set(), "interviewer": set()}

    def __call__(self, request: dict[str, Any]) -> Reply:
        self.models["interviewer" if tool_names(request) else "persona"].add(request["model"])
        if not tool_names(request):
            self.persona_systems.append(request["messages"][0]["content"])
            n = user_turns(request)
            return Reply(text=f"Persona answer {n}: the nurse who sat with my mother listened.")
        if user_turns(request) >= 2:
            card = dict(GOOD, title=TITLES[self.cards % len(TITLES)])
            self.cards += 1
            return Reply(text="Here is a card.", tool_calls=[ToolCall(TOOL, card)])
        return Reply(text="What did you notice in that moment?")


@pytest.fixture
def placed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    return install_fake_place(monkeypatch)


def closed_study(engine: Engine) -> dict[str, Any]:
    """A closed deliberation behind an invite code, with one question, two values of real
    participants and a story between them, so the wiser-than step has something to show."""
    d = make_deliberation(engine, n_questions=1, is_open=False, invite_code="secret")
    q = d["questions"][0]
    _, a = add_card(engine, d["id"], q, title="Plain Truth")
    _, b = add_card(engine, d["id"], q, title="Gentle Truth")
    hypothesis(engine, d, a, b, d["contexts"][q][0])
    return d


def rows(engine: Engine, model: Any, **where: Any) -> list[Any]:
    with Session(engine) as s:
        q = select(model)
        for key, value in where.items():
            q = q.where(getattr(model, key) == value)
        return list(s.exec(q).all())


def test_each_persona_goes_through_the_whole_journey(
    engine: Engine, llm_server: ScriptedLLMServer, gateway: Gateway, placed: list[int]
) -> None:
    pilot = Pilot()
    llm_server.default = pilot
    d = closed_study(engine)
    runs = simulate.simulate(engine, gateway, slug=d["slug"], n=3, seed=1)

    assert [r.problem for r in runs] == [None, None, None]
    assert all(r.finished for r in runs), runs
    assert [r.card_title for r in runs] == list(TITLES)
    assert [r.turns for r in runs] == [2, 2, 2]
    ids = [r.participant_id for r in runs]
    assert len(placed) == 3  # each confirmed card was placed among the values
    people = {p.id: p for p in rows(engine, Participant, deliberation_id=d["id"])}
    assert [people[i].entry_channel for i in ids] == ["simulated"] * 3
    assert all(people[i].step == "finished" for i in ids)
    # The persona's words are what the interviewer got, stored like a person's messages.
    for pid in ids:
        (iv,) = rows(engine, Interview, participant_id=pid)
        said = [m.content for m in rows(engine, Message, interview_id=iv.id, role="user")]
        assert "Persona answer 1: the nurse who sat with my mother listened." in said
        assert "Persona answer 2: the nurse who sat with my mother listened." in said
    cards = rows(engine, ValuesCard, deliberation_id=d["id"])
    assert {c.title for c in cards if c.participant_id in ids} == set(TITLES)
    # Every persona judged the one story (none of them holds either value), and answered.
    assert sorted(v.participant_id for v in rows(engine, WiserVote)) == sorted(ids)
    assert sum(r.wiser_votes for r in runs) == 3
    assert {a.participant_id for a in rows(engine, SurveyAnswer)} == set(ids)
    # Persona calls are in the ledger under their own purpose; personas differ (seeded).
    purposes = {(c.purpose, c.participant_id) for c in rows(engine, LLMCall)}
    assert {("simulate", pid) for pid in ids} <= purposes
    assert len({s.split("## The person")[1][:60] for s in pilot.persona_systems}) == 3
    # The deliberation stays closed for people.
    with pytest.raises(journey.DeliberationClosed):
        joined(engine, d)


def test_personas_speak_through_the_simulate_model(
    engine: Engine, llm_server: ScriptedLLMServer, placed: list[int]
) -> None:
    pilot = Pilot()
    llm_server.default = pilot
    d = closed_study(engine)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        openai_base_url=llm_server.base_url,
        openai_api_key="test",
        mge_model="main-model",
        mge_model_simulate="persona-model",
    )
    gateway = Gateway(settings=settings, engine=engine)
    (run,) = simulate.simulate(engine, gateway, slug=d["slug"], n=1)
    gateway.close()
    assert run.finished
    assert pilot.models == {"persona": {"persona-model"}, "interviewer": {"main-model"}}


def test_a_failure_stops_that_persona_only(
    engine: Engine, llm_server: ScriptedLLMServer, gateway: Gateway, placed: list[int]
) -> None:
    llm_server.default = Pilot()
    d = closed_study(engine)
    llm_server.script(Fault.server_error(500))  # the first persona's first words
    first, second = simulate.simulate(engine, gateway, slug=d["slug"], n=2)
    assert first.step == "interview" and first.card_title is None
    assert first.problem is not None and "persona's reply failed: server" in first.problem
    assert second.finished and second.problem is None
    failed = rows(engine, LLMCall, participant_id=first.participant_id)
    assert [(c.purpose, c.outcome) for c in failed] == [("simulate", "error")]


def test_an_interviewer_failure_is_reported_with_the_message_kept(
    engine: Engine, llm_server: ScriptedLLMServer, gateway: Gateway, placed: list[int]
) -> None:
    llm_server.default = Pilot()
    d = closed_study(engine)
    llm_server.script(Reply(text="I was a nurse for thirty years."), Fault.server_error(503))
    (run,) = simulate.simulate(engine, gateway, slug=d["slug"], n=1)
    assert run.problem is not None and "interviewer's reply failed" in run.problem
    assert run.turns == 1
    texts = [m.content for m in rows(engine, Message) if m.role == "user"]
    assert "I was a nurse for thirty years." in texts


def test_delete_simulated_leaves_real_participants(
    engine: Engine, llm_server: ScriptedLLMServer, gateway: Gateway, placed: list[int]
) -> None:
    llm_server.default = Pilot()
    d = closed_study(engine)
    real = {p.id for p in rows(engine, Participant, deliberation_id=d["id"])}
    runs = simulate.simulate(engine, gateway, slug=d["slug"], n=2)
    assert simulate.simulated_participant_ids(engine, deliberation_id=d["id"]) == [
        r.participant_id for r in runs
    ]
    assert simulate.delete_simulated(engine, deliberation_id=d["id"]) == 2
    assert simulate.simulated_participant_ids(engine, deliberation_id=d["id"]) == []
    left = {p.id for p in rows(engine, Participant, deliberation_id=d["id"]) if not p.deleted_at}
    assert left == real
    assert rows(engine, WiserVote) == []
    assert {c.title for c in rows(engine, ValuesCard)} == {"Plain Truth", "Gentle Truth"}


def test_simulate_refuses_without_an_llm_or_with_a_bad_count(
    engine: Engine, gateway: Gateway
) -> None:
    d = closed_study(engine)
    with pytest.raises(simulate.SimulationError, match="need an LLM"):
        simulate.simulate(engine, None, slug=d["slug"], n=1)
    for n in (0, simulate.MAX_PARTICIPANTS + 1):
        with pytest.raises(simulate.SimulationError, match="between 1 and"):
            simulate.simulate(engine, gateway, slug=d["slug"], n=n)
    assert simulate.simulated_participant_ids(engine, deliberation_id=d["id"]) == []


# --- the command ------------------------------------------------------------------------------


def test_cli_simulate_then_delete(
    monkeypatch: pytest.MonkeyPatch,
    llm_server: ScriptedLLMServer,
    db_url: str,
    engine: Engine,
    placed: list[int],
) -> None:
    llm_server.default = Pilot()
    d = closed_study(engine)
    runner = CliRunner()
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("MGE_LLM_MAX_RETRIES", "0")
    get_settings.cache_clear()
    args = ["simulate", "-d", d["slug"], "--database-url", db_url]
    done = runner.invoke(app, [*args, "-n", "2"])
    assert done.exit_code == 0, done.output
    assert "2 simulated participant(s): 2 finished, 2 card(s) confirmed" in done.stdout
    assert "'Room to decide'" in done.stdout
    gone = runner.invoke(app, [*args, "--delete"])
    assert gone.exit_code == 0, gone.output
    assert "deleted 2 simulated participant(s)" in gone.stdout
    get_settings.cache_clear()


def test_cli_simulate_without_llm_says_so(
    monkeypatch: pytest.MonkeyPatch, db_url: str, engine: Engine
) -> None:
    d = closed_study(engine)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    get_settings.cache_clear()
    done = CliRunner().invoke(app, ["simulate", "-d", d["slug"], "--database-url", db_url])
    assert done.exit_code == 1
    assert "need an LLM" in done.output
    get_settings.cache_clear()
