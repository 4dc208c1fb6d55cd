"""The published reference graph (../shared/data): formulas on real numbers and round trips."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from graph.formats import dumps_json, parse_mge_summary, to_mge_summary
from graph.scoring import pagerank_scores, reference_pagerank
from graph.stats import edge_stats_from_counts, summarise_counts
from graph.types import ImportFormatError
from tests.graph.helpers import reference_summary

COUNT_KEYS = ("markedWiser", "markedNotWiser", "markedLessWise", "markedUnsure", "impressions")


def test_reference_summary_has_expected_size() -> None:
    data = reference_summary()
    assert (len(data["values"]), len(data["edges"])) == (60, 69)


def test_summarise_counts_matches_every_reference_edge() -> None:
    edges = reference_summary()["edges"]
    lik, ent = summarise_counts([[e["counts"][k] for k in COUNT_KEYS] for e in edges])
    for i, e in enumerate(edges):
        assert abs(lik[i] - e["summary"]["wiserLikelihood"]) <= 1e-12, e
        assert abs(ent[i] - e["summary"]["entropy"]) <= 1e-12, e


def test_reference_edges_all_pass_the_thresholds() -> None:
    for e in reference_summary()["edges"]:
        counts = {
            "marked_wiser": e["counts"]["markedWiser"],
            "marked_not_wiser": e["counts"]["markedNotWiser"],
            "marked_less_wise": e["counts"]["markedLessWise"],
            "marked_unsure": e["counts"]["markedUnsure"],
            "impressions": e["counts"]["impressions"],
        }
        stats = edge_stats_from_counts(
            e["sourceValueId"], e["wiserValueId"], contexts=e["contexts"], counts=counts
        )
        assert stats.kept, e


def test_reference_values_are_exactly_the_values_on_edges() -> None:
    data = reference_summary()
    on_edges = {i for e in data["edges"] for i in (e["sourceValueId"], e["wiserValueId"])}
    assert {v["id"] for v in data["values"]} == on_edges


def _by_id(values: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {v["id"]: v for v in values}


def test_parse_then_to_mge_summary_round_trips_reference() -> None:
    data = reference_summary()
    values, edges = parse_mge_summary(data)
    out = to_mge_summary(values, edges)
    # values: the same set, every field equal
    assert _by_id(out["values"]) == _by_id(data["values"])
    assert len(out["values"]) == len(data["values"])
    # edges: same order, counts, contexts in order; summary numbers to 1e-12
    assert len(out["edges"]) == len(data["edges"])
    for mine, theirs in zip(out["edges"], data["edges"], strict=True):
        assert mine["sourceValueId"] == theirs["sourceValueId"]
        assert mine["wiserValueId"] == theirs["wiserValueId"]
        assert mine["contexts"] == theirs["contexts"]
        assert mine["counts"] == theirs["counts"]
        for key in ("wiserLikelihood", "entropy"):
            assert math.isclose(
                mine["summary"][key], theirs["summary"][key], rel_tol=0, abs_tol=1e-12
            )
    assert set(out) == {"values", "edges"}


def test_to_mge_summary_of_reference_survives_json_text() -> None:
    values, edges = parse_mge_summary(reference_summary())
    text = dumps_json(to_mge_summary(values, edges))
    again_values, again_edges = parse_mge_summary(json.loads(text))
    assert again_values == values
    assert again_edges == edges


def test_parse_mge_summary_rejects_tampered_summary() -> None:
    data = json.loads(json.dumps(reference_summary()))
    data["edges"][5]["summary"]["entropy"] += 0.01
    with pytest.raises(ImportFormatError, match=r"summary edges row 5: summary.entropy"):
        parse_mge_summary(data)
    parse_mge_summary(data, check=False)


def test_pagerank_variants_rank_reference_graph_alike() -> None:
    _, edges = parse_mge_summary(reference_summary())
    ours = pagerank_scores(edges)
    ref = reference_pagerank(edges)
    assert set(ours) == set(ref) and len(ours) == 60
    assert math.isclose(sum(ours.values()), 1.0, abs_tol=1e-9)
    assert sum(ref.values()) < 1.0  # the reference lets dangling rank leak away
    ranking = sorted(ours, key=lambda k: (-ours[k], k))
    assert ranking[:10] == sorted(ref, key=lambda k: (-ref[k], k))[:10]
    assert ranking[0] == 289
