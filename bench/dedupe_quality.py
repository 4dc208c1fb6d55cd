"""Deduplication quality on a labelled card set, with the offline default embedder.

Usage: ``python bench/dedupe_quality.py [FILE.jsonl] [--threshold T]``

FILE holds one values card per line (``card_id, title, description, detail, policies,
cluster``); it defaults to ``../shared/data/dedupe-dev.jsonl`` beside the repository. Prints
candidate recall@1/5/10 (is a true duplicate among a card's k nearest others), pairwise
precision/recall/F1 of the proposed clusters against ``cluster``, the upper bound a perfect
"same value?" judge would reach, and timings. When an LLM is configured (``OPENAI_BASE_URL`` or
``OPENAI_API_KEY``, models as in the app's settings) it also runs the app's own "same value?"
check (`elicit.dedupe.make_same_value_check`, prompt ``same_value.md``) on the candidate pairs
and scores the clusters it decides; ``--no-llm`` skips that. The last line is machine-readable:
``dedupe_quality: recall@5=R f1=F`` (plus `` llm_f1=F`` with the LLM check). Exits 0 whatever
the scores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from elicit.clustering import (
    CANDIDATE_MARGIN,
    DEFAULT_THRESHOLD,
    pairwise_prf,
    propose_clusters,
    recall_at_k,
)
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
    parser.add_argument("--no-llm", action="store_true", help="skip the LLM same-value check")
    parser.add_argument("--workers", type=int, default=4, help="concurrent LLM checks")
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
    llm_f1: float | None = None
    if args.no_llm:
        print("llm check: skipped (--no-llm)")
    elif os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_KEY"):
        llm_f1 = llm_check(cards, ids, vectors, labels, args.threshold, args.workers)
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
    llm_part = f" llm_f1={llm_f1:.3f}" if llm_f1 is not None else ""
    print(f"dedupe_quality: recall@5={recalls[5]:.3f} f1={scores.f1:.3f}{llm_part}")
    return 0


def llm_check(
    cards: list[dict],
    ids: list[int],
    vectors,
    labels: dict[int, object],
    threshold: float,
    workers: int,
) -> float | None:
    """Cluster with the app's LLM "same value?" check; print its scores; return its F1."""
    from elicit.config import Settings
    from elicit.dedupe import candidate_pairs, make_same_value_check
    from elicit.llm import Gateway, LLMError

    settings = Settings()
    gateway = Gateway(settings=settings, engine=None)  # no ledger: nothing is stored
    check = make_same_value_check(gateway)
    by_id = dict(zip(ids, cards, strict=True))
    pairs = list(candidate_pairs(vectors, ids, threshold - CANDIDATE_MARGIN))
    t0 = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            answers = list(pool.map(lambda p: check(by_id[p[0]], by_id[p[1]]), pairs))
        verdicts = dict(zip(pairs, answers, strict=True))

        def same_value(a: int, b: int) -> bool:
            key = (min(a, b), max(a, b))
            if key not in verdicts:
                verdicts[key] = check(by_id[key[0]], by_id[key[1]])
            return verdicts[key]

        clusters = propose_clusters(vectors, ids, threshold=threshold, same_value=same_value)
    except LLMError as exc:
        print(f"llm check: failed ({exc})")
        return None
    finally:
        gateway.close()
    elapsed = time.perf_counter() - t0
    agree = sum(1 for (a, b), same in verdicts.items() if same == (labels[a] == labels[b]))
    scores = pairwise_prf(clusters, labels)
    where = settings.openai_base_url or "api.openai.com"
    print(
        f"llm check   {settings.model_for('dedupe')} at {where}: {len(verdicts)} calls in "
        f"{elapsed:.1f} s, verdicts agree with the labels on {agree}/{len(verdicts)} pairs"
    )
    print(
        f"with llm    precision {scores.precision:.3f}  recall {scores.recall:.3f}  "
        f"f1 {scores.f1:.3f}"
    )
    return scores.f1


if __name__ == "__main__":
    sys.exit(main())
