"""Run every graph module's doctests, so plain ``pytest tests/`` covers them."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "graph.types",
    "graph.stats",
    "graph.scoring",
    "graph.build",
    "graph.formats",
    "graph.visualise",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests_pass_in_module(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


DOCUMENTED = [
    "graph.stats.edge_statistics",
    "graph.stats.edge_statistics_by_context",
    "graph.stats.edge_statistics_frame",
    "graph.stats.edge_stats_from_counts",
    "graph.stats.summarise_counts",
    "graph.stats.vote_table",
    "graph.scoring.pagerank_scores",
    "graph.scoring.pagerank_by_context",
    "graph.scoring.reference_pagerank",
    "graph.scoring.context_winners",
    "graph.scoring.bootstrap",
    "graph.scoring.leave_one_group_out",
    "graph.scoring.coordinated_voters",
    "graph.scoring.bridging",
    "graph.scoring.minority_report",
    "graph.scoring.analyse",
    "graph.build.build_graph",
    "graph.formats.to_mge_summary",
    "graph.formats.parse_mge_summary",
    "graph.formats.to_native_json",
    "graph.formats.to_csv_tables",
    "graph.formats.preference_pairs",
    "graph.formats.rubrics",
    "graph.visualise.render_html",
]


@pytest.mark.parametrize("path", DOCUMENTED)
def test_public_function_has_runnable_example(path: str) -> None:
    module_name, _, name = path.rpartition(".")
    function = getattr(importlib.import_module(module_name), name)
    assert function.__doc__ and ">>> " in function.__doc__
    assert "Examples\n    --------" in function.__doc__
