"""Interview overhead: what the app adds between a participant's message and the first token.

Runs the real app (`streamlit run`, fresh SQLite database with the demo deliberation) against
the scripted LLM server in its own process with a fixed time to first token (TTFT), and drives
N participants at once through interview turns. For each turn it measures the time from the
participant sending the message to the first token of the interviewer's reply being visible,
minus the server's configured TTFT: that is the app's overhead (script rerun, database, the
gateway, Streamlit's delta pipeline, and for the browser the page's own work).

Two clients, and the output says which measured what:

- browser: headless Debian Chromium (Playwright), one tab per participant. The time is taken
  inside the page: `performance.now()` at the Enter keydown (capture phase, before Streamlit
  sends the message) and at the DOM mutation that makes the new assistant message's first
  text appear; the page also notes when the message left and when the websocket message
  holding the token arrived, so the figure splits into page / server / page. Used for
  N <= --browser-n (default 1): one Chromium tab costs far more CPU than the server spends on
  a participant (see chromium_cpu), so 50 tabs on a 2-core machine would measure Chromium.
- protocol: `bench.common.StreamlitClient`, a websocket client that sends the same
  `rerun_script` messages Chromium sends and times the arrival of the first delta that holds
  the reply's text. It does not render; at N=1 both clients run, side by side.

By default (2+ cores) the app is pinned to one core and the browser, the LLM server and this
process to the others, as if participants' browsers and the LLM ran elsewhere (`--pin no`
shares every core). Participants think between turns (uniform 0.5-1.5 x --think seconds,
starts staggered over one think time), so --think sets the offered load; the output prints the
turns per second achieved. Small N run in rounds of new participants until --min-samples turns
are measured. Per N: p50/p95/max overhead, the full turn time, the server's CPU seconds and
resident memory growth per participant (psutil, else /proc), the gateway's ledger (failed or
retried calls would inflate a turn) and the scripted server's own floor (not subtracted).
`--compare OPTION=VALUE` runs every pass again with an extra `streamlit run` option and prints
the ratios side by side (e.g. `--compare runner.postScriptGC=false`).

Last line: `interview_overhead: n1_p95=Xms n50_p95=Yms mem_per_participant=ZMB` (the smallest N
from the browser when it ran, the largest N from the protocol client, memory at the largest N;
all at the largest TTFT; the app as configured). Goal: p95 <= 100 ms at N=1, <= 300 ms at N=50.
Exits 0 either way.

Usage::

    python bench/interview_overhead.py [--n 1,10,50] [--turns 4] [--ttft 0,0.5] [--think 10]
        [--browser-n 1] [--compare runner.postScriptGC=false] [--pin auto|yes|no] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402
    REFERENCE_TURNS,
    LLMServerProcess,
    NewAssistantText,
    ProcessStats,
    ProcSample,
    StreamlitClient,
    StreamlitProcess,
    app_env,
    demo_participants,
    fmt_ms,
    fresh_database,
    median,
    percentile,
    pin,
    tree_cpu_seconds,
)

GOAL_N1_S = 0.100
GOAL_N50_S = 0.300

# Runs in every page before the app: timestamps taken by the page itself, so Playwright's own
# round trips never enter the figure.
PAGE_PROBE = """
(() => {
  const assistantWithText = () => {
    let n = 0;
    for (const m of document.querySelectorAll('[data-testid="stChatMessage"]')) {
      if (!m.querySelector('[data-testid="stChatMessageAvatarAssistant"]')) continue;
      const body = m.querySelector('[data-testid="stChatMessageContent"]');
      if (body && body.textContent.trim()) n++;
    }
    return n;
  };
  const s = window.__mge = {t0: null, t1: null, before: 0, armed: false, ws: [], sent: null};
  s.arm = () => { s.before = assistantWithText(); s.t0 = null; s.t1 = null; s.ws = [];
                  s.sent = null; s.armed = true; return s.before; };
  // when each websocket message reaches the page (before Streamlit's own handler runs)
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => { if (s.armed) s.ws.push(performance.now()); });
    }
    send(data) {
      if (s.armed && s.t0 !== null && s.sent === null) s.sent = performance.now();
      return super.send(data);
    }
  };
  // [keydown -> message sent, sent -> the websocket message shown, that message -> DOM]
  s.parts = () => {
    const before = s.ws.filter((t) => t <= s.t1);
    const last = before.length ? before[before.length - 1] : null;
    if (s.sent === null || last === null) return null;
    return [s.sent - s.t0, last - s.sent, s.t1 - last];
  };
  document.addEventListener('keydown', (e) => {
    if (s.armed && e.key === 'Enter' && s.t0 === null) s.t0 = performance.now();
  }, true);
  new MutationObserver(() => {
    if (s.armed && s.t0 !== null && s.t1 === null && assistantWithText() > s.before) {
      s.t1 = performance.now(); s.armed = false;
    }
  }).observe(document, {childList: true, subtree: true, characterData: true});
})();
"""


@dataclass(frozen=True)
class Turn:
    participant: int
    turn: int
    first_s: float | None  # send -> first token visible (None: no reply text appeared)
    total_s: float  # send -> the app settled (reply stored and the page re-rendered)


@dataclass
class Pass:
    client: str
    n: int
    ttft: float
    turns: list[Turn]
    duration_s: float
    server_cpu_s: float
    server_cpu_turns_s: float
    rss_growth_mb: float
    rss_after_mb: float
    chromium_cpu_s: float = 0.0
    bench_cpu_s: float = 0.0
    ledger: str = ""
    # browser, medians: keydown -> message sent, sent -> the message with the token arrives,
    # that message -> the text in the DOM
    browser_parts: tuple[float, ...] = ()
    participants: int = 0  # served in the pass (N per round)
    variant: str = ""  # "" as configured, else "+OPTION=VALUE" (--compare)
    load: float = math.nan  # the machine's 1-minute load average at the end of the pass

    def overheads(self) -> list[float]:
        return [t.first_s - self.ttft for t in self.turns if t.first_s is not None]

    @property
    def failures(self) -> int:
        return sum(1 for t in self.turns if t.first_s is None)


def message(participant: int, turn: int) -> str:
    text = REFERENCE_TURNS[turn % len(REFERENCE_TURNS)]
    return f"{text} (participant {participant})"


def think_time(rng: random.Random, think: float) -> float:
    return rng.uniform(0.5 * think, 1.5 * think) if think > 0 else 0.0


# --- the protocol client -------------------------------------------------------------------------


async def protocol_pass(
    base_url: str,
    tokens: list[str],
    *,
    turns: int,
    think: float,
    seed: int,
    on_open: Callable[[], None] = lambda: None,
) -> list[Turn]:
    clients = [StreamlitClient(base_url, f"d=demo&r={token}") for token in tokens]

    async def open_one(c: StreamlitClient) -> None:
        await c.connect()
        await c.rerun()

    await asyncio.gather(*(open_one(c) for c in clients))
    on_open()
    results: list[Turn] = []

    async def participant(i: int, c: StreamlitClient) -> None:
        rng = random.Random(seed * 1000 + i)
        await asyncio.sleep(rng.uniform(0, think))
        for t in range(turns):
            run = await c.rerun([c.chat_input(message(i, t))], match=NewAssistantText(t + 1))
            first = None if run.first_match_at is None else run.first_match_at - run.sent_at
            results.append(Turn(i, t, first, run.finished_at - run.sent_at))
            if t < turns - 1:
                await asyncio.sleep(think_time(rng, think))

    try:
        await asyncio.gather(*(participant(i, c) for i, c in enumerate(clients)))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return results


# --- the browser -------------------------------------------------------------------------------


async def browser_pass(
    base_url: str,
    tokens: list[str],
    *,
    turns: int,
    think: float,
    seed: int,
    on_open: Callable[[], None] = lambda: None,
    chromium_cpu: list[float] | None = None,
    render_lags: list[tuple[float, ...]] | None = None,
) -> list[Turn]:
    from playwright.async_api import async_playwright
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    from tests.e2e.harness import CHROMIUM_FLAGS, chromium_path

    path = chromium_path()
    if path is None:
        raise RuntimeError("Debian's chromium is not installed")
    results: list[Turn] = []
    render_lags = render_lags if render_lags is not None else []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            pages = []
            finished: list[list[float]] = []
            for _ in tokens:
                context = await browser.new_context(viewport={"width": 1000, "height": 900})
                page = await context.new_page()
                await page.add_init_script(PAGE_PROBE)
                done: list[float] = []

                def on_ws(ws: object, done: list[float] = done) -> None:
                    def on_frame(payload: bytes | str) -> None:
                        if isinstance(payload, str):
                            return
                        msg = ForwardMsg()
                        msg.ParseFromString(payload)
                        if (
                            msg.WhichOneof("type") == "script_finished"
                            and msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY
                        ):
                            done.append(time.perf_counter())

                    ws.on("framereceived", on_frame)  # type: ignore[attr-defined]

                page.on("websocket", on_ws)
                pages.append(page)
                finished.append(done)

            async def open_one(i: int) -> None:
                page = pages[i]
                await page.goto(f"{base_url}/?d=demo&r={tokens[i]}")
                await page.locator("textarea").first.wait_for(timeout=60_000)
                await _settled(finished[i], 1)

            await asyncio.gather(*(open_one(i) for i in range(len(pages))))
            on_open()

            async def participant(i: int) -> None:
                rng = random.Random(seed * 1000 + i)
                page = pages[i]
                await asyncio.sleep(rng.uniform(0, think))
                for t in range(turns):
                    box = page.locator("textarea").first
                    await box.fill(message(i, t))
                    await page.evaluate("window.__mge.arm()")
                    settled = len(finished[i])
                    start = time.perf_counter()
                    await box.press("Enter")
                    first: float | None = None
                    try:
                        await page.wait_for_function(
                            "window.__mge.t1 !== null", timeout=120_000, polling=50
                        )
                        t0, t1, parts = await page.evaluate(
                            "[window.__mge.t0, window.__mge.t1, window.__mge.parts()]"
                        )
                        first = (t1 - t0) / 1000 if t0 is not None else None
                        if parts is not None:
                            render_lags.append(tuple(x / 1000 for x in parts))
                    except Exception:  # noqa: BLE001 - a reply that never shows is a failed turn
                        first = None
                    await _settled(finished[i], settled + 1)
                    results.append(Turn(i, t, first, finished[i][-1] - start))
                    if t < turns - 1:
                        await asyncio.sleep(think_time(rng, think))

            await asyncio.gather(*(participant(i) for i in range(len(pages))))
            if chromium_cpu is not None:
                chromium_cpu.append(tree_cpu_seconds(os.getpid(), "chrom"))
        finally:
            await browser.close()
    return results


async def _settled(done: list[float], count: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(done) < count:
        if time.monotonic() > deadline:
            raise TimeoutError("the page did not finish its script run")
        await asyncio.sleep(0.01)


# --- one pass: a fresh app, N participants -------------------------------------------------------


async def warm_up(base_url: str, token: str) -> None:
    """One participant, one turn: imports, the cached engine and gateway, first queries."""
    c = StreamlitClient(base_url, f"d=demo&r={token}")
    await c.connect()
    try:
        await c.rerun()
        await c.rerun([c.chat_input(message(0, 0))], match=NewAssistantText(1))
    finally:
        await c.close()


def run_pass(
    *,
    client: str,
    n: int,
    ttft: float,
    llm_url: str,
    turns: int,
    think: float,
    seed: int,
    streamlit_args: list[str],
    workdir: Path,
    min_samples: int,
    pin_to: tuple[set[int], set[int]] | None = None,
) -> Pass:
    """A fresh app and database; N participants at once, in as many rounds (new participants
    each) as it takes to measure at least `min_samples` turns."""
    rounds = max(1, math.ceil(min_samples / max(n * turns, 1)))
    db_url = fresh_database(workdir, f"overhead-{client}-{n}-{ttft}.db")
    tokens = [p.token for p in demo_participants(db_url, n * rounds + 1)]
    env = app_env(db_url, {"OPENAI_BASE_URL": llm_url, "OPENAI_API_KEY": "bench"})
    with StreamlitProcess(env, extra_args=streamlit_args) as app, pinned(app.pid, pin_to):
        asyncio.run(warm_up(app.url, tokens[0]))
        time.sleep(0.5)
        server = ProcessStats(app.pid)
        before = server.sample()
        bench_cpu0 = time.process_time()
        started = time.perf_counter()
        samples: list[Turn] = []
        turns_cpu = 0.0
        chromium: list[float] = []
        lags: list[tuple[float, ...]] = []
        for r in range(rounds):
            group = tokens[1 + r * n : 1 + (r + 1) * n]
            opened: list[ProcSample] = []

            def on_open(opened: list[ProcSample] = opened) -> None:
                opened.append(server.sample())

            kwargs = {"turns": turns, "think": think, "seed": seed + r, "on_open": on_open}
            if client == "protocol":
                runner = protocol_pass(app.url, group, **kwargs)
            else:
                runner = browser_pass(
                    app.url, group, chromium_cpu=chromium, render_lags=lags, **kwargs
                )
            samples += [
                Turn(t.participant + r * n, t.turn, t.first_s, t.total_s)
                for t in asyncio.run(runner)
            ]
            turns_cpu += server.sample().cpu_s - opened[0].cpu_s
        duration = time.perf_counter() - started
        after = server.sample()
        ledger = ledger_summary(db_url)
    return Pass(
        client=client,
        n=n,
        ttft=ttft,
        turns=samples,
        duration_s=duration,
        server_cpu_s=after.cpu_s - before.cpu_s,
        server_cpu_turns_s=turns_cpu,
        rss_growth_mb=after.rss_mb - before.rss_mb,
        rss_after_mb=after.rss_mb,
        chromium_cpu_s=sum(chromium),
        bench_cpu_s=time.process_time() - bench_cpu0,
        ledger=ledger,
        load=os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan,
        browser_parts=tuple(percentile([x[i] for x in lags], 50) for i in range(3)) if lags else (),
        participants=n * rounds,
    )


@contextlib.contextmanager
def pinned(app_pid: int, pin_to: tuple[set[int], set[int]] | None) -> Iterator[None]:
    """With `pin_to = (server cpus, other cpus)`: the app on its own core(s), this process
    (and so the browser it starts) and the LLM server on the others, as if the participant's
    browser and the LLM ran on other machines. Undone afterwards."""
    if pin_to is None:
        yield
        return
    server_cpus, other_cpus = pin_to
    everything = os.sched_getaffinity(0)
    pin(app_pid, server_cpus)
    pin(os.getpid(), other_cpus)
    try:
        yield
    finally:
        pin(os.getpid(), everything)


def ledger_summary(database_url: str) -> str:
    """The gateway's ledger for the pass: calls, and failed attempts by kind (a retried call
    would inflate a turn's time; this says whether any happened)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT outcome, error_type, count(*) FROM llmcall GROUP BY 1, 2")
            ).all()
    finally:
        engine.dispose()
    ok = sum(n for outcome, _, n in rows if outcome == "ok")
    bad = ", ".join(f"{kind}={n}" for outcome, kind, n in rows if outcome != "ok")
    return f"ledger: {ok} ok calls" + (f", failed attempts {bad}" if bad else ", no failures")


def llm_floor(llm_url: str, ttft: float, repeats: int = 20) -> float:
    """The scripted server's own time to first content chunk minus its TTFT (median), for a
    request the size of an interview call: part of every figure, not the app's doing."""
    body = json.dumps(
        {
            "model": "gpt-4o",
            "stream": True,
            "messages": [{"role": "system", "content": "x " * 1500}]
            + [{"role": "user", "content": REFERENCE_TURNS[0]}] * 8,
            "tools": [],
        }
    ).encode()
    times = []
    for _ in range(repeats):
        req = urllib.request.Request(
            f"{llm_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
        )
        start = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as r:
            while True:
                line = r.readline()
                if not line or b'"content": "' in line and b'"content": ""' not in line:
                    break
            times.append(time.perf_counter() - start - ttft)
    return percentile(times, 50)


# --- output ------------------------------------------------------------------------------------


def report(p: Pass) -> None:
    o = p.overheads()
    total = [t.total_s for t in p.turns]
    rate = len(p.turns) / p.duration_s if p.duration_s else math.nan
    chromium = ""
    if p.client == "browser":
        chromium = f" chromium_cpu={p.chromium_cpu_s:.1f}s"
        if p.browser_parts:
            a, b, c = p.browser_parts
            chromium += (
                f"\n  {'':8s} in the page (medians): keydown -> message sent {fmt_ms(a)}, "
                f"sent -> token's websocket message {fmt_ms(b)} (ttft included), "
                f"that message -> text in the DOM {fmt_ms(c)}"
            )
    print(
        f"  {p.client + p.variant:8s} N={p.n:<3d} turns={len(p.turns):<4d} "
        f"({p.participants // max(p.n, 1)} round(s)) "
        f"overhead p50={fmt_ms(percentile(o, 50))} p95={fmt_ms(percentile(o, 95))} "
        f"max={fmt_ms(max(o) if o else math.nan)} | turn p50={fmt_ms(percentile(total, 50))} "
        f"| failed={p.failures} | {rate:.2f} turns/s | load avg {p.load:.1f}"
    )
    per = max(p.participants, 1)
    print(
        f"  {'':8s} server cpu={p.server_cpu_s:.1f}s ({p.server_cpu_s / per:.2f}s/participant, "
        f"{p.server_cpu_turns_s / max(len(p.turns), 1):.3f}s/turn) "
        f"rss +{p.rss_growth_mb:.1f}MB ({p.rss_growth_mb / per:.2f}MB/participant, "
        f"{p.rss_after_mb:.0f}MB total) bench_cpu={p.bench_cpu_s:.1f}s{chromium}"
    )
    print(f"  {'':8s} {p.ledger}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="1,10,50", help="participant counts, comma-separated")
    parser.add_argument("--turns", type=int, default=4, help="turns per participant")
    parser.add_argument(
        "--ttft", default="0,0.5", help="LLM time to first token (s), comma-separated"
    )
    parser.add_argument(
        "--think", type=float, default=10.0, help="mean think time between turns (s)"
    )
    parser.add_argument(
        "--browser-n", type=int, default=1, help="also drive Chromium tabs for N up to this"
    )
    parser.add_argument(
        "--streamlit-arg",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="extra `streamlit run` option for an experiment, e.g. runner.postScriptGC=false",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="run every pass a second time with this extra `streamlit run` option and print "
        "both side by side (e.g. runner.postScriptGC=false)",
    )
    parser.add_argument(
        "--think-solo",
        type=float,
        default=2.0,
        help="mean think time when N=1 (the server only has to go idle between turns)",
    )
    parser.add_argument(
        "--min-samples",
        type=int,
        default=20,
        help="measure at least this many turns per N (extra rounds of new participants)",
    )
    parser.add_argument(
        "--pin",
        choices=("auto", "yes", "no"),
        default="auto",
        help="app on core 0, browser/LLM server/bench on the others (auto: with >= 2 cores)",
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="run every pass this many times; medians reported"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny run (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.turns, args.ttft, args.think, args.browser_n = "2", 2, "0", 0.2, 0
        args.min_samples = 1
    ns = [int(x) for x in args.n.split(",") if x.strip()]
    ttfts = [float(x) for x in args.ttft.split(",") if x.strip()]
    streamlit_args = option_args(args.streamlit_arg)
    variants = [("", streamlit_args)]
    if args.compare:
        variants.append(("+" + ",".join(args.compare), streamlit_args + option_args(args.compare)))

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin_to = None
    if args.pin == "yes" or (args.pin == "auto" and len(cores) >= 2):
        pin_to = ({cores[0]}, set(cores[1:]))
    placement = (
        f"app pinned to cpu {cores[0]}, browser/LLM server/bench to {cores[1:]}"
        if pin_to
        else "not pinned: app, browser, LLM server and bench share every core"
    )
    print(
        f"interview overhead: N={ns} turns={args.turns} ttft={ttfts}s think={args.think}s "
        f"(N=1: {args.think_solo}s; uniform 0.5-1.5x) min samples {args.min_samples} "
        f"cores={os.cpu_count()} streamlit args={streamlit_args or 'none'}"
    )
    print(f"placement: {placement}")
    passes: list[Pass] = []
    with tempfile.TemporaryDirectory(prefix="mge-bench-") as tmp:
        for ttft in ttfts:
            with LLMServerProcess(ttft_s=ttft, card_after=10_000) as llm:
                if pin_to is not None:
                    pin(llm.pid, pin_to[1])
                floor = llm_floor(llm.base_url, ttft)
                print(
                    f"ttft={ttft}s: scripted server floor (its own TTFT overhead) {fmt_ms(floor)}"
                )
                for n in ns:
                    clients = ["protocol"] + (["browser"] if n <= args.browser_n else [])
                    # repeats interleave the variants, so drifting machine noise hits both
                    for client, rep, (label, extra) in itertools.product(
                        clients, range(args.repeats), variants
                    ):
                        try:
                            p = run_pass(
                                client=client,
                                n=n,
                                ttft=ttft,
                                llm_url=llm.base_url,
                                turns=args.turns,
                                think=args.think_solo if n == 1 else args.think,
                                seed=args.seed + 100 * rep,
                                streamlit_args=extra,
                                workdir=Path(tmp),
                                min_samples=args.min_samples,
                                pin_to=pin_to,
                            )
                        except Exception as exc:  # noqa: BLE001 - report and go on
                            print(f"  {client}{label} N={n}: FAILED {type(exc).__name__}: {exc}")
                            continue
                        p.variant = label
                        passes.append(p)
                        report(p)
                        if label:
                            compare(passes, p)
                    if args.repeats > 1:
                        for client, (label, _) in itertools.product(clients, variants):
                            summarise(passes, client, n, ttft, label)

    def p95(client: str, n: int) -> float:
        ttft = max(ttfts)
        found = [
            p
            for p in passes
            if p.client == client and p.n == n and p.ttft == ttft and not p.variant
        ]
        return median([percentile(p.overheads(), 95) for p in found]) if found else math.nan

    small, large = min(ns), max(ns)
    n1 = p95("browser", small)
    n1_client = "browser"
    if math.isnan(n1):
        n1, n1_client = p95("protocol", small), "protocol"
    nl = p95("protocol", large)
    big = [
        p
        for p in passes
        if p.client == "protocol" and p.n == large and p.ttft == max(ttfts) and not p.variant
    ]
    mem = median([p.rss_growth_mb / max(p.participants, 1) for p in big]) if big else math.nan
    print(
        f"goal p95 <= {GOAL_N1_S * 1000:.0f}ms at N=1 ({n1_client}): "
        f"{'met' if n1 <= GOAL_N1_S else 'MISSED'}; "
        f"p95 <= {GOAL_N50_S * 1000:.0f}ms at N={large} (protocol): "
        f"{'met' if nl <= GOAL_N50_S else 'MISSED'}"
    )
    print(
        f"interview_overhead: n{small}_p95={nl_fmt(n1)} n{large}_p95={nl_fmt(nl)} "
        f"mem_per_participant={mem:.1f}MB"
    )
    return 0


def summarise(passes: list[Pass], client: str, n: int, ttft: float, variant: str) -> None:
    """Medians over the repeats of one pass (and their range)."""
    runs = [p for p in passes if (p.client, p.n, p.ttft, p.variant) == (client, n, ttft, variant)]
    if not runs:
        return
    p50s = [percentile(p.overheads(), 50) for p in runs]
    p95s = [percentile(p.overheads(), 95) for p in runs]
    cpu = [p.server_cpu_turns_s / max(len(p.turns), 1) for p in runs]
    mem = [p.rss_growth_mb / max(p.participants, 1) for p in runs]
    print(
        f"  = {client + variant} N={n} ttft={ttft}s, median of {len(runs)} repeats: overhead "
        f"p50={fmt_ms(median(p50s))} p95={fmt_ms(median(p95s))} (p95 range "
        f"{fmt_ms(min(p95s))}-{fmt_ms(max(p95s))}), server cpu {median(cpu):.3f}s/turn, "
        f"rss +{median(mem):.2f}MB/participant"
    )


def option_args(items: list[str]) -> list[str]:
    """["runner.postScriptGC=false"] -> ["--runner.postScriptGC", "false"]"""
    out = []
    for item in items:
        key, _, value = item.partition("=")
        out += [f"--{key}", value]
    return out


def compare(passes: list[Pass], p: Pass) -> None:
    """The ratio of a variant's figures to the same pass as configured (run just before)."""
    base = [
        b for b in passes if (b.client, b.n, b.ttft) == (p.client, p.n, p.ttft) and not b.variant
    ]
    if not base:
        return
    b = base[-1]

    def ratio(x: float, y: float) -> str:
        return f"{x / y:.1f}x" if y > 0 and not math.isnan(x) and not math.isnan(y) else "n/a"

    bo, po = b.overheads(), p.overheads()
    b_turn = b.server_cpu_turns_s / max(len(b.turns), 1)
    p_turn = p.server_cpu_turns_s / max(len(p.turns), 1)
    print(
        f"  {'':8s} as configured / {p.variant[1:]}: overhead p50 "
        f"{ratio(percentile(bo, 50), percentile(po, 50))}, p95 "
        f"{ratio(percentile(bo, 95), percentile(po, 95))}, server cpu per turn "
        f"{ratio(b_turn, p_turn)}"
    )


def nl_fmt(seconds: float) -> str:
    return "nan" if math.isnan(seconds) else f"{seconds * 1000:.0f}ms"


if __name__ == "__main__":
    raise SystemExit(main())
