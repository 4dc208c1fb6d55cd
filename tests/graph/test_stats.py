"""Edge statistics (DESIGN.md 5.1): formulas, order, thresholds, fast path vs naive path."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from graph.stats import (
    edge_statistics,
    edge_statistics_by_context,
    edge_statistics_frame,
    edge_stats_from_counts,
    summarise_counts,
    vote_table,
)
from graph.types import EdgeStats, GraphError, Vote
from tests.graph.helpers import as_naive, bench_module, naive_rows, votes_strategy

CTX = "When in doubt"


def v(participant: str, a: int, b: int, choice: str, context: str = CTX) -> Vote:
    return Vote(participant, a, b, context, choice)  # type: ignore[arg-type]


def pair(edges: list[EdgeStats], a: int, b: int) -> EdgeStats:
    return next(e for e in edges if (e.source_id, e.wiser_id) == (a, b))


def counts_of(e: EdgeStats) -> tuple[int, int, int, int, int]:
    return (e.marked_wiser, e.marked_not_wiser, e.marked_less_wise, e.marked_unsure, e.impressions)


# --- formulas -------------------------------------------------------------------------------


def test_summarise_counts_matches_worked_example() -> None:
    lik, ent = summarise_counts([[3, 0, 0, 1, 4]])
    assert lik[0] == 0.75
    assert ent[0] == 1.4056390622295665


def test_edge_statistics_reproduces_worked_example_from_votes() -> None:
    votes = [v("a", 1, 2, "upgrade"), v("b", 1, 2, "upgrade"), v("c", 1, 2, "upgrade")]
    votes.append(v("d", 1, 2, "not_sure"))
    e = pair(edge_statistics(votes), 1, 2)
    assert counts_of(e) == (3, 0, 0, 1, 4)
    assert e.wiser_likelihood == 0.75
    assert e.entropy == 1.4056390622295665
    assert e.kept


def test_summarise_counts_uses_five_categories_including_impressions() -> None:
    # W=1, N=1, L=1, U=1, impressions=4: p = 1/8 x4 and 1/2 -> 4 * 3/8 + 1/2 = 2.0
    lik, ent = summarise_counts([[1, 1, 1, 1, 4]])
    assert lik[0] == 0.0
    assert ent[0] == pytest.approx(2.0, abs=1e-15)


def test_edge_statistics_counts_reverse_upgrades_as_less_wise() -> None:
    votes = [v("a", 1, 2, "upgrade"), v("b", 2, 1, "upgrade"), v("c", 2, 1, "no_upgrade")]
    edges = edge_statistics(votes)
    assert counts_of(pair(edges, 1, 2)) == (1, 0, 1, 0, 3)
    assert counts_of(pair(edges, 2, 1)) == (1, 1, 1, 0, 3)
    assert pair(edges, 1, 2).wiser_likelihood == 0.0  # (1 - 1) / 2


def test_edge_statistics_reverse_only_pair_with_no_upgrades_is_nan_free() -> None:
    votes = [v("a", 1, 2, "no_upgrade"), v("b", 1, 2, "not_sure")]
    reverse = pair(edge_statistics(votes), 2, 1)
    assert counts_of(reverse) == (0, 0, 0, 0, 2)
    assert reverse.wiser_likelihood == 0.0  # total == 0: defined as 0.0, like the reference
    assert reverse.entropy == 0.0  # one non-zero category
    assert not reverse.kept


def test_edge_statistics_reverse_only_pair_with_upgrade_is_negative() -> None:
    reverse = pair(edge_statistics([v("a", 1, 2, "upgrade")]), 2, 1)
    assert counts_of(reverse) == (0, 0, 1, 0, 1)
    assert reverse.wiser_likelihood == -1.0
    assert reverse.entropy == 1.0


def test_summarise_counts_all_zero_gives_zero_not_nan() -> None:
    lik, ent = summarise_counts([[0, 0, 0, 0, 0]])
    assert (lik[0], ent[0]) == (0.0, 0.0)
    assert not math.copysign(1.0, ent[0]) < 0  # no negative zero either


def test_edge_stats_from_counts_all_zero_is_nan_free() -> None:
    zero = dict.fromkeys(
        ("marked_wiser", "marked_not_wiser", "marked_less_wise", "marked_unsure", "impressions"), 0
    )
    e = edge_stats_from_counts(1, 2, contexts=[], counts=zero)
    assert (e.wiser_likelihood, e.entropy, e.kept) == (0.0, 0.0, False)


def test_edge_stats_from_counts_rejects_negative_counts() -> None:
    counts = {
        "marked_wiser": -1,
        "marked_not_wiser": 0,
        "marked_less_wise": 0,
        "marked_unsure": 0,
        "impressions": 1,
    }
    with pytest.raises(GraphError, match="negative"):
        edge_stats_from_counts(1, 2, contexts=[], counts=counts)


# --- order ----------------------------------------------------------------------------------


def test_edge_statistics_orders_forward_pairs_then_reverse_only_pairs() -> None:
    votes = [v("a", 3, 4, "upgrade"), v("a", 1, 2, "upgrade"), v("b", 2, 1, "upgrade")]
    votes.append(v("c", 3, 4, "no_upgrade"))
    order = [(e.source_id, e.wiser_id) for e in edge_statistics(votes)]
    # forward pairs in vote order (2 -> 1 is forward too), then pairs existing only in reverse
    assert order == [(3, 4), (1, 2), (2, 1), (4, 3)]


def test_edge_statistics_lists_contexts_first_seen_forward_then_reverse() -> None:
    votes = [
        v("a", 1, 2, "upgrade", "When B"),
        v("b", 2, 1, "upgrade", "When C"),
        v("c", 1, 2, "upgrade", "When A"),
        v("d", 1, 2, "upgrade", "When B"),
    ]
    edges = edge_statistics(votes)
    # forward votes on 1 -> 2 first (B, A), then reverse votes touching it (C)
    assert pair(edges, 1, 2).contexts == ("When B", "When A", "When C")
    assert pair(edges, 2, 1).contexts == ("When C", "When B", "When A")


def test_edge_statistics_by_context_uses_each_contexts_votes_only() -> None:
    votes = [
        v("a", 1, 2, "upgrade", "When B"),
        v("a", 1, 2, "upgrade", "When A"),
        v("b", 1, 2, "upgrade", "When B"),
        v("c", 2, 3, "no_upgrade", "When A"),
    ]
    by = edge_statistics_by_context(votes)
    assert list(by) == ["When B", "When A"]
    for context, edges in by.items():
        alone = edge_statistics([x for x in votes if x.context == context])
        assert [as_naive(e) for e in edges] == [as_naive(e) for e in alone]
    assert pair(by["When B"], 1, 2).kept
    assert not pair(by["When A"], 1, 2).kept


def test_edge_statistics_input_order_is_vote_order() -> None:
    votes = [v("a", 1, 2, "upgrade"), v("b", 3, 4, "upgrade")]
    assert [e.source_id for e in edge_statistics(votes[::-1])][:2] == [3, 1]


# --- trimming -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choices", "kept"),
    [
        (["upgrade", "upgrade"], True),  # W=2, likelihood 1, entropy 1
        (["upgrade"], False),  # W=1 < 2
        (["upgrade"] * 2 + ["no_upgrade"] * 3, True),  # likelihood 0.4, entropy 1.49
        (["upgrade"] * 2 + ["no_upgrade"] * 5, False),  # likelihood 2/7 < 0.33
        (["upgrade"] * 4 + ["no_upgrade"] * 2 + ["not_sure"] * 2, False),  # entropy 1.75 > 1.69
    ],
)
def test_edge_statistics_keeps_pairs_by_thresholds(choices: list[str], kept: bool) -> None:
    votes = [v(f"p{i}", 1, 2, c) for i, c in enumerate(choices)]
    assert pair(edge_statistics(votes), 1, 2).kept is kept


def test_edge_statistics_keeps_likelihood_exactly_one_third() -> None:
    # W=3, U=6: likelihood 1/3 >= 0.33, entropy 1.459 <= 1.69 (an edge of the reference data)
    votes = [v(f"p{i}", 1, 2, "upgrade") for i in range(3)]
    votes += [v(f"q{i}", 1, 2, "not_sure") for i in range(6)]
    e = pair(edge_statistics(votes), 1, 2)
    assert e.wiser_likelihood == pytest.approx(1 / 3)
    assert e.kept


def test_edge_statistics_min_wiser_zero_still_needs_one_upgrade() -> None:
    votes = [v("a", 1, 2, "not_sure")]
    edges = edge_statistics(votes, min_wiser=0, min_likelihood=-1.0, max_entropy=10.0)
    assert not pair(edges, 1, 2).kept


def test_edge_statistics_honours_custom_thresholds() -> None:
    votes = [v("a", 1, 2, "upgrade")]
    assert pair(edge_statistics(votes, min_wiser=1), 1, 2).kept


# --- input ----------------------------------------------------------------------------------


def test_vote_table_rejects_unknown_choice() -> None:
    with pytest.raises(GraphError, match=r"vote row 1: choice 'maybe' is not one of upgrade"):
        edge_statistics([v("a", 1, 2, "upgrade"), v("b", 1, 2, "maybe")])


def test_vote_table_rejects_self_loop() -> None:
    with pytest.raises(GraphError, match="from_id equals to_id"):
        edge_statistics([v("a", 1, 1, "upgrade")])


def test_vote_table_rejects_frame_without_columns() -> None:
    with pytest.raises(GraphError, match="missing column"):
        edge_statistics_frame(pd.DataFrame({"from_id": [1]}))


def test_vote_table_rejects_non_integer_ids() -> None:
    frame = pd.DataFrame(
        {
            "participant": ["a"],
            "from_id": [1.5],
            "to_id": [2],
            "context": [CTX],
            "choice": ["upgrade"],
        }
    )
    with pytest.raises(GraphError, match="integers"):
        edge_statistics_frame(frame)


def test_vote_table_rejects_non_vote_items() -> None:
    with pytest.raises(GraphError, match="expected a Vote"):
        edge_statistics([("a", 1, 2, CTX, "upgrade")])  # type: ignore[list-item]


def test_edge_statistics_of_no_votes_is_empty() -> None:
    assert edge_statistics([]) == []
    assert edge_statistics_by_context([]) == {}
    assert edge_statistics_frame([]).empty


def test_edge_statistics_handles_negative_and_huge_ids() -> None:
    votes = [v("a", -5, 2**40, "upgrade"), v("b", -5, 2**40, "upgrade")]
    e = pair(edge_statistics(votes), -5, 2**40)
    assert e.kept and e.marked_wiser == 2


def test_edge_statistics_frame_accepts_categorical_columns() -> None:
    votes = [v("a", 1, 2, "upgrade", "When B"), v("b", 1, 2, "upgrade", "When A")]
    frame = pd.DataFrame(
        {
            "participant": ["a", "b"],
            "from_id": [1, 1],
            "to_id": [2, 2],
            # categories deliberately in another order than first appearance
            "context": pd.Categorical(["When B", "When A"], categories=["When A", "When B"]),
            "choice": pd.Categorical(["upgrade", "upgrade"]),
        }
    )
    assert vote_table(frame).contexts == ("When B", "When A")
    assert (
        pair(edge_statistics(frame), 1, 2).contexts == pair(edge_statistics(votes), 1, 2).contexts
    )


def test_edge_statistics_frame_matches_list_api() -> None:
    votes = [
        v("a", 1, 2, "upgrade", "When B"),
        v("b", 2, 3, "not_sure", "When A"),
        v("c", 3, 1, "upgrade", "When B"),
        v("d", 2, 1, "no_upgrade", "When A"),
    ]
    frame = edge_statistics_frame(votes)
    edges = edge_statistics(votes)
    assert frame.to_dict("records") == [as_naive(e) for e in edges]
    by_frame = edge_statistics_frame(votes, by_context=True)
    flat = [e for es in edge_statistics_by_context(votes).values() for e in es]
    assert by_frame["context"].astype(str).tolist() == [e.contexts[0] for e in flat]
    records = by_frame.drop(columns=["context"]).to_dict("records")
    assert records == [{k: x for k, x in as_naive(e).items() if k != "contexts"} for e in flat]


# --- properties -----------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(votes_strategy())
def test_edge_statistics_symmetry_properties_hold(votes: list[Vote]) -> None:
    edges = {(e.source_id, e.wiser_id): e for e in edge_statistics(votes)}
    for (a, b), e in edges.items():
        back = edges[(b, a)]  # every pair exists in both directions
        assert e.marked_wiser == back.marked_less_wise
        assert e.impressions == back.impressions
        assert -1.0 <= e.wiser_likelihood <= 1.0
        assert 0.0 <= e.entropy <= math.log2(5) + 1e-12
        assert not math.isnan(e.wiser_likelihood) and not math.isnan(e.entropy)
    assert sum(e.impressions for e in edges.values()) == 2 * len(votes)
    forward = sum(e.marked_wiser + e.marked_not_wiser + e.marked_unsure for e in edges.values())
    assert forward == len(votes)


@settings(max_examples=150, deadline=None)
@given(votes_strategy())
def test_edge_statistics_fast_path_equals_naive_path(votes: list[Vote]) -> None:
    naive = bench_module().naive_edge_statistics(naive_rows(votes))
    ours = [as_naive(e) for e in edge_statistics(votes)]
    assert len(ours) == len(naive)
    for mine, theirs in zip(ours, naive, strict=True):
        for key in ("wiser_likelihood", "entropy"):
            assert mine.pop(key) == pytest.approx(theirs.pop(key), abs=1e-12)
        assert mine == theirs


@settings(max_examples=100, deadline=None)
@given(votes_strategy())
def test_edge_statistics_by_context_equals_naive_per_context(votes: list[Vote]) -> None:
    naive = bench_module().naive_by_context(naive_rows(votes))
    ours = edge_statistics_by_context(votes)
    assert list(ours) == list(naive)
    for context, edges in ours.items():
        assert [(e.source_id, e.wiser_id, counts_of(e), e.kept) for e in edges] == [
            (
                n["source_id"],
                n["wiser_id"],
                tuple(
                    n[k]
                    for k in (
                        "marked_wiser",
                        "marked_not_wiser",
                        "marked_less_wise",
                        "marked_unsure",
                        "impressions",
                    )
                ),
                n["kept"],
            )
            for n in naive[context]
        ]


@settings(max_examples=60, deadline=None)
@given(votes_strategy(max_values=4, max_size=25))
def test_edge_statistics_frame_equals_list_api_on_random_votes(votes: list[Vote]) -> None:
    frame = edge_statistics_frame(
        pd.DataFrame(
            {
                "participant": [x.participant for x in votes],
                "from_id": np.array([x.from_id for x in votes], dtype=np.int64),
                "to_id": np.array([x.to_id for x in votes], dtype=np.int64),
                "context": pd.Categorical([x.context for x in votes]),
                "choice": [x.choice for x in votes],
            }
        )
    )
    assert frame.to_dict("records") == [as_naive(e) for e in edge_statistics(votes)]


def test_vote_table_rejects_missing_context() -> None:
    frame = pd.DataFrame(
        {
            "participant": ["a", "b"],
            "from_id": [1, 1],
            "to_id": [2, 2],
            "context": pd.Categorical([CTX, float("nan")]),
            "choice": ["upgrade", "upgrade"],
        }
    )
    with pytest.raises(GraphError, match="vote row 1: context is missing"):
        edge_statistics_frame(frame)
    with pytest.raises(GraphError, match="vote row 0: context is missing"):
        edge_statistics_frame(frame.assign(context=pd.Series([None, CTX], dtype=object)))
