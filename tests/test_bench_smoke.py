"""The benchmark scripts still run: each at a tiny size, exit 0, and a well-formed last line.

The figures themselves are not checked (they are what `make bench` reports); only that every
script starts, reaches its summary, and prints numbers.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED_DATA
from tests.e2e.harness import chromium_path

NUMBER = r"\d+(?:\.\d+)?"


def run_bench(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, proc.stderr[-2000:]
    return lines[-1]


@pytest.mark.slow
def test_interview_overhead_quick_run_prints_summary():
    last = run_bench("bench/interview_overhead.py", "--quick")
    assert re.fullmatch(
        rf"interview_overhead: n\d+_p95=\d+ms n\d+_p95=\d+ms mem_per_participant=-?{NUMBER}MB",
        last,
    ), last


def test_tokens_per_participant_quick_run_prints_summary():
    last = run_bench("bench/tokens_per_participant.py", "--quick")
    m = re.fullmatch(
        r"tokens_per_participant: turns=3 prompt=(\d+) completion=(\d+) cacheable=(\d+)%", last
    )
    assert m, last
    assert int(m.group(1)) > 1000 and int(m.group(2)) > 0


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_cold_start_quick_run_prints_summary():
    if chromium_path() is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    last = run_bench("bench/cold_start.py", "--quick")
    assert re.fullmatch(rf"cold_start: landing={NUMBER}s interview={NUMBER}s", last), last


def test_run_all_runs_a_chosen_bench_and_prints_its_last_line():
    out = subprocess.run(
        [sys.executable, "bench/run_all.py", "--quick", "--only", "graph_scale"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(rf"^graph_scale: ours={NUMBER}s naive={NUMBER}s", out.stdout, re.M), out.stdout


def test_run_all_skips_dedupe_quality_or_runs_it():
    out = subprocess.run(
        [sys.executable, "bench/run_all.py", "--only", "dedupe_quality"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    if (SHARED_DATA / "dedupe-dev.jsonl").exists():
        assert re.search(r"^dedupe_quality: recall@5=", out.stdout, re.M), out.stdout
    else:
        assert "dedupe_quality: skipped" in out.stdout
