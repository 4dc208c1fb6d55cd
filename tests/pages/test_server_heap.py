"""The app freezes its start-up heap once, after its first full script run.

Streamlit collects garbage after every script run; without the freeze each collection walks
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
at.run()
errors += [e.value for e in at.exception]
print(json.dumps({"before": before, "first": first, "calls": len(calls), "errors": errors}))
"""


def test_first_run_freezes_the_heap_and_later_runs_do_not(sqlite_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": sqlite_url}
    env.pop("OPENAI_BASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
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
    assert seen["before"] == 0
    # The modules, the engine and the compiled pages are all alive after the first run.
    assert seen["first"] > 10_000
    # Two script runs, one freeze: later runs leave the collector to do its normal work.
    assert seen["calls"] == 1
