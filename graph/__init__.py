"""The moral graph engine: pure functions from votes and values to statistics, scores and files.

Modules: ``types`` (inputs, outputs, errors), ``stats`` (edge statistics, DESIGN.md 5.1),
``scoring`` (PageRank, winners, bootstrap, robustness, bridging, 5.2), ``build`` (networkx graph),
``formats`` (import/export; the only module that writes files) and ``visualise`` (pyvis HTML; the
only module that imports pyvis, so it is not imported here). Nothing here imports ``db``,
``elicit`` or ``pages``: callers pass plain values in.
"""

# The names below are imported on first use (PEP 562), not here: `graph.types` is imported by
# the participant pages, which must not pay for networkx and pandas before they need them.
from importlib import import_module
from typing import Any

_HOME = {
    "build_graph": "graph.build",
    **dict.fromkeys(
        [
            "analyse",
            "bootstrap",
            "bridging",
            "context_winners",
            "coordinated_voters",
            "leave_one_group_out",
            "minority_report",
            "pagerank_by_context",
            "pagerank_scores",
            "reference_pagerank",
        ],
        "graph.scoring",
    ),
    **dict.fromkeys(
        [
            "edge_statistics",
            "edge_statistics_by_context",
            "edge_statistics_frame",
            "edge_stats_from_counts",
        ],
        "graph.stats",
    ),
    **dict.fromkeys(
        [
            "CHOICES",
            "DEFAULT_THRESHOLDS",
            "EdgeStats",
            "GraphError",
            "ImportFormatError",
            "Thresholds",
            "Value",
            "Vote",
        ],
        "graph.types",
    ),
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'graph' has no attribute {name!r}")
    return getattr(import_module(_HOME[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])
