"""Build a networkx graph from values and pair statistics.

Every attribute is a scalar (str, int, float, bool) so the graph can be written as GraphML or
GEXF as is. Lists (a value's policies, an edge's contexts) are joined with newlines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx

from graph.types import EdgeStats, GraphError, Value

__all__ = ["LIST_SEPARATOR", "build_graph"]

LIST_SEPARATOR = "\n"
"""Joins policies and contexts into one attribute string (split on it to get the list back)."""


def build_graph(
    values: Iterable[Value],
    edge_stats: Iterable[EdgeStats],
    *,
    scores: Mapping[int, float] | None = None,
    kept_only: bool = False,
) -> nx.DiGraph[int]:
    """Return a DiGraph with one node per value and one edge ``source_id -> wiser_id`` per pair.

    Parameters
    ----------
    values : iterable of Value
        Every value becomes a node (sorted by id), with attributes ``label`` (= ``title``),
        ``title``, ``description``, ``detail``, ``policies`` (joined), ``score`` (from ``scores``,
        0.0 when absent), ``contributors``, ``created_at`` and ``updated_at`` ("" when unknown).
    edge_stats : iterable of EdgeStats
        Edges (sorted by source, then wiser) carry the five counts, ``wiser_likelihood``,
        ``entropy``, ``kept`` and ``contexts`` (joined).
    scores : mapping, optional
        Value id -> score, e.g. from :func:`graph.scoring.pagerank_scores`.
    kept_only : bool
        Add only kept pairs.

    Raises
    ------
    GraphError
        When an edge names a value that is not in ``values``, or a pair appears twice.

    Examples
    --------
    >>> from graph.types import Value
    >>> from graph.stats import edge_stats_from_counts
    >>> values = [Value(i, f"Value {i}", "", "", ("MOMENTS of calm",)) for i in (1, 2, 3)]
    >>> counts = dict(marked_wiser=2, marked_not_wiser=0, marked_less_wise=0,
    ...               marked_unsure=0, impressions=2)
    >>> edges = [edge_stats_from_counts(1, 2, contexts=["When tired"], counts=counts)]
    >>> g = build_graph(values, edges, scores={2: 0.6})
    >>> sorted(g.nodes), list(g.edges), g.nodes[2]["score"], g.edges[1, 2]["marked_wiser"]
    ([1, 2, 3], [(1, 2)], 0.6, 2)
    """
    graph: nx.DiGraph[int] = nx.DiGraph()
    score_of = dict(scores or {})
    for value in sorted(values, key=lambda v: v.id):
        graph.add_node(
            value.id,
            label=value.title,
            title=value.title,
            description=value.description,
            detail=value.detail,
            policies=LIST_SEPARATOR.join(value.policies),
            score=float(score_of.get(value.id, 0.0)),
            contributors=int(value.contributors),
            created_at=value.created_at or "",
            updated_at=value.updated_at or "",
        )
    for edge in sorted(edge_stats, key=lambda e: (e.source_id, e.wiser_id)):
        if kept_only and not edge.kept:
            continue
        for end in (edge.source_id, edge.wiser_id):
            if end not in graph:
                raise GraphError(
                    f"edge {edge.source_id} -> {edge.wiser_id} names value {end}, "
                    "which is not among the values"
                )
        if graph.has_edge(edge.source_id, edge.wiser_id):
            raise GraphError(f"edge {edge.source_id} -> {edge.wiser_id} appears twice")
        graph.add_edge(
            edge.source_id,
            edge.wiser_id,
            contexts=LIST_SEPARATOR.join(edge.contexts),
            marked_wiser=edge.marked_wiser,
            marked_not_wiser=edge.marked_not_wiser,
            marked_less_wise=edge.marked_less_wise,
            marked_unsure=edge.marked_unsure,
            impressions=edge.impressions,
            wiser_likelihood=float(edge.wiser_likelihood),
            entropy=float(edge.entropy),
            kept=bool(edge.kept),
        )
    return graph
