"""PageRank variants, winners, bootstrap, robustness and bridging (DESIGN.md 5.2)."""

from __future__ import annotations

import math

import networkx as nx
import pytest
from hypothesis import given, settings
from networkx.algorithms.link_analysis.pagerank_alg import (  # type: ignore[attr-defined]
    _pagerank_python,
)

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
from graph.stats import edge_statistics, edge_statistics_by_context, edge_stats_from_counts
from graph.types import EdgeStats, GraphError, Thresholds, Vote
from tests.graph.helpers import votes_strategy


def edge(a: int, b: int, w: int = 2, n: int = 0, u: int = 0, kept: bool | None = None) -> EdgeStats:
    counts = {
        "marked_wiser": w,
        "marked_not_wiser": n,
        "marked_less_wise": 0,
        "marked_unsure": u,
        "impressions": w + n + u,
    }
    return edge_stats_from_counts(a, b, contexts=["When x"], counts=counts, kept=kept)


def nx_pagerank(edges: list[EdgeStats], **kwargs: object) -> dict[int, float]:
    """networkx's own PageRank (pure-Python variant: scipy is not installed)."""
    g: nx.DiGraph[int] = nx.DiGraph()
    for e in edges:
        if e.kept:
            g.add_edge(e.source_id, e.wiser_id, weight=e.wiser_likelihood)
    result: dict[int, float] = _pagerank_python(g, weight="weight", **kwargs)
    return result


def assert_scores_close(a: dict[int, float], b: dict[int, float], tol: float = 1e-9) -> None:
    assert set(a) == set(b)
    for k in a:
        assert abs(a[k] - b[k]) <= tol, (k, a[k], b[k])


# --- PageRank ------------------------------------------------------------------------------


def test_pagerank_scores_matches_networkx_with_dangling_node() -> None:
    # 3 is dangling (no outgoing edge); weights differ (likelihoods 1.0 and 0.5)
    edges = [edge(1, 2), edge(1, 3, w=2, u=2), edge(2, 3)]
    ours = pagerank_scores(edges)
    assert_scores_close(ours, nx_pagerank(edges))
    assert math.isclose(sum(ours.values()), 1.0, abs_tol=1e-12)
    assert max(ours, key=lambda k: ours[k]) == 3


def test_pagerank_scores_matches_networkx_on_cycle_with_tail() -> None:
    edges = [edge(1, 2), edge(2, 3), edge(3, 1), edge(4, 1), edge(3, 5, w=3, n=1)]
    assert_scores_close(pagerank_scores(edges), nx_pagerank(edges))


@pytest.mark.parametrize("alpha", [0.5, 0.85, 0.99])
def test_pagerank_scores_matches_networkx_for_alpha(alpha: float) -> None:
    edges = [edge(1, 2), edge(2, 3), edge(1, 3, w=4, u=3)]
    assert_scores_close(
        pagerank_scores(edges, alpha=alpha, max_iter=1000),
        nx_pagerank(edges, alpha=alpha, max_iter=1000),
    )


def test_pagerank_scores_ignores_edges_that_are_not_kept() -> None:
    edges = [edge(1, 2), edge(2, 3, w=1)]  # W=1: not kept
    assert set(pagerank_scores(edges)) == {1, 2}
    assert set(pagerank_scores(edges, kept_only=False)) == {1, 2, 3}


def test_pagerank_scores_of_no_edges_is_empty() -> None:
    assert pagerank_scores([]) == {}
    assert reference_pagerank([]) == {}


def test_pagerank_scores_rejects_unknown_weight() -> None:
    with pytest.raises(GraphError, match="unknown edge weight"):
        pagerank_scores([edge(1, 2)], weight="votes")


def test_pagerank_scores_rejects_negative_weights() -> None:
    reverse = edge_stats_from_counts(
        2,
        1,
        contexts=[],
        counts={
            "marked_wiser": 0,
            "marked_not_wiser": 0,
            "marked_less_wise": 2,
            "marked_unsure": 0,
            "impressions": 2,
        },
    )
    with pytest.raises(GraphError, match="non-negative"):
        pagerank_scores([reverse], kept_only=False)


def test_pagerank_scores_raises_when_not_converging() -> None:
    with pytest.raises(nx.PowerIterationFailedConvergence):
        pagerank_scores([edge(1, 2), edge(2, 3)], max_iter=1, tol=1e-30)


def test_pagerank_scores_unweighted_matches_networkx() -> None:
    edges = [edge(1, 2), edge(1, 3, w=2, u=2), edge(2, 3)]
    g = nx.DiGraph([(e.source_id, e.wiser_id) for e in edges])
    assert_scores_close(pagerank_scores(edges, weight=None), _pagerank_python(g))


def test_reference_pagerank_matches_hand_computed_chain() -> None:
    # 1 -> 2 -> 3, d = 0.85, n = 3: PR(1) = 0.15/3 = 0.05; PR(2) = 0.05 + 0.85 * 0.05 = 0.0925;
    # PR(3) = 0.05 + 0.85 * 0.0925 = 0.128625 (3 leaks: no dangling redistribution)
    scores = reference_pagerank([edge(1, 2), edge(2, 3)])
    assert scores == pytest.approx({1: 0.05, 2: 0.0925, 3: 0.128625}, abs=1e-15)


def test_reference_pagerank_splits_rank_by_likelihood() -> None:
    # 1 -> 2 (likelihood 1.0) and 1 -> 3 (0.5): 2 gets 2/3 of 1's flow, 3 gets 1/3
    scores = reference_pagerank([edge(1, 2), edge(1, 3, w=2, u=2)])
    assert scores[1] == pytest.approx(0.05, abs=1e-15)
    assert scores[2] == pytest.approx(0.05 + 0.85 * 0.05 * 2 / 3, abs=1e-15)
    assert scores[3] == pytest.approx(0.05 + 0.85 * 0.05 * 1 / 3, abs=1e-15)


def test_pagerank_by_context_equals_pagerank_per_context() -> None:
    votes = [
        Vote(p, a, b, c, "upgrade")
        for p in "xyz"
        for c, (a, b) in (
            ("When A", (1, 2)),
            ("When A", (2, 3)),
            ("When B", (3, 1)),
            ("When B", (4, 1)),
        )
    ]
    by = edge_statistics_by_context(votes)
    scores = pagerank_by_context(by)
    assert list(scores) == ["When A", "When B"]
    for context, edges in by.items():
        assert_scores_close(scores[context], pagerank_scores(edges), tol=1e-15)
        assert_scores_close(scores[context], nx_pagerank(edges))


@settings(max_examples=60, deadline=None)
@given(votes_strategy(max_values=6, max_size=60))
def test_pagerank_by_context_frame_and_mapping_agree_with_networkx(votes: list[Vote]) -> None:
    from graph.stats import edge_statistics_frame

    by = edge_statistics_by_context(votes, min_wiser=1, min_likelihood=0.0, max_entropy=3.0)
    frame = edge_statistics_frame(
        votes, by_context=True, min_wiser=1, min_likelihood=0.0, max_entropy=3.0
    )
    from_frame = pagerank_by_context(frame)
    from_mapping = pagerank_by_context(by)
    assert list(from_frame) == list(from_mapping)
    for context, scores in from_mapping.items():
        assert_scores_close(from_frame[context], scores, tol=1e-15)
        if any(e.wiser_likelihood > 0 for e in by[context] if e.kept):
            assert_scores_close(scores, nx_pagerank(by[context]))


def test_pagerank_by_context_needs_context_column() -> None:
    from graph.stats import edge_statistics_frame

    with pytest.raises(GraphError, match="by_context=True"):
        pagerank_by_context(edge_statistics_frame([Vote("a", 1, 2, "When x", "upgrade")]))


# --- winners -------------------------------------------------------------------------------


def chain_votes(context: str = "When lost", voters: str = "abc") -> list[Vote]:
    return [Vote(p, a, b, context, "upgrade") for p in voters for a, b in ((1, 2), (2, 3))]


def test_context_winners_names_top_value_per_context() -> None:
    votes = chain_votes("When lost") + [Vote(p, 5, 4, "When calm", "upgrade") for p in "ab"]
    votes.append(Vote("z", 7, 8, "When bored", "upgrade"))
    winners = context_winners(votes)
    assert list(winners) == ["When lost", "When calm", "When bored"]
    assert winners["When lost"].winner == 3
    assert winners["When calm"].winner == 4
    assert winners["When bored"].winner is None and winners["When bored"].scores == {}


def test_context_winners_does_not_pool_contexts() -> None:
    # pooled, 1 -> 2 has 2 upgrades; per context only 1 each: no edge is kept anywhere
    votes = [Vote("a", 1, 2, "When A", "upgrade"), Vote("b", 1, 2, "When B", "upgrade")]
    assert all(w.winner is None for w in context_winners(votes).values())
    assert edge_statistics(votes)[0].kept


def test_context_winners_breaks_exact_ties_by_smaller_id() -> None:
    votes = [Vote(p, 1, b, "When x", "upgrade") for p in "ab" for b in (3, 2)]
    assert context_winners(votes)["When x"].winner == 2


# --- bootstrap -----------------------------------------------------------------------------


def mixed_votes() -> list[Vote]:
    votes = chain_votes(voters="abcdef")
    votes += [Vote(p, 2, 3, "When lost", "no_upgrade") for p in "ghi"]
    votes += [Vote(p, 3, 4, "When lost", "upgrade") for p in "gh"]
    votes += [Vote(p, 1, 2, "When calm", "upgrade") for p in "abc"]
    return votes


def test_bootstrap_is_reproducible_with_same_seed() -> None:
    assert bootstrap(mixed_votes(), n=40, seed=7) == bootstrap(mixed_votes(), n=40, seed=7)


def test_bootstrap_differs_with_other_seed() -> None:
    a = bootstrap(mixed_votes(), n=40, seed=1)
    b = bootstrap(mixed_votes(), n=40, seed=2)
    assert [e.low for e in a.edges] != [e.low for e in b.edges] or a.winners != b.winners


def test_bootstrap_intervals_bracket_estimates() -> None:
    result = bootstrap(mixed_votes(), n=100, seed=0)
    assert result.n == 100 and result.seed == 0
    pairs = {(e.context, e.source_id, e.wiser_id): e for e in result.edges}
    unanimous = pairs[("When calm", 1, 2)]
    assert (unanimous.estimate, unanimous.low, unanimous.high) == (1.0, 1.0, 1.0)
    split = pairs[("When lost", 2, 3)]
    assert split.low < split.estimate < split.high
    for e in result.edges:
        assert -1.0 <= e.low <= e.high <= 1.0
        assert 0 < e.observed <= 100


def test_bootstrap_reports_winner_stability() -> None:
    result = bootstrap(mixed_votes(), n=100, seed=0)
    calm = result.winners["When calm"]
    assert calm.winner == 2
    assert calm.probability == calm.frequencies.get(2, 0.0)
    lost = result.winners["When lost"]
    assert lost.winner == context_winners(mixed_votes())["When lost"].winner
    assert 0.0 < lost.probability <= 1.0
    assert sum(lost.frequencies.values()) <= 1.0 + 1e-12


def test_bootstrap_rejects_zero_replicates() -> None:
    with pytest.raises(GraphError):
        bootstrap(mixed_votes(), n=0)


# --- robustness ----------------------------------------------------------------------------


def test_leave_one_group_out_reports_winner_changes() -> None:
    votes = chain_votes(voters="abc") + [Vote(p, 3, 4, "When lost", "upgrade") for p in "de"]
    groups = {
        "a": {"party": "D"},
        "b": {"party": "D"},
        "c": {"party": "R"},
        "d": {"party": "R"},
        "e": {"party": "I"},
    }
    out = leave_one_group_out(votes, groups, field="party")
    assert list(out) == ["D", "I", "R"]
    assert out["D"].participants_removed == 2 and out["D"].votes_removed == 4
    assert out["D"].contexts["When lost"].baseline == 4
    assert out["I"].contexts["When lost"].winner == 3  # 3 -> 4 loses its second vote
    assert out["I"].contexts["When lost"].changed
    assert out["R"].contexts["When lost"].changed


def test_leave_one_group_out_ignores_participants_without_label() -> None:
    votes = chain_votes(voters="abc")
    out = leave_one_group_out(votes, {"a": {"channel": "panel"}}, field="party")
    assert out == {}


def test_coordinated_voters_promote_target_finds_min_k() -> None:
    votes = chain_votes(voters="abc") + [Vote(p, 3, 4, "When lost", "no_upgrade") for p in "ab"]
    base = context_winners(votes)["When lost"].winner
    assert base == 3
    result = coordinated_voters(votes, context="When lost", k=5, target=4)
    assert result.baseline_winner == 3
    assert result.votes_per_voter == 1
    assert result.min_k is not None
    again = coordinated_voters(votes, context="When lost", k=result.min_k, target=4)
    assert again.flipped and again.winner == 4
    if result.min_k > 1:
        below = coordinated_voters(votes, context="When lost", k=result.min_k - 1, target=4)
        assert not below.flipped


def test_coordinated_voters_against_winner_flips_it() -> None:
    result = coordinated_voters(chain_votes(voters="abc"), context="When lost", k=50)
    assert result.flipped and result.changed and result.winner != 3
    assert result.min_k == 7


def test_coordinated_voters_cannot_promote_value_without_hypotheses() -> None:
    result = coordinated_voters(chain_votes(), context="When lost", k=10, target=99)
    assert (result.flipped, result.min_k, result.votes_per_voter) == (False, None, 0)


def test_coordinated_voters_target_already_winning_needs_zero() -> None:
    result = coordinated_voters(chain_votes(), context="When lost", k=3, target=3)
    assert result.flipped and result.min_k == 0


def test_coordinated_voters_rejects_unknown_context() -> None:
    with pytest.raises(GraphError, match="no votes in context"):
        coordinated_voters(chain_votes(), context="When nowhere", k=1)


# --- bridging ------------------------------------------------------------------------------


def test_bridging_flags_values_supported_by_every_group() -> None:
    votes = [Vote(p, 1, 2, "When x", "upgrade") for p in "abcd"]
    votes += [Vote(p, 2, 3, "When x", "upgrade" if p in "ab" else "no_upgrade") for p in "abcd"]
    groups = {"a": {"party": "D"}, "b": {"party": "D"}, "c": {"party": "R"}, "d": {"party": "R"}}
    report = bridging(votes, groups, field="party", threshold=0.3)
    assert report.groups == ("D", "R")
    values = {v.value_id: v for v in report.values}
    assert values[2].support == {"D": 0.0, "R": 0.5}  # D: (2 in - 2 out) / 4; R: 2 / 4
    assert not values[2].bridges
    assert values[1].support == {"D": -1.0, "R": -1.0}
    assert values[3].support == {"D": 1.0, "R": 0.0} and not values[3].bridges
    edges = {(e.source_id, e.wiser_id): e for e in report.edges}
    assert edges[(1, 2)].support == {"D": 1.0, "R": 1.0} and edges[(1, 2)].bridges
    assert edges[(1, 2)].votes == {"D": 2, "R": 2}
    assert edges[(2, 3)].support == {"D": 1.0, "R": 0.0} and not edges[(2, 3)].bridges


def test_bridging_reports_none_for_groups_without_votes() -> None:
    votes = [Vote(p, 1, 2, "When x", "upgrade") for p in "ab"] + [
        Vote("c", 3, 4, "When x", "upgrade")
    ]
    groups = {"a": {"g": "1"}, "b": {"g": "1"}, "c": {"g": "2"}}
    report = bridging(votes, groups, field="g")
    values = {v.value_id: v for v in report.values}
    assert values[2].support == {"1": 1.0, "2": None}
    assert not values[2].bridges


def test_bridging_can_be_limited_to_one_context() -> None:
    votes = [Vote(p, 1, 2, "When x", "upgrade") for p in "ab"]
    votes += [Vote(p, 1, 2, "When y", "no_upgrade") for p in "ab"]
    groups = {"a": {"g": "1"}, "b": {"g": "2"}}
    assert bridging(votes, groups, field="g", threshold=0.6, context="When x").edges[0].bridges
    pooled = bridging(votes, groups, field="g", threshold=0.6).edges[0]
    assert pooled.support == {"1": 0.5, "2": 0.5} and not pooled.bridges


def test_minority_report_lists_group_winners_that_lose_overall() -> None:
    votes = [Vote(p, 1, 2, "When x", "upgrade") for p in "abcd"]
    votes += [Vote(p, 1, 3, "When x", "upgrade") for p in "ef"]
    votes += [Vote(p, 3, 2, "When x", "upgrade") for p in "abc"]
    groups = {p: {"party": "D" if p in "abcd" else "R"} for p in "abcdef"}
    report = minority_report(votes, groups, field="party")
    assert [(m.group, m.context, m.value_id, m.overall_winner) for m in report] == [
        ("R", "When x", 3, 2)
    ]
    assert report[0].overall_rank == 2
    assert report[0].group_score > 0


# --- analysis ------------------------------------------------------------------------------


def test_analyse_collects_everything_exports_need() -> None:
    result = analyse(mixed_votes(), n_bootstrap=20, seed=3)
    assert result.contexts == ("When lost", "When calm")
    assert set(result.by_context) == {"When lost", "When calm"}
    assert result.winners["When calm"] == 2
    assert result.bootstrap is not None and result.bootstrap.n == 20
    assert result.thresholds == Thresholds()
    assert set(result.pooled_scores) == set(result.pooled_reference_scores)
