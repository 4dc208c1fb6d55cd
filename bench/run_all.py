"""Run every benchmark script in bench/ and print each one's last line (its summary).

Each script runs in its own process with this interpreter, one after the other (they measure
time and CPU; running them side by side on a small machine would spoil each other's figures).
The full output of each goes to `test-artifacts/bench/<name>.txt`. `dedupe_quality.py` needs
`../shared/data/dedupe-dev.jsonl`; without it the script is skipped with a message. A script
that fails is reported with its exit code and last line; this runner still exits 0, because
the figures are the result (`--strict` exits 1 on a failed script instead).

Usage: ``python bench/run_all.py [--quick] [--only NAME ...] [--strict]``
(`--quick` passes `--quick` to the scripts that take it: a tiny run that proves they work.)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
ARTIFACTS = REPO / "test-artifacts" / "bench"
NOT_BENCHES = {"run_all.py", "common.py", "__init__.py"}
DEDUPE_FILE = REPO.parent / "shared" / "data" / "dedupe-dev.jsonl"
# Scripts with a --quick option (tiny sizes); the others get these arguments under --quick.
QUICK_ARGS = {"graph_scale.py": ["--votes", "20000", "--values", "500", "--repeat", "1"]}


def scripts() -> list[Path]:
    return sorted(p for p in BENCH.glob("*.py") if p.name not in NOT_BENCHES)


def takes_quick(path: Path) -> bool:
    return "--quick" in path.read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny runs (smoke test)")
    parser.add_argument("--only", nargs="*", default=None, help="script names to run")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a script fails")
    args = parser.parse_args(argv)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in scripts():
        name = path.stem
        if args.only is not None and name not in args.only and path.name not in args.only:
            continue
        cmd = [sys.executable, str(path)]
        if path.name == "dedupe_quality.py" and not DEDUPE_FILE.exists():
            print(f"{name}: skipped ({DEDUPE_FILE} not present)", flush=True)
            continue
        if args.quick:
            cmd += ["--quick"] if takes_quick(path) else QUICK_ARGS.get(path.name, [])
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        output = proc.stdout + (f"\n--- stderr ---\n{proc.stderr}" if proc.stderr.strip() else "")
        (ARTIFACTS / f"{name}.txt").write_text(output, encoding="utf-8")
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        last = lines[-1] if lines else "(no output)"
        if proc.returncode != 0:
            failed += 1
            err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            last = f"FAILED (exit {proc.returncode}): {err[-1] if err else last}"
        print(f"{last}    [{elapsed:.0f}s]", flush=True)
    print(f"full outputs: {ARTIFACTS.relative_to(REPO)}/")
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
