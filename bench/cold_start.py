"""Cold start: from `streamlit run` to the landing page, and to the first interview page.

Each repeat makes fresh SQLite databases the way a deployment does (`mge demo`, which applies
the migrations and creates the demo deliberation) with one participant who has consented and
chosen a question (so a link opens the interview step), then starts `streamlit run` and times,
from the moment the process is spawned:

- health: the first HTTP 200 on `/_stcore/health` (polled every 20 ms), and index: HTTP 200 on
  `/` (the HTML shell);
- landing: headless Chromium (Debian's, in a fresh browser context, so an empty cache) opens
  `/` and the landing page's title "Moral Graph Elicitation" is visible: the app's first script
  run is done and rendered;
- interview: the same on another freshly started server for the participant's link
  `/?d=demo&r=TOKEN`: the chat input is visible (the interview page rendered, the interview
  and its opening message created on the way).

To say where the time goes, each page is opened again in another fresh context once the server
is warm (the browser's own share: assets, websocket, a warm script run, rendering), and a third
server is started for a websocket client without a browser (`bench.common.StreamlitClient`):
its first script run after the spawn is the server's cold share. Then the import time of the
app's modules in a fresh interpreter (median over repeats) and the import time by package.

Last line: `cold_start: landing=X.XXs interview=Y.YYs`. Goal: landing <= 3 s. Exits 0 either way.

Usage: ``python bench/cold_start.py [--repeats 5] [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    PYTHON,
    REPO,
    StreamlitClient,
    StreamlitProcess,
    app_env,
    demo_participants,
    median,
)

GOAL_LANDING_S = 3.0
LANDING_READY = "h1:has-text('Moral Graph Elicitation')"
APP_MODULES = (
    "pages.common",
    "pages.participant_steps",
    "elicit.interview",
    "elicit.journey",
    "elicit.llm",
)


def make_database(directory: Path, name: str) -> tuple[str, str]:
    """A fresh SQLite file prepared with `mge demo`; returns (url, a participant's token)."""
    path = directory / name
    url = f"sqlite:///{path}"
    mge = Path(PYTHON).with_name("mge")
    cmd = [str(mge), "demo"] if mge.exists() else [PYTHON, "-m", "elicit.cli", "demo"]
    subprocess.run(
        cmd, cwd=REPO, env=app_env(url), check=True, stdout=subprocess.DEVNULL, timeout=120
    )
    return url, demo_participants(url, 1)[0].token


def http_ok(url: str) -> None:
    with urllib.request.urlopen(url, timeout=10) as r:
        r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}")


def timed_start(browser: object, url: str, path: str, ready: str) -> dict[str, float]:
    """Spawn the app, then time health, index and the page at `path` being visible (the
    `ready` selector) in a fresh browser context (empty cache); then the same page again in
    another fresh context, now that the server is warm (what the browser alone costs)."""
    app = StreamlitProcess(app_env(url))
    app.spawn()
    try:
        out = {"health": app.wait_healthy(poll_s=0.02)}
        http_ok(f"{app.url}/")
        out["index"] = time.perf_counter() - app.started_at
        out["page"] = _open(browser, f"{app.url}{path}", ready) + out["index"]
        out["page_warm"] = _open(browser, f"{app.url}{path}", ready)
        return out
    finally:
        app.stop()


def _open(browser: object, url: str, ready: str) -> float:
    context = browser.new_context()  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url)
        page.locator(ready).first.wait_for(timeout=60_000)
        return time.perf_counter() - start
    finally:
        context.close()


def first_run_without_browser(url: str, query: str) -> dict[str, float]:
    """Spawn the app and time, from the spawn, the first script run a websocket client asks
    for (`bench.common.StreamlitClient`): the server's share of the cold landing."""
    app = StreamlitProcess(app_env(url))
    app.spawn()
    try:
        health = app.wait_healthy(poll_s=0.02)

        async def run() -> tuple[float, float]:
            client = StreamlitClient(app.url, query)
            await client.connect()
            first = await client.rerun()
            again = await client.rerun()
            await client.close()
            return first.finished_at - first.sent_at, again.finished_at - again.sent_at

        # in a thread: Playwright's sync API keeps an event loop running in this one
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first, again = pool.submit(asyncio.run, run()).result()
        return {"health": health, "first_run": first, "rerun": again}
    finally:
        app.stop()


def import_time(modules: tuple[str, ...], repeats: int) -> float:
    code = (
        "import time; t = time.perf_counter(); "
        + "; ".join(f"import {m}" for m in modules)
        + "; print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(repeats):
        out = subprocess.run(
            [PYTHON, "-c", code],
            cwd=REPO,
            env=app_env("sqlite://"),
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return median(times)


def slowest_imports(modules: tuple[str, ...], top: int = 12) -> list[tuple[float, str]]:
    """Packages by the time spent importing their own modules (`-X importtime` self times
    summed per top-level package, one run), seconds."""
    code = "; ".join(f"import {m}" for m in modules)
    out = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", code],
        cwd=REPO,
        env=app_env("sqlite://"),
        capture_output=True,
        text=True,
        check=True,
    )
    total: dict[str, float] = {}
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)", line)
        if m:
            root = m.group(2).split(".")[0]
            total[root] = total.get(root, 0.0) + int(m.group(1)) / 1e6
    return sorted(((t, n) for n, t in total.items()), reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one repeat (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1

    from tests.e2e.harness import browser, chromium_path

    print(f"cold start: {args.repeats} repeats, cores={os.cpu_count()}, medians reported")
    have_browser = chromium_path() is not None
    landing: list[dict[str, float]] = []
    interview: list[dict[str, float]] = []
    server_only: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="mge-cold-") as tmp:
        if not have_browser:
            print("Debian's chromium is not installed: page times not measured")
        with contextlib.ExitStack() as stack:
            b = stack.enter_context(browser()) if have_browser else None
            for i in range(args.repeats):
                url, token = make_database(Path(tmp), f"cold-{i}-a.db")
                server_only.append(first_run_without_browser(url, ""))
                line = (
                    f"  run {i + 1}: server only: health {server_only[-1]['health']:.2f}s, first "
                    f"script run {server_only[-1]['first_run']:.2f}s (next {server_only[-1]['rerun']:.2f}s)"
                )
                if b is not None:
                    url, token = make_database(Path(tmp), f"cold-{i}-b.db")
                    landing.append(timed_start(b, url, "/", LANDING_READY))
                    url, token = make_database(Path(tmp), f"cold-{i}-c.db")
                    interview.append(timed_start(b, url, f"/?d=demo&r={token}", "textarea"))
                    line += (
                        f" | browser: health {landing[-1]['health']:.2f}s landing "
                        f"{landing[-1]['page']:.2f}s (warm server {landing[-1]['page_warm']:.2f}s)"
                        f" | interview {interview[-1]['page']:.2f}s (warm server "
                        f"{interview[-1]['page_warm']:.2f}s)"
                    )
                print(line, flush=True)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return median([r[key] for r in rows]) if rows else float("nan")

    imports_streamlit = import_time(("streamlit",), args.repeats)
    imports_app = import_time(("streamlit", *APP_MODULES), args.repeats)
    print(
        f"median from spawn: health {med(landing, 'health'):.2f}s, index {med(landing, 'index'):.2f}s,"
        f" landing visible {med(landing, 'page'):.2f}s, interview visible "
        f"{med(interview, 'page'):.2f}s"
    )
    print(
        f"  the browser alone (same pages on the warm server, empty browser cache): landing "
        f"{med(landing, 'page_warm'):.2f}s, interview {med(interview, 'page_warm'):.2f}s"
    )
    print(
        f"  the server alone (websocket client, no browser): health {med(server_only, 'health'):.2f}s"
        f", first script run {med(server_only, 'first_run'):.2f}s, the next one "
        f"{med(server_only, 'rerun'):.2f}s"
    )
    print(
        f"imports in a fresh interpreter (median): streamlit {imports_streamlit:.2f}s, "
        f"streamlit + app modules {imports_app:.2f}s (app adds {imports_app - imports_streamlit:.2f}s)"
    )
    print("import time by package (-X importtime, own modules' time summed, one run):")
    for seconds, name in slowest_imports(("streamlit", *APP_MODULES)):
        print(f"  {seconds:6.3f}s {name}")
    land, inter = med(landing, "page"), med(interview, "page")
    print(f"goal landing <= {GOAL_LANDING_S:.0f}s: {'met' if land <= GOAL_LANDING_S else 'MISSED'}")
    print(f"cold_start: landing={land:.2f}s interview={inter:.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
