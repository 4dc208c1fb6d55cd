"""build_graph: nodes, edges and scalar attributes."""

from __future__ import annotations

import pytest

from graph.build import LIST_SEPARATOR, build_graph
from graph.stats import edge_statistics
from graph.types import GraphError, Value, Vote

VALUES = [
    Value(1, "Honest care", "Care that tells the truth.", "", ("MOMENTS when", "CHOICES that")),
    Value(2, "Steady presence", "Stay.", "More detail.", ("FEELINGS of",), contributors=4),
    Value(3, "Quiet trust", "Trust.", "", ()),
]


def votes() -> list[Vote]:
    return [Vote(p, 1, 2, c, "upgrade") for p, c in (("a", "When A"), ("b", "When B"))]


def test_build_graph_adds_every_value_with_card_attributes() -> None:
    g = build_graph(VALUES, [], scores={2: 0.5})
    assert list(g.nodes) == [1, 2, 3]
    node = g.nodes[2]
    assert node == {
        "label": "Steady presence",
        "title": "Steady presence",
        "description": "Stay.",
        "detail": "More detail.",
        "policies": "FEELINGS of",
        "score": 0.5,
        "contributors": 4,
        "created_at": "",
        "updated_at": "",
    }
    assert g.nodes[1]["policies"].split(LIST_SEPARATOR) == ["MOMENTS when", "CHOICES that"]
    assert g.nodes[3]["score"] == 0.0


def test_build_graph_adds_edges_with_counts_and_joined_contexts() -> None:
    g = build_graph(VALUES, edge_statistics(votes()))
    assert sorted(g.edges) == [(1, 2), (2, 1)]
    data = g.edges[1, 2]
    assert data["contexts"] == "When A\nWhen B"
    assert (data["marked_wiser"], data["impressions"], data["kept"]) == (2, 2, True)
    assert data["wiser_likelihood"] == 1.0
    assert all(
        isinstance(x, str | int | float | bool)
        for _, _, d in g.edges(data=True)
        for x in d.values()
    )


def test_build_graph_kept_only_drops_other_pairs() -> None:
    assert list(build_graph(VALUES, edge_statistics(votes()), kept_only=True).edges) == [(1, 2)]


def test_build_graph_rejects_edge_to_unknown_value() -> None:
    with pytest.raises(GraphError, match="names value 9"):
        build_graph(VALUES, edge_statistics([Vote("a", 1, 9, "When A", "upgrade")]))


def test_build_graph_rejects_duplicate_pair() -> None:
    edges = edge_statistics(votes())
    with pytest.raises(GraphError, match="appears twice"):
        build_graph(VALUES, [edges[0], edges[0]])
