"""The scale benchmark runs small and agrees with the naive baseline."""

from __future__ import annotations

import re

import pytest

from tests.graph.helpers import bench_module


def test_graph_scale_runs_small_and_prints_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    bench = bench_module()
    assert (
        bench.main(["--votes", "3000", "--values", "300", "--contexts", "4", "--repeat", "1"]) == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert "edge statistics identical: True" in "\n".join(lines)
    assert re.fullmatch(r"graph_scale: ours=\d+\.\d\ds naive=\d+\.\d\ds ratio=\d+\.\d", lines[-1])


def test_synthetic_votes_are_seeded_and_unique_per_participant() -> None:
    bench = bench_module()
    a = bench.synthetic_votes(n_votes=5000, n_values=400, n_contexts=5, seed=3)
    b = bench.synthetic_votes(n_votes=5000, n_values=400, n_contexts=5, seed=3)
    assert a.equals(b)
    key = ["participant", "from_id", "to_id", "context"]
    assert not a.duplicated(subset=key).any()
    assert (a["from_id"] != a["to_id"]).all()
