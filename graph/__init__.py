"""The moral graph engine: pure functions from votes and values to statistics, scores and files.

Modules: ``types`` (inputs, outputs, errors), ``stats`` (edge statistics, DESIGN.md 5.1),
``scoring`` (PageRank, winners, bootstrap, robustness, bridging, 5.2), ``build`` (networkx graph),
``formats`` (import/export; the only module that writes files) and ``visualise`` (pyvis HTML; the
only module that imports pyvis, so it is not imported here). Nothing here imports ``db``,
``elicit`` or ``pages``: callers pass plain values in.
"""

from graph.build import build_graph
from graph.scoring import (
    analyse,
    bootstrap,
    bridging,
    context_winners,
    coordinated_voters,
    leave_one_group_out,
    minority_report,
    pagerank_by_context,
    pagerank_scores,
    reference_pagerank,
)
from graph.stats import (
    edge_statistics,
    edge_statistics_by_context,
    edge_statistics_frame,
    edge_stats_from_counts,
)
from graph.types import (
    CHOICES,
    DEFAULT_THRESHOLDS,
    EdgeStats,
    GraphError,
    ImportFormatError,
    Thresholds,
    Value,
    Vote,
)

__all__ = [
    "CHOICES",
    "DEFAULT_THRESHOLDS",
    "EdgeStats",
    "GraphError",
    "ImportFormatError",
    "Thresholds",
    "Value",
    "Vote",
    "analyse",
    "bootstrap",
    "bridging",
    "build_graph",
    "context_winners",
    "coordinated_voters",
    "edge_statistics",
    "edge_statistics_by_context",
    "edge_statistics_frame",
    "edge_stats_from_counts",
    "leave_one_group_out",
    "minority_report",
    "pagerank_by_context",
    "pagerank_scores",
    "reference_pagerank",
]
