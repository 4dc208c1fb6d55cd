"""Deduplication core: clusters from hand-made cards, the same-value check, metrics, dev set."""

from __future__ import annotations

import doctest
import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import elicit.clustering
from elicit.clustering import (
    DEFAULT_THRESHOLD,
    Cluster,
    PairwiseScores,
    _upgma_cut,
    nearest_existing,
    pairwise_prf,
    propose_clusters,
    recall_at_k,
)
from elicit.embeddings import LocalEmbedder, card_text, normalize_rows

DEV_SET = Path(__file__).resolve().parents[3] / "shared" / "data" / "dedupe-dev.jsonl"

# (id, title, description, policies): 1-2 and 3-4 are paraphrases, 5 and 6 stand alone.
CARDS = [
    (
        1,
        "Honest Compassion",
        "ChatGPT should tell hard truths with warmth.",
        ["MOMENTS when a hard truth is softened by warmth", "WORDS that are honest yet gentle"],
    ),
    (
        2,
        "Compassionate Honesty",
        "ChatGPT should tell hard truths gently and with warmth.",
        ["MOMENTS when a hard truth is delivered with warmth", "WORDS that are gentle yet honest"],
    ),
    (
        3,
        "Own Conclusions",
        "ChatGPT should help the user reach their own conclusions.",
        ["OPPORTUNITIES for the user to reach their own conclusion", "QUESTIONS that open choices"],
    ),
    (
        4,
        "Reaching Own Conclusions",
        "ChatGPT should let the user reach their own conclusions.",
        ["OPPORTUNITIES for the user to reach their own conclusions", "QUESTIONS opening choices"],
    ),
    (
        5,
        "Household Budgeting",
        "ChatGPT should help plan monthly spending.",
        ["COSTS that could be trimmed", "SAVINGS goals the family shares"],
    ),
    (
        6,
        "Physical Safety",
        "ChatGPT should point to emergency services when someone is in danger.",
        ["SIGNS of immediate danger", "EMERGENCY numbers nearby"],
    ),
]
IDS = [c[0] for c in CARDS]


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return LocalEmbedder().embed([card_text(t, d, p) for _, t, d, p in CARDS])


def _groups(clusters: list[Cluster]) -> list[tuple[int, ...]]:
    return [c.card_ids for c in clusters]


# --- propose_clusters -------------------------------------------------------------------------


def test_propose_clusters_groups_paraphrases_and_leaves_unrelated_alone(
    vectors: np.ndarray,
) -> None:
    clusters = propose_clusters(vectors, IDS)
    assert _groups(clusters) == [(1, 2), (3, 4), (5,), (6,)]
    assert all(c.pairs_checked == () for c in clusters)


def test_propose_clusters_is_deterministic_and_order_independent(vectors: np.ndarray) -> None:
    first = propose_clusters(vectors, IDS)
    assert propose_clusters(vectors, IDS) == first
    perm = [5, 3, 0, 4, 1, 2]
    shuffled = propose_clusters(vectors[perm], [IDS[i] for i in perm])
    assert _groups(shuffled) == _groups(first)


def test_propose_clusters_threshold_extremes(vectors: np.ndarray) -> None:
    assert len(propose_clusters(vectors, IDS, threshold=1.01)) == len(IDS)
    everything = propose_clusters(vectors, IDS, threshold=-1.0)
    assert _groups(everything) == [tuple(IDS)]


def test_cluster_reports_central_card_and_mean_similarity() -> None:
    v = normalize_rows(np.array([[1.0, 0.0], [0.9, 0.1], [0.8, -0.2], [0.0, 1.0]]))
    (core, single) = propose_clusters(v, [30, 10, 20, 40], threshold=0.9)
    assert core.card_ids == (10, 20, 30)
    sims = v[:3] @ v[:3].T
    centrality = (sims.sum(axis=1) - 1) / 2
    assert core.representative_id == [30, 10, 20][int(centrality.argmax())]
    assert core.mean_similarity == pytest.approx(sims[np.triu_indices(3, 1)].mean(), abs=1e-6)
    assert single == Cluster((40,), 40, 1.0)
    assert core.size == 3


def test_a_tie_for_most_central_goes_to_the_lowest_id() -> None:
    # Two cards are always equally central; the product's last bits must not pick the title.
    rng = np.random.default_rng(7)
    for _ in range(200):
        base = rng.normal(size=384)
        pair = normalize_rows(np.stack([base + rng.normal(size=384) * 0.05 for _ in range(2)]))
        for ids in ([5, 9], [9, 5]):
            (cluster,) = propose_clusters(pair, ids, threshold=0.5)
            assert cluster.representative_id == 5


def test_propose_clusters_handles_empty_input() -> None:
    assert propose_clusters(np.zeros((0, 4)), []) == []


def test_propose_clusters_validates_ids(vectors: np.ndarray) -> None:
    with pytest.raises(ValueError, match="ids"):
        propose_clusters(vectors, IDS[:-1])
    with pytest.raises(ValueError, match="distinct"):
        propose_clusters(vectors, [1, 1, 2, 3, 4, 5])


# --- the same-value check ---------------------------------------------------------------------


def test_same_value_veto_keeps_every_card_apart(vectors: np.ndarray) -> None:
    asked: list[tuple[int, int]] = []

    def never(a: int, b: int) -> bool:
        asked.append((a, b))
        return False

    clusters = propose_clusters(vectors, IDS, same_value=never)
    assert _groups(clusters) == [(i,) for i in IDS]
    assert {(1, 2), (3, 4)} <= {tuple(sorted(p)) for p in asked}
    assert all(not check.same for c in clusters for check in c.pairs_checked)


def test_same_value_approval_merges_what_the_threshold_would_not(vectors: np.ndarray) -> None:
    # at an impossible threshold nothing merges; the check still sees the neighbours
    strict = propose_clusters(vectors, IDS, threshold=1.01)
    assert len(strict) == len(IDS)
    approve = propose_clusters(
        vectors,
        IDS,
        threshold=1.01,
        candidate_threshold=0.0,
        same_value=lambda a, b: {a, b} in ({1, 2}, {3, 4}),
    )
    assert _groups(approve) == [(1, 2), (3, 4), (5,), (6,)]


def test_same_value_overrides_the_threshold_both_ways(vectors: np.ndarray) -> None:
    clusters = propose_clusters(
        vectors, IDS, candidate_threshold=-1.0, same_value=lambda a, b: {a, b} == {1, 5}
    )
    assert _groups(clusters) == [(1, 5), (2,), (3,), (4,), (6,)]


def test_same_value_is_asked_only_about_candidates(vectors: np.ndarray) -> None:
    asked: list[tuple[int, int]] = []

    def record(a: int, b: int) -> bool:
        asked.append((a, b))
        return True

    clusters = propose_clusters(vectors, IDS, same_value=record, max_neighbors=1)
    sims = vectors @ vectors.T
    index = {card: i for i, card in enumerate(IDS)}
    floor = DEFAULT_THRESHOLD - 0.15
    assert asked and all(sims[index[a], index[b]] >= floor for a, b in asked)
    assert len(asked) == len({frozenset(p) for p in asked}) <= len(IDS)
    checks = {(c.first_id, c.second_id) for cl in clusters for c in cl.pairs_checked}
    assert checks == set(asked)


def test_one_wrong_approval_does_not_fuse_two_groups() -> None:
    a = [[1.0, 0.0, 0.02 * i] for i in range(3)]
    b = [[0.0, 1.0, 0.02 * i] for i in range(3)]
    v = normalize_rows(np.array(a + b))
    ids = [1, 2, 3, 4, 5, 6]
    truth = {1: "a", 2: "a", 3: "a", 4: "b", 5: "b", 6: "b"}

    def judge(x: int, y: int) -> bool:
        return truth[x] == truth[y] or {x, y} == {3, 4}

    clusters = propose_clusters(v, ids, same_value=judge, candidate_threshold=-1.0)
    assert _groups(clusters) == [(1, 2, 3), (4, 5, 6)]


# --- the linkage itself -----------------------------------------------------------------------


def _naive_average_linkage(sim: np.ndarray, threshold: float) -> set[frozenset[int]]:
    groups = [[i] for i in range(len(sim))]
    while len(groups) > 1:
        best, pair = -np.inf, None
        for x, y in combinations(range(len(groups)), 2):
            s = sim[np.ix_(groups[x], groups[y])].mean()
            if s > best:
                best, pair = s, (x, y)
        if best < threshold or pair is None:
            break
        x, y = pair
        groups[x] += groups.pop(y)
    return {frozenset(g) for g in groups}


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 14),
    threshold=st.sampled_from([-0.2, 0.0, 0.3, 0.5, 0.8]),
)
def test_nn_chain_matches_greedy_average_linkage(seed: int, n: int, threshold: float) -> None:
    v = normalize_rows(np.random.default_rng(seed).normal(size=(n, 4)))
    sim = (v @ v.T).astype(np.float64)
    got = {frozenset(g) for g in _upgma_cut(sim, threshold)}
    assert got == _naive_average_linkage(sim, threshold)
    ids = list(range(100, 100 + n))
    via_api = {
        frozenset(i - 100 for i in c.card_ids)
        for c in propose_clusters(v, ids, threshold=threshold)
    }
    assert via_api == got


# --- nearest_existing -------------------------------------------------------------------------


def test_nearest_existing_returns_best_match_above_threshold() -> None:
    canon = normalize_rows(np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]]))
    new = normalize_rows(np.array([[0.1, 1.0]]))[0]
    assert nearest_existing(new, canon, [11, 12, 13], threshold=0.9) == 12
    assert nearest_existing(new, canon, [11, 12, 13], threshold=0.999) is None


def test_nearest_existing_with_no_canonical_values_is_none() -> None:
    assert nearest_existing(np.array([1.0, 0.0]), np.zeros((0, 2)), []) is None


def test_nearest_existing_with_a_frozen_local_embedder(vectors: np.ndarray) -> None:
    texts = [card_text(t, d, p) for _, t, d, p in CARDS]
    emb = LocalEmbedder().with_corpus(texts)
    canon = emb.embed([texts[0], texts[2], texts[4]])
    new = emb.embed([texts[3]])[0]
    assert nearest_existing(new, canon, [1, 3, 5]) == 3
    with pytest.raises(ValueError):
        nearest_existing(np.ones(3), canon, [1, 3, 5])


# --- metrics ----------------------------------------------------------------------------------


def test_recall_at_k_known_answers() -> None:
    v = normalize_rows(np.array([[1.0, 0.0], [0.9, 0.44], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]]))
    labels = ["a", "a", "b", "b", "c"]  # "c" has no partner and is not counted
    assert recall_at_k(v, labels, 1) == 0.75
    assert recall_at_k(v, labels, 2) == 1.0


def test_recall_at_k_without_any_pair_is_nan() -> None:
    assert math.isnan(recall_at_k(np.eye(3, dtype=np.float32), [1, 2, 3], 5))
    with pytest.raises(ValueError):
        recall_at_k(np.eye(3, dtype=np.float32), [1, 2], 5)


def test_pairwise_prf_known_answers() -> None:
    labels = {1: "a", 2: "a", 3: "a", 4: "b", 5: "b", 6: "c"}
    # predicted pairs: (1,2) (1,4) (2,4) and (3,5): one right; true pairs: 3 + 1 = 4
    got = pairwise_prf([[1, 2, 4], [3, 5], [6]], labels)
    assert got == PairwiseScores(0.25, 0.25, 0.25)
    assert pairwise_prf([[1, 2, 3], [4, 5]], labels) == PairwiseScores(1.0, 1.0, 1.0)


def test_pairwise_prf_edge_cases() -> None:
    labels = {1: "a", 2: "a", 3: "b"}
    assert pairwise_prf([], labels) == PairwiseScores(1.0, 0.0, 0.0)
    assert pairwise_prf([[1, 3]], {1: "a", 3: "b"}) == PairwiseScores(0.0, 1.0, 0.0)
    clusters = [Cluster((1, 2), 1, 0.9), Cluster((3,), 3, 1.0)]
    assert pairwise_prf(clusters, labels).f1 == 1.0


def test_pairwise_prf_rejects_unknown_and_repeated_cards() -> None:
    with pytest.raises(ValueError, match="without a label"):
        pairwise_prf([[1, 9]], {1: "a"})
    with pytest.raises(ValueError, match="more than one"):
        pairwise_prf([[1, 2], [2]], {1: "a", 2: "a"})


# --- the development set ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev_cards() -> list[dict]:
    if not DEV_SET.exists():
        pytest.skip("../shared/data not present")
    with DEV_SET.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_dev_set_quality_with_the_offline_default(dev_cards: list[dict]) -> None:
    ids = [c["card_id"] for c in dev_cards]
    labels = {c["card_id"]: c["cluster"] for c in dev_cards}
    texts = [card_text(c["title"], c["description"], c["policies"], c["detail"]) for c in dev_cards]
    vectors = LocalEmbedder().embed(texts)
    # reached when written: recall@5 0.977, F1 0.821 (P 0.889, R 0.762)
    assert recall_at_k(vectors, [labels[i] for i in ids], 5) >= 0.95
    assert pairwise_prf(propose_clusters(vectors, ids), labels).f1 >= 0.78


def test_dev_set_candidates_let_a_perfect_judge_recover_every_cluster(
    dev_cards: list[dict],
) -> None:
    ids = [c["card_id"] for c in dev_cards]
    labels = {c["card_id"]: c["cluster"] for c in dev_cards}
    texts = [card_text(c["title"], c["description"], c["policies"], c["detail"]) for c in dev_cards]
    vectors = LocalEmbedder().embed(texts)
    calls = 0

    def judge(a: int, b: int) -> bool:
        nonlocal calls
        calls += 1
        return labels[a] == labels[b]

    scores = pairwise_prf(propose_clusters(vectors, ids, same_value=judge), labels)
    assert scores.f1 >= 0.95  # 1.0 when written
    assert calls <= 2.5 * len(ids)  # 168 for 101 cards when written


def test_docstring_examples_run() -> None:
    assert doctest.testmod(elicit.clustering).failed == 0
