"""Graph engine at scale: vectorised statistics + trimming + per-context PageRank vs naive.

Generates a seeded synthetic deliberation (default 1,000,000 votes over 20,000 values and 50
contexts), then times

* ours: ``graph.stats.edge_statistics_frame(by_context=True)`` (statistics and trimming) and
  ``graph.scoring.pagerank_by_context`` (networkx-semantics PageRank of every context at once);
* naive: a straightforward per-row pure-Python implementation of DESIGN.md 5.1 (dicts and
  loops, two passes like the reference) per context, plus networkx's PageRank per context.
  ``networkx.pagerank`` needs scipy, which we do not depend on, so the baseline calls networkx's
  pure-Python implementation (``pagerank_alg._pagerank_python``), the same algorithm.

It checks both produce identical edge statistics (counts, contexts, order exactly; likelihood and
entropy to 1e-12) and close PageRank scores, prints the figures and, as its last line,
``graph_scale: ours=X.XXs naive=Y.YYs ratio=Z.Z``. Goal: ours <= 3 s and ratio >= 10; the script
exits 0 either way (the numbers are the result).

This file is also the single home of the naive reference implementation: the graph tests import
:func:`naive_edge_statistics` from here to check the fast path against it.

Usage::

    python bench/graph_scale.py [--votes N] [--values N] [--contexts N] [--seed N]
                                [--from-db URL [--keep]]

``--from-db URL`` (SQLite or PostgreSQL) first writes the synthetic deliberation into a fresh
deliberation of that database (schema migrated; bulk insert: COPY on PostgreSQL, executemany on
SQLite; not timed), then "ours" also includes reading the votes back through
``db.queries.read_graph_vote_frame`` (the same filters the app applies: deleted participants and
archived values left out, creation order), and the check compares against the naive code run on
the rows as written. The deliberation is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import math
import secrets
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd
from networkx.algorithms.link_analysis.pagerank_alg import (  # type: ignore[attr-defined]
    _pagerank_python,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graph.scoring import pagerank_by_context  # noqa: E402
from graph.stats import edge_statistics_frame  # noqa: E402

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

NaiveRow = tuple[Any, int, int, str, str]
"""(participant, from_id, to_id, context, choice), the shape the naive code loops over."""


def naive_edge_statistics(
    votes: Iterable[NaiveRow],
    *,
    min_wiser: int = 2,
    min_likelihood: float = 0.33,
    max_entropy: float = 1.69,
) -> list[dict[str, Any]]:
    """DESIGN.md 5.1 written the obvious way: one dict of pairs, two loops over the votes."""
    rows = list(votes)
    pairs: dict[tuple[int, int], dict[str, Any]] = {}

    def get(a: int, b: int) -> dict[str, Any]:
        if (a, b) not in pairs:
            pairs[(a, b)] = {
                "source_id": a,
                "wiser_id": b,
                "contexts": [],
                "marked_wiser": 0,
                "marked_not_wiser": 0,
                "marked_less_wise": 0,
                "marked_unsure": 0,
                "impressions": 0,
            }
        return pairs[(a, b)]

    for _participant, a, b, context, choice in rows:
        pair = get(a, b)
        pair["contexts"].append(context)
        pair["impressions"] += 1
        if choice == "upgrade":
            pair["marked_wiser"] += 1
        elif choice == "no_upgrade":
            pair["marked_not_wiser"] += 1
        elif choice == "not_sure":
            pair["marked_unsure"] += 1
        else:
            raise ValueError(f"unknown choice {choice!r}")
    for _participant, a, b, context, choice in rows:
        pair = get(b, a)
        pair["contexts"].append(context)
        pair["impressions"] += 1
        if choice == "upgrade":
            pair["marked_less_wise"] += 1

    out = []
    for pair in pairs.values():
        w, n = pair["marked_wiser"], pair["marked_not_wiser"]
        less, u, imp = pair["marked_less_wise"], pair["marked_unsure"], pair["impressions"]
        total = w + n + u + less
        likelihood = (w - less) / total if total else 0.0
        s = w + n + less + u + imp
        entropy = 0.0
        for count in (w, n, less, u, imp):
            if count:
                p = count / s
                entropy -= p * math.log2(p)
        kept = w >= 1 and w >= min_wiser and likelihood >= min_likelihood and entropy <= max_entropy
        pair["contexts"] = tuple(dict.fromkeys(pair["contexts"]))
        pair["wiser_likelihood"] = likelihood
        pair["entropy"] = entropy
        pair["kept"] = kept
        out.append(pair)
    return out


def naive_by_context(votes: Iterable[NaiveRow]) -> dict[str, list[dict[str, Any]]]:
    """Group votes by context (first-seen order), then run the naive statistics per context."""
    grouped: dict[str, list[NaiveRow]] = {}
    for row in votes:
        grouped.setdefault(row[3], []).append(row)
    return {context: naive_edge_statistics(rows) for context, rows in grouped.items()}


def naive_pipeline(votes: Sequence[NaiveRow]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Naive statistics + trimming + networkx PageRank per context."""
    stats = naive_by_context(votes)
    scores: dict[str, dict[int, float]] = {}
    for context, pairs in stats.items():
        graph: nx.DiGraph[int] = nx.DiGraph()
        for pair in pairs:
            if pair["kept"]:
                graph.add_edge(pair["source_id"], pair["wiser_id"], weight=pair["wiser_likelihood"])
        if graph.number_of_nodes():
            scores[context] = _pagerank_python(graph, weight="weight")
    return stats, scores


def ours_pipeline(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[int, float]]]:
    stats = edge_statistics_frame(frame, by_context=True)
    return stats, pagerank_by_context(stats)


def synthetic_votes(*, n_votes: int, n_values: int, n_contexts: int, seed: int) -> pd.DataFrame:
    """A seeded deliberation with latent value "wisdom", so some edges clear the thresholds.

    Each context draws a subset of values and hypotheses between them (about a third with their
    reverse hypothesis, as the story generator writes both directions); each hypothesis gets about
    ten votes, from distinct participants; the vote order is shuffled like real arrival times.
    """
    rng = np.random.default_rng(seed)
    wisdom = rng.normal(size=n_values)
    n_hyp = max(n_votes // 10, 1)
    per_context = max(n_hyp // n_contexts, 1)
    values_per_context = max(min(n_values, int(per_context * 0.6)), 2)
    hyp_ctx = np.repeat(np.arange(n_contexts), per_context)
    n_hyp = hyp_ctx.shape[0]
    pools = [
        rng.choice(n_values, size=values_per_context, replace=False) for _ in range(n_contexts)
    ]
    pool = np.stack(pools)
    a_pos = rng.integers(0, values_per_context, size=n_hyp)
    b_pos = (a_pos + rng.integers(1, values_per_context, size=n_hyp)) % values_per_context
    a, b = pool[hyp_ctx, a_pos], pool[hyp_ctx, b_pos]
    # About a third of the hypotheses get their reverse (B -> A) as the next hypothesis.
    flip = rng.random(n_hyp) < 0.33
    flip[0] = False
    prev_a, prev_b = np.roll(a, 1), np.roll(b, 1)
    same_ctx = hyp_ctx == np.roll(hyp_ctx, 1)
    use = flip & same_ctx
    a = np.where(use, prev_b, a)
    b = np.where(use, prev_a, b)
    votes_per_hyp = rng.multinomial(n_votes, np.full(n_hyp, 1.0 / n_hyp))
    hyp = np.repeat(np.arange(n_hyp), votes_per_hyp)
    nth = np.arange(n_votes) - np.repeat(np.cumsum(votes_per_hyp) - votes_per_hyp, votes_per_hyp)
    n_participants = max(n_votes // 5, 1)
    participant = (hyp * 7919 + nth * 104729) % n_participants
    src, dst = a[hyp], b[hyp]
    p_up = 1.0 / (1.0 + np.exp(-2.0 * (wisdom[dst] - wisdom[src])))
    r = rng.random(n_votes)
    choice_code = np.where(r < 0.85 * p_up, 0, np.where(r < 0.85, 1, 2)).astype(np.int8)
    order = rng.permutation(n_votes)
    contexts = [f"When situation {i:02d} arises" for i in range(n_contexts)]
    return pd.DataFrame(
        {
            "participant": participant[order],
            "from_id": src[order].astype(np.int64),
            "to_id": dst[order].astype(np.int64),
            "context": pd.Categorical.from_codes(
                hyp_ctx[hyp][order], categories=pd.Index(contexts)
            ),
            "choice": pd.Categorical.from_codes(
                choice_code[order], categories=pd.Index(["upgrade", "no_upgrade", "not_sure"])
            ),
        }
    )


def naive_rows(frame: pd.DataFrame) -> list[NaiveRow]:
    return list(
        zip(
            frame["participant"].tolist(),
            frame["from_id"].tolist(),
            frame["to_id"].tolist(),
            frame["context"].astype(str).tolist(),
            frame["choice"].astype(str).tolist(),
            strict=True,
        )
    )


def compare(ours: pd.DataFrame, naive: dict[str, list[dict[str, Any]]]) -> tuple[bool, float, str]:
    """Return (identical, max float difference, first difference) between the two results."""
    flat = [(c, p) for c, pairs in naive.items() for p in pairs]
    if len(flat) != len(ours):
        return False, math.inf, f"{len(ours)} pairs vs naive {len(flat)}"
    contexts = ours["context"].astype(str).tolist()
    ints = {
        name: ours[name].tolist()
        for name in (
            "source_id",
            "wiser_id",
            "marked_wiser",
            "marked_not_wiser",
            "marked_less_wise",
            "marked_unsure",
            "impressions",
            "kept",
        )
    }
    lik, ent = ours["wiser_likelihood"].tolist(), ours["entropy"].tolist()
    worst = 0.0
    for i, (context, pair) in enumerate(flat):
        if context != contexts[i]:
            return False, worst, f"row {i}: context {contexts[i]!r} vs {context!r}"
        for name, column in ints.items():
            if column[i] != pair[name]:
                return False, worst, f"row {i}: {name} {column[i]} vs {pair[name]}"
        worst = max(worst, abs(lik[i] - pair["wiser_likelihood"]), abs(ent[i] - pair["entropy"]))
    return worst <= 1e-12, worst, ""


_VOTE_COLUMNS = (
    "deliberation_id",
    "participant_id",
    "from_value_id",
    "to_value_id",
    "context_id",
    "choice",
    "comment",
    "created_at",
)


def _bulk_rows(
    engine: Engine, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """COPY on PostgreSQL, one executemany on SQLite: the fastest plain way to write rows."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            cur.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", list(rows)
            )
        cur.close()
        raw.commit()
    finally:
        raw.close()


def write_to_db(engine: Engine, frame: pd.DataFrame, *, seed: int) -> tuple[int, pd.DataFrame]:
    """Write ``frame`` as a fresh deliberation; return its id and the frame in database ids."""
    from datetime import UTC, datetime, timedelta

    from sqlmodel import col, select

    from db.engine import session_scope
    from db.models import CanonicalValue, Context, Deliberation, Participant

    with session_scope(engine) as s:
        d = Deliberation(slug=f"bench-graph-{seed}-{secrets.token_hex(3)}", title="Graph bench")
        s.add(d)
        s.commit()
        s.refresh(d)
        did = int(d.id or 0)
        contexts = [str(c) for c in frame["context"].cat.categories]
        s.add_all([Context(deliberation_id=did, text=c) for c in contexts])
        s.commit()
        context_id = {
            t: i
            for i, t in s.exec(
                select(col(Context.id), col(Context.text)).where(Context.deliberation_id == did)
            )
        }
    used_values = np.unique(np.concatenate([frame["from_id"], frame["to_id"]]))
    now = datetime.now(UTC)
    sqlite = engine.dialect.name == "sqlite"

    def stamp(t: datetime) -> Any:
        # SQLAlchemy's storage format for DateTime on SQLite (naive UTC text).
        return t.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else t

    _bulk_rows(
        engine,
        "canonicalvalue",
        (
            "deliberation_id",
            "title",
            "description",
            "detail",
            "policies",
            "ref_id",
            "archived",
            "created_at",
            "updated_at",
        ),
        (
            (did, f"Value {v}", "", "", "[]", int(v), False, stamp(now), stamp(now))
            for v in used_values.tolist()
        ),
    )
    people = np.unique(frame["participant"].to_numpy())
    _bulk_rows(
        engine,
        "participant",
        (
            "deliberation_id",
            "token_hash",
            "entry_channel",
            "external_ref",
            "consent_publish",
            "consent_aggregate_only",
            "consent_training",
            "demographics",
            "offered_question_ids",
            "step",
            "step_times",
            "flagged",
            "created_at",
            "updated_at",
        ),
        (
            (
                did,
                secrets.token_hex(32),
                "bench",
                str(p),
                False,
                False,
                False,
                "{}",
                "[]",
                "finished",
                "{}",
                False,
                stamp(now),
                stamp(now),
            )
            for p in people.tolist()
        ),
    )
    with session_scope(engine) as s:
        value_id = dict(
            s.exec(
                select(col(CanonicalValue.ref_id), col(CanonicalValue.id)).where(
                    CanonicalValue.deliberation_id == did
                )
            ).all()
        )
        person_id = {
            int(ref or 0): i
            for ref, i in s.exec(
                select(col(Participant.external_ref), col(Participant.id)).where(
                    Participant.deliberation_id == did
                )
            ).all()
        }
    participant = pd.Series(frame["participant"].to_numpy()).map(person_id).to_numpy(np.int64)
    source = pd.Series(frame["from_id"].to_numpy()).map(value_id).to_numpy(np.int64)
    wiser = pd.Series(frame["to_id"].to_numpy()).map(value_id).to_numpy(np.int64)
    ctx_codes = frame["context"].cat.codes.to_numpy()
    ctx_ids = np.array([context_id[c] for c in contexts], dtype=np.int64)[ctx_codes]
    choices = frame["choice"].astype(str).tolist()
    # One microsecond apart: the database's creation order is the frame's order.
    times = [stamp(now + timedelta(microseconds=i)) for i in range(len(frame))]
    _bulk_rows(
        engine,
        "wiservote",
        _VOTE_COLUMNS,
        zip(
            [did] * len(frame),
            participant.tolist(),
            source.tolist(),
            wiser.tolist(),
            ctx_ids.tolist(),
            choices,
            [""] * len(frame),
            times,
            strict=True,
        ),
    )
    mapped = pd.DataFrame(
        {
            "participant": participant,
            "from_id": source,
            "to_id": wiser,
            "context": frame["context"],
            "choice": frame["choice"],
        }
    )
    return did, mapped


def read_from_db(engine: Engine, deliberation_id: int) -> pd.DataFrame:
    from db.engine import session_scope
    from db.queries.graphdata import read_graph_vote_frame

    with session_scope(engine) as s:
        return read_graph_vote_frame(s, deliberation_id=deliberation_id)


def delete_deliberation(engine: Engine, deliberation_id: int) -> None:
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM deliberation WHERE id = :d"), {"d": deliberation_id})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    parser.add_argument("--values", type=int, default=20_000)
    parser.add_argument("--contexts", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs for ours")
    parser.add_argument(
        "--from-db",
        metavar="URL",
        help="write the votes into this database (sqlite:///... or postgresql://...) and time "
        "reading them back as part of ours",
    )
    parser.add_argument("--keep", action="store_true", help="keep the --from-db deliberation")
    args = parser.parse_args(argv)

    frame = synthetic_votes(
        n_votes=args.votes, n_values=args.values, n_contexts=args.contexts, seed=args.seed
    )
    print(
        f"votes={len(frame):,} values={args.values:,} contexts={args.contexts} "
        f"participants={frame['participant'].nunique():,}"
    )
    engine = None
    did = 0
    if args.from_db:
        from db.engine import make_engine
        from db.migrate import upgrade

        engine = make_engine(args.from_db)
        upgrade(engine)
        start = time.perf_counter()
        did, frame = write_to_db(engine, frame, seed=args.seed)
        print(
            f"from-db: {engine.dialect.name}, deliberation {did}, "
            f"written in {time.perf_counter() - start:.1f}s (not timed)"
        )
    rows = naive_rows(frame)

    ours_times = []
    read_times = []
    try:
        for _ in range(max(args.repeat, 1)):
            start = time.perf_counter()
            if engine is not None:
                source = read_from_db(engine, did)
                read_times.append(time.perf_counter() - start)
            else:
                source = frame
            stats, scores = ours_pipeline(source)
            ours_times.append(time.perf_counter() - start)
    finally:
        if engine is not None:
            if not args.keep:
                delete_deliberation(engine, did)
            engine.dispose()
    ours_s = min(ours_times)
    if read_times:
        print(f"from-db read runs: {', '.join(f'{t:.3f}s' for t in read_times)} (part of ours)")

    start = time.perf_counter()
    naive_stats, naive_scores = naive_pipeline(rows)
    naive_s = time.perf_counter() - start

    identical, worst, detail = compare(stats, naive_stats)
    score_diff = max(
        (abs(scores[c][v] - naive_scores[c][v]) for c in naive_scores for v in naive_scores[c]),
        default=0.0,
    )
    same_nodes = {c: set(s) for c, s in scores.items()} == {
        c: set(s) for c, s in naive_scores.items()
    }
    kept = int(stats["kept"].sum())
    print(f"pairs={len(stats):,} kept={kept:,} contexts_with_edges={len(scores)}")
    print(f"ours runs: {', '.join(f'{t:.3f}s' for t in ours_times)}")
    print(f"edge statistics identical: {identical} (max float diff {worst:.2e}) {detail}".rstrip())
    print(f"pagerank same nodes: {same_nodes}, max score diff {score_diff:.2e}")
    ratio = naive_s / ours_s if ours_s > 0 else math.inf
    goal = ours_s <= 3.0 and ratio >= 10.0
    print(f"goal (ours <= 3 s and ratio >= 10): {'met' if goal else 'MISSED'}")
    print(f"graph_scale: ours={ours_s:.2f}s naive={naive_s:.2f}s ratio={ratio:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
