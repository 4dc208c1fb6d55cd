"""render_html: escaped participant text, offline page."""

from __future__ import annotations

import re

import pytest

from graph.build import build_graph
from graph.stats import edge_statistics
from graph.types import GraphError, Value, Vote
from graph.visualise import render_html

XSS_TITLE = "<script>window.__xss=1</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'


def page_of(title: str, attr: str, end: str) -> str:
    values = [
        Value(1, title, attr, "", (attr, f"MOMENTS {end}<script>alert(2)")),
        Value(2, attr, end, "", ()),
        Value(3, "Plain", "Fine.", "", ()),
    ]
    votes = [Vote(p, 1, 2, title, "upgrade") for p in "ab"]
    votes += [Vote(p, 2, 3, f"When {end} ends", "upgrade") for p in "ab"]
    return render_html(build_graph(values, edge_statistics(votes), scores={3: 0.5, 2: 0.3}))


def hostile_page() -> str:
    return page_of(XSS_TITLE, XSS_ATTR, "</script>")


def data_section(page: str) -> str:
    start = page.index("nodes = new vis.DataSet(")
    return page[start : page.index("nodeColors = {};", start)]


def test_render_html_escapes_every_participant_text() -> None:
    page = hostile_page()
    assert "<script>window.__xss" not in page
    assert "<img src=x" not in page
    assert "<script>alert(2)" not in page
    assert "window.__xss" in page  # still shown, as text
    # no text can open or close an element: the embedded data holds no "<" at all
    data = data_section(page)
    assert "__xss" in data and "<" not in data and ">" not in data
    benign = page_of("Calm", "Care", "end")
    assert page.count("</script>") == benign.count("</script>")
    assert page.count("<script") == benign.count("<script")


def test_render_html_makes_no_external_requests() -> None:
    page = hostile_page()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?\s*([^"'\s>]+)""", page, re.IGNORECASE)
    assert all(not re.match(r"(https?:)?//", r) for r in refs), refs
    assert not re.search(r"<link\b", page, re.IGNORECASE)
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", page, re.IGNORECASE)
    assert "node_modules" not in page
    assert "new vis.Network" in page  # vis-network is inlined


def test_render_html_sizes_nodes_by_score_and_edges_by_likelihood() -> None:
    values = [Value(i, f"V{i}", "", "", ()) for i in (1, 2, 3)]
    votes = [Vote(p, 1, 2, "When x", "upgrade") for p in "ab"]
    page = render_html(build_graph(values, edge_statistics(votes), scores={1: 0.25, 2: 0.5}))
    assert '"size": 40.0' in page and '"size": 25.0' in page and '"size": 10.0' in page
    assert '"width": 6.0' in page


def test_render_html_rejects_css_injection_in_height() -> None:
    with pytest.raises(GraphError, match="CSS length"):
        render_html(build_graph([], []), height="1px;} body {display:none")
