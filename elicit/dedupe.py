"""Batch deduplication of a deliberation's values cards, and merging or splitting by hand.

Cards are placed on a canonical value one by one as they are submitted (`elicit.values`), so
values already exist when this runs; batch deduplication looks at all of a deliberation's
submitted cards together and corrects what the online step could not see.

- `propose` is the dry run. It embeds every submitted, non-archived card in one call, clusters
  them (`elicit.clustering.propose_clusters`), asks the LLM "same value?" about each candidate
  pair when a gateway is given, and maps each cluster onto the canonical value it will become:
  the existing value most of its cards point to is reused, other values whose cards all moved
  are merged into it, and cards the clustering separates from their value are split out. It
  writes nothing but the gateway's ledger rows and returns a `DedupePlan`.
- `apply` carries out a plan in one transaction and logs every decision (`DedupeDecision`, one
  `run_id` per plan). Applying the same plan again changes nothing; a plan whose cards moved in
  the meantime is refused (`StalePlanError`) rather than half-applied.
- `merge_values` and `split_card` are the facilitator's corrections, logged with method
  "manual". A value they touched is *locked*: later batch runs leave its cards where the
  facilitator put them (they are listed, never moved, merged or re-titled).

LLM verdicts are written into the decision log when a plan is applied and reused by later runs
for the same two card texts and prompt version, so re-running deduplication does not pay for
the same question twice.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session

from db import queries
from db.engine import session_scope
from db.models import ValuesCard
from elicit.clustering import CANDIDATE_MARGIN, DEFAULT_MAX_NEIGHBORS, propose_clusters
from elicit.embeddings import Embedder, card_text, cosine_top_k
from elicit.prompts import load_prompt, quote_data
from elicit.values import threshold_for

if TYPE_CHECKING:  # the gateway (and openai) load only when an LLM is configured
    from elicit.llm import Gateway

__all__ = [
    "ApplyResult",
    "DecisionRow",
    "DedupeError",
    "DedupePlan",
    "ManualResult",
    "PlannedCard",
    "PlannedCluster",
    "SameValueVerdict",
    "StalePlanError",
    "ValueSummary",
    "Verdict",
    "apply",
    "candidate_pairs",
    "list_decisions",
    "list_values",
    "make_same_value_check",
    "merge_values",
    "propose",
    "split_card",
]

Progress = Callable[[int, int], None]
Method = Literal["embedding", "llm"]
PROMPT_NAME = "same_value"
TOOL_NAME = "judge_same_value"
#: Concurrent "same value?" calls during a dry run (the gateway is thread-safe).
DEFAULT_WORKERS = 4


class DedupeError(Exception):
    """Deduplication cannot go on; the message is fit to show a facilitator."""


class StalePlanError(DedupeError):
    """The cards or values changed since the dry run; propose again."""


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One answer to "same value?" about two cards (`key` identifies the texts and prompt)."""

    first_id: int
    second_id: int
    similarity: float
    same: bool
    key: str
    reused: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.first_id,
            "b": self.second_id,
            "similarity": round(self.similarity, 4),
            "same": self.same,
            "key": self.key,
        }


@dataclass(frozen=True)
class PlannedCard:
    """A card in a plan, with the canonical value it was linked to when the plan was made."""

    id: int
    title: str
    value_id: int | None


@dataclass(frozen=True)
class PlannedCluster:
    """A proposed canonical value: its cards and what applying the plan does for it.

    Attributes
    ----------
    cards : tuple of PlannedCard
        Member cards, ascending id.
    representative_id : int
        The most central card; the value takes its title, description and policies.
    target_id : int or None
        The existing canonical value this cluster becomes, or None for a new value.
    mean_similarity : float
        Mean cosine over member pairs (1.0 for one card).
    merged_value_ids : tuple of int
        Existing values merged into this one (their votes and hypotheses move here).
    split_card_ids : tuple of int
        Cards that leave another value that stays, to join this one.
    assigned_card_ids : tuple of int
        Cards that had no canonical value yet.
    locked : bool
        A value a facilitator merged or split by hand: listed, never changed by a batch run.
    retitles : bool
        The reused value's text differs from the representative card's and will be replaced.
    """

    cards: tuple[PlannedCard, ...]
    representative_id: int
    target_id: int | None
    mean_similarity: float
    merged_value_ids: tuple[int, ...] = ()
    split_card_ids: tuple[int, ...] = ()
    assigned_card_ids: tuple[int, ...] = ()
    locked: bool = False
    retitles: bool = False

    @property
    def card_ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.cards)

    @property
    def title(self) -> str:
        """The representative card's title (what the value will be called)."""
        return next(c.title for c in self.cards if c.id == self.representative_id)

    @property
    def changes(self) -> bool:
        """True when applying changes something: a new value, a merge, a split, a card placed,
        or the value's text."""
        return bool(
            not self.locked
            and (
                self.target_id is None
                or self.merged_value_ids
                or self.split_card_ids
                or self.assigned_card_ids
                or self.retitles
            )
        )


@dataclass(frozen=True)
class DedupePlan:
    """A dry run: clusters and the canonical values they map to. Nothing is written yet.

    `method` is "llm" when a "same value?" check decided the merges, "embedding" when only the
    similarity threshold did.
    """

    run_id: str
    deliberation_id: int
    method: Method
    embedder: str
    threshold: float
    clusters: tuple[PlannedCluster, ...]
    verdicts: tuple[Verdict, ...] = ()
    llm_calls: int = 0
    prompt_hash: str | None = None

    @property
    def merges(self) -> list[tuple[int, int | None, int]]:
        """(merged value, the value it goes into or None for a new one, cluster index)."""
        return [
            (m, c.target_id, i) for i, c in enumerate(self.clusters) for m in c.merged_value_ids
        ]

    @property
    def splits(self) -> list[tuple[int, int | None, int | None, int]]:
        """(card, the value it leaves, the value it joins or None for new, cluster index)."""
        out = []
        for i, c in enumerate(self.clusters):
            by_id = {card.id: card for card in c.cards}
            out += [(cid, by_id[cid].value_id, c.target_id, i) for cid in c.split_card_ids]
        return out

    @property
    def new_values(self) -> int:
        return sum(1 for c in self.clusters if c.target_id is None and not c.locked)

    @property
    def card_count(self) -> int:
        return sum(len(c.cards) for c in self.clusters)

    @property
    def has_changes(self) -> bool:
        return any(c.changes for c in self.clusters)

    def summary(self) -> str:
        """One line for people: what applying would do."""
        how = "with the LLM check" if self.method == "llm" else "by similarity only (no LLM)"
        locked = sum(1 for c in self.clusters if c.locked)
        retitled = sum(1 for c in self.clusters if c.retitles and not c.locked)
        text = (
            f"{self.card_count} cards in {len(self.clusters)} values, {how}: "
            f"{self.new_values} new, {len(self.merges)} merge(s), {len(self.splits)} split(s), "
            f"{retitled} text update(s)"
        )
        if locked:
            text += f", {locked} set by hand (left as they are)"
        return text

    def to_json(self, value_ids: Sequence[int | None] | None = None) -> dict[str, Any]:
        """``{"clusters": [{"canonical_id": id or "new", "card_ids": [...]}, ...]}``; pass the
        applied ids (`ApplyResult.value_ids`) to show the values they became."""
        ids = list(value_ids) if value_ids is not None else [c.target_id for c in self.clusters]
        return {
            "clusters": [
                {"canonical_id": "new" if vid is None else vid, "card_ids": list(c.card_ids)}
                for c, vid in zip(self.clusters, ids, strict=True)
            ]
        }


@dataclass(frozen=True)
class ApplyResult:
    """What `apply` changed. `value_ids` holds each cluster's canonical value, in plan order."""

    run_id: str
    already_applied: bool
    value_ids: tuple[int, ...]
    created: int = 0
    merged: int = 0
    split: int = 0
    assigned: int = 0
    retitled: int = 0
    votes_dropped: int = 0
    decisions: int = 0

    def summary(self) -> str:
        if self.already_applied:
            return f"run {self.run_id} was applied before; nothing changed"
        return (
            f"run {self.run_id}: {self.created} new value(s), {self.merged} merge(s), "
            f"{self.split} split(s), {self.assigned} card(s) assigned, {self.retitled} value "
            f"text(s) updated, {self.votes_dropped} duplicate vote(s) dropped; "
            f"{self.decisions} decisions logged"
        )


@dataclass(frozen=True)
class ManualResult:
    """What a merge or split by hand did."""

    run_id: str
    value_id: int
    merged_value_ids: tuple[int, ...] = ()
    card_ids: tuple[int, ...] = ()
    votes_dropped: int = 0


@dataclass(frozen=True)
class ValueSummary:
    """A live canonical value with its submitted cards, for pickers."""

    id: int
    title: str
    card_ids: tuple[int, ...]
    card_titles: tuple[str, ...]
    locked: bool


@dataclass(frozen=True)
class DecisionRow:
    """One row of the decision log, ready for a table."""

    id: int
    created_at: datetime
    run_id: str
    action: str
    method: str
    actor: str
    card_id: int | None
    canonical_value_id: int | None
    score: float | None
    note: str
    detail: dict[str, Any] = field(default_factory=dict)


# --- the LLM check ------------------------------------------------------------------------------


class SameValueVerdict(BaseModel):
    """What the judge_same_value tool returns."""

    reason: str = Field(
        min_length=1,
        max_length=1200,
        description="One or two sentences: what each card attends to, and why that is or is "
        "not one value.",
    )
    same_value: bool = Field(description="True when both cards express the same value.")


_CARD_TAG = re.compile(r"<(\s*/?\s*card_[ab])", re.IGNORECASE)


def _card_block(card: ValuesCard | Mapping[str, Any]) -> str:
    """A card as plain lines; look-alikes of either card's delimiters are neutralised (each
    block's own label is also handled by `quote_data`)."""
    get = card.get if isinstance(card, Mapping) else lambda k, d=None: getattr(card, k, d)
    lines = [f"Title: {get('title', '')}", f"Description: {get('description', '')}"]
    policies = list(get("policies", None) or [])
    if policies:
        lines.append("What they attend to:")
        lines += [f"- {p}" for p in policies]
    detail = get("detail", "") or ""
    if detail.strip():
        lines.append(f"More detail: {detail.strip()}")
    return _CARD_TAG.sub(lambda m: "&lt;" + m.group(1), "\n".join(lines))


def make_same_value_check(
    gateway: Gateway, *, deliberation_id: int | None = None
) -> Callable[[ValuesCard | Mapping[str, Any], ValuesCard | Mapping[str, Any]], bool]:
    """``check(card_a, card_b) -> bool``: the LLM's "same value?" verdict on two cards.

    Cards are rows or mappings with title, description, policies (and optionally detail); their
    text enters the prompt only as quoted data. One structured call per pair, purpose "dedupe",
    prompt `same_value.md`. Raises `elicit.llm.LLMError` when the provider fails.
    """
    from elicit.llm import CallMeta

    prompt = load_prompt(PROMPT_NAME)
    meta = CallMeta(purpose="dedupe", deliberation_id=deliberation_id)

    def check(a: ValuesCard | Mapping[str, Any], b: ValuesCard | Mapping[str, Any]) -> bool:
        system = prompt.render(
            card_a=quote_data("card_a", _card_block(a)),
            card_b=quote_data("card_b", _card_block(b)),
        )
        verdict = gateway.structured(
            [
                {"role": "system", "content": system},
                {"role": "user", "content": "Judge the two cards with the judge_same_value tool."},
            ],
            SameValueVerdict,
            meta=meta,
            prompt=prompt,
            tool_name=TOOL_NAME,
            tool_description="Say whether two values cards express the same value.",
        )
        return bool(verdict.same_value)

    return check


def _pair_key(prompt_hash: str, text_a: str, text_b: str) -> str:
    first, second = sorted((text_a, text_b))
    digest = hashlib.sha256(f"{prompt_hash}\0{first}\0{second}".encode()).hexdigest()
    return digest[:24]


# --- dry run ------------------------------------------------------------------------------------


@dataclass
class _Snapshot:
    cards: list[ValuesCard]
    live_values: dict[int, tuple[Any, ...]]  # id -> text, to see whether applying retitles
    locked: set[int]
    known: dict[str, bool]


def _text_of(row: Any) -> tuple[Any, ...]:
    return (row.title, row.description, row.detail, list(row.policies))


def _locked_values(session: Session, deliberation_id: int, live: set[int]) -> set[int]:
    manual = queries.list_dedupe_decisions(
        session, deliberation_id=deliberation_id, methods=["manual"]
    )
    return {
        d.canonical_value_id
        for d in manual
        if d.action in ("merge", "split", "create") and d.canonical_value_id in live
    }


def _known_verdicts(session: Session, deliberation_id: int) -> dict[str, bool]:
    """Verdicts logged by applied runs, newest first wins."""
    known: dict[str, bool] = {}
    for d in queries.list_dedupe_decisions(
        session, deliberation_id=deliberation_id, methods=["llm"]
    ):
        for check in d.detail.get("checks", []):
            key = check.get("key")
            if isinstance(key, str) and key not in known:
                known[key] = bool(check.get("same"))
    return known


def _snapshot(session: Session, deliberation_id: int) -> _Snapshot:
    queries.get_deliberation(session, id=deliberation_id)  # NotFound for a wrong id
    cards = queries.list_submitted_cards(session, deliberation_id=deliberation_id)
    live = {
        v.id: _text_of(v)
        for v in queries.list_canonical_values(session, deliberation_id=deliberation_id)
        if v.id is not None
    }
    return _Snapshot(
        cards=cards,
        live_values=live,
        locked=_locked_values(session, deliberation_id, set(live)),
        known=_known_verdicts(session, deliberation_id),
    )


def propose(
    engine_or_session: Engine | Session,
    *,
    deliberation_id: int,
    embedder: Embedder,
    gateway: Gateway | None = None,
    progress: Progress | None = None,
    threshold: float | None = None,
    workers: int = DEFAULT_WORKERS,
    verdict_cache: MutableMapping[str, bool] | None = None,
) -> DedupePlan:
    """Dry run: cluster the deliberation's submitted cards and map clusters onto values.

    Parameters
    ----------
    engine_or_session : Engine or Session
        Read only; with an engine, no database session stays open during LLM calls.
    deliberation_id : int
    embedder : Embedder
        All cards are embedded in one call (vectors of `LocalEmbedder` are comparable only
        within one call).
    gateway : Gateway, optional
        When given, every candidate pair is put to the LLM ("same value?"), whose verdicts
        decide the merges; without it the similarity threshold alone decides.
    progress : callable, optional
        ``progress(done, total)`` after each step (embedding, each LLM check, mapping).
    threshold : float, optional
        Similarity cut; defaults to `elicit.values.threshold_for(embedder)`.
    workers : int, optional
        Concurrent LLM checks.
    verdict_cache : mutable mapping, optional
        Verdicts by pair key; answers found here are not asked again and new answers are added,
        so a dry run that failed half-way resumes without repeating calls.

    Returns
    -------
    DedupePlan

    Raises
    ------
    DedupeError
        When the embedding or the LLM fails (the message says why, kindly).
    """
    if isinstance(engine_or_session, Session):
        snap = _snapshot(engine_or_session, deliberation_id)
    else:
        with session_scope(engine_or_session) as s:
            snap = _snapshot(s, deliberation_id)
    threshold = threshold_for(embedder) if threshold is None else threshold
    run_id = uuid.uuid4().hex[:16]
    locked_cards = [c for c in snap.cards if c.canonical_value_id in snap.locked]
    cards = [c for c in snap.cards if c.canonical_value_id not in snap.locked]
    texts = {c.id: card_text(c.title, c.description, c.policies, c.detail) for c in cards}
    ids = [c.id for c in cards if c.id is not None]
    by_id = {c.id: c for c in cards}
    prompt_hash = load_prompt(PROMPT_NAME).hash if gateway is not None else None

    done = 0
    total = 2

    def tick(step: int = 1) -> None:
        nonlocal done
        done += step
        if progress is not None:
            progress(min(done, total), total)

    if progress is not None:
        progress(0, total)
    try:
        vectors = (
            embedder.embed([texts[i] for i in ids]) if ids else np.zeros((0, 1), dtype=np.float32)
        )
    except Exception as exc:
        raise _as_dedupe_error(exc, "embed the cards") from exc
    tick()

    verdicts: dict[tuple[int, int], Verdict] = {}
    calls = 0
    if gateway is not None and ids:
        assert prompt_hash is not None
        cache = verdict_cache if verdict_cache is not None else {}
        pairs = candidate_pairs(vectors, ids, threshold - CANDIDATE_MARGIN)
        todo: list[tuple[tuple[int, int], float, str]] = []
        for (a, b), sim in pairs.items():
            key = _pair_key(prompt_hash, texts[a], texts[b])
            if key in cache or key in snap.known:
                same = cache[key] if key in cache else snap.known[key]
                verdicts[(a, b)] = Verdict(a, b, sim, same, key, reused=True)
            else:
                todo.append(((a, b), sim, key))
        total += len(todo)
        check = make_same_value_check(gateway, deliberation_id=deliberation_id)

        def ask(item: tuple[tuple[int, int], float, str]) -> Verdict:
            (a, b), sim, key = item
            return Verdict(a, b, sim, check(by_id[a], by_id[b]), key)

        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            for future in as_completed([pool.submit(ask, item) for item in todo]):
                verdict = future.result()
                verdicts[(verdict.first_id, verdict.second_id)] = verdict
                cache[verdict.key] = verdict.same
                calls += 1
                tick()
        except Exception as exc:
            raise _as_dedupe_error(exc, "check the candidate pairs") from exc
        finally:
            # A failure stops the calls not yet started; answers so far stay in the cache.
            pool.shutdown(wait=True, cancel_futures=True)

        def same_value(a: int, b: int) -> bool:
            nonlocal calls
            pair = (min(a, b), max(a, b))
            found = verdicts.get(pair)
            if found is None:  # not a candidate by our count: ask now rather than guess
                sim = float(vectors[ids.index(a)] @ vectors[ids.index(b)])
                key = _pair_key(prompt_hash, texts[pair[0]], texts[pair[1]])
                try:
                    found = Verdict(*pair, sim, check(by_id[pair[0]], by_id[pair[1]]), key)
                except Exception as exc:
                    raise _as_dedupe_error(exc, "check the candidate pairs") from exc
                verdicts[pair] = found
                cache[key] = found.same
                calls += 1
            return found.same

        clusters = propose_clusters(
            vectors,
            ids,
            threshold=threshold,
            same_value=same_value,
            max_neighbors=DEFAULT_MAX_NEIGHBORS,
        )
    else:
        clusters = propose_clusters(vectors, ids, threshold=threshold) if ids else []

    groups = [(list(c.card_ids), c.representative_id, c.mean_similarity) for c in clusters]
    current = {
        c.id: _live(c.canonical_value_id, set(snap.live_values)) for c in cards if c.id is not None
    }
    titles = {c.id: c.title for c in cards if c.id is not None}
    planned = [
        replace(p, retitles=_text_of(by_id[p.representative_id]) != snap.live_values[p.target_id])
        if p.target_id is not None
        else p
        for p in _map_onto_values(groups, current, titles)
    ]
    planned += _locked_clusters(locked_cards)
    tick()
    return DedupePlan(
        run_id=run_id,
        deliberation_id=deliberation_id,
        method="llm" if gateway is not None else "embedding",
        embedder=embedder.name,
        threshold=threshold,
        clusters=tuple(planned),
        verdicts=tuple(sorted(verdicts.values(), key=lambda v: (v.first_id, v.second_id))),
        llm_calls=calls,
        prompt_hash=prompt_hash,
    )


def _live(value_id: int | None, live: set[int]) -> int | None:
    """A card's value, or None when it has none or it was archived."""
    return value_id if value_id in live else None


def _as_dedupe_error(exc: Exception, what: str) -> DedupeError:
    from elicit.llm import LLMError

    if isinstance(exc, LLMError):
        return DedupeError(f"Could not {what}: {exc.user_message} (Detail: {exc})")
    if isinstance(exc, DedupeError):
        return exc
    if isinstance(exc, ValueError):
        return DedupeError(f"Could not {what}: {exc}")
    raise exc


def candidate_pairs(
    vectors: np.ndarray, ids: list[int], floor: float
) -> dict[tuple[int, int], float]:
    """The pairs `propose_clusters` will ask about: each card's nearest neighbours above
    `floor` (the same rule, so all of them can be asked at once, concurrently)."""
    n = len(ids)
    if n < 2:
        return {}
    neighbors, sims = cosine_top_k(vectors, np.arange(n), DEFAULT_MAX_NEIGHBORS)
    pairs: dict[tuple[int, int], float] = {}
    for i in range(n):
        for j, s in zip(neighbors[i].tolist(), sims[i].tolist(), strict=True):
            if s >= floor:
                a, b = ids[i], ids[j]
                pairs[(min(a, b), max(a, b))] = float(s)
    return dict(sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])))


def _map_onto_values(
    groups: Sequence[tuple[list[int], int, float]],
    current: Mapping[int, int | None],
    titles: Mapping[int, str],
) -> list[PlannedCluster]:
    """Choose each cluster's canonical value and the merges and splits that implies (pure).

    Greedy over (cluster, value) pairs, most shared cards first (then larger cluster, lower
    value id): a cluster takes an existing value when neither is taken yet. Clusters left
    over become new values. A value no cluster took is merged into the cluster that holds most
    of its cards; every other card that leaves its value is a split.

    >>> plan = _map_onto_values([([1, 2, 3], 1, 0.5), ([4], 4, 1.0)],
    ...                         {1: 10, 2: 11, 3: 11, 4: 10}, {i: "t" for i in range(1, 5)})
    >>> [(c.target_id, c.merged_value_ids, c.split_card_ids) for c in plan]
    [(11, (), (1,)), (10, (), ())]
    """
    shared: dict[tuple[int, int], int] = {}
    for k, (members, _, _) in enumerate(groups):
        for card in members:
            value = current.get(card)
            if value is not None:
                shared[(k, value)] = shared.get((k, value), 0) + 1
    order = sorted(shared, key=lambda kv: (-shared[kv], -len(groups[kv[0]][0]), kv[1], kv[0]))
    target: dict[int, int] = {}
    taken: set[int] = set()
    for k, value in order:
        if k not in target and value not in taken:
            target[k] = value
            taken.add(value)
    merged_into: dict[int, int] = {}  # value -> cluster index
    for left in sorted({v for (_, v) in shared} - taken):
        merged_into[left] = min(
            (k for (k, v) in shared if v == left), key=lambda k: (-shared[(k, left)], k)
        )
    planned = []
    for k, (members, representative, mean) in enumerate(groups):
        goal = target.get(k)
        splits, assigned = [], []
        for card in members:
            now = current.get(card)
            if now is None:
                assigned.append(card)
            elif now != goal and merged_into.get(now) != k:
                splits.append(card)
        planned.append(
            PlannedCluster(
                cards=tuple(PlannedCard(c, titles[c], current.get(c)) for c in sorted(members)),
                representative_id=representative,
                target_id=goal,
                mean_similarity=float(mean),
                merged_value_ids=tuple(sorted(v for v, kk in merged_into.items() if kk == k)),
                split_card_ids=tuple(sorted(splits)),
                assigned_card_ids=tuple(sorted(assigned)),
            )
        )
    return planned


def _locked_clusters(cards: Iterable[ValuesCard]) -> list[PlannedCluster]:
    by_value: dict[int, list[ValuesCard]] = {}
    for card in cards:
        assert card.canonical_value_id is not None
        by_value.setdefault(card.canonical_value_id, []).append(card)
    return [
        PlannedCluster(
            cards=tuple(PlannedCard(c.id or 0, c.title, value) for c in members),
            representative_id=members[0].id or 0,
            target_id=value,
            mean_similarity=1.0,
            locked=True,
        )
        for value, members in sorted(by_value.items())
    ]


# --- apply --------------------------------------------------------------------------------------


def _check_fresh(session: Session, plan: DedupePlan) -> None:
    """Refuse a plan whose cards or values changed since the dry run."""
    problems: list[str] = []
    for cluster in plan.clusters:
        if cluster.locked:
            continue
        for planned in cluster.cards:
            try:
                card: ValuesCard | None = queries.get_card(session, card_id=planned.id)
            except queries.NotFound:
                card = None
            if card is None or card.deliberation_id != plan.deliberation_id:
                problems.append(f"card {planned.id} is gone")
            elif card.archived or card.submitted_at is None:
                problems.append(f"card {planned.id} was archived")
            else:
                now = card.canonical_value_id
                if now is not None and queries.get_canonical_value(session, value_id=now).archived:
                    now = None
                if now != planned.value_id:
                    problems.append(f"card {planned.id} moved to another value")
        for value_id in (cluster.target_id, *cluster.merged_value_ids):
            if value_id is None:
                continue
            try:
                value = queries.get_canonical_value(session, value_id=value_id)
            except queries.NotFound:
                problems.append(f"value {value_id} is gone")
                continue
            if value.archived:
                problems.append(f"value {value_id} was archived")
    if problems:
        shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
        raise StalePlanError(
            f"The cards changed since this dry run ({shown}). Run the dry run again."
        )


def _applied_value_ids(session: Session, plan: DedupePlan) -> tuple[int, ...]:
    """Each cluster's value as recorded by the run that applied `plan`."""
    found: dict[int, int] = {}
    for d in queries.list_dedupe_decisions(
        session, deliberation_id=plan.deliberation_id, run_id=plan.run_id
    ):
        k = d.detail.get("cluster")
        if d.action in ("create", "keep") and isinstance(k, int) and d.canonical_value_id:
            found[k] = d.canonical_value_id
    out = []
    for k, c in enumerate(plan.clusters):
        value = found.get(k, c.target_id)
        out.append(value if value is not None else 0)
    return tuple(out)


def apply(engine: Engine, plan: DedupePlan, *, actor: str) -> ApplyResult:
    """Carry out a dry run's plan in one transaction and log every decision under its run id.

    For each cluster: a new value (from the representative card) or the reused one, whose text
    is updated from the representative; cards split out of other values or never placed are
    linked to it; values merged into it bring their cards, votes and hypotheses
    (`db.queries.merge_value_rows`) and are archived. Locked clusters are left alone.

    Applying a plan a second time changes nothing (the log already holds its run id).

    Raises
    ------
    StalePlanError
        When a card or value of the plan changed since the dry run.
    """
    method = plan.method
    with session_scope(engine) as s:
        # No card placement and no other apply of this deliberation until this commits: the
        # freshness check below then holds for the whole transaction.
        queries.lock_values(s, deliberation_id=plan.deliberation_id)
        if queries.count_run_decisions(s, run_id=plan.run_id):
            return ApplyResult(plan.run_id, True, _applied_value_ids(s, plan))
        _check_fresh(s, plan)
        counts = {"created": 0, "merged": 0, "split": 0, "assigned": 0, "retitled": 0}
        votes_dropped = 0
        decisions = 0
        value_ids: list[int] = []

        def log(action: str, **fields: Any) -> None:
            nonlocal decisions
            queries.create_dedupe_decision(
                s,
                deliberation_id=plan.deliberation_id,
                run_id=plan.run_id,
                action=action,
                method=method,
                actor=actor,
                commit=False,
                **fields,
            )
            decisions += 1

        for k, cluster in enumerate(plan.clusters):
            if cluster.locked:
                assert cluster.target_id is not None
                value_ids.append(cluster.target_id)
                continue
            rep = queries.get_card(s, card_id=cluster.representative_id)
            text: dict[str, Any] = {
                "title": rep.title,
                "description": rep.description,
                "detail": rep.detail,
                "policies": list(rep.policies),
            }
            checks = [
                v.to_json()
                for v in plan.verdicts
                if v.first_id in cluster.card_ids or v.second_id in cluster.card_ids
            ]
            detail: dict[str, Any] = {
                "cluster": k,
                "card_ids": list(cluster.card_ids),
                "representative_id": rep.id,
                "embedder": plan.embedder,
                "threshold": plan.threshold,
            }
            if checks:
                detail["checks"] = checks
                detail["prompt_hash"] = plan.prompt_hash
            if cluster.target_id is None:
                value = queries.create_canonical_value(
                    s, deliberation_id=plan.deliberation_id, commit=False, **text
                )
                assert value.id is not None
                value_id = value.id
                counts["created"] += 1
                log(
                    "create",
                    card_id=rep.id,
                    canonical_value_id=value_id,
                    score=cluster.mean_similarity,
                    detail=detail,
                )
            else:
                value_id = cluster.target_id
                value = queries.get_canonical_value(s, value_id=value_id)
                old = {
                    "title": value.title,
                    "description": value.description,
                    "detail": value.detail,
                    "policies": list(value.policies),
                }
                retitled = old != text
                if retitled:
                    queries.update_canonical_value(s, value_id=value_id, commit=False, **text)
                    counts["retitled"] += 1
                    detail["previous_text"] = old
                detail["text_updated"] = retitled
                log(
                    "keep",
                    card_id=rep.id,
                    canonical_value_id=value_id,
                    score=cluster.mean_similarity,
                    detail=detail,
                )
            value_ids.append(value_id)
            for card_id in cluster.split_card_ids:
                before = next(c.value_id for c in cluster.cards if c.id == card_id)
                queries.link_card_to_value(
                    s, card_id=card_id, canonical_value_id=value_id, commit=False
                )
                counts["split"] += 1
                log(
                    "split",
                    card_id=card_id,
                    canonical_value_id=value_id,
                    score=cluster.mean_similarity,
                    detail={"cluster": k, "from_value_id": before},
                )
            for card_id in cluster.assigned_card_ids:
                queries.link_card_to_value(
                    s, card_id=card_id, canonical_value_id=value_id, commit=False
                )
                counts["assigned"] += 1
                log(
                    "assign",
                    card_id=card_id,
                    canonical_value_id=value_id,
                    score=cluster.mean_similarity,
                    detail={"cluster": k},
                )
        s.flush()
        for k, cluster in enumerate(plan.clusters):
            for merged_id in cluster.merged_value_ids:
                report = queries.merge_value_rows(s, keep_id=value_ids[k], merge_id=merged_id)
                votes_dropped += len(report["votes_dropped"])
                counts["merged"] += 1
                log(
                    "merge",
                    canonical_value_id=value_ids[k],
                    score=cluster.mean_similarity,
                    detail=dict(report, cluster=k),
                )
        s.commit()
    return ApplyResult(
        plan.run_id,
        False,
        tuple(value_ids),
        votes_dropped=votes_dropped,
        decisions=decisions,
        **counts,
    )


# --- by hand ------------------------------------------------------------------------------------


def _new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def merge_values(
    engine: Engine,
    *,
    keep_id: int,
    merge_ids: Iterable[int],
    actor: str,
    deliberation_id: int | None = None,
) -> ManualResult:
    """Merge values into `keep_id` by hand: cards, votes and hypotheses move, the merged values
    are archived, each merge is logged (method "manual"), and the kept value is locked against
    batch runs. `deliberation_id`, when given, must own every value."""
    merge_list = sorted({int(m) for m in merge_ids})
    if not merge_list:
        raise DedupeError("Pick at least one value to merge into the one you keep.")
    if keep_id in merge_list:
        raise DedupeError("The value you keep cannot also be one of the values merged into it.")
    run_id = _new_run_id()
    dropped = 0
    card_ids: list[int] = []
    with session_scope(engine) as s:
        values = {}
        for value_id in [keep_id, *merge_list]:
            try:
                values[value_id] = queries.get_canonical_value(s, value_id=value_id)
            except queries.NotFound:
                raise DedupeError(f"There is no value {value_id}.") from None
        owners = {v.deliberation_id for v in values.values()}
        if len(owners) != 1 or (deliberation_id is not None and owners != {deliberation_id}):
            raise DedupeError("These values do not all belong to this deliberation.")
        archived = [v.id for v in values.values() if v.archived]
        if archived:
            raise DedupeError(f"Value {archived[0]} was archived (merged before); reload.")
        owner = owners.pop()
        for merged_id in merge_list:
            report = queries.merge_value_rows(s, keep_id=keep_id, merge_id=merged_id)
            dropped += len(report["votes_dropped"])
            card_ids += report["card_ids"]
            queries.create_dedupe_decision(
                s,
                deliberation_id=owner,
                run_id=run_id,
                action="merge",
                method="manual",
                canonical_value_id=keep_id,
                actor=actor,
                detail=report,
                commit=False,
            )
        s.commit()
    return ManualResult(run_id, keep_id, tuple(merge_list), tuple(card_ids), dropped)


def split_card(
    engine: Engine, *, card_id: int, actor: str, deliberation_id: int | None = None
) -> ManualResult:
    """Give a card a canonical value of its own (text from the card), logged (method
    "manual"). The value it leaves keeps its votes and hypotheses. The new value is locked
    against batch runs."""
    run_id = _new_run_id()
    with session_scope(engine) as s:
        try:
            card = queries.get_card(s, card_id=card_id)
        except queries.NotFound:
            raise DedupeError(f"There is no card {card_id}.") from None
        if deliberation_id is not None and card.deliberation_id != deliberation_id:
            raise DedupeError("This card does not belong to this deliberation.")
        before = card.canonical_value_id
        if before is not None:
            others = [c for c in queries.list_value_cards(s, value_id=before) if c.id != card_id]
            if not others:
                raise DedupeError("This card is the only card of its value already.")
        value = queries.create_canonical_value(
            s,
            deliberation_id=card.deliberation_id,
            title=card.title,
            description=card.description,
            detail=card.detail,
            policies=list(card.policies),
            commit=False,
        )
        assert value.id is not None
        queries.link_card_to_value(s, card_id=card_id, canonical_value_id=value.id, commit=False)
        queries.create_dedupe_decision(
            s,
            deliberation_id=card.deliberation_id,
            run_id=run_id,
            action="split" if before is not None else "create",
            method="manual",
            card_id=card_id,
            canonical_value_id=value.id,
            actor=actor,
            detail={"from_value_id": before},
            commit=False,
        )
        s.commit()
        return ManualResult(run_id, value.id, card_ids=(card_id,))


# --- reading for the console ------------------------------------------------------------------


def list_values(engine: Engine, *, deliberation_id: int) -> list[ValueSummary]:
    """Live canonical values of a deliberation with their submitted cards (for pickers)."""
    with session_scope(engine) as s:
        values = queries.list_canonical_values(s, deliberation_id=deliberation_id)
        live = {v.id for v in values if v.id is not None}
        locked = _locked_values(s, deliberation_id, live)
        cards: dict[int, list[ValuesCard]] = {}
        for card in queries.list_submitted_cards(s, deliberation_id=deliberation_id):
            if card.canonical_value_id is not None:
                cards.setdefault(card.canonical_value_id, []).append(card)
        return [
            ValueSummary(
                id=v.id,
                title=v.title,
                card_ids=tuple(c.id for c in cards.get(v.id, []) if c.id is not None),
                card_titles=tuple(c.title for c in cards.get(v.id, [])),
                locked=v.id in locked,
            )
            for v in values
            if v.id is not None
        ]


def _note(action: str, method: str, detail: Mapping[str, Any]) -> str:
    if action == "merge":
        dropped = len(detail.get("votes_dropped", []))
        moved = detail.get("votes_moved", 0)
        text = f"value {detail.get('merged_value_id')} merged in; {moved} vote(s) moved"
        if dropped:
            text += f", {dropped} duplicate or self vote(s) dropped"
        return text
    if action == "split":
        return f"left value {detail.get('from_value_id')}"
    if action == "create" and detail.get("online"):
        return "new value when the card was submitted"
    if action == "assign" and detail.get("online"):
        return "joined a value when the card was submitted"
    if action in ("create", "keep"):
        cards = detail.get("card_ids", [])
        text = f"{len(cards)} card(s)" if cards else ""
        if detail.get("text_updated"):
            text += ", text updated"
        checks = detail.get("checks", [])
        if checks:
            text += f", {len(checks)} LLM verdict(s)"
        return text.strip(", ")
    return ""


def list_decisions(engine: Engine, *, deliberation_id: int, limit: int = 500) -> list[DecisionRow]:
    """The decision log of a deliberation, newest first."""
    with session_scope(engine) as s:
        rows = queries.list_dedupe_decisions(s, deliberation_id=deliberation_id, limit=limit)
        return [
            DecisionRow(
                id=r.id or 0,
                created_at=r.created_at,
                run_id=r.run_id,
                action=r.action,
                method=r.method,
                actor=r.actor,
                card_id=r.card_id,
                canonical_value_id=r.canonical_value_id,
                score=r.score,
                note=_note(r.action, r.method, r.detail or {}),
                detail=dict(r.detail or {}),
            )
            for r in rows
        ]
