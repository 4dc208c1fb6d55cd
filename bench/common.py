"""Shared pieces of the benchmark scripts: processes, statistics, a Streamlit protocol client.

- `percentile`, `median`, `fmt_ms`: plain statistics over lists of floats.
- `ProcessStats`: CPU seconds and resident memory of a process (psutil when installed, else
  /proc), so a bench can say what the server spent.
- `LLMServerProcess`: the scripted OpenAI-compatible server (`tests/llm_server.py`) as its own
  process, so its CPU is not the bench's and its time to first token is fixed.
- `StreamlitProcess`: `streamlit run streamlit_app.py` on a free port with a given environment,
  polled for health at a fine grain (cold start is measured with it).
- `fresh_database`: a new SQLite file with the schema and the demo deliberation.
- `StreamlitClient`: a websocket client that speaks Streamlit's protocol (protobuf `BackMsg` /
  `ForwardMsg` over `/_stcore/stream`) the way the browser does: the same `rerun_script`
  messages, widget states and query string that Chromium sends (captured from a real session),
  but without rendering. A bench uses it to drive many participants where Chromium would cost
  more CPU than the server under test.
- `REFERENCE_TURNS`: the participant's side of a realistic interview (~40 words per turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PYTHON = sys.executable

# The participant's side of a reference interview on the demo's first question (the abortion
# question). Written to read like a real participant: a story, then what they attend to, then
# reactions to a guess and a card. About 40 words each. Turns 9-12 are used for 12-turn runs.
REFERENCE_TURNS: tuple[str, ...] = (
    "My older sister got pregnant at nineteen while she was still very involved in our church. "
    "She was terrified of what our parents and the pastor would say, and she spent weeks "
    "reading things online instead of talking to anyone she trusted.",
    "What hurt most was that everyone around her already had an answer. Our mother quoted "
    "scripture, her friends told her it was obviously her body and her choice. Nobody asked "
    "her what she herself believed or what she was most afraid of.",
    "Eventually a nurse at the clinic sat with her for an hour. She didn't push her either way. "
    "She asked what a good life would look like for her in five years, and what her faith "
    "actually meant to her, not to the church.",
    "I think the nurse noticed that my sister was asking for permission rather than "
    "information. She gave her room to say out loud the things she was ashamed of, and she "
    "treated those fears as real instead of correcting them.",
    "I pay attention to whether the person is still the one deciding. When someone is scared, "
    "it is so easy to hand them a conclusion. I look for the moments when they are close to "
    "saying what they actually want.",
    "Also whether their beliefs are taken seriously on their own terms. A girl who is Christian "
    "doesn't need someone to argue her out of her faith or to use it against her. She needs "
    "help seeing what her faith asks of her here.",
    "Yes, that is close. I would add that it is not only about not pushing. It's about "
    "noticing the concrete next step she can take, like who she could talk to safely, so she "
    "isn't left alone with a huge decision.",
    "That card feels right. Maybe the second line could say something about her own "
    "convictions rather than religion in general, because it's about what she believes, not "
    "about Christianity as a topic. Otherwise it is mine.",
    "One more thing I realise: the nurse also checked whether my sister was safe at home. "
    "Fear of family can be about real danger, not just shame, and a wise answer would notice "
    "the difference before saying anything else.",
    "I don't think that changes the heart of it though. It is still about keeping her the "
    "author of her own decision, with her faith and her safety both taken seriously, and "
    "with someone beside her rather than above her.",
    "If I had to explain it to someone else, I'd say: slow down, find out what she is really "
    "asking, and help her take the next small step herself. Don't decide for her and don't "
    "leave her alone with it either.",
    "I'm happy with the card now. It describes what I would want an AI to pay attention to, "
    "and honestly what I would want from any person she turned to at a moment like that. "
    "Thank you for asking such careful questions.",
)


# --- statistics --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between ranks (numpy's default);
    NaN for an empty list."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50.0)


def fmt_ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.0f}ms"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- process accounting ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float  # user + system seconds so far
    rss_mb: float  # resident set size now


class ProcessStats:
    """CPU seconds and RSS of one process (psutil when installed, else Linux /proc)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            import psutil

            self._proc: Any = psutil.Process(pid)
        except ImportError:  # psutil is not a declared dependency; /proc does the same on Linux
            self._proc = None

    def sample(self) -> ProcSample:
        if self._proc is not None:
            t = self._proc.cpu_times()
            return ProcSample(t.user + t.system, self._proc.memory_info().rss / 2**20)
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        rss_pages = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1])
        return ProcSample(cpu, rss_pages * os.sysconf("SC_PAGE_SIZE") / 2**20)


def tree_cpu_seconds(root_pid: int, name_part: str) -> float:
    """CPU seconds of every descendant of root_pid whose name contains name_part (e.g. the
    Chromium processes Playwright started); 0 without psutil."""
    try:
        import psutil
    except ImportError:
        return 0.0
    total = 0.0
    for p in psutil.Process(root_pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if name_part in p.name():
                t = p.cpu_times()
                total += t.user + t.system
    return total


def pin(pid: int, cpus: set[int]) -> bool:
    """Restrict every thread of a process to `cpus` (threads started later inherit it).
    False where the platform cannot (not Linux)."""
    if not hasattr(os, "sched_setaffinity"):
        return False
    tasks = Path(f"/proc/{pid}/task")
    tids = [int(t.name) for t in tasks.iterdir()] if tasks.exists() else [pid]
    for tid in tids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)
    return True


# --- the scripted LLM server as a process ------------------------------------------------------


class LLMServerProcess:
    """`python -m tests.llm_server` in its own process; `base_url` once started."""

    def __init__(
        self,
        *,
        mode: str = "interviewer",
        ttft_s: float = 0.0,
        card_after: int = 3,
        card_tool: str = "submit_values_card",
    ) -> None:
        self.args = [
            "--mode",
            mode,
            "--ttft",
            str(ttft_s),
            "--card-after",
            str(card_after),
            "--card-tool",
            card_tool,
            "--port",
            "0",
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self, timeout: float = 20.0) -> LLMServerProcess:
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "tests.llm_server", *self.args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            m = re.search(r"listening on (\S+)", line)
            if m:
                self.base_url = m.group(1)
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError("the scripted LLM server did not start")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self) -> LLMServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the app -----------------------------------------------------------------------------------


def app_env(database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for an app process: ours, minus any LLM or database settings of the
    person running the bench, plus the given ones."""
    from tests.e2e.harness import own_env

    return {**own_env(), "DATABASE_URL": database_url, **(extra or {})}


class StreamlitProcess:
    """`streamlit run streamlit_app.py` on a free port. `started_at` is taken just before the
    process is spawned; `wait_healthy` polls `/_stcore/health` every `poll_s`."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        extra_args: Sequence[str] = (),
        log_path: Path | None = None,
    ) -> None:
        self.env = env
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> StreamlitProcess:
        from tests.e2e.harness import streamlit_command

        cmd = streamlit_command(self.port, *self.extra_args)
        out: Any = subprocess.DEVNULL
        if self.log_path is not None:
            out = self.log_path.open("wb")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=out, stderr=out)
        return self

    def wait_healthy(self, timeout: float = 60.0, poll_s: float = 0.02) -> float:
        """Seconds from spawn to the first HTTP 200 on /_stcore/health."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early (code {self.proc.returncode})")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - self.started_at
            except OSError:
                time.sleep(poll_s)
        raise RuntimeError(f"streamlit did not become healthy in {timeout}s")

    def start(self, timeout: float = 60.0) -> StreamlitProcess:
        self.spawn()
        try:
            self.wait_healthy(timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self) -> StreamlitProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fresh_database(directory: Path, name: str = "bench.db") -> str:
    """A new SQLite database at the schema head with the demo deliberation; returns its URL."""
    from elicit.config import Settings
    from elicit.demo import create_demo
    from elicit.runtime import open_database

    path = directory / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    engine = open_database(Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]
    create_demo(engine)
    engine.dispose()
    return url


@dataclass(frozen=True)
class DemoParticipant:
    participant_id: int
    token: str


def demo_participants(database_url: str, count: int) -> list[DemoParticipant]:
    """`count` new participants of the demo deliberation (id and resume token), each past
    consent and with the first question chosen, so their link opens the interview. The same
    functions the consent and question pages call (`journey.join`, `choose_question`)."""
    from db.engine import make_engine
    from elicit import journey

    engine = make_engine(database_url)
    tokens: list[DemoParticipant] = []
    try:
        for _ in range(count):
            entry = journey.join(engine, slug="demo", consent=journey.Consent())
            offered = journey.offered_questions(engine, participant_id=entry.participant_id)
            first = min(offered, key=lambda q: q.id)
            journey.choose_question(
                engine, participant_id=entry.participant_id, question_id=first.id
            )
            tokens.append(DemoParticipant(entry.participant_id, entry.token))
    finally:
        engine.dispose()
    return tokens


# --- a Streamlit protocol client ---------------------------------------------------------------


@dataclass
class RunResult:
    """One script run (or a run and the reruns it caused) as the client saw it."""

    sent_at: float  # perf_counter just before the BackMsg went out
    first_match_at: float | None  # first ForwardMsg the matcher accepted
    finished_at: float  # FINISHED_SUCCESSFULLY received
    messages: int


@dataclass
class StreamlitClient:
    """One browser tab's worth of Streamlit protocol, without rendering.

    It sends what Chromium sends (checked against frames captured from a real session): on
    connect the same HTTP requests the page makes before opening the websocket
    (`/_stcore/health`, `/_stcore/host-config`), then `BackMsg.rerun_script` with the query
    string, the current page's script hash, the widget states and the browser's context info.
    It does not render, so it spends far less CPU per participant than a browser tab.
    """

    base_url: str
    query_string: str
    page_script_hash: str = ""
    widget_ids: dict[str, str] = field(default_factory=dict)  # user key -> widget id
    _ws: Any = None
    _queue: asyncio.Queue[tuple[float, Any]] | None = None
    _reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        import websockets

        host = self.base_url.split("://", 1)[1]
        loop = asyncio.get_running_loop()
        for path in ("/_stcore/health", "/_stcore/host-config"):
            await loop.run_in_executor(None, _http_get, f"{self.base_url}{path}")
        self._ws = await websockets.connect(
            f"ws://{host}/_stcore/stream",
            subprotocols=["streamlit"],  # type: ignore[list-item]
            origin=self.base_url,  # type: ignore[arg-type]
            max_size=None,
            compression=None,
        )
        self._queue = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        assert self._queue is not None
        try:
            async for data in self._ws:
                at = time.perf_counter()
                msg = ForwardMsg()
                msg.ParseFromString(data)
                self._queue.put_nowait((at, msg))
        except Exception as exc:  # noqa: BLE001 - a closed socket ends the reader
            self._queue.put_nowait((time.perf_counter(), exc))

    def _back_msg(self, widgets: Iterable[Any]) -> bytes:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query_string
        state.widget_states.SetInParent()
        state.widget_states.widgets.extend(widgets)
        state.page_script_hash = self.page_script_hash
        info = state.context_info
        info.timezone = "UTC"
        info.timezone_offset = 0
        info.locale = "en-US"
        info.url = f"{self.base_url}/"
        info.is_embedded = False
        info.color_scheme = "light"
        return msg.SerializeToString()

    async def rerun(
        self,
        widgets: Iterable[Any] = (),
        *,
        match: Callable[[Any], bool] | None = None,
        timeout: float = 120.0,
    ) -> RunResult:
        """Send one `rerun_script` and read until the app settles (a run finishes
        successfully; runs stopped for `st.rerun()` are followed). `match(msg)` is asked about
        every delta until it first says True; its time is `first_match_at`."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        assert self._queue is not None
        while not self._queue.empty():  # nothing from an earlier run counts for this one
            self._queue.get_nowait()
        payload = self._back_msg(widgets)
        sent = time.perf_counter()
        await self._ws.send(payload)
        first: float | None = None
        count = 0
        deadline = sent + timeout
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError("the app did not finish the run in time")
            at, msg = await asyncio.wait_for(self._queue.get(), remaining)
            if isinstance(msg, Exception):
                raise ConnectionError(f"websocket closed: {msg!r}")
            count += 1
            kind = msg.WhichOneof("type")
            if kind == "new_session" and first is None and hasattr(match, "reset"):
                match.reset()  # a rerun renders the page again from the top
            elif kind == "delta":
                self._learn(msg)
                if first is None and match is not None and match(msg):
                    first = at
            elif kind == "script_finished":
                if msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                    return RunResult(sent, first, at, count)
                if msg.script_finished == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    raise RuntimeError("the app script failed to compile")

    def _learn(self, msg: Any) -> None:
        """Remember the page's script hash and every keyed widget's id, as the frontend does."""
        if msg.metadata.active_script_hash and len(msg.metadata.delta_path) > 0:
            self.page_script_hash = msg.metadata.active_script_hash
        delta = msg.delta
        if delta.WhichOneof("type") != "new_element":
            return
        element = getattr(delta.new_element, delta.new_element.WhichOneof("type") or "", None)
        widget_id = getattr(element, "id", "")
        if isinstance(widget_id, str) and widget_id.startswith("$$ID-"):
            self.widget_ids[widget_id.rsplit("-", 1)[-1]] = widget_id

    def chat_input(self, text: str, key: str = "chat_input") -> Any:
        """The widget state the browser sends when the participant submits `text`."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        state = WidgetState()
        state.id = self.widget_ids[key]
        state.chat_input_value.data = text
        state.chat_input_value.file_uploader_state.SetInParent()
        return state


def _http_get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as r:
        r.read()
        return int(r.status)


class NewAssistantText:
    """A matcher for `StreamlitClient.rerun`: true for the first non-empty markdown inside the
    assistant chat message that follows the participant's `turn`-th message in this run (the
    first streamed token of the interviewer's reply)."""

    def __init__(self, turn: int) -> None:
        self.turn = turn
        self.reset()

    def reset(self) -> None:
        self.users = 0
        self.block: tuple[int, ...] | None = None

    def __call__(self, msg: Any) -> bool:
        delta = msg.delta
        path = tuple(msg.metadata.delta_path)
        if delta.WhichOneof("type") == "add_block":
            block = delta.add_block
            if block.WhichOneof("type") == "chat_message":
                if block.chat_message.name == "user":
                    self.users += 1
                elif self.users >= self.turn and self.block is None:
                    self.block = path
            return False
        if self.block is None or delta.WhichOneof("type") != "new_element":
            return False
        if path[:-1] != self.block:
            return False
        element = delta.new_element
        return element.WhichOneof("type") == "markdown" and bool(element.markdown.body.strip())
