"""The LLM gateway: the only module of the app that imports `openai`.

What lives here:

- `LLMError`: the one typed error for every provider failure, with a `.kind` and a
  `.user_message` a participant can read.
- `CallMeta`: who a call is for (purpose, deliberation, participant, interview).
- `Gateway`: streamed chat (`stream_chat` -> `ChatStream`), plain chat (`chat`), structured
  output through a forced tool call validated by pydantic with one repair attempt
  (`structured`), and embeddings (`embed`). It runs its own retry loop (429, 5xx, timeouts,
  dropped connections; exponential backoff with jitter; `Retry-After`/`retry-after-ms`
  honoured up to a cap) so that every attempt, failed ones included, gets one ledger row
  (`db.models.LLMCall`), written in its own short session before the call returns or raises.
- `gateway_from_settings`: the factory entry points use (None when no LLM is configured).

Any OpenAI-compatible endpoint works: `OPENAI_BASE_URL`, `OPENAI_API_KEY` (local servers need
none) and per-purpose model names from `Settings.model_for`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import Engine

from db.engine import session_scope
from db.models import LLMCall
from elicit.config import Settings
from elicit.prompts import Prompt

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

ErrorKind = Literal[
    "config",
    "auth",
    "rate_limit",
    "timeout",
    "server",
    "connection",
    "invalid_output",
    "bad_request",
]
Message = Mapping[str, Any]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

USER_MESSAGES: dict[str, str] = {
    "config": "The AI assistant is not set up correctly. Please let the organisers know.",
    "auth": "The AI assistant could not sign in to its service. Please let the organisers know.",
    "rate_limit": "The AI assistant is very busy right now. Please wait a moment and try again.",
    "timeout": "The AI assistant took too long to answer. Please try again.",
    "server": "The AI assistant's service had a problem. Please try again in a moment.",
    "connection": "The connection to the AI assistant was lost. Please try again.",
    "invalid_output": "The AI assistant gave an answer we could not use. Please try again.",
    "bad_request": (
        "The AI assistant could not handle this message. Try a shorter message, "
        "or let the organisers know."
    ),
}
RETRYABLE_KINDS = frozenset({"rate_limit", "timeout", "server", "connection"})
RETRYABLE_STATUS = frozenset({408, 409, 429})


class LLMError(Exception):
    """A provider call failed. `kind` says how; `user_message` is safe to show a participant;
    `str(error)` is the technical detail for logs and the CLI."""

    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        problems: Sequence[str] = (),
    ) -> None:
        super().__init__(detail)
        self.kind: ErrorKind = kind
        self.detail = detail
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.problems = list(problems)

    @property
    def user_message(self) -> str:
        return USER_MESSAGES[self.kind]

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE_KINDS

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass(frozen=True)
class CallMeta:
    """Who a call is for; copied onto its ledger rows."""

    purpose: str
    deliberation_id: int | None = None
    participant_id: int | None = None
    interview_id: int | None = None


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model made. `arguments` is the raw JSON text, as the model wrote it."""

    id: str
    name: str
    arguments: str

    def parsed(self) -> Any:
        """The arguments as JSON; `LLMError(kind="invalid_output")` when they are not JSON."""
        try:
            return json.loads(self.arguments or "{}")
        except ValueError as exc:
            raise LLMError(
                "invalid_output", f"tool {self.name!r} arguments are not JSON: {exc}"
            ) from None


def malformed_tool_calls(calls: Sequence[ToolCall]) -> LLMError | None:
    """An `invalid_output` error naming the tool calls whose arguments are not a JSON object,
    or None. The reply is still returned to the caller (which re-asks or falls back); this only
    makes the ledger row say that the output was unusable instead of "ok"."""
    bad: list[str] = []
    for call in calls:
        try:
            if not isinstance(json.loads(call.arguments or "{}"), dict):
                bad.append(f"{call.name}: arguments are not a JSON object")
        except ValueError as exc:
            bad.append(f"{call.name}: arguments are not JSON ({exc})")
    return LLMError("invalid_output", "; ".join(bad), problems=bad) if bad else None


@dataclass(frozen=True)
class Usage:
    """Token counts of one reply; None where the provider did not say."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None


@dataclass(frozen=True)
class ChatResult:
    """A finished, non-streamed chat reply."""

    text: str
    tool_calls: list[ToolCall]
    usage: Usage | None
    finish_reason: str | None = None


def parse_usage(usage: Any) -> Usage | None:
    """prompt_tokens -> input_tokens, completion_tokens -> output_tokens,
    prompt_tokens_details.cached_tokens -> cached_input_tokens (None when absent)."""
    if usage is None:
        return None
    details = _get(usage, "prompt_tokens_details")
    return Usage(
        input_tokens=_int_or_none(_get(usage, "prompt_tokens")),
        output_tokens=_int_or_none(_get(usage, "completion_tokens")),
        cached_input_tokens=_int_or_none(_get(details, "cached_tokens")),
    )


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- classifying provider failures ---------------------------------------------------------


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, else `Retry-After` (seconds or
    an HTTP date)."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _sdk() -> Any:
    """The `openai` package, imported on first use: it takes about half a second to import,
    and a participant's first page (the landing list, consent) makes no LLM call."""
    import openai

    return openai


def classify(exc: BaseException) -> LLMError:
    """Map an SDK (or transport/parse) exception to our typed error."""
    if isinstance(exc, LLMError):
        return exc
    openai = _sdk()
    name = type(exc).__name__
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("timeout", f"{name}: the request timed out")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        reason = f" ({type(cause).__name__}: {cause})" if cause else ""
        return LLMError("connection", f"{name}: {exc.message}{reason}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = f"{name} {status}: {exc.message}"
        wait = _retry_after(exc.response.headers)
        if status in (401, 403):
            return LLMError("auth", detail, status_code=status)
        if status == 404:
            return LLMError(
                "config", detail + " (check the model name and OPENAI_BASE_URL)", status_code=status
            )
        if status == 429:
            if exc.code == "insufficient_quota":
                return LLMError(
                    "config", detail + " (the account is out of credit)", status_code=status
                )
            return LLMError("rate_limit", detail, status_code=status, retry_after_s=wait)
        if status >= 500 or status in RETRYABLE_STATUS:
            return LLMError("server", detail, status_code=status, retry_after_s=wait)
        return LLMError("bad_request", detail, status_code=status)
    if isinstance(exc, openai.APIError):  # incl. APIResponseValidationError, in-stream errors
        return LLMError("server", f"{name}: {exc}")
    if isinstance(exc, ValueError):  # includes json.JSONDecodeError from a broken body
        return LLMError(
            "server", f"the service sent a reply that is not valid JSON ({name}: {exc})"
        )
    if isinstance(exc, openai.OpenAIError):
        return LLMError("config", f"{name}: {exc}")
    raise TypeError(f"not a provider failure: {exc!r}") from exc


# Exceptions a provider call can raise that `classify` turns into LLMError. Anything else
# (TypeError, KeyError in our own code) is a bug and propagates untouched.
def provider_errors() -> tuple[type[BaseException], ...]:
    return (_sdk().OpenAIError, ValueError)


# --- the gateway ---------------------------------------------------------------------------


OPENAI_HOST = "api.openai.com"


def token_limit_key(settings: Settings) -> str:
    """The request field for the output cap: MGE_TOKEN_LIMIT_PARAM, or on "auto"
    max_completion_tokens for OpenAI itself (newer models reject max_tokens) and max_tokens
    for every other endpoint (vLLM, Ollama and LM Studio know only that one)."""
    if settings.mge_token_limit_param != "auto":
        return settings.mge_token_limit_param
    base = settings.openai_base_url
    host = urlsplit(base).hostname if base else OPENAI_HOST
    return "max_completion_tokens" if host == OPENAI_HOST else "max_tokens"


def _default_client(settings: Settings) -> openai.OpenAI:
    return _sdk().OpenAI(
        api_key=settings.openai_api_key or "not-needed",
        base_url=settings.openai_base_url,
        timeout=settings.mge_llm_timeout_s,
        max_retries=0,  # our own loop retries, so every attempt gets a ledger row
    )


class Gateway:
    """Every LLM and embedding call of the app goes through one of these.

    `sleep`, `backoff_base_s`, `backoff_cap_s` and `retry_after_cap_s` make retry timing
    injectable (tests keep it tiny). Thread-safe: one instance serves all sessions.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine | None,
        client_factory: Callable[[Settings], openai.OpenAI] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 8.0,
        retry_after_cap_s: float = 20.0,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sleep = sleep
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.retry_after_cap_s = retry_after_cap_s
        self.max_retries = max(0, settings.mge_llm_max_retries)
        self._rng = rng or random.Random()
        try:
            self.client = (client_factory or _default_client)(settings)
        except _sdk().OpenAIError as exc:
            raise LLMError("config", f"cannot build the LLM client: {exc}") from None

    def close(self) -> None:
        self.client.close()

    # public calls

    def stream_chat(
        self,
        messages: Sequence[Message],
        *,
        meta: CallMeta,
        prompt: Prompt | None = None,
        tools: list[dict[str, Any]] | None = None,
        model: str | None = None,
        temperature: float | None = None,
    ) -> ChatStream:
        """A streamed reply: iterate it for text deltas (e.g. `st.write_stream`); afterwards
        `.text`, `.tool_calls`, `.usage`. The request starts on the first `next()`."""
        params = self._chat_params(messages, meta, tools, None, model, temperature)
        params.update(stream=True, stream_options={"include_usage": True})
        return ChatStream(self, params, meta=meta, prompt=prompt)

    def chat(
        self,
        messages: Sequence[Message],
        *,
        meta: CallMeta,
        prompt: Prompt | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        model: str | None = None,
        temperature: float | None = None,
    ) -> ChatResult:
        """A non-streamed reply (text and/or tool calls, arguments unparsed)."""
        params = self._chat_params(messages, meta, tools, tool_choice, model, temperature)
        return self._run(
            lambda: self._chat_once(params), meta=meta, model=params["model"], prompt=prompt
        )[0]

    def structured(
        self,
        messages: Sequence[Message],
        schema: type[M],
        *,
        meta: CallMeta,
        prompt: Prompt | None = None,
        tool_name: str,
        tool_description: str,
        model: str | None = None,
        validate: Callable[[M], list[str]] | None = None,
        temperature: float | None = None,
    ) -> M:
        """Force a call of `tool_name` whose parameters are `schema`'s JSON schema; return the
        validated model. Invalid output (bad JSON, schema errors, problems from `validate`)
        gets one repair attempt that shows the model its errors; a second failure raises
        `LLMError(kind="invalid_output")`. Every request is one ledger row."""
        tool = {
            "type": "function",
            "function": {
                "name": tool_name,
                "description": tool_description,
                "parameters": schema.model_json_schema(),
            },
        }
        choice = {"type": "function", "function": {"name": tool_name}}
        conversation = list(messages)

        def check(result: ChatResult) -> M:
            return _validate_tool_output(result, schema, tool_name, validate)

        attempt = 0
        for round_ in (1, 2):
            params = self._chat_params(conversation, meta, [tool], choice, model, temperature)
            try:
                value, attempt = self._run(
                    lambda params=params: self._chat_once(params),
                    meta=meta,
                    model=params["model"],
                    prompt=prompt,
                    check=check,
                    first_attempt=attempt + 1,
                )
                return value
            except _InvalidOutput as bad:
                attempt = bad.attempt
                if round_ == 2:
                    raise LLMError(
                        "invalid_output",
                        f"{tool_name}: still invalid after one repair: {'; '.join(bad.problems)}",
                        problems=bad.problems,
                    ) from bad
                conversation += _repair_messages(bad.result, tool_name, bad.problems)
        raise AssertionError("unreachable")  # pragma: no cover

    def embed(
        self,
        texts: Sequence[str],
        *,
        meta: CallMeta,
        model: str | None = None,
        batch_size: int = 256,
    ) -> list[list[float]]:
        """One vector per text, in order; one request (and ledger row per attempt) per batch."""
        model = model or self.settings.mge_embedding_model
        vectors: list[list[float]] = []
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            vectors += self._run(
                lambda batch=batch: self._embed_once(batch, model),
                meta=meta,
                model=model,
                prompt=None,
            )[0]
        return vectors

    # one request each

    def _chat_params(
        self,
        messages: Sequence[Message],
        meta: CallMeta,
        tools: list[dict[str, Any]] | None,
        tool_choice: str | dict[str, Any] | None,
        model: str | None,
        temperature: float | None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": model or self.settings.model_for(meta.purpose),
            "messages": [dict(m) for m in messages],
            "temperature": self.settings.mge_temperature if temperature is None else temperature,
        }
        params[token_limit_key(self.settings)] = self.settings.mge_max_output_tokens
        if tools:
            params["tools"] = tools
        if tool_choice is not None:
            params["tool_choice"] = tool_choice
        return params

    def _chat_once(self, params: dict[str, Any]) -> tuple[ChatResult, Usage | None]:
        response = self.client.chat.completions.create(**params)
        choices = _get(response, "choices")
        if not isinstance(choices, list) or not choices:
            raise LLMError("server", f"the reply had no choices ({type(response).__name__})")
        message = _get(choices[0], "message")
        calls = [
            ToolCall(id=str(_get(tc, "id") or ""), name=fn.name, arguments=fn.arguments or "")
            for tc in _get(message, "tool_calls") or []
            if (fn := _get(tc, "function")) is not None
        ]
        usage = parse_usage(_get(response, "usage"))
        result = ChatResult(
            text=_get(message, "content") or "",
            tool_calls=calls,
            usage=usage,
            finish_reason=_get(choices[0], "finish_reason"),
        )
        return result, usage

    def _embed_once(self, batch: list[str], model: str) -> tuple[list[list[float]], Usage | None]:
        response = self.client.embeddings.create(model=model, input=batch, encoding_format="float")
        data = _get(response, "data")
        if not isinstance(data, list) or len(data) != len(batch):
            got = len(data) if isinstance(data, list) else 0
            raise LLMError("server", f"asked for {len(batch)} embeddings, got {got}")
        ordered = sorted(data, key=lambda d: _get(d, "index") or 0)
        vectors = [list(map(float, _get(d, "embedding") or [])) for d in ordered]
        return vectors, parse_usage(_get(response, "usage"))

    # retries and the ledger

    def _run(
        self,
        call: Callable[[], tuple[T, Usage | None]],
        *,
        meta: CallMeta,
        model: str,
        prompt: Prompt | None,
        check: Callable[[T], Any] | None = None,
        first_attempt: int = 1,
    ) -> tuple[Any, int]:
        """Call with retries; one ledger row per attempt. Returns (value, last attempt number),
        where value is `check(result)` when a check is given."""
        attempt = first_attempt
        retries_left = self.max_retries
        while True:
            started = time.monotonic()
            usage: Usage | None = None
            try:
                try:
                    result, usage = call()
                except LLMError:
                    raise
                except provider_errors() as exc:
                    raise classify(exc) from exc
                value = check(result) if check is not None else result
            except LLMError as err:
                self.record(
                    meta=meta,
                    model=model,
                    prompt=prompt,
                    streamed=False,
                    attempt=attempt,
                    usage=usage,
                    started=started,
                    error=err,
                )
                if isinstance(err, _InvalidOutput):
                    err.attempt = attempt
                    raise
                if err.retryable and retries_left > 0:
                    retries_left -= 1
                    self._backoff(attempt - first_attempt + 1, err)
                    attempt += 1
                    continue
                raise
            except Exception as exc:  # a bug on our side: still one row, then the real error
                self._record_internal(meta, model, prompt, False, attempt, usage, started, exc)
                raise
            self.record(
                meta=meta,
                model=model,
                prompt=prompt,
                streamed=False,
                attempt=attempt,
                usage=usage,
                started=started,
                error=malformed_tool_calls(result.tool_calls)
                if isinstance(result, ChatResult)
                else None,
            )
            return value, attempt

    def _record_internal(
        self,
        meta: CallMeta,
        model: str,
        prompt: Prompt | None,
        streamed: bool,
        attempt: int,
        usage: Usage | None,
        started: float,
        exc: BaseException,
    ) -> None:
        self.record(
            meta=meta,
            model=model,
            prompt=prompt,
            streamed=streamed,
            attempt=attempt,
            usage=usage,
            started=started,
            error=LLMError("server", f"internal error: {exc!r}"),
            error_type="internal",
        )

    def _backoff(self, retry_number: int, err: LLMError) -> None:
        if err.retry_after_s is not None:
            delay = min(err.retry_after_s, self.retry_after_cap_s)
        else:
            ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (retry_number - 1))
            delay = ceiling * (0.5 + self._rng.random() / 2)  # jitter: spread retries apart
        log.warning("LLM call failed (%s); retry %d in %.2fs", err, retry_number, delay)
        if delay > 0:
            self.sleep(delay)

    def record(
        self,
        *,
        meta: CallMeta,
        model: str,
        prompt: Prompt | None,
        streamed: bool,
        attempt: int,
        usage: Usage | None,
        started: float,
        error: LLMError | None,
        error_type: str | None = None,
    ) -> None:
        """Write one ledger row in its own session (`error_type` defaults to the error's kind). A ledger failure is logged, never raised:
        it must not cost a participant their answer."""
        if self.engine is None:
            return
        row = LLMCall(
            purpose=meta.purpose[:32],
            model=model[:128],
            deliberation_id=meta.deliberation_id,
            participant_id=meta.participant_id,
            interview_id=meta.interview_id,
            prompt_name=prompt.name if prompt else None,
            prompt_hash=prompt.hash if prompt else None,
            streamed=streamed,
            attempt=attempt,
            input_tokens=usage.input_tokens if usage else None,
            cached_input_tokens=usage.cached_input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            duration_ms=int((time.monotonic() - started) * 1000),
            outcome="error" if error else "ok",
            error_type=(error_type or error.kind) if error else None,
            error_message=str(error)[:1000] if error else None,
        )
        try:
            with session_scope(self.engine) as session:
                session.add(row)
                session.commit()
        except Exception:  # noqa: BLE001 - see docstring
            log.exception("could not write the LLM ledger row for %s", meta.purpose)


class _InvalidOutput(LLMError):
    """Structured output failed validation; carries the reply for the repair attempt."""

    def __init__(self, result: ChatResult, problems: list[str]) -> None:
        super().__init__("invalid_output", "; ".join(problems), problems=problems)
        self.result = result
        self.attempt = 0


def _validate_tool_output(
    result: ChatResult,
    schema: type[M],
    tool_name: str,
    validate: Callable[[M], list[str]] | None,
) -> M:
    call = next((tc for tc in result.tool_calls if tc.name == tool_name), None)
    if call is None:
        raise _InvalidOutput(result, [f"the reply did not call the {tool_name} tool"])
    try:
        value = schema.model_validate_json(call.arguments or "{}")
    except ValidationError as exc:
        problems = [
            f"{'.'.join(map(str, e['loc'])) or '(arguments)'}: {e['msg']}" for e in exc.errors()
        ]
        raise _InvalidOutput(result, problems[:10]) from None
    extra = list(validate(value)) if validate else []
    if extra:
        raise _InvalidOutput(result, extra[:10])
    return value


def _repair_messages(
    result: ChatResult, tool_name: str, problems: list[str]
) -> list[dict[str, Any]]:
    """The assistant's invalid reply, then a message listing what was wrong."""
    listing = "\n".join(f"- {p}" for p in problems)
    call = next((tc for tc in result.tool_calls if tc.name == tool_name), None)
    if call is None:
        return [
            {"role": "assistant", "content": result.text or ""},
            {
                "role": "user",
                "content": f"Please answer by calling the {tool_name} tool.\n{listing}",
            },
        ]
    call_id = call.id or "call_repair"
    return [
        {
            "role": "assistant",
            "content": result.text or None,
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": call_id,
            "content": (
                f"These arguments are not valid:\n{listing}\n"
                f"Call {tool_name} again with corrected arguments."
            ),
        },
    ]


@dataclass
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ChatStream:
    """An iterator of text deltas from a streamed reply. After iteration: `.text`,
    `.tool_calls`, `.usage`, `.finish_reason`.

    Retries happen only before the first delta is yielded, so visible text is never repeated.
    A stream that breaks after that raises `LLMError` (kind "connection" or "timeout") from the
    iterator. Every attempt writes a ledger row; so does a consumer that stops early (error_type
    "cancelled").
    """

    def __init__(
        self, gateway: Gateway, params: dict[str, Any], *, meta: CallMeta, prompt: Prompt | None
    ) -> None:
        self._gateway = gateway
        self._params = params
        self._meta = meta
        self._prompt = prompt
        self._iterator = self._generate()
        self.text = ""
        self.tool_calls: list[ToolCall] = []
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.attempts = 0
        self.done = False

    @property
    def model(self) -> str:
        return str(self._params["model"])

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._iterator)

    def close(self) -> None:
        """Stop early (records a cancelled row if the reply was still coming)."""
        self._iterator.close()

    def result(self) -> ChatResult:
        """The finished reply (consumes the rest of the stream first)."""
        for _ in self:
            pass
        return ChatResult(self.text, list(self.tool_calls), self.usage, self.finish_reason)

    def _generate(self) -> Iterator[str]:
        gateway = self._gateway
        retries_left = gateway.max_retries
        while True:
            self.attempts += 1
            state = _StreamAttempt(started=time.monotonic())
            try:
                yield from self._read(state)
            except LLMError as err:
                self._record(state, err)
                if err.retryable and not state.yielded and retries_left > 0:
                    retries_left -= 1
                    gateway._backoff(gateway.max_retries - retries_left, err)
                    continue
                raise
            except GeneratorExit:
                if state.finish is None:
                    stopped = LLMError("connection", "the reader stopped before the reply ended")
                    self._record(state, stopped, error_type="cancelled")
                else:
                    self._record(state, None)
                raise
            except Exception as exc:  # a bug on our side: still one row, then the real error
                gateway._record_internal(
                    self._meta,
                    self.model,
                    self._prompt,
                    True,
                    self.attempts,
                    state.usage,
                    state.started,
                    exc,
                )
                raise
            break
        self.text = "".join(state.text)
        self.tool_calls = [
            ToolCall(id=p.id, name=p.name, arguments="".join(p.arguments))
            for _, p in sorted(state.parts.items())
        ]
        self.usage = state.usage
        self.finish_reason = state.finish
        self.done = True
        self._record(state, malformed_tool_calls(self.tool_calls))

    def _read(self, state: _StreamAttempt) -> Iterator[str]:
        """One request: yield text deltas, collect tool-call fragments, usage, finish reason."""
        stream: Any = None
        try:
            stream = self._gateway.client.chat.completions.create(**self._params)
            for chunk in stream:
                if _get(chunk, "usage") is not None:
                    state.usage = parse_usage(_get(chunk, "usage"))
                for choice in _get(chunk, "choices") or []:
                    state.finish = _get(choice, "finish_reason") or state.finish
                    delta = _get(choice, "delta")
                    for tc in _get(delta, "tool_calls") or []:
                        part = state.parts.setdefault(_get(tc, "index") or 0, _ToolCallParts())
                        part.id = _get(tc, "id") or part.id
                        fn = _get(tc, "function")
                        part.name = _get(fn, "name") or part.name
                        part.arguments.append(_get(fn, "arguments") or "")
                    piece = _get(delta, "content")
                    if piece:
                        state.text.append(piece)
                        state.yielded = True
                        self.text = "".join(state.text)
                        yield piece
            if state.finish is None:
                # Servers always send a finish_reason; a stream without one was cut short.
                raise LLMError("connection", "the stream ended before the reply was complete")
        except LLMError:
            raise
        except provider_errors() as exc:
            raise classify(exc) from exc
        finally:
            if stream is not None:
                stream.close()

    def _record(
        self, state: _StreamAttempt, error: LLMError | None, *, error_type: str | None = None
    ) -> None:
        self._gateway.record(
            meta=self._meta,
            model=self.model,
            prompt=self._prompt,
            streamed=True,
            attempt=self.attempts,
            usage=state.usage,
            started=state.started,
            error=error,
            error_type=error_type,
        )


@dataclass
class _StreamAttempt:
    """What one streamed request has delivered so far."""

    started: float
    text: list[str] = field(default_factory=list)
    parts: dict[int, _ToolCallParts] = field(default_factory=dict)
    usage: Usage | None = None
    finish: str | None = None
    yielded: bool = False


def gateway_from_settings(settings: Settings, engine: Engine | None) -> Gateway | None:
    """The app's gateway, or None when no LLM is configured (offline mode)."""
    if not settings.llm_enabled:
        return None
    return Gateway(settings=settings, engine=engine)
