"""A scripted OpenAI-compatible HTTP server on loopback, for tests, benchmarks and browser runs.

What lives here (stdlib only, so it also runs as a bare process):

- `Reply`, `ToolCall`, `Fault`: what the server answers next. A test queues them with
  `server.script(...)`; when the queue is empty the server asks its default responder
  (a fixed `Reply`, or a callable `responder(request_json) -> Reply | Fault`).
- `ScriptedLLMServer`: a real `ThreadingHTTPServer` in a daemon thread at a free port. It speaks
  `POST /v1/chat/completions` (JSON or SSE stream, tool calls, usage), `POST /v1/embeddings`
  (deterministic bag-of-words vectors) and `GET /v1/models`, and records every request.
  Control endpoints for a server in another process: `POST /_script` (JSON list of items, see
  `item_from_json`), `POST /_reset`, `GET /_requests`.
- Built-in modes (`MODES`): `echo` and `interviewer` (short streamed questions, then a values
  card through the card tool once the participant has spoken enough).

Run as a process (prints one line `LLM server listening on <base_url>` when ready):

    python -m tests.llm_server --port 8765 --mode interviewer --card-tool submit_values_card
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import json
import math
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

JSON = dict[str, Any]

# --- what the server says ------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    """A tool call in a reply. `arguments` is a dict/list (sent as JSON) or a raw string (sent
    verbatim, so a test can send malformed JSON)."""

    name: str
    arguments: Any = field(default_factory=dict)
    id: str | None = None

    def arguments_text(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class Reply:
    """One assistant answer.

    text          assistant text (may be empty when there are tool calls)
    tool_calls    `ToolCall`s, streamed as argument fragments over `arg_chunks` chunks each
    chunks        stream only: an int (number of text pieces) or the explicit pieces;
                  default one piece per word
    usage         (prompt, completion) or (prompt, completion, cached); cached None omits
                  `prompt_tokens_details`. Default: word counts, no cached details.
    delay_s       wait before the first byte (on top of the server's `ttft_s`)
    chunk_delay_s wait between stream chunks (on top of the server's `chunk_delay_s`)
    finish_reason default "tool_calls" when there are tool calls, else "stop"
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] | list[ToolCall] = ()  # stored as a tuple
    chunks: int | list[str] | None = None
    usage: tuple[int, ...] | list[int] | None = None
    delay_s: float = 0.0
    chunk_delay_s: float = 0.0
    finish_reason: str | None = None
    arg_chunks: int = 3
    endpoint: str = "chat"

    def __post_init__(self) -> None:
        # Lists from JSON scripts and tuples from Python compare equal after this.
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        if self.usage is not None:
            object.__setattr__(self, "usage", tuple(self.usage))

    @staticmethod
    def malformed_tool_call(name: str, raw: str = '{"title": "unterminated') -> Reply:
        """A reply whose tool call arguments are not valid JSON."""
        return Reply(tool_calls=[ToolCall(name, raw)])

    def text_pieces(self) -> list[str]:
        if isinstance(self.chunks, list):
            return list(self.chunks)
        if not self.text:
            return []
        if self.chunks is None:
            return re.findall(r"\s*\S+\s*$|\s*\S+", self.text) or [self.text]
        n = max(1, min(int(self.chunks), len(self.text)))
        size = math.ceil(len(self.text) / n)
        return [self.text[i : i + size] for i in range(0, len(self.text), size)]

    def full_text(self) -> str:
        return "".join(self.chunks) if isinstance(self.chunks, list) else self.text


@dataclass(frozen=True)
class Fault:
    """A failure instead of an answer. Build with the class methods:

    `Fault.http(status, ...)`, `Fault.rate_limit(retry_after_s=, retry_after_ms=)`,
    `Fault.server_error(500|503)`, `Fault.timeout(hang_s)` (no byte until the client gives
    up), `Fault.malformed_body()` (200 with a body that is not JSON), `Fault.cut(after_chunks,
    reply)` (stream: close the connection after N SSE events, without `[DONE]`; non-stream:
    send half the body). `endpoint` is "chat" or "embeddings": which request consumes it.
    """

    kind: str  # http | hang | malformed_body | cut
    status: int = 500
    message: str = "scripted failure"
    retry_after_s: int | None = None
    retry_after_ms: int | None = None
    hang_s: float = 30.0
    after_chunks: int = 2
    reply: Reply | None = None
    delay_s: float = 0.0
    endpoint: str = "chat"
    code: str | None = None  # error.code in the body, e.g. "insufficient_quota"

    @classmethod
    def http(
        cls,
        status: int,
        *,
        message: str | None = None,
        retry_after_s: int | None = None,
        retry_after_ms: int | None = None,
        code: str | None = None,
        endpoint: str = "chat",
    ) -> Fault:
        return cls(
            "http",
            status=status,
            message=message or f"scripted HTTP {status}",
            retry_after_s=retry_after_s,
            retry_after_ms=retry_after_ms,
            code=code,
            endpoint=endpoint,
        )

    @classmethod
    def rate_limit(
        cls,
        *,
        retry_after_s: int | None = None,
        retry_after_ms: int | None = None,
        endpoint: str = "chat",
    ) -> Fault:
        return cls.http(
            429,
            message="Rate limit reached (scripted)",
            retry_after_s=retry_after_s,
            retry_after_ms=retry_after_ms,
            endpoint=endpoint,
        )

    @classmethod
    def server_error(cls, status: int = 500, *, endpoint: str = "chat") -> Fault:
        return cls.http(status, endpoint=endpoint)

    @classmethod
    def timeout(cls, hang_s: float = 30.0, *, endpoint: str = "chat") -> Fault:
        return cls("hang", hang_s=hang_s, endpoint=endpoint)

    @classmethod
    def malformed_body(cls, *, endpoint: str = "chat") -> Fault:
        return cls("malformed_body", endpoint=endpoint)

    @classmethod
    def cut(cls, after_chunks: int = 2, reply: Reply | None = None) -> Fault:
        return cls(
            "cut",
            after_chunks=after_chunks,
            reply=reply or Reply(text="This answer will be cut off before it is finished."),
        )


Item = Reply | Fault
Responder = Callable[[JSON], Item]


def item_to_json(item: Item) -> JSON:
    """The JSON form of a reply or fault, as `POST /_script` accepts it."""
    data = asdict(item)
    data["type"] = "reply" if isinstance(item, Reply) else "fault"
    return data


def item_from_json(data: JSON) -> Item:
    """Parse `{"type": "reply", "text": ..., "tool_calls": [{"name", "arguments"}], "usage":
    [p, c, cached]}` or `{"type": "fault", "kind": "http", "status": 429, ...}`."""
    data = dict(data)
    kind = data.pop("type", "reply")
    if kind == "reply":
        data["tool_calls"] = [ToolCall(**tc) for tc in data.get("tool_calls") or []]
        return Reply(**_known(Reply, data))
    if kind == "fault":
        if data.get("reply") is not None:
            data["reply"] = item_from_json({"type": "reply", **data["reply"]})
        return Fault(**_known(Fault, data))
    raise ValueError(f"unknown script item type {kind!r}")


def _known(cls: type, data: JSON) -> JSON:
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return data


# --- recorded requests ---------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received: what the app sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None
    at: float

    def to_json(self) -> JSON:
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
        }


# --- helpers shared by responders ----------------------------------------------------------


def user_turns(request: JSON) -> int:
    """How many user messages the conversation holds."""
    return sum(1 for m in request.get("messages") or [] if m.get("role") == "user")


def last_user_text(request: JSON) -> str:
    for message in reversed(request.get("messages") or []):
        if message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def tool_names(request: JSON) -> list[str]:
    names = []
    for tool in request.get("tools") or []:
        fn = tool.get("function") or {}
        if fn.get("name"):
            names.append(fn["name"])
    return names


def forced_tool(request: JSON) -> str | None:
    """The function name `tool_choice` forces, if any."""
    choice = request.get("tool_choice")
    if isinstance(choice, dict):
        return (choice.get("function") or {}).get("name")
    return None


def tool_schema(request: JSON, name: str) -> JSON:
    for tool in request.get("tools") or []:
        fn = tool.get("function") or {}
        if fn.get("name") == name:
            return fn.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "object", "properties": {}}


def placeholder_from_schema(schema: JSON, root: JSON | None = None, *, name: str = "") -> Any:
    """Schema-valid placeholder data for a JSON schema (objects, arrays, enums, $ref, anyOf,
    min/max lengths and items, numeric bounds). Good enough for pydantic-generated schemas."""
    root = root if root is not None else schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return placeholder_from_schema(target, root, name=name)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return placeholder_from_schema(options[0], root, name=name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties") or {}
        return {k: placeholder_from_schema(v, root, name=k) for k, v in props.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        count = min(count, int(schema.get("maxItems", count)))
        item = schema.get("items") or {"type": "string"}
        return [placeholder_from_schema(item, root, name=f"{name}_{i + 1}") for i in range(count)]
    if kind in ("integer", "number"):
        if "minimum" in schema:
            low_num = schema["minimum"]
        elif "exclusiveMinimum" in schema:
            low_num = schema["exclusiveMinimum"] + 1
        else:
            low_num = 1
        return int(low_num) if kind == "integer" else float(low_num)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = f"Placeholder {name or 'text'}".strip()
    low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 10_000))
    while len(text) < low:
        text += " placeholder"
    return text[:high]


def valid_card() -> JSON:
    """A values card that passes the card rules: a title, a description, three policies that
    each begin with an ALL-CAPS word."""
    return {
        "title": "Grounded Honesty",
        "description": "Being truthful in a way that leaves the other person steadier and free to decide.",
        "policies": [
            "MOMENTS when a plain fact would help them choose for themselves",
            "SIGNS that they feel safe enough to ask what they really want to know",
            "CHANCES to name my uncertainty without hiding behind it",
        ],
    }


# --- built-in responders -------------------------------------------------------------------


def echo_responder(request: JSON) -> Item:
    """Answer with a short echo of the last user message (or the forced tool's placeholder)."""
    name = forced_tool(request)
    if name:
        return Reply(
            tool_calls=[ToolCall(name, placeholder_from_schema(tool_schema(request, name)))]
        )
    said = last_user_text(request).strip().replace("\n", " ")
    return Reply(text=f"Echo: {said[:80]}" if said else "Hello from the scripted server.")


INTERVIEW_QUESTIONS = (
    "What feels most important to you about how the assistant should respond here?",
    "Can you tell me about a moment when someone handled something like this well?",
    "What were you paying attention to in that moment?",
    "What would it look like to get this exactly right?",
    "Is there anything else you notice when you imagine responding wisely?",
)


@dataclass
class InterviewerResponder:
    """Plays an interviewer: a short streamed question per turn; once the request offers the
    card tool and the conversation has `card_after` user turns, calls that tool with a valid
    card. Forced/non-streamed tool requests get schema-valid placeholders."""

    card_tool: str = "submit_values_card"
    card_after: int = 3

    def __call__(self, request: JSON) -> Item:
        names = tool_names(request)
        forced = forced_tool(request)
        turns = user_turns(request)
        if forced or (names and not request.get("stream")):
            name = forced or names[0]
            args = (
                valid_card()
                if name == self.card_tool
                else placeholder_from_schema(tool_schema(request, name))
            )
            return Reply(tool_calls=[ToolCall(name, args)])
        if self.card_tool in names and turns >= self.card_after:
            return Reply(
                text="Thank you. Here is a card that tries to capture what you described.",
                tool_calls=[ToolCall(self.card_tool, valid_card())],
            )
        return Reply(text=INTERVIEW_QUESTIONS[max(turns - 1, 0) % len(INTERVIEW_QUESTIONS)])


MODES: dict[str, Callable[..., Responder]] = {
    "echo": lambda **_: echo_responder,
    "interviewer": lambda card_tool="submit_values_card", card_after=3, **_: InterviewerResponder(
        card_tool, card_after
    ),
}


# --- embeddings ----------------------------------------------------------------------------


def embed_text(text: str, dim: int = 64, model: str = "") -> list[float]:
    """A deterministic unit vector: the sum of pseudo-random word vectors, so texts sharing
    words are close (cosine) and equal texts are identical."""
    words = re.findall(r"\w+", text.lower()) or [text]
    vec = [0.0] * dim
    for word in words:
        seed = hashlib.sha256(f"{model}\x00{word}".encode()).digest()
        rng = random.Random(seed)
        for i in range(dim):
            vec[i] += rng.gauss(0.0, 1.0)
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _approx_tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


# --- the server ----------------------------------------------------------------------------


class _Disconnect(Exception):
    """The client went away mid-response; nothing more to send."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients closing idle keep-alive connections is normal, not worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class ScriptedLLMServer:
    """An OpenAI-compatible server on 127.0.0.1 driven by a script. Use as a context manager.

    default       answer when the script is empty: a `Reply`/`Fault`, or a callable
                  `responder(request_json) -> Reply | Fault`; None = `echo_responder`
    ttft_s        fixed wait before the first byte of every chat answer (benchmarks)
    chunk_delay_s wait between streamed chunks of every answer
    embedding_dim vector size when the request gives no `dimensions`
    """

    def __init__(
        self,
        *,
        default: Item | Responder | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ttft_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        embedding_dim: int = 64,
        models: Iterable[str] = ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small"),
    ) -> None:
        self.default: Item | Responder = default if default is not None else echo_responder
        self.ttft_s = ttft_s
        self.chunk_delay_s = chunk_delay_s
        self.embedding_dim = embedding_dim
        self.models = list(models)
        self._queue: collections.deque[Item] = collections.deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._counter = 0
        self._httpd = _HTTPServer((host, port), _make_handler(self))
        self._thread: threading.Thread | None = None

    # lifecycle

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedLLMServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hanging responses are released at once."""
        self._stop.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # the script

    def script(self, *items: Item) -> ScriptedLLMServer:
        """Queue answers; each request takes the first queued item for its endpoint."""
        for item in items:
            if not isinstance(item, Reply | Fault):
                raise TypeError(f"script items are Reply or Fault, not {type(item).__name__}")
        with self._lock:
            self._queue.extend(items)
        return self

    @property
    def pending(self) -> list[Item]:
        """Queued items not yet used."""
        with self._lock:
            return list(self._queue)

    def reset(self) -> None:
        """Forget the queue and the recorded requests."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()

    def _next_item(self, endpoint: str, request: JSON) -> Item | None:
        with self._lock:
            for i, item in enumerate(self._queue):
                if item.endpoint == endpoint:
                    del self._queue[i]
                    return item
        if endpoint != "chat":
            return None
        default = self.default
        return default if isinstance(default, Reply | Fault) else default(request)

    # what was sent

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every /v1 request so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/embeddings")]

    @property
    def last_request(self) -> RecordedRequest:
        requests = self.requests
        if not requests:
            raise AssertionError("the scripted LLM server received no request")
        return requests[-1]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}{self._counter:06x}"

    def wait(self, seconds: float) -> bool:
        """Sleep that ends early when the server stops; True when it stopped."""
        return self._stop.wait(seconds) if seconds > 0 else self._stop.is_set()


def _make_handler(server: ScriptedLLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        owner = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: ScriptedLLMServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: tests assert on recorded requests instead of reading logs."""

    # routing

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        if path == "/_requests":
            self._send_json(200, [r.to_json() for r in self.owner.requests])
        elif path.rstrip("/") in ("/v1/models", "/models"):
            self._record(None)
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "scripted"}
                for m in self.owner.models
            ]
            self._send_json(200, {"object": "list", "data": data})
        elif path in ("/", "/health", "/_health"):
            self._send_json(200, {"ok": True})
        else:
            self._send_error(404, f"no route GET {path}", "not_found")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._record(None)
            self._send_error(400, "request body is not JSON", "invalid_request_error")
            return
        try:
            if path == "/_script":
                items = body.get("items", []) if isinstance(body, dict) else body
                parsed = [item_from_json(i) for i in items or []]
                if isinstance(body, dict) and body.get("reset"):
                    self.owner.reset()
                self.owner.script(*parsed)
                self._send_json(200, {"queued": len(parsed), "pending": len(self.owner.pending)})
            elif path == "/_reset":
                self.owner.reset()
                self._send_json(200, {"ok": True})
            elif path.endswith("/chat/completions"):
                self._record(body)
                self._chat(body if isinstance(body, dict) else {})
            elif path.endswith("/embeddings"):
                self._record(body)
                self._embeddings(body if isinstance(body, dict) else {})
            else:
                self._send_error(404, f"no route POST {path}", "not_found")
        except (TypeError, ValueError) as exc:
            self._send_error(400, f"bad script or request: {exc}", "invalid_request_error")
        except (_Disconnect, BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _record(self, body: Any) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.owner._record(RecordedRequest(self.command, self.path, headers, body, time.time()))

    # chat

    def _chat(self, request: JSON) -> None:
        item = self.owner._next_item("chat", request)
        assert item is not None
        stream = bool(request.get("stream"))
        if isinstance(item, Fault):
            if self._fault(item):
                return
            assert item.reply is not None  # a cut carries the reply it cuts
            reply, cut = item.reply, item.after_chunks
        else:
            reply, cut = item, None
        if self._pause(self.owner.ttft_s + reply.delay_s):
            return
        if stream:
            self._stream_chat(request, reply, cut)
        else:
            self._json_chat(request, reply, cut)

    def _fault(self, fault: Fault) -> bool:
        """Send a fault; True when the response is finished (a cut continues with its reply)."""
        if self._pause(fault.delay_s):
            return True
        if fault.kind == "http":
            headers = {}
            if fault.retry_after_s is not None:
                headers["Retry-After"] = str(fault.retry_after_s)
            if fault.retry_after_ms is not None:
                headers["retry-after-ms"] = str(fault.retry_after_ms)
            kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(
                fault.status, "server_error"
            )
            self._send_error(fault.status, fault.message, kind, headers, code=fault.code)
            return True
        if fault.kind == "hang":
            self.owner.wait(fault.hang_s)
            self.close_connection = True
            return True
        if fault.kind == "malformed_body":
            self._send_raw(
                200, b'{"id": "chatcmpl-broken", "choices": [ this is not json', "application/json"
            )
            return True
        if fault.kind == "cut":
            return False
        raise ValueError(f"unknown fault kind {fault.kind!r}")

    def _usage(self, request: JSON, reply: Reply) -> JSON:
        if reply.usage is not None:
            prompt, completion = int(reply.usage[0]), int(reply.usage[1])
            cached = reply.usage[2] if len(reply.usage) > 2 else None
        else:
            prompt = sum(
                _approx_tokens(_content_text(m.get("content"))) + 3
                for m in request.get("messages") or []
            )
            completion = _approx_tokens(reply.full_text()) + sum(
                _approx_tokens(tc.arguments_text()) + 3 for tc in reply.tool_calls
            )
            cached = None
        usage: JSON = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if cached is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": int(cached)}
        return usage

    def _finish(self, reply: Reply) -> str:
        return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")

    def _json_chat(self, request: JSON, reply: Reply, cut: int | None) -> None:
        message: JSON = {"role": "assistant", "content": reply.full_text() or None, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": tc.id or self.owner._new_id("call_"),
                    "type": "function",
                    "function": {"name": tc.name, "arguments": tc.arguments_text()},
                }
                for tc in reply.tool_calls
            ]
        body = {
            "id": self.owner._new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "scripted"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finish(reply),
                }
            ],
            "usage": self._usage(request, reply),
            "system_fingerprint": None,
        }
        data = json.dumps(body).encode()
        if cut is not None:
            # Promise the whole body, send half, hang up: the client sees an incomplete read.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send_raw(200, data, "application/json")

    def _stream_chat(self, request: JSON, reply: Reply, cut: int | None) -> None:
        model = request.get("model", "scripted")
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        cid, created = self.owner._new_id("chatcmpl-"), int(time.time())

        def chunk(delta: JSON, finish: str | None = None) -> JSON:
            data: JSON = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                data["usage"] = None
            return data

        events: list[JSON] = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"content": piece}) for piece in reply.text_pieces()]
        for index, tc in enumerate(reply.tool_calls):
            args = tc.arguments_text()
            size = max(1, math.ceil(len(args) / max(1, reply.arg_chunks)))
            pieces = [args[i : i + size] for i in range(0, len(args), size)] or [""]
            head = {
                "index": index,
                "id": tc.id or self.owner._new_id("call_"),
                "type": "function",
                "function": {"name": tc.name, "arguments": ""},
            }
            events.append(chunk({"tool_calls": [head]}))
            events += [
                chunk({"tool_calls": [{"index": index, "function": {"arguments": p}}]})
                for p in pieces
            ]
        events.append(chunk({}, self._finish(reply)))
        if include_usage:
            events.append(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": None,
                    "choices": [],
                    "usage": self._usage(request, reply),
                }
            )

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        delay = self.owner.chunk_delay_s + reply.chunk_delay_s
        for i, event in enumerate(events):
            if cut is not None and i >= cut:
                # No terminating chunk, no [DONE]: the client sees the connection drop.
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if i and self._pause(delay):
                return
            self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")

    # embeddings

    def _embeddings(self, request: JSON) -> None:
        item = self.owner._next_item("embeddings", request)
        if isinstance(item, Fault) and self._fault(item):
            return
        if self._pause(item.delay_s if isinstance(item, Reply) else 0.0):
            return
        raw = request.get("input")
        inputs = (
            [raw]
            if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int))
            else list(raw or [])
        )
        texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in inputs]
        dim = int(request.get("dimensions") or self.owner.embedding_dim)
        model = str(request.get("model", "scripted-embedding"))
        as_base64 = request.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vec = embed_text(text, dim, model)
            emb: Any = (
                base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode() if as_base64 else vec
            )
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(_approx_tokens(t) for t in texts)
        if isinstance(item, Reply) and item.usage is not None:
            tokens = int(item.usage[0])
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # low level

    def _pause(self, seconds: float) -> bool:
        """Wait; True when the server is stopping (give up on this response)."""
        if seconds > 0 and self.owner.wait(seconds):
            self.close_connection = True
            return True
        return False

    def _write_chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        except OSError as exc:
            raise _Disconnect from exc

    def _send_raw(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError as exc:
            raise _Disconnect from exc

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(body).encode(), "application/json", headers)

    def _send_error(
        self,
        status: int,
        message: str,
        kind: str,
        headers: dict[str, str] | None = None,
        *,
        code: str | None = None,
    ) -> None:
        body = {"error": {"message": message, "type": kind, "param": None, "code": code or kind}}
        self._send_json(status, body, headers)


# --- running as a process ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.llm_server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--mode", choices=sorted(MODES), default="interviewer")
    parser.add_argument("--card-tool", default="submit_values_card", help="name of the card tool")
    parser.add_argument("--card-after", type=int, default=3, help="user turns before the card")
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds before the first byte")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between chunks")
    args = parser.parse_args(argv)
    responder = MODES[args.mode](card_tool=args.card_tool, card_after=args.card_after)
    server = ScriptedLLMServer(
        default=responder,
        host=args.host,
        port=args.port,
        ttft_s=args.ttft,
        chunk_delay_s=args.chunk_delay,
    )

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    with server:
        print(
            f"LLM server listening on http://{args.host}:{server.port}/v1 (mode {args.mode})",
            flush=True,
        )
        while not stopping.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
