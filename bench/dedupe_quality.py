"""Deduplication quality on a labelled card set, with the offline default embedder.

Usage: ``python bench/dedupe_quality.py [FILE.jsonl] [--threshold T]``

FILE holds one values card per line (``card_id, title, description, detail, policies,
cluster``); it defaults to ``../shared/data/dedupe-dev.jsonl`` beside the repository. Prints
candidate recall@1/5/10 (is a true duplicate among a card's k nearest others), pairwise
precision/recall/F1 of the proposed clusters against ``cluster``, the upper bound a perfect
"same value?" judge would reach, and timings. The last line is machine-readable:
``dedupe_quality: recall@5=R f1=F``. Exits 0 whatever the scores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from elicit.clustering import DEFAULT_THRESHOLD, pairwise_prf, propose_clusters, recall_at_k
from elicit.embeddings import LocalEmbedder, card_text

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FILE = REPO.parent / "shared" / "data" / "dedupe-dev.jsonl"


def load_cards(path: Path) -> list[dict]:
    """Cards from a JSON-lines file, blank lines skipped."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    args = parser.parse_args(argv)
    if not args.file.exists():
        print(f"no such file: {args.file}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    cards = load_cards(args.file)
    ids = [int(c["card_id"]) for c in cards]
    labels = {int(c["card_id"]): c["cluster"] for c in cards}
    sizes = Counter(labels.values())
    texts = [
        card_text(c["title"], c["description"], c.get("policies") or [], c.get("detail") or "")
        for c in cards
    ]
    embedder = LocalEmbedder()

    t0 = time.perf_counter()
    vectors = embedder.embed(texts)
    t_embed = time.perf_counter() - t0
    t0 = time.perf_counter()
    clusters = propose_clusters(vectors, ids, threshold=args.threshold)
    t_cluster = time.perf_counter() - t0
    row_labels = [labels[i] for i in ids]
    recalls = {k: recall_at_k(vectors, row_labels, k) for k in (1, 5, 10)}
    scores = pairwise_prf(clusters, labels)

    calls = 0

    def reference_judge(a: int, b: int) -> bool:
        nonlocal calls
        calls += 1
        return labels[a] == labels[b]

    upper = pairwise_prf(propose_clusters(vectors, ids, same_value=reference_judge), labels)
    total = time.perf_counter() - started

    print(f"dedupe quality: {args.file}")
    print(
        f"cards       {len(cards)} in {len(sizes)} reference clusters "
        f"({sum(n for n in sizes.values() if n > 1)} cards share a cluster)"
    )
    print(f"embedder    {embedder.name} (offline, IDF from these cards)")
    if os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"):
        print("llm check: not configured (an LLM is set in the environment; the same-value")
        print("           check would apply once the gateway is wired into this bench)")
    else:
        print("llm check: not configured")
    for k, value in recalls.items():
        print(f"recall@{k:<4d} {value:.3f}")
    multi = sum(1 for c in clusters if c.size > 1)
    print(f"threshold   {args.threshold:.2f} (average-linkage cosine cut)")
    print(f"clusters    {len(clusters)} proposed, {multi} with more than one card")
    print(
        f"pairwise    precision {scores.precision:.3f}  recall {scores.recall:.3f}  "
        f"f1 {scores.f1:.3f}"
    )
    print(
        f"upper bound with a perfect same-value judge on the candidates: f1 {upper.f1:.3f} "
        f"({calls} judge calls)"
    )
    print(
        f"time        embed {t_embed * 1000:.0f} ms, cluster {t_cluster * 1000:.0f} ms, "
        f"total {total:.2f} s"
    )
    print(f"dedupe_quality: recall@5={recalls[5]:.3f} f1={scores.f1:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
