"""Scores, winners, uncertainty and robustness of the moral graph (DESIGN.md 5.2).

* :func:`pagerank_scores` / :func:`pagerank_by_context`: PageRank with networkx semantics
  (Page et al. 1999; networkx ``pagerank``: uniform teleport, dangling nodes redistribute their
  rank uniformly, L1 convergence test ``err < N * tol``), weighted by ``wiser_likelihood`` on kept
  edges. Edges point from the less wise value to the wiser one, so rank flows to wiser values.
* :func:`reference_pagerank`: the reference app's variant, for comparison.
* :func:`context_winners`: the top-scored value of each context's graph.
* :func:`bootstrap`: resampling participants with replacement (Efron 1979) for confidence
  intervals of edge likelihoods and the stability of each context's winner.
* :func:`leave_one_group_out`, :func:`coordinated_voters`: would the winner change without a
  group, or with ``k`` coordinated fake participants?
* :func:`bridging`, :func:`minority_report`: support within each participant group.

Each context's graph comes from that context's votes only. Winners break exact score ties by the
smaller value id so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, TypeAlias

import networkx as nx
import numpy as np
import numpy.typing as npt
import pandas as pd

from graph.stats import (
    PairIndex,
    VotesLike,
    VoteTable,
    count_votes,
    edge_statistics,
    edge_statistics_by_context,
    index_pairs,
    keep_mask,
    summarise_counts,
    vote_table,
)
from graph.types import DEFAULT_THRESHOLDS, EdgeStats, GraphError, Groups, Thresholds

__all__ = [
    "Analysis",
    "BootstrapResult",
    "BridgingReport",
    "ContextWinner",
    "CoordinatedResult",
    "EdgeBridging",
    "EdgeInterval",
    "GroupRemoval",
    "MinorityValue",
    "ValueBridging",
    "WinnerChange",
    "WinnerStability",
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
]

IntArray: TypeAlias = npt.NDArray[np.int64]
FloatArray: TypeAlias = npt.NDArray[np.float64]

_EDGE_WEIGHTS = (
    "wiser_likelihood",
    "marked_wiser",
    "marked_not_wiser",
    "marked_less_wise",
    "marked_unsure",
    "impressions",
    "entropy",
)


# --------------------------------------------------------------------------- PageRank core


@dataclass(frozen=True, slots=True)
class _Ranks:
    """PageRank of several independent graphs at once: one row per (graph, node)."""

    group: IntArray
    node: IntArray
    score: FloatArray


def _pagerank_arrays(
    group: IntArray,
    source: IntArray,
    target: IntArray,
    weight: FloatArray,
    *,
    alpha: float,
    max_iter: int,
    tol: float,
) -> _Ranks:
    """networkx-semantics PageRank of every group's graph in one vectorised power iteration.

    Groups iterate together but each stops at its own convergence, so the result equals running
    networkx on each graph separately. Parallel edges add their weights (as networkx's scipy
    implementation does).
    """
    if group.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _Ranks(empty, empty, np.zeros(0, dtype=np.float64))
    if (weight < 0).any() or not np.isfinite(weight).all():
        raise GraphError("PageRank weights must be finite and non-negative")
    ids, id_values = pd.factorize(np.concatenate([source, target]))
    m = len(id_values)
    e = source.shape[0]
    # Interleave source/target keys so nodes are numbered as networkx adds them.
    keys = np.empty(2 * e, dtype=np.int64)
    keys[0::2] = group * m + ids[:e]
    keys[1::2] = group * m + ids[e:]
    codes, unique_keys = pd.factorize(keys)
    unique_keys = np.asarray(unique_keys, dtype=np.int64)
    src, dst = codes[0::2], codes[1::2]
    n = unique_keys.shape[0]
    node_group = unique_keys // m
    node_id = np.asarray(id_values, dtype=np.int64)[unique_keys % m]
    n_groups = int(node_group.max()) + 1
    sizes = np.bincount(node_group, minlength=n_groups).astype(np.float64)
    out_weight = np.bincount(src, weights=weight, minlength=n)
    norm = np.zeros(e, dtype=np.float64)
    np.divide(weight, out_weight[src], out=norm, where=out_weight[src] > 0)
    dangling = out_weight == 0
    teleport = 1.0 / sizes[node_group]
    x = teleport.copy()
    active = sizes > 0
    for _ in range(max_iter):
        flow = np.bincount(dst, weights=x[src] * norm, minlength=n)
        dangling_sum = np.bincount(
            node_group, weights=np.where(dangling, x, 0.0), minlength=n_groups
        )
        x_new = alpha * (flow + dangling_sum[node_group] * teleport) + (1.0 - alpha) * teleport
        err = np.bincount(node_group, weights=np.abs(x_new - x), minlength=n_groups)
        x = np.where(active[node_group], x_new, x)
        active &= ~(err < sizes * tol)
        if not active.any():
            return _Ranks(node_group, node_id, x)
    raise nx.PowerIterationFailedConvergence(max_iter)


def _winners(ranks: _Ranks, n_groups: int) -> list[int | None]:
    """Top node per group (ties: smaller id); None for groups without nodes."""
    out: list[int | None] = [None] * n_groups
    if ranks.group.shape[0] == 0:
        return out
    order = np.lexsort((ranks.node, -ranks.score, ranks.group))
    g = ranks.group[order]
    first = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    for pos in first.tolist():
        out[int(g[pos])] = int(ranks.node[order[pos]])
    return out


def _scores_by_group(ranks: _Ranks, n_groups: int) -> list[dict[int, float]]:
    out: list[dict[int, float]] = [{} for _ in range(n_groups)]
    for g, node, score in zip(
        ranks.group.tolist(), ranks.node.tolist(), ranks.score.tolist(), strict=True
    ):
        out[g][node] = score
    return out


def _edge_arrays(
    edges: Iterable[EdgeStats], *, weight: str | None, kept_only: bool
) -> tuple[IntArray, IntArray, FloatArray]:
    if weight is not None and weight not in _EDGE_WEIGHTS:
        raise GraphError(f"unknown edge weight {weight!r}; use one of {', '.join(_EDGE_WEIGHTS)}")
    chosen = [e for e in edges if e.kept or not kept_only]
    src = np.array([e.source_id for e in chosen], dtype=np.int64)
    dst = np.array([e.wiser_id for e in chosen], dtype=np.int64)
    w = np.array(
        [1.0 if weight is None else float(getattr(e, weight)) for e in chosen], dtype=np.float64
    )
    return src, dst, w


def pagerank_scores(
    edges: Iterable[EdgeStats],
    *,
    weight: str | None = "wiser_likelihood",
    alpha: float = 0.85,
    max_iter: int = 100,
    tol: float = 1.0e-6,
    kept_only: bool = True,
) -> dict[int, float]:
    """PageRank of the graph of (kept) edges, with networkx semantics.

    Equivalent to ``networkx.pagerank(G, alpha, weight=weight)`` on the DiGraph whose edges run
    ``source_id -> wiser_id``: a node with no outgoing weight spreads its rank uniformly, every
    node teleports uniformly, iteration stops when the L1 change is below ``N * tol``.

    Parameters
    ----------
    edges : iterable of EdgeStats
    weight : str or None
        The EdgeStats attribute used as edge weight; None weighs every edge 1.
    alpha, max_iter, tol
        As in networkx.
    kept_only : bool
        Use only kept edges (the moral graph); False uses every pair (weights must be >= 0).

    Returns
    -------
    dict
        Value id -> score (scores sum to 1); empty when no edge is used.

    Raises
    ------
    networkx.PowerIterationFailedConvergence
        When ``max_iter`` iterations do not converge.

    Examples
    --------
    Two values point to a third, wiser one:

    >>> from graph.stats import edge_stats_from_counts
    >>> counts = dict(marked_wiser=4, marked_not_wiser=0, marked_less_wise=0,
    ...               marked_unsure=0, impressions=4)
    >>> edges = [edge_stats_from_counts(1, 3, contexts=["When stuck"], counts=counts),
    ...          edge_stats_from_counts(2, 3, contexts=["When stuck"], counts=counts)]
    >>> {k: round(v, 4) for k, v in pagerank_scores(edges).items()}
    {1: 0.2128, 3: 0.5745, 2: 0.2128}
    """
    src, dst, w = _edge_arrays(edges, weight=weight, kept_only=kept_only)
    group = np.zeros(src.shape[0], dtype=np.int64)
    ranks = _pagerank_arrays(group, src, dst, w, alpha=alpha, max_iter=max_iter, tol=tol)
    return _scores_by_group(ranks, 1)[0]


def pagerank_by_context(
    stats: pd.DataFrame | Mapping[str, Sequence[EdgeStats]],
    *,
    weight: str | None = "wiser_likelihood",
    alpha: float = 0.85,
    max_iter: int = 100,
    tol: float = 1.0e-6,
    kept_only: bool = True,
) -> dict[str, dict[int, float]]:
    """PageRank of every context's graph at once (same semantics as :func:`pagerank_scores`).

    Parameters
    ----------
    stats : DataFrame or mapping
        The output of ``edge_statistics_frame(..., by_context=True)`` or of
        ``edge_statistics_by_context``.

    Returns
    -------
    dict
        Context -> {value id: score}, for contexts with at least one (kept) edge, in input order.

    Examples
    --------
    >>> from graph.types import Vote
    >>> from graph.stats import edge_statistics_frame
    >>> votes = [Vote(p, 1, 2, "When lost", "upgrade") for p in ("a", "b")]
    >>> votes += [Vote(p, 2, 3, "When lost", "upgrade") for p in ("a", "b")]
    >>> scores = pagerank_by_context(edge_statistics_frame(votes, by_context=True))
    >>> {k: round(v, 4) for k, v in scores["When lost"].items()}
    {1: 0.1844, 2: 0.3412, 3: 0.4744}
    """
    if isinstance(stats, pd.DataFrame):
        if "context" not in stats.columns:
            raise GraphError("pagerank_by_context needs a per-context frame (by_context=True)")
        frame = stats[stats["kept"].to_numpy()] if kept_only else stats
        if weight is not None and weight not in _EDGE_WEIGHTS:
            raise GraphError(f"unknown edge weight {weight!r}")
        ctx_codes, ctx_labels = pd.factorize(frame["context"])
        labels = [str(c) for c in ctx_labels]
        group = np.asarray(ctx_codes, dtype=np.int64)
        src = frame["source_id"].to_numpy(dtype=np.int64)
        dst = frame["wiser_id"].to_numpy(dtype=np.int64)
        w = np.ones(src.shape[0]) if weight is None else frame[weight].to_numpy(dtype=np.float64)
    else:
        labels, groups, srcs, dsts, ws = [], [], [], [], []
        for context, edges in stats.items():
            s, d, ew = _edge_arrays(edges, weight=weight, kept_only=kept_only)
            if s.shape[0]:
                groups.append(np.full(s.shape[0], len(labels), dtype=np.int64))
                labels.append(context)
                srcs.append(s)
                dsts.append(d)
                ws.append(ew)
        if not labels:
            return {}
        group = np.concatenate(groups)
        src, dst, w = np.concatenate(srcs), np.concatenate(dsts), np.concatenate(ws)
    ranks = _pagerank_arrays(group, src, dst, w, alpha=alpha, max_iter=max_iter, tol=tol)
    per_group = _scores_by_group(ranks, len(labels))
    return {label: scores for label, scores in zip(labels, per_group, strict=True) if scores}


def reference_pagerank(
    edges: Iterable[EdgeStats],
    *,
    damping: float = 0.85,
    iterations: int = 100,
    kept_only: bool = True,
) -> dict[int, float]:
    """The reference app's PageRank, kept for comparison with :func:`pagerank_scores`.

    With ``n`` the number of values on the edges, ``w(u, v)`` the edge's ``wiser_likelihood`` and
    ``W(u)`` the sum of ``w`` over ``u``'s outgoing edges, starting from ``PR_0(v) = 1/n``::

        PR_{t+1}(v) = (1 - d) / n + d * sum_{u -> v, W(u) > 0} PR_t(u) * w(u, v) / W(u)

    for exactly ``iterations`` steps, with no convergence test and no dangling redistribution:
    the rank of values without outgoing edges leaks away, so scores sum to less than 1.

    Examples
    --------
    The chain 1 -> 2 -> 3 settles after three steps: 0.05, 0.05 + 0.85 * 0.05 and
    0.05 + 0.85 * 0.0925.

    >>> from graph.stats import edge_stats_from_counts
    >>> counts = dict(marked_wiser=2, marked_not_wiser=0, marked_less_wise=0,
    ...               marked_unsure=0, impressions=2)
    >>> chain = [edge_stats_from_counts(1, 2, contexts=["When tired"], counts=counts),
    ...          edge_stats_from_counts(2, 3, contexts=["When tired"], counts=counts)]
    >>> {k: round(v, 6) for k, v in reference_pagerank(chain).items()}
    {1: 0.05, 2: 0.0925, 3: 0.128625}
    """
    chosen = [e for e in edges if e.kept or not kept_only]
    nodes = list(dict.fromkeys(v for e in chosen for v in (e.source_id, e.wiser_id)))
    if not nodes:
        return {}
    position = {v: i for i, v in enumerate(nodes)}
    n = len(nodes)
    src = np.array([position[e.source_id] for e in chosen], dtype=np.int64)
    dst = np.array([position[e.wiser_id] for e in chosen], dtype=np.int64)
    w = np.array([e.wiser_likelihood for e in chosen], dtype=np.float64)
    total = np.bincount(src, weights=w, minlength=n)
    share = np.zeros_like(w)
    np.divide(w, total[src], out=share, where=total[src] > 0)
    rank = np.full(n, 1.0 / n)
    for _ in range(iterations):
        rank = (1.0 - damping) / n + np.bincount(
            dst, weights=damping * rank[src] * share, minlength=n
        )
    return dict(zip(nodes, rank.tolist(), strict=True))


# --------------------------------------------------------------------------- winners


@dataclass(frozen=True, slots=True)
class ContextWinner:
    """The wisest value of one context: the top PageRank score, or None without kept edges."""

    context: str
    winner: int | None
    score: float | None
    scores: dict[int, float]


@dataclass(frozen=True, slots=True)
class _Engine:
    """Votes indexed once per context, re-scored under any vote weights."""

    table: VoteTable
    index: PairIndex
    thresholds: Thresholds
    alpha: float = 0.85

    def ranks(self, weights: npt.NDArray[Any] | None = None) -> _Ranks:
        counts = count_votes(self.index, self.table.choice, weights=weights)
        lik, ent = summarise_counts(counts)
        kept = keep_mask(counts, lik, ent, thresholds=self.thresholds)
        return _pagerank_arrays(
            self.index.group[kept],
            self.index.source[kept],
            self.index.wiser[kept],
            lik[kept],
            alpha=self.alpha,
            max_iter=100,
            tol=1.0e-6,
        )

    def winners(self, weights: npt.NDArray[Any] | None = None) -> list[int | None]:
        return _winners(self.ranks(weights), len(self.table.contexts))


def _engine(votes: VotesLike, thresholds: Thresholds) -> _Engine:
    table = vote_table(votes)
    return _Engine(table, index_pairs(table, by_context=True), thresholds)


def context_winners(
    votes: VotesLike, *, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> dict[str, ContextWinner]:
    """Score each context's graph (its own votes, kept edges) and name its top value.

    Returns
    -------
    dict
        Context -> ContextWinner, contexts in first-seen order.

    Examples
    --------
    >>> from graph.types import Vote
    >>> votes = [Vote(p, a, b, "When lost", "upgrade")
    ...          for p in ("x", "y") for a, b in ((1, 2), (2, 3))]
    >>> w = context_winners(votes)["When lost"]
    >>> w.winner, round(w.score, 4)
    (3, 0.4744)
    """
    engine = _engine(votes, thresholds)
    ranks = engine.ranks()
    n = len(engine.table.contexts)
    winners = _winners(ranks, n)
    scores = _scores_by_group(ranks, n)
    out: dict[str, ContextWinner] = {}
    for g, context in enumerate(engine.table.contexts):
        winner = winners[g]
        score = None if winner is None else scores[g][winner]
        out[context] = ContextWinner(context, winner, score, scores[g])
    return out


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True, slots=True)
class EdgeInterval:
    """Bootstrap percentile interval of one pair's wiserLikelihood within a context.

    ``observed`` counts the replicates in which the pair received at least one vote; the
    interval is over those replicates (NaN when none).
    """

    context: str
    source_id: int
    wiser_id: int
    estimate: float
    low: float
    high: float
    observed: int


@dataclass(frozen=True, slots=True)
class WinnerStability:
    """How often a context's winner stays the winner when participants are resampled."""

    context: str
    winner: int | None
    probability: float
    frequencies: dict[int, float] = dc_field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    n: int
    seed: int
    edges: list[EdgeInterval]
    winners: dict[str, WinnerStability]


def _resample_weights(
    participants: IntArray, n_participants: int, rng: np.random.Generator
) -> IntArray:
    draw = rng.integers(0, n_participants, size=n_participants)
    multiplicity = np.bincount(draw, minlength=n_participants)
    return multiplicity[participants]


def bootstrap(
    votes: VotesLike,
    *,
    n: int = 200,
    seed: int = 0,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> BootstrapResult:
    """Resample participants with replacement ``n`` times (all of a participant's votes move
    together) and report the 2.5/97.5 percentiles of each pair's likelihood and, per context, the
    probability that the winner stays the winner.

    Reproducible: the same votes, ``n`` and ``seed`` give the same result (numpy's PCG64).
    Memory grows with ``n`` times the number of pairs.

    Examples
    --------
    >>> from graph.types import Vote
    >>> votes = [Vote(p, 1, 2, "When lost", "upgrade") for p in "abc"]
    >>> votes += [Vote(p, 2, 3, "When lost", "upgrade") for p in "abc"]
    >>> result = bootstrap(votes, n=50, seed=1)
    >>> result.winners["When lost"].winner
    3
    >>> first = result.edges[0]
    >>> (first.source_id, first.wiser_id, first.low, first.high)
    (1, 2, 1.0, 1.0)
    """
    if n < 1:
        raise GraphError("bootstrap needs n >= 1")
    engine = _engine(votes, thresholds)
    table, index = engine.table, engine.index
    participants, ids = table.participant_codes()
    baseline_counts = count_votes(index, table.choice)
    baseline_lik, _ = summarise_counts(baseline_counts)
    baseline = engine.winners()
    rng = np.random.default_rng(seed)
    samples = np.full((n, index.n_pairs), np.nan)
    n_ctx = len(table.contexts)
    tallies: list[dict[int | None, int]] = [{} for _ in range(n_ctx)]
    for r in range(n):
        weights = _resample_weights(participants, len(ids), rng)
        counts = count_votes(index, table.choice, weights=weights)
        lik, ent = summarise_counts(counts)
        samples[r] = np.where(counts[:, 4] > 0, lik, np.nan)
        kept = keep_mask(counts, lik, ent, thresholds=thresholds)
        ranks = _pagerank_arrays(
            index.group[kept],
            index.source[kept],
            index.wiser[kept],
            lik[kept],
            alpha=engine.alpha,
            max_iter=100,
            tol=1.0e-6,
        )
        for g, winner in enumerate(_winners(ranks, n_ctx)):
            tallies[g][winner] = tallies[g].get(winner, 0) + 1
    observed = np.isfinite(samples).sum(axis=0)
    low = np.full(index.n_pairs, np.nan)
    high = np.full(index.n_pairs, np.nan)
    seen = observed > 0
    if seen.any():
        low[seen], high[seen] = np.nanpercentile(samples[:, seen], [2.5, 97.5], axis=0)
    order = np.argsort(index.group, kind="stable").tolist()
    edges = [
        EdgeInterval(
            context=table.contexts[int(index.group[i])],
            source_id=int(index.source[i]),
            wiser_id=int(index.wiser[i]),
            estimate=float(baseline_lik[i]),
            low=float(low[i]),
            high=float(high[i]),
            observed=int(observed[i]),
        )
        for i in order
    ]
    winners = {
        context: WinnerStability(
            context=context,
            winner=baseline[g],
            probability=tallies[g].get(baseline[g], 0) / n,
            frequencies={
                int(w): c / n
                for w, c in sorted(tallies[g].items(), key=_tally_key)
                if w is not None
            },
        )
        for g, context in enumerate(table.contexts)
    }
    return BootstrapResult(n=n, seed=seed, edges=edges, winners=winners)


def _tally_key(item: tuple[int | None, int]) -> tuple[int, int]:
    winner, count = item
    return (-count, -1 if winner is None else winner)


# --------------------------------------------------------------------------- robustness


@dataclass(frozen=True, slots=True)
class WinnerChange:
    context: str
    baseline: int | None
    winner: int | None
    changed: bool


@dataclass(frozen=True, slots=True)
class GroupRemoval:
    """Each context's winner once every participant of one group label is left out."""

    label: str
    participants_removed: int
    votes_removed: int
    contexts: dict[str, WinnerChange]


def _labels(
    table: VoteTable, groups: Groups, field_name: str
) -> tuple[IntArray, list[str], IntArray]:
    """Per vote: the code of its participant's label for ``field_name`` (-1 without one)."""
    participants, ids = table.participant_codes()
    labels = [groups.get(pid, {}).get(field_name) for pid in ids]
    names = sorted({label for label in labels if label is not None})
    code_of = {name: i for i, name in enumerate(names)}
    participant_label = np.array(
        [code_of[label] if label is not None else -1 for label in labels], dtype=np.int64
    )
    return participant_label[participants], names, participant_label


def leave_one_group_out(
    votes: VotesLike,
    groups: Groups,
    *,
    field: str,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> dict[str, GroupRemoval]:
    """For each label of ``field``, drop that group's votes and recompute every context winner.

    Participants without a label for ``field`` are never dropped.

    Returns
    -------
    dict
        Label (sorted) -> GroupRemoval.

    Examples
    --------
    >>> from graph.types import Vote
    >>> votes = [Vote(p, 1, 2, "When lost", "upgrade") for p in "abc"]
    >>> votes += [Vote(p, 2, 3, "When lost", "upgrade") for p in "ab"]
    >>> groups = {"a": {"party": "D"}, "b": {"party": "D"}, "c": {"party": "R"}}
    >>> out = leave_one_group_out(votes, groups, field="party")
    >>> [(label, r.contexts["When lost"].winner, r.contexts["When lost"].changed)
    ...  for label, r in out.items()]
    [('D', None, True), ('R', 3, False)]
    """
    engine = _engine(votes, thresholds)
    table = engine.table
    vote_label, names, participant_label = _labels(table, groups, field)
    baseline = engine.winners()
    out: dict[str, GroupRemoval] = {}
    for code, name in enumerate(names):
        drop = vote_label == code
        winners = engine.winners((~drop).astype(np.int64))
        out[name] = GroupRemoval(
            label=name,
            participants_removed=int((participant_label == code).sum()),
            votes_removed=int(drop.sum()),
            contexts={
                context: WinnerChange(context, baseline[g], winners[g], winners[g] != baseline[g])
                for g, context in enumerate(table.contexts)
            },
        )
    return out


@dataclass(frozen=True, slots=True)
class CoordinatedResult:
    """Outcome of ``k`` coordinated fake participants in one context.

    ``flipped`` means the attack succeeded: the target became the winner (promote) or the
    baseline winner lost (demote, ``target`` None). ``min_k`` is the smallest number of fake
    participants, up to ``max_k``, that flips it (0 when the target already wins; None when no
    ``k <= max_k`` does).
    """

    context: str
    target: int | None
    k: int
    baseline_winner: int | None
    winner: int | None
    changed: bool
    flipped: bool
    min_k: int | None
    max_k: int
    votes_per_voter: int


def coordinated_voters(
    votes: VotesLike,
    *,
    context: str,
    k: int,
    target: int | None = None,
    max_k: int = 100,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> CoordinatedResult:
    """Simulate ``k`` fake participants voting together in ``context``.

    Fakes can only judge hypotheses that exist (those with a vote in the context). To promote
    ``target`` they vote upgrade on every ``X -> target`` and no_upgrade on every ``target -> X``;
    with no target they vote against the current winner: no_upgrade on ``X -> winner`` and upgrade
    on ``winner -> X``.

    Examples
    --------
    >>> from graph.types import Vote
    >>> votes = [Vote(p, 1, 2, "When lost", "upgrade") for p in "abc"]
    >>> votes += [Vote(p, 2, 3, "When lost", "upgrade") for p in "abc"]
    >>> r = coordinated_voters(votes, context="When lost", k=2)
    >>> r.baseline_winner, r.winner, r.flipped, r.min_k
    (3, 3, False, 7)
    """
    if k < 0 or max_k < 0:
        raise GraphError("k and max_k must be >= 0")
    table = vote_table(votes)
    if context not in table.contexts:
        raise GraphError(f"no votes in context {context!r}")
    local = table.take(table.context == table.contexts.index(context))
    baseline = _Engine(local, index_pairs(local, by_context=True), thresholds).winners()[0]
    hypotheses = list(dict.fromkeys(zip(local.source.tolist(), local.wiser.tolist(), strict=True)))
    aim = target if target is not None else baseline
    fake: list[tuple[int, int, int]] = []
    if aim is not None:
        for a, b in hypotheses:
            if b == aim:
                fake.append((a, b, 0 if target is not None else 1))
            elif a == aim:
                fake.append((a, b, 1 if target is not None else 0))

    def succeeded(winner: int | None) -> bool:
        return winner == target if target is not None else winner != baseline

    if not fake:
        # Nothing to vote on: the fakes cannot move this context.
        return CoordinatedResult(
            context=context,
            target=target,
            k=k,
            baseline_winner=baseline,
            winner=baseline,
            changed=False,
            flipped=succeeded(baseline),
            min_k=0 if succeeded(baseline) else None,
            max_k=max_k,
            votes_per_voter=0,
        )
    m = len(fake)
    combined = VoteTable(
        participant=np.concatenate(
            [local.participant.astype(object), np.array(["__coordinated__"] * m, dtype=object)]
        ),
        source=np.concatenate([local.source, np.array([f[0] for f in fake], dtype=np.int64)]),
        wiser=np.concatenate([local.wiser, np.array([f[1] for f in fake], dtype=np.int64)]),
        context=np.zeros(len(local) + m, dtype=np.int64),
        contexts=(context,),
        choice=np.concatenate([local.choice, np.array([f[2] for f in fake], dtype=np.int8)]),
    )
    engine = _Engine(combined, index_pairs(combined, by_context=True), thresholds)

    def winner_with(count: int) -> int | None:
        weights = np.ones(len(combined), dtype=np.int64)
        weights[len(local) :] = count
        return engine.winners(weights)[0]

    winner = winner_with(k)
    min_k: int | None = 0 if succeeded(baseline) else None
    if min_k is None:
        for count in range(1, max_k + 1):
            if succeeded(winner_with(count)):
                min_k = count
                break
    return CoordinatedResult(
        context=context,
        target=target,
        k=k,
        baseline_winner=baseline,
        winner=winner,
        changed=winner != baseline,
        flipped=succeeded(winner),
        min_k=min_k,
        max_k=max_k,
        votes_per_voter=m,
    )


# --------------------------------------------------------------------------- bridging


@dataclass(frozen=True, slots=True)
class ValueBridging:
    """Support for one value within each group, on the wiserLikelihood scale [-1, 1].

    Within a group: (upgrade votes naming the value the wiser one - upgrade votes naming it the
    less wise one) / the group's votes on hypotheses involving the value; None when the group cast
    fewer than ``min_votes`` such votes.
    """

    value_id: int
    support: dict[str, float | None]
    votes: dict[str, int]
    bridges: bool


@dataclass(frozen=True, slots=True)
class EdgeBridging:
    """A pair's wiserLikelihood computed from each group's votes alone."""

    source_id: int
    wiser_id: int
    support: dict[str, float | None]
    votes: dict[str, int]
    bridges: bool
    kept: bool


@dataclass(frozen=True, slots=True)
class BridgingReport:
    field: str
    threshold: float
    groups: tuple[str, ...]
    values: list[ValueBridging]
    edges: list[EdgeBridging]


def bridging(
    votes: VotesLike,
    groups: Groups,
    *,
    field: str,
    threshold: float = 0.33,
    min_votes: int = 1,
    context: str | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> BridgingReport:
    """Support for each value and pair within each group of ``field``; a value or pair
    *bridges* when every group's support is at least ``threshold``.

    Votes are pooled over contexts unless ``context`` is given. Participants without a label for
    ``field`` count towards no group.

    Examples
    --------
    >>> from graph.types import Vote
    >>> votes = [Vote(p, 1, 2, "When lost", "upgrade") for p in "abc"]
    >>> votes += [Vote("a", 2, 3, "When lost", "upgrade"),
    ...           Vote("c", 2, 3, "When lost", "no_upgrade")]
    >>> groups = {"a": {"party": "D"}, "b": {"party": "D"}, "c": {"party": "R"}}
    >>> report = bridging(votes, groups, field="party")
    >>> for v in report.values:
    ...     print(v.value_id, {g: round(s, 3) for g, s in v.support.items()}, v.bridges)
    1 {'D': -1.0, 'R': -1.0} False
    2 {'D': 0.333, 'R': 0.5} True
    3 {'D': 1.0, 'R': 0.0} False
    """
    table = vote_table(votes)
    if context is not None:
        if context not in table.contexts:
            raise GraphError(f"no votes in context {context!r}")
        table = table.take(table.context == table.contexts.index(context))
    vote_label, names, _ = _labels(table, groups, field)
    index = index_pairs(table, by_context=False)
    overall = count_votes(index, table.choice)
    o_lik, o_ent = summarise_counts(overall)
    kept = keep_mask(overall, o_lik, o_ent, thresholds=thresholds)
    value_codes, value_ids = pd.factorize(np.concatenate([table.source, table.wiser]))
    n_votes, n_values = len(table), len(value_ids)
    src_code, dst_code = value_codes[:n_votes], value_codes[n_votes:]
    up = (table.choice == 0).astype(np.float64)

    value_support: list[dict[str, float | None]] = [{} for _ in range(n_values)]
    value_votes: list[dict[str, int]] = [{} for _ in range(n_values)]
    edge_support: list[dict[str, float | None]] = [{} for _ in range(index.n_pairs)]
    edge_votes: list[dict[str, int]] = [{} for _ in range(index.n_pairs)]
    for code, name in enumerate(names):
        member = (vote_label == code).astype(np.float64)
        wins = np.bincount(dst_code, weights=member * up, minlength=n_values)
        losses = np.bincount(src_code, weights=member * up, minlength=n_values)
        involved = np.bincount(dst_code, weights=member, minlength=n_values) + np.bincount(
            src_code, weights=member, minlength=n_values
        )
        for v in range(n_values):
            n_v = int(involved[v])
            value_votes[v][name] = n_v
            value_support[v][name] = (
                float((wins[v] - losses[v]) / involved[v]) if n_v >= max(min_votes, 1) else None
            )
        counts = count_votes(index, table.choice, weights=member.astype(np.int64))
        lik, _ = summarise_counts(counts)
        for p, (n_p, value) in enumerate(zip(counts[:, 4].tolist(), lik.tolist(), strict=True)):
            edge_votes[p][name] = n_p
            edge_support[p][name] = value if n_p >= max(min_votes, 1) else None

    def clears(support: dict[str, float | None]) -> bool:
        return bool(names) and all(s is not None and s >= threshold for s in support.values())

    values = sorted(
        (
            ValueBridging(
                value_id=int(value_ids[v]),
                support=value_support[v],
                votes=value_votes[v],
                bridges=clears(value_support[v]),
            )
            for v in range(n_values)
        ),
        key=lambda vb: vb.value_id,
    )
    edges = [
        EdgeBridging(
            source_id=int(index.source[p]),
            wiser_id=int(index.wiser[p]),
            support=edge_support[p],
            votes=edge_votes[p],
            bridges=clears(edge_support[p]),
            kept=bool(kept[p]),
        )
        for p in range(index.n_pairs)
    ]
    return BridgingReport(field, threshold, tuple(names), values, edges)


@dataclass(frozen=True, slots=True)
class MinorityValue:
    """A value that wins a context among one group's votes but not among everyone's."""

    group: str
    context: str
    value_id: int
    group_score: float
    overall_winner: int | None
    overall_score: float | None
    overall_rank: int | None


def minority_report(
    votes: VotesLike,
    groups: Groups,
    *,
    field: str,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[MinorityValue]:
    """Values that are the winner of a context within one group but not overall.

    ``overall_rank`` is the value's 1-based rank in the context's overall scores (None when it is
    not in the overall graph). Sorted by context order, then group.

    Examples
    --------
    >>> from graph.types import Vote
    >>> votes = [Vote(p, 1, 2, "When lost", "upgrade") for p in "abc"]
    >>> votes += [Vote(p, 1, 3, "When lost", "upgrade") for p in "de"]
    >>> groups = {p: {"party": "D" if p in "abc" else "R"} for p in "abcde"}
    >>> report = minority_report(votes, groups, field="party")
    >>> [(m.group, m.value_id, m.overall_winner, m.overall_rank) for m in report]
    [('R', 3, 2, 2)]
    """
    engine = _engine(votes, thresholds)
    table = engine.table
    vote_label, names, _ = _labels(table, groups, field)
    n_ctx = len(table.contexts)
    overall_ranks = engine.ranks()
    overall = _winners(overall_ranks, n_ctx)
    overall_scores = _scores_by_group(overall_ranks, n_ctx)
    out: list[MinorityValue] = []
    per_group = []
    for code, name in enumerate(names):
        ranks = engine.ranks((vote_label == code).astype(np.int64))
        per_group.append((name, _winners(ranks, n_ctx), _scores_by_group(ranks, n_ctx)))
    for g, context in enumerate(table.contexts):
        ranking = sorted(overall_scores[g].items(), key=lambda kv: (-kv[1], kv[0]))
        rank_of = {v: i + 1 for i, (v, _) in enumerate(ranking)}
        for name, winners, scores in per_group:
            w = winners[g]
            if w is None or w == overall[g]:
                continue
            out.append(
                MinorityValue(
                    group=name,
                    context=context,
                    value_id=w,
                    group_score=scores[g][w],
                    overall_winner=overall[g],
                    overall_score=overall_scores[g].get(w),
                    overall_rank=rank_of.get(w),
                )
            )
    return out


# --------------------------------------------------------------------------- analysis


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the exports need, computed once: per-context and pooled statistics, scores,
    winners, the reference PageRank of the pooled graph and (optionally) the bootstrap."""

    contexts: tuple[str, ...]
    by_context: dict[str, list[EdgeStats]]
    scores: dict[str, dict[int, float]]
    winners: dict[str, int | None]
    pooled: list[EdgeStats]
    pooled_scores: dict[int, float]
    pooled_reference_scores: dict[int, float]
    thresholds: Thresholds
    bootstrap: BootstrapResult | None = None


def analyse(
    votes: VotesLike,
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    n_bootstrap: int = 0,
    seed: int = 0,
) -> Analysis:
    """Compute the per-context and pooled graphs, their scores and winners in one call.

    Examples
    --------
    >>> from graph.types import Vote
    >>> votes = [Vote(p, a, b, "When lost", "upgrade")
    ...          for p in ("x", "y") for a, b in ((1, 2), (2, 3))]
    >>> a = analyse(votes)
    >>> a.winners, sorted(a.pooled_scores)
    ({'When lost': 3}, [1, 2, 3])
    """
    table = vote_table(votes)
    th = thresholds
    by_context = edge_statistics_by_context(
        table, min_wiser=th.min_wiser, min_likelihood=th.min_likelihood, max_entropy=th.max_entropy
    )
    pooled = edge_statistics(
        table, min_wiser=th.min_wiser, min_likelihood=th.min_likelihood, max_entropy=th.max_entropy
    )
    scores = pagerank_by_context(by_context)
    winners = {c: w.winner for c, w in context_winners(table, thresholds=th).items()}
    return Analysis(
        contexts=table.contexts,
        by_context=by_context,
        scores=scores,
        winners=winners,
        pooled=pooled,
        pooled_scores=pagerank_scores(pooled),
        pooled_reference_scores=reference_pagerank(pooled),
        thresholds=th,
        bootstrap=bootstrap(table, n=n_bootstrap, seed=seed, thresholds=th)
        if n_bootstrap > 0
        else None,
    )
