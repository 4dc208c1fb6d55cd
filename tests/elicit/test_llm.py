"""The LLM gateway against the scripted server: what it returns, what it sent, and the ledger
row it wrote for every attempt (failed ones included), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from db.models import LLMCall
from elicit.config import Settings
from elicit.llm import (
    OPENAI_HOST,
    USER_MESSAGES,
    CallMeta,
    Gateway,
    LLMError,
    ToolCall,
    Usage,
    gateway_from_settings,
    token_limit_key,
)
from elicit.prompts import load_prompt
from tests.llm_server import Fault, Reply, ScriptedLLMServer
from tests.llm_server import ToolCall as ScriptedToolCall

MESSAGES = [
    {"role": "system", "content": "You interview people about their values."},
    {"role": "user", "content": "I want the assistant to be honest with me."},
]
META = CallMeta("interview", deliberation_id=3, participant_id=5, interview_id=7)
CARD_TOOL = "submit_values_card"


class Card(BaseModel):
    title: str = Field(min_length=3, max_length=60)
    description: str = Field(min_length=10)
    policies: list[str] = Field(min_length=3, max_length=3)


def caps_policies(card: Card) -> list[str]:
    return [
        f"policies.{i}: must begin with an ALL-CAPS word"
        for i, p in enumerate(card.policies)
        if not p.split() or not p.split()[0].isupper()
    ]


GOOD_CARD = {
    "title": "Grounded Honesty",
    "description": "Truthful answers that leave the person steadier.",
    "policies": ["MOMENTS when a fact helps", "SIGNS of safety", "CHANCES to name doubt"],
}


class Sleeps(list[float]):
    """An injected sleep that records what it was asked to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_gateway(
    server: ScriptedLLMServer,
    engine: Engine | None,
    *,
    sleep: Any = None,
    backoff_base_s: float = 0.001,
    **overrides: Any,
) -> Gateway:
    values: dict[str, Any] = {
        "openai_base_url": server.base_url,
        "openai_api_key": "test-key",
        "mge_model": "base-model",
        "mge_model_interview": "interview-model",
        "mge_llm_timeout_s": 5.0,
        "mge_llm_max_retries": 2,
        **overrides,
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    return Gateway(
        settings=settings,
        engine=engine,
        sleep=sleep if sleep is not None else Sleeps(),
        backoff_base_s=backoff_base_s,
    )


def ledger(engine: Engine) -> list[LLMCall]:
    with Session(engine) as session:
        return list(session.exec(select(LLMCall).order_by(LLMCall.id)).all())


def summary(engine: Engine) -> list[tuple[int, str, str | None]]:
    return [(r.attempt, r.outcome, r.error_type) for r in ledger(engine)]


@pytest.fixture
def gw(llm_server: ScriptedLLMServer, sqlite_engine: Engine) -> Iterator[Gateway]:
    gateway = make_gateway(llm_server, sqlite_engine)
    yield gateway
    gateway.close()


# --- streamed chat -------------------------------------------------------------------------


def test_stream_chat_yields_deltas_and_writes_a_ledger_row(
    llm_server: ScriptedLLMServer, engine: Engine
) -> None:
    """Runs on SQLite and PostgreSQL."""
    prompt = load_prompt("ping")
    tools = [{"type": "function", "function": {"name": CARD_TOOL, "parameters": {}}}]
    llm_server.script(Reply(text="What matters most to you here?", usage=(120, 9, 64)))
    gateway = make_gateway(llm_server, engine)

    stream = gateway.stream_chat(MESSAGES, meta=META, prompt=prompt, tools=tools)
    deltas = list(stream)

    assert len(deltas) > 1 and "".join(deltas) == "What matters most to you here?"
    assert stream.text == "What matters most to you here?" and stream.tool_calls == []
    assert stream.usage == Usage(input_tokens=120, output_tokens=9, cached_input_tokens=64)
    sent = llm_server.last_request.body
    assert sent["model"] == "interview-model"  # model per purpose
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == MESSAGES and sent["tools"] == tools
    assert sent["temperature"] == 0.4 and sent["max_tokens"] == 800
    [row] = ledger(engine)
    assert (row.purpose, row.model, row.streamed, row.attempt, row.outcome) == (
        "interview",
        "interview-model",
        True,
        1,
        "ok",
    )
    assert (row.deliberation_id, row.participant_id, row.interview_id) == (3, 5, 7)
    assert (row.prompt_name, row.prompt_hash) == ("ping", prompt.hash)
    assert (row.input_tokens, row.output_tokens, row.cached_input_tokens) == (120, 9, 64)
    assert row.error_type is None and row.duration_ms >= 0
    gateway.close()


def test_stream_chat_reassembles_tool_call_fragments(
    llm_server: ScriptedLLMServer, gw: Gateway
) -> None:
    llm_server.script(
        Reply(text="Here is a card.", tool_calls=[ScriptedToolCall(CARD_TOOL, GOOD_CARD)])
    )
    stream = gw.stream_chat(MESSAGES, meta=META)
    assert "".join(stream) == "Here is a card."
    [call] = stream.tool_calls
    assert call.name == CARD_TOOL and call.id.startswith("call_")
    assert call.parsed() == GOOD_CARD
    assert stream.finish_reason == "tool_calls"


def test_stream_with_malformed_tool_call_is_returned_but_ledgered_as_invalid(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    """The caller still gets the reply (it re-asks or falls back), but the ledger must not call
    an unusable reply "ok": a facilitator counting failures would miss it."""
    llm_server.script(Reply.malformed_tool_call(CARD_TOOL))
    stream = gw.stream_chat(MESSAGES, meta=META)
    list(stream)
    [call] = stream.tool_calls
    with pytest.raises(LLMError):
        call.parsed()
    [row] = ledger(sqlite_engine)
    assert (row.outcome, row.error_type) == ("error", "invalid_output")
    assert CARD_TOOL in (row.error_message or "")


def test_chat_with_malformed_tool_call_is_ledgered_as_invalid(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    llm_server.script(
        Reply.malformed_tool_call(CARD_TOOL),
        Reply(tool_calls=[ScriptedToolCall(CARD_TOOL, GOOD_CARD)]),
    )
    first = gw.chat(MESSAGES, meta=META)
    second = gw.chat(MESSAGES, meta=META)
    assert first.tool_calls[0].arguments.startswith('{"title"')
    assert second.tool_calls[0].parsed() == GOOD_CARD
    assert summary(sqlite_engine) == [(1, "error", "invalid_output"), (1, "ok", None)]


def test_stream_is_lazy_until_iterated(llm_server: ScriptedLLMServer, gw: Gateway) -> None:
    stream = gw.stream_chat(MESSAGES, meta=META)
    assert llm_server.requests == []
    assert stream.result().text.startswith("Echo:")
    assert len(llm_server.requests) == 1


def test_stream_cut_midway_raises_connection_without_retrying(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    llm_server.script(Fault.cut(after_chunks=2, reply=Reply(text="one two three four")))
    stream = gw.stream_chat(MESSAGES, meta=META)
    seen = []
    with pytest.raises(LLMError) as info:
        for delta in stream:
            seen.append(delta)
    assert info.value.kind == "connection"
    assert seen == ["one"] and stream.text == "one"  # visible text is never repeated
    assert len(llm_server.chat_requests) == 1
    [row] = ledger(sqlite_engine)
    assert (row.outcome, row.error_type, row.streamed) == ("error", "connection", True)
    assert (row.input_tokens, row.output_tokens, row.cached_input_tokens) == (None, None, None)


def test_stream_cut_before_first_delta_is_retried(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    llm_server.script(Fault.cut(after_chunks=1), Reply(text="Second try works.", usage=(5, 3, 0)))
    assert "".join(gw.stream_chat(MESSAGES, meta=META)) == "Second try works."
    assert summary(sqlite_engine) == [(1, "error", "connection"), (2, "ok", None)]
    assert ledger(sqlite_engine)[1].cached_input_tokens == 0


def test_stream_rate_limited_then_ok_is_retried(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    llm_server.script(Fault.rate_limit(retry_after_ms=1), Reply(text="ok"))
    assert "".join(gw.stream_chat(MESSAGES, meta=META)) == "ok"
    assert summary(sqlite_engine) == [(1, "error", "rate_limit"), (2, "ok", None)]


def test_stream_stall_before_text_is_retried_then_raises_timeout(
    llm_server: ScriptedLLMServer, sqlite_engine: Engine
) -> None:
    # A 1 s read timeout leaves the healthy retry room to answer on a loaded 2-core machine.
    gateway = make_gateway(llm_server, sqlite_engine, mge_llm_timeout_s=1.0)
    llm_server.script(Reply(text="slow", chunk_delay_s=4))  # stalls after the role chunk
    assert "".join(gateway.stream_chat(MESSAGES, meta=META)).startswith("Echo:")
    assert summary(sqlite_engine) == [(1, "error", "timeout"), (2, "ok", None)]

    no_retry = make_gateway(llm_server, sqlite_engine, mge_llm_timeout_s=1.0, mge_llm_max_retries=0)
    llm_server.script(Reply(text="slow", chunk_delay_s=4))
    with pytest.raises(LLMError) as info:
        list(no_retry.stream_chat(MESSAGES, meta=META))
    assert info.value.kind == "timeout"
    assert summary(sqlite_engine)[-1] == (1, "error", "timeout")


def test_stream_consumer_stopping_early_records_a_cancelled_row(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    llm_server.script(Reply(text="a b c d e f"))
    stream = gw.stream_chat(MESSAGES, meta=META)
    assert next(stream) == "a"
    stream.close()
    [row] = ledger(sqlite_engine)
    assert (row.outcome, row.error_type) == ("error", "cancelled")


# --- non-streamed chat ---------------------------------------------------------------------


def test_chat_returns_text_tool_calls_and_usage(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    llm_server.script(
        Reply(text="Noted.", tool_calls=[ScriptedToolCall("pick", {"n": 2})], usage=(30, 4))
    )
    result = gw.chat(MESSAGES, meta=CallMeta("dedupe"), tool_choice="auto", tools=[])
    assert result.text == "Noted."
    assert [(c.name, c.parsed()) for c in result.tool_calls] == [("pick", {"n": 2})]
    assert result.usage == Usage(30, 4, None)
    sent = llm_server.last_request.body
    assert sent["model"] == "base-model" and "stream" not in sent
    assert sent["tool_choice"] == "auto" and "tools" not in sent
    [row] = ledger(sqlite_engine)
    assert (row.purpose, row.streamed, row.cached_input_tokens, row.prompt_name) == (
        "dedupe",
        False,
        None,
        None,
    )


def test_explicit_model_and_temperature_win(llm_server: ScriptedLLMServer, gw: Gateway) -> None:
    gw.chat(MESSAGES, meta=META, model="special", temperature=0.0)
    assert llm_server.last_request.body["model"] == "special"
    assert llm_server.last_request.body["temperature"] == 0.0


def test_output_cap_field_follows_the_setting(llm_server: ScriptedLLMServer) -> None:
    gateway = make_gateway(llm_server, None, mge_token_limit_param="max_completion_tokens")
    gateway.chat(MESSAGES, meta=META)
    sent = llm_server.last_request.body
    assert sent["max_completion_tokens"] == 800 and "max_tokens" not in sent
    gateway.close()


def test_output_cap_field_on_auto_is_openais_only_without_a_base_url(
    llm_server: ScriptedLLMServer,
) -> None:
    def key(**values: Any) -> str:
        return token_limit_key(Settings(_env_file=None, openai_api_key="k", **values))  # type: ignore[call-arg]

    assert key() == "max_completion_tokens"  # no OPENAI_BASE_URL: the SDK talks to OpenAI
    assert key(openai_base_url=llm_server.base_url) == "max_tokens"
    assert key(openai_base_url=f"http://{OPENAI_HOST}.example.org/v1") == "max_tokens"
    assert key(openai_base_url=llm_server.base_url, mge_token_limit_param="max_tokens") == (
        "max_tokens"
    )


# --- structured output ---------------------------------------------------------------------


def test_structured_returns_a_validated_model(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    prompt = load_prompt("ping")
    llm_server.script(
        Reply(tool_calls=[ScriptedToolCall(CARD_TOOL, GOOD_CARD)], usage=(50, 20, 10))
    )
    card = gw.structured(
        MESSAGES,
        Card,
        meta=CallMeta("articulate"),
        prompt=prompt,
        tool_name=CARD_TOOL,
        tool_description="Submit the values card.",
        validate=caps_policies,
    )
    assert card == Card(**GOOD_CARD)
    sent = llm_server.last_request.body
    assert sent["tool_choice"] == {"type": "function", "function": {"name": CARD_TOOL}}
    assert sent["tools"][0]["function"]["parameters"] == Card.model_json_schema()
    assert sent["tools"][0]["function"]["description"] == "Submit the values card."
    [row] = ledger(sqlite_engine)
    assert (row.outcome, row.prompt_hash, row.input_tokens, row.cached_input_tokens) == (
        "ok",
        prompt.hash,
        50,
        10,
    )


def test_structured_repairs_invalid_output_once(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    bad = {**GOOD_CARD, "policies": ["only one"]}
    llm_server.script(
        Reply(tool_calls=[ScriptedToolCall(CARD_TOOL, bad, id="call_bad")], usage=(40, 10)),
        Reply(tool_calls=[ScriptedToolCall(CARD_TOOL, GOOD_CARD)], usage=(70, 12)),
    )
    card = gw.structured(
        MESSAGES, Card, meta=META, tool_name=CARD_TOOL, tool_description="Submit the card."
    )
    assert card.title == "Grounded Honesty"
    repair = llm_server.chat_requests[1].body["messages"]
    assert repair[: len(MESSAGES)] == MESSAGES
    assistant, tool_msg = repair[len(MESSAGES) :]
    assert assistant["tool_calls"][0]["id"] == "call_bad"
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == bad
    assert tool_msg["role"] == "tool" and tool_msg["tool_call_id"] == "call_bad"
    assert "policies" in tool_msg["content"] and CARD_TOOL in tool_msg["content"]
    rows = ledger(sqlite_engine)
    assert summary(sqlite_engine) == [(1, "error", "invalid_output"), (2, "ok", None)]
    assert [(r.input_tokens, r.output_tokens) for r in rows] == [(40, 10), (70, 12)]
    assert "policies" in (rows[0].error_message or "")


def test_structured_invalid_twice_raises_invalid_output(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    lower = {**GOOD_CARD, "policies": ["moments", "signs", "chances"]}
    llm_server.script(
        Reply(tool_calls=[ScriptedToolCall(CARD_TOOL, lower)]),
        Reply(tool_calls=[ScriptedToolCall(CARD_TOOL, lower)]),
    )
    with pytest.raises(LLMError) as info:
        gw.structured(
            MESSAGES,
            Card,
            meta=META,
            tool_name=CARD_TOOL,
            tool_description="d",
            validate=caps_policies,
        )
    assert info.value.kind == "invalid_output"
    assert any("ALL-CAPS" in p for p in info.value.problems)
    assert summary(sqlite_engine) == [
        (1, "error", "invalid_output"),
        (2, "error", "invalid_output"),
    ]
    assert len(llm_server.chat_requests) == 2


def test_structured_malformed_tool_json_is_repaired(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    llm_server.script(
        Reply.malformed_tool_call(CARD_TOOL, '{"title": "Grounded'),
        Reply(tool_calls=[ScriptedToolCall(CARD_TOOL, GOOD_CARD)]),
    )
    card = gw.structured(MESSAGES, Card, meta=META, tool_name=CARD_TOOL, tool_description="d")
    assert card.policies == GOOD_CARD["policies"]
    assert "JSON" in llm_server.chat_requests[1].body["messages"][-1]["content"]
    assert summary(sqlite_engine) == [(1, "error", "invalid_output"), (2, "ok", None)]


def test_structured_reply_without_a_tool_call_asks_again(
    llm_server: ScriptedLLMServer, gw: Gateway
) -> None:
    llm_server.script(
        Reply(text="I'd rather chat."), Reply(tool_calls=[ScriptedToolCall(CARD_TOOL, GOOD_CARD)])
    )
    gw.structured(MESSAGES, Card, meta=META, tool_name=CARD_TOOL, tool_description="d")
    follow_up = llm_server.chat_requests[1].body["messages"][-2:]
    assert follow_up[0] == {"role": "assistant", "content": "I'd rather chat."}
    assert follow_up[1]["role"] == "user" and CARD_TOOL in follow_up[1]["content"]


def test_structured_transport_retry_and_repair_number_attempts_in_order(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    llm_server.script(
        Fault.server_error(500),
        Reply.malformed_tool_call(CARD_TOOL),
        Reply(tool_calls=[ScriptedToolCall(CARD_TOOL, GOOD_CARD)]),
    )
    gw.structured(MESSAGES, Card, meta=META, tool_name=CARD_TOOL, tool_description="d")
    assert summary(sqlite_engine) == [
        (1, "error", "server"),
        (2, "error", "invalid_output"),
        (3, "ok", None),
    ]


# --- embeddings ----------------------------------------------------------------------------


def test_embed_returns_vectors_in_order_batched_with_a_row_per_request(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    texts = ["honesty", "care", "honesty"]
    vectors = gw.embed(texts, meta=CallMeta("embed", deliberation_id=1), batch_size=2)
    assert len(vectors) == 3 and all(len(v) == 64 for v in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    bodies = [r.body for r in llm_server.embedding_requests]
    assert [b["input"] for b in bodies] == [["honesty", "care"], ["honesty"]]
    assert {b["model"] for b in bodies} == {"text-embedding-3-small"}
    assert {b["encoding_format"] for b in bodies} == {"float"}
    rows = ledger(sqlite_engine)
    assert [(r.purpose, r.model, r.outcome, r.input_tokens) for r in rows] == [
        ("embed", "text-embedding-3-small", "ok", 2),
        ("embed", "text-embedding-3-small", "ok", 1),
    ]
    assert gw.embed([], meta=CallMeta("embed")) == []


def test_embed_retries_a_server_error(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    llm_server.script(Fault.server_error(503, endpoint="embeddings"))
    assert len(gw.embed(["x"], meta=CallMeta("embed"))) == 1
    assert summary(sqlite_engine) == [(1, "error", "server"), (2, "ok", None)]


# --- faults, retries, typed errors ---------------------------------------------------------


def test_timeout_is_retried_then_raised(
    llm_server: ScriptedLLMServer, sqlite_engine: Engine
) -> None:
    gateway = make_gateway(llm_server, sqlite_engine, mge_llm_timeout_s=0.15, mge_llm_max_retries=1)
    llm_server.script(Fault.timeout(hang_s=10), Fault.timeout(hang_s=10))
    started = time.monotonic()
    with pytest.raises(LLMError) as info:
        gateway.chat(MESSAGES, meta=META)
    assert info.value.kind == "timeout"
    assert time.monotonic() - started >= 0.3
    assert summary(sqlite_engine) == [(1, "error", "timeout"), (2, "error", "timeout")]
    assert all(r.duration_ms >= 150 for r in ledger(sqlite_engine))


def test_rate_limit_honours_retry_after_ms(
    llm_server: ScriptedLLMServer, sqlite_engine: Engine
) -> None:
    gateway = make_gateway(llm_server, sqlite_engine, sleep=time.sleep)
    llm_server.script(Fault.rate_limit(retry_after_ms=200), Reply(text="fine"))
    started = time.monotonic()
    assert gateway.chat(MESSAGES, meta=META).text == "fine"
    assert time.monotonic() - started >= 0.2
    assert summary(sqlite_engine) == [(1, "error", "rate_limit"), (2, "ok", None)]


@pytest.mark.parametrize(("header_s", "expected"), [(1, 1.0), (120, 20.0)])
def test_retry_after_seconds_is_honoured_up_to_a_cap(
    llm_server: ScriptedLLMServer, header_s: int, expected: float
) -> None:
    sleeps = Sleeps()
    gateway = make_gateway(llm_server, None, sleep=sleeps)
    llm_server.script(Fault.rate_limit(retry_after_s=header_s), Reply(text="ok"))
    gateway.chat(MESSAGES, meta=META)
    assert sleeps == [expected]


def test_server_error_then_success(llm_server: ScriptedLLMServer, engine: Engine) -> None:
    """Runs on SQLite and PostgreSQL: a failed attempt and the retry each get a row."""
    gateway = make_gateway(llm_server, engine)
    llm_server.script(Fault.server_error(500), Reply(text="recovered", usage=(11, 2, 5)))
    assert gateway.chat(MESSAGES, meta=META).text == "recovered"
    rows = ledger(engine)
    assert summary(engine) == [(1, "error", "server"), (2, "ok", None)]
    assert (rows[0].input_tokens, rows[1].input_tokens, rows[1].cached_input_tokens) == (
        None,
        11,
        5,
    )
    assert "500" in (rows[0].error_message or "")
    gateway.close()


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_forever_raises_after_the_retries(
    llm_server: ScriptedLLMServer, sqlite_engine: Engine, status: int
) -> None:
    sleeps = Sleeps()
    gateway = make_gateway(llm_server, sqlite_engine, sleep=sleeps, backoff_base_s=1.0)
    llm_server.script(*[Fault.server_error(status)] * 3)
    with pytest.raises(LLMError) as info:
        gateway.chat(MESSAGES, meta=META)
    assert (info.value.kind, info.value.status_code) == ("server", status)
    assert summary(sqlite_engine) == [
        (1, "error", "server"),
        (2, "error", "server"),
        (3, "error", "server"),
    ]
    # exponential backoff with jitter: retry n waits within [base*2^(n-1)/2, base*2^(n-1)]
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


def test_malformed_body_is_a_server_error(
    llm_server: ScriptedLLMServer, sqlite_engine: Engine
) -> None:
    gateway = make_gateway(llm_server, sqlite_engine, mge_llm_max_retries=0)
    llm_server.script(Fault.malformed_body())
    with pytest.raises(LLMError) as info:
        gateway.chat(MESSAGES, meta=META)
    assert info.value.kind == "server" and "JSON" in str(info.value)
    assert summary(sqlite_engine) == [(1, "error", "server")]


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.http(401), "auth"),
        (Fault.http(403), "auth"),
        (Fault.http(400, message="context too long"), "bad_request"),
        (Fault.http(404, message="model not found"), "config"),
        (Fault.http(429, code="insufficient_quota"), "config"),
    ],
)
def test_non_transient_errors_are_not_retried(
    llm_server: ScriptedLLMServer, sqlite_engine: Engine, fault: Fault, kind: str
) -> None:
    gateway = make_gateway(llm_server, sqlite_engine)
    llm_server.script(fault)
    with pytest.raises(LLMError) as info:
        gateway.chat(MESSAGES, meta=META)
    assert info.value.kind == kind and not info.value.retryable
    assert len(llm_server.chat_requests) == 1
    assert summary(sqlite_engine) == [(1, "error", kind)]


def test_unreachable_server_is_a_connection_error(sqlite_engine: Engine) -> None:
    with ScriptedLLMServer() as server:
        pass  # stopped: its port now refuses connections
    gateway = make_gateway(server, sqlite_engine, mge_llm_max_retries=1)
    with pytest.raises(LLMError) as info:
        "".join(gateway.stream_chat(MESSAGES, meta=META))
    assert info.value.kind == "connection"
    assert summary(sqlite_engine) == [(1, "error", "connection"), (2, "error", "connection")]


@pytest.mark.parametrize("kind", sorted(USER_MESSAGES))
def test_user_messages_are_plain_words(kind: str) -> None:
    message = LLMError(kind, "RateLimitError 429: {'error': ...}").user_message  # type: ignore[arg-type]
    assert message.endswith(".") and len(message) < 160
    for jargon in ("429", "HTTP", "API", "JSON", "Error", "{", "Traceback", "token"):
        assert jargon not in message


# --- wiring --------------------------------------------------------------------------------


def test_no_engine_means_no_ledger(llm_server: ScriptedLLMServer) -> None:
    gateway = make_gateway(llm_server, None)
    assert gateway.chat(MESSAGES, meta=META).text.startswith("Echo:")


def test_a_broken_ledger_does_not_cost_the_answer(
    llm_server: ScriptedLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    from db.engine import make_engine

    unmigrated = make_engine("sqlite://")  # no tables: every ledger write fails
    gateway = make_gateway(llm_server, unmigrated)
    assert gateway.chat(MESSAGES, meta=META).text.startswith("Echo:")
    assert "ledger" in caplog.text


def test_gateway_from_settings_is_none_without_an_llm(
    llm_server: ScriptedLLMServer, sqlite_engine: Engine
) -> None:
    assert gateway_from_settings(Settings(_env_file=None), sqlite_engine) is None  # type: ignore[call-arg]
    configured = Settings(_env_file=None, openai_base_url=llm_server.base_url)  # type: ignore[call-arg]
    gateway = gateway_from_settings(configured, sqlite_engine)
    assert isinstance(gateway, Gateway)
    gateway.chat(MESSAGES, meta=META)
    assert llm_server.last_request.headers["authorization"] == "Bearer not-needed"
    assert len(ledger(sqlite_engine)) == 1


def test_a_bug_in_validate_still_leaves_a_ledger_row(
    llm_server: ScriptedLLMServer, gw: Gateway, sqlite_engine: Engine
) -> None:
    llm_server.script(Reply(tool_calls=[ScriptedToolCall(CARD_TOOL, GOOD_CARD)]))

    def broken(card: Card) -> list[str]:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        gw.structured(
            MESSAGES, Card, meta=META, tool_name=CARD_TOOL, tool_description="d", validate=broken
        )
    assert summary(sqlite_engine) == [(1, "error", "internal")]


def test_tool_call_parsed_raises_invalid_output_on_bad_json() -> None:
    with pytest.raises(LLMError) as info:
        ToolCall("c1", "f", '{"a": ').parsed()
    assert info.value.kind == "invalid_output"


def test_the_shared_llm_gateway_fixture_is_wired_to_the_server(
    llm_server: ScriptedLLMServer, llm_gateway: Gateway, sqlite_engine: Engine
) -> None:
    llm_server.script(Fault.server_error(500), Reply(text="hi"))
    assert llm_gateway.chat(MESSAGES, meta=META).text == "hi"
    assert summary(sqlite_engine) == [(1, "error", "server"), (2, "ok", None)]
