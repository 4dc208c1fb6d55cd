"""Helpers for the graph tests: reference data location, the naive baseline, vote strategies."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import strategies as st

from graph.types import CHOICES, Vote

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO / ".." / "shared" / "data"
BENCH = REPO / "bench" / "graph_scale.py"

CONTEXTS = ("When grieving", "When angry", "When deciding")


def reference_summary() -> dict[str, Any]:
    """The published reference graph, read at run time from the sibling ``shared`` folder."""
    path = SHARED_DATA / "reference-graph-summary.json"
    if not path.exists():
        pytest.skip("../shared/data not present (only in the project's CI)")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


_bench: ModuleType | None = None


def bench_module() -> ModuleType:
    """``bench/graph_scale.py``, the one home of the naive reference implementation."""
    global _bench
    if _bench is None:
        spec = importlib.util.spec_from_file_location("graph_scale_bench", BENCH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _bench = module
    return _bench


def naive_rows(votes: list[Vote]) -> list[tuple[str, int, int, str, str]]:
    return [(v.participant, v.from_id, v.to_id, v.context, v.choice) for v in votes]


def as_naive(edge: Any) -> dict[str, Any]:
    """An EdgeStats in the naive implementation's dict shape."""
    return {
        "source_id": edge.source_id,
        "wiser_id": edge.wiser_id,
        "contexts": edge.contexts,
        "marked_wiser": edge.marked_wiser,
        "marked_not_wiser": edge.marked_not_wiser,
        "marked_less_wise": edge.marked_less_wise,
        "marked_unsure": edge.marked_unsure,
        "impressions": edge.impressions,
        "wiser_likelihood": edge.wiser_likelihood,
        "entropy": edge.entropy,
        "kept": edge.kept,
    }


@st.composite
def votes_strategy(draw: st.DrawFn, *, max_values: int = 5, max_size: int = 40) -> list[Vote]:
    """Random vote lists over few values, so pairs collide and reverse pairs appear."""
    n = draw(st.integers(min_value=0, max_value=max_size))
    votes = []
    for i in range(n):
        a = draw(st.integers(min_value=1, max_value=max_values))
        b = draw(st.integers(min_value=1, max_value=max_values - 1))
        b = b + 1 if b >= a else b  # any value but a
        votes.append(
            Vote(
                participant=f"p{draw(st.integers(min_value=0, max_value=6))}",
                from_id=a,
                to_id=b,
                context=draw(st.sampled_from(CONTEXTS)),
                choice=draw(st.sampled_from(CHOICES)),
                question_id=i,
            )
        )
    return votes
