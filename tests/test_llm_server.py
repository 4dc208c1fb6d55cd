"""The scripted OpenAI-compatible server: its wire format parses with the real openai SDK,
every fault behaves like the real thing, requests are recorded, modes and control endpoints
work, and it runs as a separate process."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import openai
import pytest
from pydantic import BaseModel, Field

from tests.llm_server import (
    Fault,
    InterviewerResponder,
    Reply,
    ScriptedLLMServer,
    ToolCall,
    item_from_json,
    item_to_json,
    placeholder_from_schema,
    valid_card,
)

REPO = Path(__file__).resolve().parents[1]
USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def client(llm_server: ScriptedLLMServer) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(api_key="test-key", base_url=llm_server.base_url, max_retries=0, timeout=5)
    yield c
    c.close()


def _stream(client: openai.OpenAI, **kw: Any) -> list[Any]:
    return list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=kw.pop("messages", USER),
            stream=True,
            stream_options={"include_usage": True},
            **kw,
        )
    )


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _post_json(url: str, body: Any) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


# --- wire format ---------------------------------------------------------------------------


def test_stream_text_arrives_in_chunks_with_final_usage(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    llm_server.script(Reply(text="What matters most to you?", chunks=3, usage=(42, 7, 30)))
    chunks = _stream(client)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) == 3 and "".join(pieces) == "What matters most to you?"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (42, 7)
    assert usage.prompt_tokens_details.cached_tokens == 30


def test_stream_tool_call_arguments_are_split_and_reassemble(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    card = valid_card()
    llm_server.script(Reply(text="Here it is.", tool_calls=[ToolCall("submit_values_card", card)]))
    chunks = _stream(client)
    fragments = [
        tc
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
    ]
    assert fragments[0].id and fragments[0].function.name == "submit_values_card"
    assert len(fragments) >= 4  # a head plus several argument fragments, like real servers
    assert json.loads("".join(f.function.arguments or "" for f in fragments)) == card
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_stream_without_include_usage_sends_no_usage_chunk(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_non_stream_reply_has_message_tool_calls_and_usage(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    llm_server.script(Reply(tool_calls=[ToolCall("pick", {"n": 1})], usage=(10, 2)))
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert resp.model == "gpt-4o-mini"
    call = resp.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("pick", {"n": 1})
    assert resp.choices[0].finish_reason == "tool_calls"
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (10, 2)
    assert resp.usage.prompt_tokens_details is None  # cached not given -> absent


def test_explicit_chunks_list_is_sent_verbatim(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    llm_server.script(Reply(chunks=["Hel", "lo", "!"]))
    pieces = [c.choices[0].delta.content for c in _stream(client) if c.choices]
    assert "".join(p or "" for p in pieces) == "Hello!"
    assert [p for p in pieces if p] == ["Hel", "lo", "!"]


def test_default_echo_when_script_is_empty(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(model="m", messages=USER)
    assert resp.choices[0].message.content == "Echo: hello there"


def test_callable_default_answers_dynamically(client: openai.OpenAI) -> None:
    with ScriptedLLMServer(default=lambda req: Reply(text=f"{len(req['messages'])} msgs")) as s:
        c = openai.OpenAI(api_key="k", base_url=s.base_url, max_retries=0)
        resp = c.chat.completions.create(model="m", messages=USER * 3)
        assert resp.choices[0].message.content == "3 msgs"


def test_requests_are_recorded_with_headers_and_body(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    _stream(client, tools=tools)
    req = llm_server.last_request
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == "Bearer test-key"
    assert req.body["stream"] is True and req.body["tools"] == tools
    assert req.body["messages"] == USER
    assert llm_server.chat_requests == [req]


def test_script_is_consumed_in_order_per_endpoint(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    llm_server.script(
        Reply(text="one"), Fault.server_error(500, endpoint="embeddings"), Reply(text="two")
    )
    assert (
        client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "one"
    )
    assert (
        client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "two"
    )
    assert len(llm_server.pending) == 1
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="e", input="x")
    assert llm_server.pending == []


def test_script_rejects_other_objects(llm_server: ScriptedLLMServer) -> None:
    with pytest.raises(TypeError):
        llm_server.script("not a reply")  # type: ignore[arg-type]


# --- faults --------------------------------------------------------------------------------


def test_rate_limit_sends_retry_after_headers(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    llm_server.script(Fault.rate_limit(retry_after_s=2, retry_after_ms=150))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=USER)
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.response.headers["retry-after-ms"] == "150"


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_have_their_status(
    llm_server: ScriptedLLMServer, client: openai.OpenAI, status: int
) -> None:
    llm_server.script(Fault.server_error(status))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="m", messages=USER)
    assert info.value.status_code == status


def test_timeout_fault_hangs_past_the_client_timeout(llm_server: ScriptedLLMServer) -> None:
    llm_server.script(Fault.timeout(hang_s=10))
    c = openai.OpenAI(api_key="k", base_url=llm_server.base_url, max_retries=0, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        c.chat.completions.create(model="m", messages=USER)
    assert 0.2 <= time.monotonic() - started < 2


def test_malformed_body_is_not_json(llm_server: ScriptedLLMServer, client: openai.OpenAI) -> None:
    llm_server.script(Fault.malformed_body())
    with pytest.raises(ValueError):
        client.chat.completions.create(model="m", messages=USER)


def test_malformed_tool_call_arguments_are_sent_raw(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    llm_server.script(Reply.malformed_tool_call("f", '{"title": '))
    args = "".join(
        tc.function.arguments or ""
        for c in _stream(client)
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
    )
    assert args == '{"title": '
    with pytest.raises(ValueError):
        json.loads(args)


def test_cut_stream_drops_the_connection_without_done(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    llm_server.script(Fault.cut(after_chunks=2, reply=Reply(text="one two three four")))
    seen = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="m", messages=USER, stream=True):
            seen.append(chunk.choices[0].delta.content)
    assert seen == ["", "one"]


def test_cut_non_stream_sends_half_a_body(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    llm_server.script(Fault.cut())
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=USER)


def test_delay_and_chunk_delay_slow_the_stream(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    llm_server.script(Reply(text="a b c", delay_s=0.15, chunk_delay_s=0.05))
    started = time.monotonic()
    stream = client.chat.completions.create(model="m", messages=USER, stream=True)
    next(iter(stream))
    first = time.monotonic() - started
    list(stream)
    total = time.monotonic() - started
    assert first >= 0.15
    assert total >= 0.15 + 4 * 0.05  # 5 more chunks after the first (3 words, finish)


def test_fixed_time_to_first_token() -> None:
    with ScriptedLLMServer(ttft_s=0.2) as server:
        c = openai.OpenAI(api_key="k", base_url=server.base_url, max_retries=0)
        started = time.monotonic()
        c.chat.completions.create(model="m", messages=USER)
        assert time.monotonic() - started >= 0.2


def test_stop_releases_a_hanging_response() -> None:
    server = ScriptedLLMServer().start()
    server.script(Fault.timeout(hang_s=30))
    c = openai.OpenAI(api_key="k", base_url=server.base_url, max_retries=0, timeout=5)
    import threading

    errors: list[BaseException] = []

    def call() -> None:
        try:
            c.chat.completions.create(model="m", messages=USER)
        except openai.APIError as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.1)
    started = time.monotonic()
    server.stop()
    t.join(timeout=5)
    assert time.monotonic() - started < 2
    assert errors and isinstance(errors[0], openai.APIConnectionError)


# --- embeddings and models -----------------------------------------------------------------


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_deterministic_unit_vectors_in_both_encodings(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    texts = ["honesty with care", "honesty with care", "care and honesty", "the tide tables"]
    floats = client.embeddings.create(model="e", input=texts, encoding_format="float")
    base64_default = client.embeddings.create(model="e", input=texts)  # the SDK asks for base64
    a = [d.embedding for d in floats.data]
    b = [d.embedding for d in base64_default.data]
    assert llm_server.embedding_requests[1].body["encoding_format"] == "base64"
    assert all(len(v) == 64 for v in a)
    assert all(math.isclose(_cos(v, v), 1.0, rel_tol=1e-6) for v in a)
    assert all(
        math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-6)
        for u, v in zip(a, b, strict=True)
        for x, y in zip(u, v, strict=True)
    )
    assert a[0] == a[1]
    assert _cos(a[0], a[2]) > _cos(a[0], a[3])  # shared words -> closer
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0


def test_embeddings_honour_dimensions(client: openai.OpenAI) -> None:
    resp = client.embeddings.create(model="e", input="x", dimensions=8, encoding_format="float")
    assert len(resp.data[0].embedding) == 8


def test_models_are_listed(client: openai.OpenAI) -> None:
    assert "gpt-4o" in [m.id for m in client.models.list().data]


# --- modes, schema placeholders, control endpoints ----------------------------------------


class _Policy(BaseModel):
    text: str = Field(min_length=20)
    weight: float = Field(ge=0.5)


class _Answer(BaseModel):
    kind: Literal["card", "question"]
    count: int = Field(ge=2)
    tags: list[str] = Field(min_length=2)
    nested: list[_Policy]
    note: str | None = None


def test_placeholder_from_schema_satisfies_a_pydantic_schema() -> None:
    data = placeholder_from_schema(_Answer.model_json_schema())
    _Answer.model_validate(data)


def test_interviewer_streams_questions_then_calls_the_card_tool(client: openai.OpenAI) -> None:
    tools = [
        {"type": "function", "function": {"name": "show_card", "parameters": {"type": "object"}}}
    ]
    with ScriptedLLMServer(default=InterviewerResponder(card_tool="show_card", card_after=2)) as s:
        c = openai.OpenAI(api_key="k", base_url=s.base_url, max_retries=0)
        first = list(c.chat.completions.create(model="m", messages=USER, tools=tools, stream=True))
        texts = [ch.choices[0].delta.content for ch in first if ch.choices[0].delta.content]
        assert len(texts) > 3 and "".join(texts).endswith("?")
        assert not any(ch.choices[0].delta.tool_calls for ch in first)

        two_turns = [*USER, {"role": "assistant", "content": "?"}, *USER]
        resp = c.chat.completions.create(model="m", messages=two_turns, tools=tools)
        card = json.loads(resp.choices[0].message.tool_calls[0].function.arguments)
        assert set(card) == {"title", "description", "policies"}
        assert len(card["policies"]) == 3
        assert all(p.split()[0].isupper() for p in card["policies"])


def test_interviewer_answers_forced_tools_with_schema_valid_data() -> None:
    tool = {
        "type": "function",
        "function": {"name": "extract", "parameters": _Answer.model_json_schema()},
    }
    with ScriptedLLMServer(default=InterviewerResponder()) as s:
        c = openai.OpenAI(api_key="k", base_url=s.base_url, max_retries=0)
        resp = c.chat.completions.create(
            model="m",
            messages=USER,
            tools=[tool],
            tool_choice={"type": "function", "function": {"name": "extract"}},
        )
        _Answer.model_validate_json(resp.choices[0].message.tool_calls[0].function.arguments)


def test_items_round_trip_through_json() -> None:
    items = [
        Reply(text="hi", tool_calls=[ToolCall("f", {"a": 1}, id="call_1")], usage=[1, 2, 3]),
        Fault.rate_limit(retry_after_ms=5),
        Fault.cut(3, Reply(text="x y z")),
    ]
    assert [item_from_json(json.loads(json.dumps(item_to_json(i)))) for i in items] == items
    with pytest.raises(ValueError):
        item_from_json({"type": "reply", "nonsense": 1})


def test_control_endpoints_push_a_script_and_list_requests(
    llm_server: ScriptedLLMServer, client: openai.OpenAI
) -> None:
    out = _post_json(
        llm_server.base_url.removesuffix("/v1") + "/_script",
        [{"type": "reply", "text": "scripted"}, {"type": "fault", "kind": "http", "status": 503}],
    )
    assert out["queued"] == 2
    assert (
        client.chat.completions.create(model="m", messages=USER).choices[0].message.content
        == "scripted"
    )
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=USER)
    recorded = _get_json(llm_server.base_url.removesuffix("/v1") + "/_requests")
    assert [r["path"] for r in recorded] == ["/v1/chat/completions"] * 2
    assert recorded[0]["body"]["messages"] == USER


def test_runs_as_a_separate_process() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.llm_server",
            "--port",
            "0",
            "--mode",
            "interviewer",
            "--card-tool",
            "submit_values_card",
            "--card-after",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("LLM server listening on http://127.0.0.1:")
        base_url = line.split()[4]
        c = openai.OpenAI(api_key="k", base_url=base_url, max_retries=0, timeout=5)
        tools = [{"type": "function", "function": {"name": "submit_values_card"}}]
        resp = c.chat.completions.create(model="m", messages=USER, tools=tools)
        assert resp.choices[0].message.tool_calls[0].function.name == "submit_values_card"
        assert _get_json(base_url.removesuffix("/v1") + "/_requests")[0]["body"]["tools"] == tools
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
