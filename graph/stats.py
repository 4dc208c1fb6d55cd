"""Edge statistics of wiser-than votes, compatible with the reference (DESIGN.md 5.1).

For each vote ``A -> B`` in context ``C``:

* pair ``(A, B)``: impressions += 1, add ``C``; upgrade -> W, no_upgrade -> N, not_sure -> U;
* pair ``(B, A)``: impressions += 1, add ``C``; upgrade -> L ("markedLessWise").

Per pair, with ``total = W + N + U + L``::

    wiserLikelihood = (W - L) / total            (0.0 when total == 0, as in the reference)
    entropy = -sum(p * log2(p))                  over p in {W, N, L, U, impressions} / their sum

(zero counts contribute 0; impressions count as a category, which is what the published data
says). A pair is kept iff ``W >= min_wiser``, ``W >= 1``, ``wiserLikelihood >= min_likelihood``
and ``entropy <= max_entropy``.

Order, like the reference's two passes over the votes: pairs come out in the order they were
first created, i.e. every forward pair in vote order, then the pairs that exist only in reverse;
a pair's contexts are distinct, first-seen over the forward votes, then the reverse ones. "Vote
order" is the order of the input: pass votes sorted by creation time.

``total == 0`` happens for a pair that only exists in reverse and whose votes were all
no_upgrade/not_sure (W = N = U = L = 0, impressions > 0): its likelihood is 0.0 and its entropy is
0.0 (a single non-zero category), never NaN.

Every public entry point (a list of :class:`~graph.types.Vote`, a pandas DataFrame, per context or
pooled) runs the same vectorised core, so they agree to the last bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from graph.types import (
    CHOICES,
    DEFAULT_THRESHOLDS,
    EdgeStats,
    GraphError,
    Thresholds,
    Vote,
)

__all__ = [
    "COUNT_COLUMNS",
    "PairIndex",
    "VoteTable",
    "VotesLike",
    "count_votes",
    "edge_statistics",
    "edge_statistics_by_context",
    "edge_statistics_frame",
    "edge_stats_from_counts",
    "index_pairs",
    "keep_mask",
    "summarise_counts",
    "vote_table",
]

IntArray: TypeAlias = npt.NDArray[np.int64]
FloatArray: TypeAlias = npt.NDArray[np.float64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]

COUNT_COLUMNS: tuple[str, ...] = (
    "marked_wiser",
    "marked_not_wiser",
    "marked_less_wise",
    "marked_unsure",
    "impressions",
)
"""Count columns, in the order the entropy sums them (the reference's order)."""

_UPGRADE, _NO_UPGRADE, _NOT_SURE = 0, 1, 2
_VOTE_FRAME_COLUMNS = ("participant", "from_id", "to_id", "context", "choice")


@dataclass(frozen=True, slots=True)
class VoteTable:
    """Votes as columns: the form every computation here runs on.

    ``context`` holds codes into ``contexts`` (contexts in first-seen order); ``choice`` holds
    codes into :data:`graph.types.CHOICES`. Row order is vote order.
    """

    participant: npt.NDArray[Any]
    source: IntArray
    wiser: IntArray
    context: IntArray
    contexts: tuple[str, ...]
    choice: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.source.shape[0])

    def take(self, rows: npt.NDArray[Any]) -> VoteTable:
        """Return the votes at ``rows`` (indices or a boolean mask), contexts renumbered."""
        context = self.context[rows]
        codes, uniques = pd.factorize(context)
        return VoteTable(
            participant=self.participant[rows],
            source=self.source[rows],
            wiser=self.wiser[rows],
            context=codes.astype(np.int64),
            contexts=tuple(self.contexts[int(c)] for c in uniques),
            choice=self.choice[rows],
        )

    def participant_codes(self) -> tuple[IntArray, list[str]]:
        """Participants numbered 0..P-1 in first-seen order, and their ids as strings."""
        codes, uniques = pd.factorize(self.participant)
        return codes.astype(np.int64), [str(p) for p in uniques]


VotesLike: TypeAlias = "Iterable[Vote] | pd.DataFrame | VoteTable"


def _choice_codes(raw: Any) -> npt.NDArray[np.int8]:
    cat = pd.Categorical(raw, categories=list(CHOICES))
    codes = np.asarray(cat.codes, dtype=np.int8)
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        row = int(bad[0])
        value = np.asarray(raw, dtype=object)[row]
        raise GraphError(f"vote row {row}: choice {value!r} is not one of {', '.join(CHOICES)}")
    return codes


def _id_column(raw: Any, name: str) -> IntArray:
    arr = np.asarray(raw)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "O":
        for row, item in enumerate(arr):
            if isinstance(item, bool) or not isinstance(item, int | np.integer):
                raise GraphError(f"vote row {row}: {name} {item!r} is not an integer")
        return arr.astype(np.int64)
    raise GraphError(f"{name} must hold integers, got dtype {arr.dtype}")


def _table_from_columns(
    participant: Any, source: Any, wiser: Any, context: Any, choice: Any
) -> VoteTable:
    src = _id_column(source, "from_id")
    dst = _id_column(wiser, "to_id")
    loops = np.flatnonzero(src == dst)
    if loops.size:
        row = int(loops[0])
        raise GraphError(f"vote row {row}: from_id equals to_id ({int(src[row])})")
    if isinstance(context, pd.Series) and isinstance(context.dtype, pd.CategoricalDtype):
        # Categories come in their own order; renumber by first appearance.
        cat_codes = np.asarray(context.cat.codes, dtype=np.int64)
        codes, uniques = pd.factorize(np.where(cat_codes < 0, np.nan, cat_codes))
        categories = context.cat.categories
        labels = [categories[int(c)] for c in uniques]
    else:
        codes, uniq = pd.factorize(np.asarray(context, dtype=object), use_na_sentinel=True)
        labels = list(uniq)
    missing = np.flatnonzero(codes < 0)
    if missing.size:
        raise GraphError(f"vote row {int(missing[0])}: context is missing")
    for label in labels:
        if not isinstance(label, str):
            raise GraphError(f"context {label!r} is not a string")
    return VoteTable(
        participant=np.asarray(participant, dtype=object)
        if not isinstance(participant, np.ndarray)
        else participant,
        source=src,
        wiser=dst,
        context=codes.astype(np.int64),
        contexts=tuple(str(c) for c in labels),
        choice=_choice_codes(choice),
    )


def vote_table(votes: VotesLike) -> VoteTable:
    """Turn votes (a :class:`VoteTable`, a DataFrame or an iterable of ``Vote``) into columns.

    A DataFrame needs the columns ``participant, from_id, to_id, context, choice``; ``context``
    and ``choice`` may be categorical, which is the fast way to pass a million votes.

    Raises
    ------
    GraphError
        On an unknown choice, a missing column or context, a non-integer id, or a vote whose
        ``from_id`` equals its ``to_id``.

    Examples
    --------
    >>> from graph.types import Vote
    >>> t = vote_table([Vote("p1", 1, 2, "When in doubt", "upgrade")])
    >>> len(t), t.contexts
    (1, ('When in doubt',))
    """
    if isinstance(votes, VoteTable):
        return votes
    if isinstance(votes, pd.DataFrame):
        missing = [c for c in _VOTE_FRAME_COLUMNS if c not in votes.columns]
        if missing:
            raise GraphError(f"vote frame is missing column(s): {', '.join(missing)}")
        return _table_from_columns(
            votes["participant"].to_numpy(),
            votes["from_id"].to_numpy(),
            votes["to_id"].to_numpy(),
            votes["context"],
            votes["choice"],
        )
    rows = list(votes)
    for row, vote in enumerate(rows):
        if not isinstance(vote, Vote):
            raise GraphError(f"vote row {row}: expected a Vote, got {type(vote).__name__}")
    return _table_from_columns(
        np.array([v.participant for v in rows], dtype=object),
        np.array([v.from_id for v in rows], dtype=object),
        np.array([v.to_id for v in rows], dtype=object),
        [v.context for v in rows],
        [v.choice for v in rows],
    )


@dataclass(frozen=True, slots=True)
class PairIndex:
    """Which pair each vote touches, computed once and reused (bootstrap, simulations).

    ``forward[i]`` / ``reverse[i]`` are the pair codes of vote ``i``'s ``(A, B)`` and ``(B, A)``;
    pair codes are in creation order. ``group`` is the context code of each pair (all 0 when
    pooled), ``source``/``wiser`` its value ids.
    """

    forward: IntArray
    reverse: IntArray
    group: IntArray
    source: IntArray
    wiser: IntArray
    by_context: bool

    @property
    def n_pairs(self) -> int:
        return int(self.source.shape[0])


def index_pairs(table: VoteTable, *, by_context: bool) -> PairIndex:
    """Number the pairs the votes touch, in the reference's creation order.

    Concatenating every vote's forward key, then every reverse key, and numbering keys by first
    appearance gives exactly "forward pairs in vote order, then reverse-only pairs".
    """
    n = len(table)
    group = table.context if by_context else np.zeros(n, dtype=np.int64)
    n_groups = max(len(table.contexts), 1) if by_context else 1
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return PairIndex(empty, empty, empty, empty, empty, by_context)
    src, dst = table.source, table.wiser
    lo = int(min(src.min(), dst.min()))
    hi = int(max(src.max(), dst.max()))
    value_of: IntArray | None = None
    if lo >= 0 and n_groups * (hi + 1) ** 2 < 2**62:
        a, b, m = src, dst, hi + 1
    else:
        codes, uniques = pd.factorize(np.concatenate([src, dst]))
        a, b, m = codes[:n].astype(np.int64), codes[n:].astype(np.int64), len(uniques)
        value_of = np.asarray(uniques, dtype=np.int64)
        if n_groups * m * m >= 2**62:
            raise GraphError("too many values and contexts to index pairs")
    base = group * (m * m)
    keys = np.concatenate([base + a * m + b, base + b * m + a])
    pair_codes, unique_keys = pd.factorize(keys)
    unique_keys = np.asarray(unique_keys, dtype=np.int64)
    pair_group = unique_keys // (m * m)
    rest = unique_keys % (m * m)
    p_src, p_dst = rest // m, rest % m
    if value_of is not None:
        p_src, p_dst = value_of[p_src], value_of[p_dst]
    pair_codes = pair_codes.astype(np.int64)
    return PairIndex(
        forward=pair_codes[:n],
        reverse=pair_codes[n:],
        group=pair_group,
        source=p_src,
        wiser=p_dst,
        by_context=by_context,
    )


def count_votes(
    index: PairIndex,
    choice: npt.NDArray[np.int8],
    *,
    weights: npt.NDArray[Any] | None = None,
) -> IntArray:
    """Count W, N, L, U, impressions per pair (columns in :data:`COUNT_COLUMNS` order).

    ``weights`` (one non-negative integer per vote) lets a vote count several times, which is how
    the bootstrap resamples participants without rebuilding the index.
    """
    p = index.n_pairs
    fwd, rev = index.forward, index.reverse
    if weights is None:
        by_choice = np.bincount(fwd * 3 + choice, minlength=3 * p).reshape(p, 3)
        less = np.bincount(rev[choice == _UPGRADE], minlength=p)
        impressions = np.bincount(fwd, minlength=p) + np.bincount(rev, minlength=p)
    else:
        w = np.asarray(weights, dtype=np.float64)
        by_choice = np.bincount(fwd * 3 + choice, weights=w, minlength=3 * p).reshape(p, 3)
        up = choice == _UPGRADE
        less = np.bincount(rev[up], weights=w[up], minlength=p)
        impressions = np.bincount(fwd, weights=w, minlength=p) + np.bincount(
            rev, weights=w, minlength=p
        )
    counts = np.empty((p, 5), dtype=np.int64)
    counts[:, 0] = by_choice[:, _UPGRADE]
    counts[:, 1] = by_choice[:, _NO_UPGRADE]
    counts[:, 2] = less
    counts[:, 3] = by_choice[:, _NOT_SURE]
    counts[:, 4] = impressions
    return counts


def summarise_counts(counts: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Return (wiserLikelihood, entropy) for rows of counts ``[W, N, L, U, impressions]``.

    Examples
    --------
    The worked example of DESIGN.md 5.1:

    >>> lik, ent = summarise_counts([[3, 0, 0, 1, 4]])
    >>> float(lik[0]), float(ent[0])
    (0.75, 1.4056390622295665)
    """
    c = np.asarray(counts, dtype=np.int64).reshape(-1, 5)
    w, n, less, u = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    total = (w + n + u + less).astype(np.float64)
    diff = (w - less).astype(np.float64)
    likelihood = np.zeros(c.shape[0], dtype=np.float64)
    np.divide(diff, total, out=likelihood, where=total > 0)
    s = c.sum(axis=1).astype(np.float64)
    cf = c.astype(np.float64)
    p = np.zeros_like(cf)
    np.divide(cf, s[:, None], out=p, where=s[:, None] > 0)
    terms = np.zeros_like(cf)
    positive = c > 0
    np.multiply(p, np.log2(p, out=np.zeros_like(p), where=positive), out=terms, where=positive)
    # Summed left to right like the reference loop, so results match it bit for bit.
    acc = terms[:, 0] + terms[:, 1]
    acc = acc + terms[:, 2]
    acc = acc + terms[:, 3]
    acc = acc + terms[:, 4]
    entropy = np.where(acc == 0.0, 0.0, -acc)
    return likelihood, entropy


def keep_mask(
    counts: IntArray,
    likelihood: FloatArray,
    entropy: FloatArray,
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> BoolArray:
    """Which pairs are edges of the moral graph (see the module docstring)."""
    w = counts[:, 0]
    return (
        (w >= thresholds.min_wiser)
        & (w >= 1)
        & (likelihood >= thresholds.min_likelihood)
        & (entropy <= thresholds.max_entropy)
    )


@dataclass(frozen=True, slots=True)
class _Stats:
    table: VoteTable
    index: PairIndex
    counts: IntArray
    likelihood: FloatArray
    entropy: FloatArray
    kept: BoolArray


def _compute(table: VoteTable, *, by_context: bool, thresholds: Thresholds) -> _Stats:
    index = index_pairs(table, by_context=by_context)
    counts = count_votes(index, table.choice)
    likelihood, entropy = summarise_counts(counts)
    kept = keep_mask(counts, likelihood, entropy, thresholds=thresholds)
    return _Stats(table, index, counts, likelihood, entropy, kept)


def _pair_contexts(stats: _Stats) -> list[tuple[str, ...]]:
    """Distinct contexts per pair, first seen over forward then reverse votes."""
    table, index = stats.table, stats.index
    p = index.n_pairs
    if index.by_context:
        return [(table.contexts[int(g)],) for g in index.group]
    n_ctx = max(len(table.contexts), 1)
    keys = np.concatenate([index.forward, index.reverse]) * n_ctx + np.concatenate(
        [table.context, table.context]
    )
    seen = pd.unique(keys)
    pair_of, ctx_of = seen // n_ctx, seen % n_ctx
    order = np.argsort(pair_of, kind="stable")
    ctx_sorted = ctx_of[order].tolist()
    bounds = np.searchsorted(pair_of[order], np.arange(p + 1)).tolist()
    labels = table.contexts
    return [tuple(labels[c] for c in ctx_sorted[bounds[i] : bounds[i + 1]]) for i in range(p)]


def _thresholds(min_wiser: int, min_likelihood: float, max_entropy: float) -> Thresholds:
    return Thresholds(min_wiser=min_wiser, min_likelihood=min_likelihood, max_entropy=max_entropy)


def _edges(stats: _Stats, rows: Sequence[int] | IntArray) -> list[EdgeStats]:
    contexts = _pair_contexts(stats)
    idx = np.asarray(rows, dtype=np.int64)
    src = stats.index.source[idx].tolist()
    dst = stats.index.wiser[idx].tolist()
    counts = stats.counts[idx].tolist()
    lik = stats.likelihood[idx].tolist()
    ent = stats.entropy[idx].tolist()
    kept = stats.kept[idx].tolist()
    return [
        EdgeStats(
            source_id=src[j],
            wiser_id=dst[j],
            contexts=contexts[int(i)],
            marked_wiser=counts[j][0],
            marked_not_wiser=counts[j][1],
            marked_less_wise=counts[j][2],
            marked_unsure=counts[j][3],
            impressions=counts[j][4],
            wiser_likelihood=lik[j],
            entropy=ent[j],
            kept=kept[j],
        )
        for j, i in enumerate(idx.tolist())
    ]


def edge_statistics(
    votes: VotesLike,
    *,
    min_wiser: int = 2,
    min_likelihood: float = 0.33,
    max_entropy: float = 1.69,
) -> list[EdgeStats]:
    """Pool every context's votes into one list of pair statistics (the reference behaviour).

    Parameters
    ----------
    votes : iterable of Vote, DataFrame or VoteTable
        In creation order; at most one vote per participant per (A, B, context).
    min_wiser, min_likelihood, max_entropy
        When a pair is kept (DESIGN.md 5.1).

    Returns
    -------
    list of EdgeStats
        Every pair, kept or not, in creation order.

    Examples
    --------
    >>> from graph.types import Vote
    >>> votes = [
    ...     Vote("p1", 1, 2, "When unsure", "upgrade"),
    ...     Vote("p2", 1, 2, "When unsure", "upgrade"),
    ...     Vote("p3", 2, 3, "When unsure", "not_sure"),
    ... ]
    >>> [(e.source_id, e.wiser_id, e.marked_wiser, e.marked_less_wise, e.kept)
    ...  for e in edge_statistics(votes)]
    [(1, 2, 2, 0, True), (2, 3, 0, 0, False), (2, 1, 0, 2, False), (3, 2, 0, 0, False)]
    """
    stats = _compute(
        vote_table(votes),
        by_context=False,
        thresholds=_thresholds(min_wiser, min_likelihood, max_entropy),
    )
    return _edges(stats, np.arange(stats.index.n_pairs))


def edge_statistics_by_context(
    votes: VotesLike,
    *,
    min_wiser: int = 2,
    min_likelihood: float = 0.33,
    max_entropy: float = 1.69,
) -> dict[str, list[EdgeStats]]:
    """Compute each context's pair statistics from that context's votes only.

    Returns
    -------
    dict
        Context -> list of EdgeStats, contexts in first-seen order, pairs in creation order
        within the context (as if :func:`edge_statistics` ran on that context's votes).

    Examples
    --------
    >>> from graph.types import Vote
    >>> votes = [
    ...     Vote("p1", 1, 2, "When grieving", "upgrade"),
    ...     Vote("p1", 2, 3, "When angry", "upgrade"),
    ...     Vote("p2", 1, 2, "When angry", "no_upgrade"),
    ... ]
    >>> by = edge_statistics_by_context(votes)
    >>> for context, edges in by.items():
    ...     print(context, [(e.source_id, e.wiser_id) for e in edges])
    When grieving [(1, 2), (2, 1)]
    When angry [(2, 3), (1, 2), (3, 2), (2, 1)]
    """
    stats = _compute(
        vote_table(votes),
        by_context=True,
        thresholds=_thresholds(min_wiser, min_likelihood, max_entropy),
    )
    order = np.argsort(stats.index.group, kind="stable")
    edges = _edges(stats, order)
    out: dict[str, list[EdgeStats]] = {c: [] for c in stats.table.contexts}
    for edge in edges:
        out[edge.contexts[0]].append(edge)
    return {c: es for c, es in out.items() if es}


def edge_statistics_frame(
    votes: VotesLike,
    *,
    by_context: bool = False,
    min_wiser: int = 2,
    min_likelihood: float = 0.33,
    max_entropy: float = 1.69,
) -> pd.DataFrame:
    """Pair statistics as a DataFrame: the fast path for large vote tables.

    Columns: ``context`` (categorical, only when ``by_context``), ``source_id``, ``wiser_id``,
    ``contexts`` (tuples, only when pooled), the five counts of :data:`COUNT_COLUMNS`,
    ``wiser_likelihood``, ``entropy``, ``kept``. Rows are in the same order as
    :func:`edge_statistics` / :func:`edge_statistics_by_context` and hold identical numbers.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "participant": ["p1", "p2", "p3"], "from_id": [1, 1, 2], "to_id": [2, 2, 3],
    ...     "context": ["When unsure"] * 3, "choice": ["upgrade", "upgrade", "not_sure"],
    ... })
    >>> edge_statistics_frame(df)[["source_id", "wiser_id", "marked_wiser", "kept"]]
       source_id  wiser_id  marked_wiser   kept
    0          1         2             2   True
    1          2         3             0  False
    2          2         1             0  False
    3          3         2             0  False
    """
    stats = _compute(
        vote_table(votes),
        by_context=by_context,
        thresholds=_thresholds(min_wiser, min_likelihood, max_entropy),
    )
    index = stats.index
    columns: dict[str, Any] = {}
    if by_context:
        order = np.argsort(index.group, kind="stable")
        columns["context"] = pd.Categorical.from_codes(
            index.group[order], categories=pd.Index(list(stats.table.contexts))
        )
    else:
        order = np.arange(index.n_pairs)
    columns["source_id"] = index.source[order]
    columns["wiser_id"] = index.wiser[order]
    if not by_context:
        columns["contexts"] = _pair_contexts(stats)
    counts = stats.counts[order]
    for j, name in enumerate(COUNT_COLUMNS):
        columns[name] = counts[:, j]
    columns["wiser_likelihood"] = stats.likelihood[order]
    columns["entropy"] = stats.entropy[order]
    columns["kept"] = stats.kept[order]
    return pd.DataFrame(columns)


def edge_stats_from_counts(
    source_id: int,
    wiser_id: int,
    *,
    contexts: Sequence[str],
    counts: Mapping[str, int],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    kept: bool | None = None,
) -> EdgeStats:
    """Build an EdgeStats from counts alone (e.g. imported from a summary file).

    ``counts`` uses :data:`COUNT_COLUMNS` keys; likelihood and entropy are recomputed with the
    same core as the vote path. ``kept`` defaults to the thresholds' verdict.

    Examples
    --------
    >>> e = edge_stats_from_counts(1, 2, contexts=["When in doubt"], counts={
    ...     "marked_wiser": 3, "marked_not_wiser": 0, "marked_less_wise": 0,
    ...     "marked_unsure": 1, "impressions": 4})
    >>> e.wiser_likelihood, e.entropy, e.kept
    (0.75, 1.4056390622295665, True)
    """
    row = np.array([[int(counts[name]) for name in COUNT_COLUMNS]], dtype=np.int64)
    if (row < 0).any():
        raise GraphError(f"edge {source_id} -> {wiser_id}: counts must not be negative")
    likelihood, entropy = summarise_counts(row)
    verdict = bool(keep_mask(row, likelihood, entropy, thresholds=thresholds)[0])
    return EdgeStats(
        source_id=int(source_id),
        wiser_id=int(wiser_id),
        contexts=tuple(contexts),
        marked_wiser=int(row[0, 0]),
        marked_not_wiser=int(row[0, 1]),
        marked_less_wise=int(row[0, 2]),
        marked_unsure=int(row[0, 3]),
        impressions=int(row[0, 4]),
        wiser_likelihood=float(likelihood[0]),
        entropy=float(entropy[0]),
        kept=verdict if kept is None else kept,
    )
