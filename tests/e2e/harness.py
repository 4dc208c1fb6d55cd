"""Run the real app (`streamlit run`) on a free port and drive Debian's Chromium with Playwright.

No browser is ever downloaded: Playwright launches /usr/bin/chromium with flags that work on a
machine without network or GPU.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return (
        os.environ.get("MGE_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def own_env() -> dict[str, str]:
    """This process's environment minus any LLM or database settings of whoever runs the
    tests, so an app process sees only what the test gives it."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MGE_", "DATABASE_URL"))
    }


def streamlit_command(port: int, *extra: str) -> list[str]:
    """`streamlit run` of the app on loopback at `port`: headless, no file watcher, no
    telemetry (the browser tests and the benchmarks start the app the same way)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        *extra,
    ]


@dataclass
class AppServer:
    """A `streamlit run streamlit_app.py` process with its own environment."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> AppServer:
        self.launch()
        try:
            return self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def launch(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.log_path = ARTIFACTS / f"streamlit-{self.port}.log"
        env = {**own_env(), **self.env}
        cmd = streamlit_command(self.port)
        with self.log_path.open("wb") as log:  # the child keeps its own handle
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_healthy(self, timeout: float = 60.0) -> AppServer:
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited early; see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"streamlit did not become healthy in {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        stop_all(self)


def stop_all(*servers: AppServer) -> None:
    """Stop servers together (each gets a few seconds to close its sessions, then is killed)."""
    running = [s.proc for s in servers if s.proc and s.proc.poll() is None]
    for proc in running:
        proc.terminate()
    for proc in running:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def start_all(*servers: AppServer, timeout: float = 60.0) -> None:
    """Start servers side by side (their start-ups overlap instead of adding up)."""
    for server in servers:
        server.launch()
    try:
        for server in servers:
            server.wait_healthy(timeout)
    except BaseException:
        stop_all(*servers)
        raise


@contextmanager
def app_server(env: dict[str, str]) -> Iterator[AppServer]:
    server = AppServer(env=env).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def browser() -> Iterator[object]:
    """A Playwright Browser on Debian's Chromium."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise RuntimeError("no chromium")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def wait_for_text(page: object, text: str, timeout: float = 30_000) -> None:
    page.get_by_text(text).first.wait_for(timeout=timeout)  # type: ignore[attr-defined]


_CONTENT_HEIGHT_JS = """() => Math.max(document.documentElement.scrollHeight,
  ...[...document.querySelectorAll('*')].filter(e => {
    const o = getComputedStyle(e).overflowY;
    return (o === 'auto' || o === 'scroll') && e.scrollHeight > e.clientHeight;
  }).map(e => e.scrollHeight + e.getBoundingClientRect().top))"""


def shot(page: Any, name: str) -> Path:
    """Save a screenshot of the whole page under test-artifacts/screenshots so a person can
    look. Streamlit scrolls inside its own container, which a full-page screenshot does not
    unroll: the window is made as tall as the content for the picture, then put back."""
    out = ARTIFACTS / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    size = page.viewport_size
    height = int(page.evaluate(_CONTENT_HEIGHT_JS)) if size else 0
    if size and height > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": min(height + 40, 12_000)})
        try:
            page.screenshot(path=str(path))
        finally:
            page.set_viewport_size(size)
    else:
        page.screenshot(path=str(path), full_page=True)
    return path


# --- the scripted LLM server as its own process ----------------------------------------------


@dataclass
class LLMProcess:
    """`python -m tests.llm_server` as a separate process, scripted over its control endpoints
    (`POST /_script`, `GET /_requests`, `POST /_reset`)."""

    mode: str = "interviewer"
    card_after: int = 3
    card_tool: str = "submit_values_card"
    chunk_delay_s: float = 0.0
    proc: subprocess.Popen[bytes] | None = None
    base_url: str = ""

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v1")

    def start(self, timeout: float = 30.0) -> LLMProcess:
        cmd = [
            sys.executable,
            "-m",
            "tests.llm_server",
            "--port",
            "0",
            "--mode",
            self.mode,
            "--card-tool",
            self.card_tool,
            "--card-after",
            str(self.card_after),
            "--chunk-delay",
            str(self.chunk_delay_s),
        ]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                self.stop()
                raise RuntimeError(f"the scripted LLM server did not start in {timeout}s")
        line = self.proc.stdout.readline().decode()
        match = re.search(r"(http://\S+/v1)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"unexpected first line from the scripted LLM server: {line!r}")
        self.base_url = match[1]
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def _call(self, method: str, path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.root + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def script(self, *items: object) -> None:
        """Queue replies/faults (`tests.llm_server.Reply`/`Fault`) for the next requests."""
        from tests.llm_server import item_to_json

        self._call("POST", "/_script", [item_to_json(i) for i in items])  # type: ignore[arg-type]

    def reset(self) -> None:
        self._call("POST", "/_reset", {})

    def requests(self) -> list[dict[str, object]]:
        return list(self._call("GET", "/_requests"))  # type: ignore[call-overload]

    def chat_requests(self) -> list[dict[str, object]]:
        return [r for r in self.requests() if str(r["path"]).endswith("/chat/completions")]


@contextmanager
def llm_process(**kw: object) -> Iterator[LLMProcess]:
    server = LLMProcess(**kw).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


# --- driving Streamlit pages -------------------------------------------------------------------

# The script has finished and no element is stale: what the page shows is the rerun's result.
_SETTLED_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app) return false;
  const state = app.getAttribute('data-test-script-state');
  if (state !== 'notRunning') return false;
  if (app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  return !document.querySelector('[data-stale="true"]');
}"""


def settle(page: Any, timeout: float = 60_000) -> None:
    """Wait until Streamlit has finished its run (twice in a row, a beat apart, so a rerun that
    was about to start is not missed). Bounded polling, never a fixed sleep."""
    for _ in range(2):
        page.wait_for_function(_SETTLED_JS, timeout=timeout, polling=100)
        page.wait_for_timeout(150)
    page.wait_for_function(_SETTLED_JS, timeout=timeout, polling=100)


def key(page: Any, name: str) -> Any:
    """The element container Streamlit marks with the widget's key (class `st-key-<key>`)."""
    return page.locator(f".st-key-{name}")


def click(page: Any, name: str, *, timeout: float = 30_000) -> None:
    """Click the button (or form submit button / link button) with this widget key."""
    key(page, name).locator("button, a").first.click(timeout=timeout)
    settle(page)


def fill(page: Any, name: str, text: str) -> None:
    """Type into the text input or text area with this key and commit it (Streamlit sends the
    value on blur)."""
    box = key(page, name).locator("input, textarea").first
    box.fill(text)
    box.press("Tab")
    settle(page)


def choose(page: Any, name: str, label: str) -> None:
    """Pick the radio option (or tick the checkbox) with this label inside the keyed widget."""
    key(page, name).locator("label").filter(has_text=label).first.click()
    settle(page)


def chat(page: Any, text: str) -> None:
    """Send a chat message (what a participant types and sends with Enter)."""
    box = page.locator('[data-testid="stChatInputTextArea"]')
    box.fill(text)
    box.press("Enter")


def main_text(page: Any) -> str:
    """What the main area shows (the sidebar left out)."""
    return str(page.locator('[data-testid="stMainBlockContainer"]').inner_text())


def assert_no_traceback(page: Any) -> None:
    body = str(page.locator("body").inner_text())
    assert "Traceback" not in body, body[:2000]
    assert page.locator('[data-testid="stException"]').count() == 0, body[:2000]


_WIDE_ELEMENTS_JS = """(limit) => {
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('[data-testid="stSidebar"]')) continue;  // collapsed off-screen on phones
    // a code block (the resume link) scrolls inside itself by design; nothing else may
    if (el.closest('pre')) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    const scrolls = el.scrollWidth > el.clientWidth + 1
      && ['auto', 'scroll'].includes(style.overflowX) && el.clientWidth > 0;
    if (r.right > limit || scrolls) {
      out.push(`${el.tagName.toLowerCase()}.${String(el.className).slice(0, 60)} `
        + `right=${Math.round(r.right)} scroll=${el.scrollWidth}/${el.clientWidth}`);
    }
  }
  return out.slice(0, 10);
}"""


def wide_elements(page: Any, width: int, tolerance: int = 2) -> list[str]:
    """Visible elements that stick out past `width` CSS pixels or scroll sideways (Streamlit
    scrolls inside its own containers, so the document's width alone can miss them)."""
    return list(page.evaluate(_WIDE_ELEMENTS_JS, width + tolerance))


def horizontal_overflow(page: Any) -> int:
    """How many CSS pixels the document is wider than the viewport (0 when it fits)."""
    return int(
        page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    )


def dismiss_dialogs(page: Any) -> None:
    """Close Streamlit's modal dialogs (e.g. its "Page not found" notice) if any is open."""
    dialogs = page.locator('[role="dialog"]')
    while dialogs.count():
        page.keyboard.press("Escape")
        dialogs.first.wait_for(state="detached", timeout=10_000)


def login(page: Any, base_url: str, username: str, password: str) -> None:
    """Log in to the console from the app's root through the sidebar. (A deep link works too,
    but the first visit after the server starts may open Streamlit's modal "Page not found"
    notice, which makes the form inert until dismissed: Streamlit reads the `pages/` folder
    beside streamlit_app.py as old-style pages on its very first run.)"""
    page.goto(base_url)
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Facilitator login").click()
    key(page, "login_user").wait_for(timeout=60_000)
    settle(page)
    key(page, "login_user").locator("input").fill(username)
    key(page, "login_password").locator("input").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.locator('[data-testid="stSidebarNavLink"]').filter(has_text="Dashboard").wait_for(
        timeout=60_000
    )
    settle(page)
