"""Render the moral graph as a standalone, offline HTML page (the only module importing pyvis).

Every text that participants or an LLM wrote (titles, descriptions, policies, contexts) reaches
the page only as JSON data: pyvis embeds the node and edge data with Jinja's ``tojson``, which
escapes ``<``, ``>``, ``&`` and ``'``, so no text can close the ``<script>`` element. vis-network
draws labels on the canvas and shows string tooltips as text, so the texts go in as they are
(HTML-escaping them would show ``&amp;`` and ``&lt;b&gt;`` on the graph). One exception: when a
node's tooltip contains "href", pyvis switches to its own popup, which sets ``innerHTML``; then
the node tooltips are HTML-escaped, so they still display as text. pyvis inlines vis-network with
``cdn_resources="in_line"`` but still links Bootstrap from a CDN: those tags are removed, so the
page makes no network request and works offline.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

import networkx as nx
from pyvis.network import Network

from graph.build import LIST_SEPARATOR
from graph.types import GraphError

__all__ = ["render_html"]

_CSS_LENGTH = re.compile(r"^\d+(\.\d+)?(px|%|em|rem|vh|vw)$")
_EXTERNAL_TAGS = (
    # pyvis's commented-out local vis.js links
    re.compile(r"<!--\s*<link[^>]*node_modules.*?-->", re.DOTALL),
    re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>", re.DOTALL | re.IGNORECASE),
    re.compile(
        r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*</script>",
        re.DOTALL | re.IGNORECASE,
    ),
)
_EXTERNAL_REFERENCE = re.compile(
    r"(?:\b(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//)|(?:url\(\s*[\"']?\s*(?:https?:)?//)"
    r"|(?:@import\s+[\"']?(?:url\()?\s*[\"']?(?:https?:)?//)",
    re.IGNORECASE,
)


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _node_tooltip(data: Mapping[str, Any]) -> str:
    """The card as plain text (see the module docstring for when it is HTML-escaped)."""
    parts = [str(data.get("title", ""))]
    if data.get("description"):
        parts += ["", str(data["description"])]
    policies = [p for p in str(data.get("policies", "")).split(LIST_SEPARATOR) if p]
    if policies:
        parts += ["", *(f"- {p}" for p in policies)]
    parts += ["", f"score: {float(data.get('score', 0.0)):.4f}"]
    contributors = int(data.get("contributors", 0))
    if contributors:
        parts.append(f"contributors: {contributors}")
    return "\n".join(parts)


def _edge_tooltip(data: Mapping[str, Any]) -> str:
    contexts = [c for c in str(data.get("contexts", "")).split(LIST_SEPARATOR) if c]
    lines = [
        *contexts,
        f"wiser {data.get('marked_wiser', 0)}, not wiser {data.get('marked_not_wiser', 0)}, "
        f"less wise {data.get('marked_less_wise', 0)}, unsure {data.get('marked_unsure', 0)}, "
        f"impressions {data.get('impressions', 0)}",
        f"likelihood {float(data.get('wiser_likelihood', 0.0)):.2f}, "
        f"entropy {float(data.get('entropy', 0.0)):.2f}",
    ]
    return "\n".join(lines)


def render_html(graph: nx.DiGraph[int], *, height: str = "600px", width: str = "100%") -> str:
    r"""Return a standalone HTML page drawing ``graph`` (from :func:`graph.build.build_graph`).

    Node size grows with ``score``, edge width with ``wiser_likelihood``; hovering a node shows
    its card, hovering an edge its contexts and votes. Arrows point to the wiser value.

    Raises
    ------
    GraphError
        When ``height`` or ``width`` is not a plain CSS length.

    Examples
    --------
    >>> from graph.build import build_graph
    >>> from graph.types import Value
    >>> values = [Value(1, "<b>Calm</b>", "", "", ()), Value(2, "Care", "", "", ()),
    ...           Value(3, "Trust", "", "", ())]
    >>> page = render_html(build_graph(values, []))
    >>> "<b>Calm" in page, r"\u003cb\u003eCalm" in page  # JSON-escaped data, shown as text
    (False, True)
    """
    for name, length in (("height", height), ("width", width)):
        if not _CSS_LENGTH.match(length):
            raise GraphError(f"{name} must be a CSS length like 600px or 100%, got {length!r}")
    net = Network(height=height, width=width, directed=True, cdn_resources="in_line")
    nodes = sorted(graph.nodes)
    scores = {node: float(graph.nodes[node].get("score", 0.0)) for node in nodes}
    top = max(scores.values(), default=0.0) or 1.0
    tooltips = {node: _node_tooltip(graph.nodes[node]) for node in nodes}
    # pyvis's "href" popup sets innerHTML: only then must the tooltips be HTML-escaped
    link_popup = any("href" in tip for tip in tooltips.values())
    for node in nodes:
        data = graph.nodes[node]
        score = scores[node]
        net.add_node(
            int(node),
            label=str(data.get("title", node)),
            title=_text(tooltips[node]) if link_popup else tooltips[node],
            size=10.0 + 30.0 * max(score, 0.0) / top,
        )
    for source, target in sorted(graph.edges):
        data = graph.edges[source, target]
        likelihood = float(data.get("wiser_likelihood", 0.0))
        net.add_edge(
            int(source),
            int(target),
            width=1.0 + 5.0 * max(likelihood, 0.0),
            title=_edge_tooltip(data),
        )
    page = str(net.generate_html(notebook=False))
    for pattern in _EXTERNAL_TAGS:
        page = pattern.sub("", page)
    leftover = _EXTERNAL_REFERENCE.search(page)
    if leftover:
        # A pyvis upgrade changed its template; fail loudly rather than ship an online-only page.
        raise RuntimeError(f"rendered graph still references an external resource: {leftover[0]}")
    return page
