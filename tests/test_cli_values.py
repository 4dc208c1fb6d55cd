"""`mge dedupe` and `mge hypotheses`: exit codes, output (JSON exactly on stdout), rows written."""

from __future__ import annotations

import json

from sqlmodel import Session, select
from typer.testing import CliRunner

from db.engine import make_engine
from db.models import CanonicalValue, DedupeDecision, Hypothesis, LLMCall
from elicit.cli import app
from elicit.config import get_settings
from tests.llm_server import Reply, ToolCall
from tests.values_seed import AUTONOMY, CARE, SAFETY, TWIN, count, links, seed

runner = CliRunner()
LAYOUT = {"a": [("a", AUTONOMY)], "b": [("b", TWIN)], "v": [("s", SAFETY), ("c", CARE)]}


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_dedupe_dry_run_json_prints_only_the_clusters_and_changes_nothing(db_url):
    engine = make_engine(db_url)
    world = seed(engine, LAYOUT, slug="study")
    before = links(engine, world)
    result = _run(
        "dedupe", "--deliberation", "study", "--dry-run", "--json", "--database-url", db_url
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data) == ["clusters"]
    assert all(list(c) == ["canonical_id", "card_ids"] for c in data["clusters"])
    cards = world.cards
    by_cards = {tuple(c["card_ids"]): c["canonical_id"] for c in data["clusters"]}
    assert by_cards[(cards["a"], cards["b"])] == world.values["a"]
    assert {by_cards[(cards["s"],)], by_cards[(cards["c"],)]} == {world.values["v"], "new"}
    assert links(engine, world) == before
    assert count(engine, DedupeDecision) == 0
    engine.dispose()


def test_dedupe_applies_logs_and_is_idempotent(db_url):
    engine = make_engine(db_url)
    world = seed(engine, LAYOUT, slug="study")
    result = _run("dedupe", "-d", "study", "--json", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)
    assert "new" not in {c["canonical_id"] for c in first["clusters"]}
    now = links(engine, world)
    assert now["a"] == now["b"] and now["s"] != now["c"]
    with Session(engine) as s:
        actors = set(s.exec(select(DedupeDecision.actor)).all())
    assert actors == {"cli"}
    decisions = count(engine, DedupeDecision)
    values = count(engine, CanonicalValue)
    again = _run("dedupe", "-d", "study", "--json", "--database-url", db_url)
    assert again.exit_code == 0
    assert json.loads(again.stdout) == first
    assert count(engine, CanonicalValue) == values
    assert count(engine, DedupeDecision) == decisions  # nothing to change, nothing logged
    text = _run("dedupe", "-d", "study", "--database-url", db_url)
    assert text.stdout.strip().endswith("nothing to change")
    engine.dispose()


def test_dedupe_text_output_describes_the_plan(sqlite_url):
    engine = make_engine(sqlite_url)
    seed(engine, LAYOUT, slug="study")
    result = _run("dedupe", "-d", "study", "--dry-run", "--database-url", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "by similarity only (no LLM)" in result.stdout
    assert "merges value" in result.stdout and "dry run: nothing changed" in result.stdout
    engine.dispose()


def test_dedupe_unknown_deliberation_exits_1(sqlite_url):
    result = _run("dedupe", "-d", "nope", "--database-url", sqlite_url)
    assert result.exit_code == 1
    assert "error:" in result.stderr and result.stdout == ""


def _llm_env(monkeypatch, llm_server) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("MGE_LLM_MAX_RETRIES", "0")
    get_settings.cache_clear()


def test_dedupe_with_llm_configured_asks_and_logs(monkeypatch, llm_server, sqlite_url):
    _llm_env(monkeypatch, llm_server)
    llm_server.default = Reply(
        tool_calls=[ToolCall("judge_same_value", {"reason": "same", "same_value": True})]
    )
    engine = make_engine(sqlite_url)
    world = seed(engine, LAYOUT, slug="study")
    result = _run("dedupe", "-d", "study", "--database-url", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "with the LLM check" in result.stdout and "LLM check(s) made" in result.stdout
    with Session(engine) as s:
        calls = s.exec(select(LLMCall)).all()
        methods = set(s.exec(select(DedupeDecision.method)).all())
    assert calls and {c.purpose for c in calls} == {"dedupe"}
    assert methods == {"llm"}
    assert links(engine, world)["a"] == links(engine, world)["b"]
    engine.dispose()


def test_dedupe_llm_failure_exits_1_and_writes_nothing(monkeypatch, llm_server, sqlite_url):
    _llm_env(monkeypatch, llm_server)
    llm_server.default = Reply.malformed_tool_call("judge_same_value")
    engine = make_engine(sqlite_url)
    world = seed(engine, LAYOUT, slug="study")
    before = links(engine, world)
    result = _run("dedupe", "-d", "study", "--json", "--database-url", sqlite_url)
    assert result.exit_code == 1
    assert "could not use" in result.stderr and result.stdout == ""
    assert links(engine, world) == before and count(engine, DedupeDecision) == 0
    engine.dispose()


def test_dedupe_no_llm_flag_skips_the_llm(monkeypatch, llm_server, sqlite_url):
    _llm_env(monkeypatch, llm_server)
    engine = make_engine(sqlite_url)
    seed(engine, LAYOUT, slug="study")
    result = _run("dedupe", "-d", "study", "--no-llm", "--dry-run", "--database-url", sqlite_url)
    assert result.exit_code == 0 and "no LLM" in result.stdout
    assert llm_server.chat_requests == []
    engine.dispose()


# --- hypotheses ------------------------------------------------------------------------------


def test_hypotheses_dry_run_counts_and_writes_nothing(sqlite_url):
    engine = make_engine(sqlite_url)
    seed(engine, LAYOUT, slug="study")
    result = _run("hypotheses", "-d", "study", "--dry-run", "--database-url", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "3 values, 3 pairs, 6 hypothesis(es) to write" in result.stdout
    assert "dry run: 6 hypothesis(es) would be written" in result.stdout
    assert count(engine, Hypothesis) == 0
    engine.dispose()


def test_hypotheses_generate_then_rerun_adds_nothing(db_url):
    engine = make_engine(db_url)
    seed(engine, LAYOUT, slug="study")
    result = _run("hypotheses", "-d", "study", "--per-context", "2", "--database-url", db_url)
    assert result.exit_code == 0, result.output
    assert "4 hypothesis(es) created with templated stories (no LLM)" in result.stdout
    assert count(engine, Hypothesis) == 4
    again = _run("hypotheses", "-d", "study", "--per-context", "2", "--database-url", db_url)
    assert again.exit_code == 0
    assert "0 hypothesis(es) created" in again.stdout and "4 existed already" in again.stdout
    assert count(engine, Hypothesis) == 4
    engine.dispose()


def test_hypotheses_list_json(sqlite_url):
    engine = make_engine(sqlite_url)
    seed(engine, LAYOUT, slug="study")
    _run("hypotheses", "-d", "study", "--per-context", "1", "--database-url", sqlite_url)
    result = _run("hypotheses", "list", "-d", "study", "--json", "--database-url", sqlite_url)
    assert result.exit_code == 0, result.output
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(items) == 2
    assert {(i["from_id"], i["to_id"]) for i in items} == {
        (items[0]["from_id"], items[0]["to_id"]),
        (items[0]["to_id"], items[0]["from_id"]),
    }
    assert items[0]["votes"] == {"upgrade": 0, "no_upgrade": 0, "not_sure": 0}
    text = _run("hypotheses", "list", "-d", "study", "--database-url", sqlite_url)
    assert "[template]" in text.stdout
    engine.dispose()


def test_hypotheses_with_llm_failure_exits_1(monkeypatch, llm_server, sqlite_url):
    _llm_env(monkeypatch, llm_server)
    llm_server.default = Reply.malformed_tool_call("write_story")
    engine = make_engine(sqlite_url)
    seed(engine, LAYOUT, slug="study")
    result = _run("hypotheses", "-d", "study", "--database-url", sqlite_url)
    assert result.exit_code == 1 and "run again" in result.stderr
    assert count(engine, Hypothesis) == 0
    engine.dispose()


def test_hypotheses_needs_a_deliberation(sqlite_url):
    result = _run("hypotheses", "--database-url", sqlite_url)
    assert result.exit_code == 1 and "--deliberation" in result.stderr
