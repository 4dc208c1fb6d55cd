"""What the server's first script run costs: the modules it imports, and the heap freeze.

The landing page (the first thing every participant sees, and on a fresh server the cold start)
imports no module it does not need: openai, pandas, networkx and Alembic come later, on the
first LLM call, the first statistics or a database that needs migrating.

The app freezes its start-up heap once, after its first full script run. Streamlit collects garbage after every script run; without the freeze each collection walks
every module object of pandas, SQLAlchemy and openai, which was most of the server's CPU per
participant turn (bench/interview_overhead.py). The check runs in a child process, because
the garbage collector's frozen generation belongs to the whole process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import gc, json, sys
from streamlit.testing.v1 import AppTest
calls = []
real_freeze = gc.freeze
gc.freeze = lambda: (calls.append(1), real_freeze())[1]
before = gc.get_freeze_count()
at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
errors = [e.value for e in at.exception]
first = gc.get_freeze_count()
heavy = sorted(m for m in ("openai", "pandas", "networkx", "alembic", "pyvis") if m in sys.modules)
at.run()
errors += [e.value for e in at.exception]
print(json.dumps({"before": before, "first": first, "calls": len(calls), "errors": errors,
                  "heavy": heavy}))
"""


def first_runs(sqlite_url: str, llm_url: str | None = None) -> dict:
    """Two runs of the landing page in a fresh interpreter, on a migrated database."""
    env = {**os.environ, "DATABASE_URL": sqlite_url}
    env.pop("OPENAI_BASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    if llm_url:
        env["OPENAI_BASE_URL"] = llm_url
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO / "streamlit_app.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["errors"] == []
    return seen


@pytest.mark.parametrize("llm_url", [None, "http://127.0.0.1:9/v1"], ids=["offline", "llm"])
def test_landing_page_imports_no_heavy_module(sqlite_url: str, llm_url: str | None) -> None:
    assert first_runs(sqlite_url, llm_url)["heavy"] == []


def test_first_run_freezes_the_heap_and_later_runs_do_not(sqlite_url: str) -> None:
    seen = first_runs(sqlite_url)
    assert seen["before"] == 0
    # The modules, the engine and the compiled pages are all alive after the first run.
    assert seen["first"] > 10_000
    # Two script runs, one freeze: later runs leave the collector to do its normal work.
    assert seen["calls"] == 1
