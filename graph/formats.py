"""Import and export formats (DESIGN.md section 7); the only module of the graph engine that
touches files.

Every ``to_*`` / ``parse_*`` function is pure (dicts and strings in, dicts and strings out); the
``read_*`` / ``write_*`` helpers only add the file I/O. Exports are deterministic (sorted rows,
sorted keys, no timestamps unless the caller passes one) and carry no personal data: vote counts
only, never a participant id.

* reference summary (``mge-summary``): :func:`to_mge_summary`, :func:`parse_mge_summary`;
* reference database dump (a folder of JSON arrays): :func:`parse_mge_dump`;
* native JSON (``mge-graph``, schema version 1): :func:`to_native_json`;
* GraphML and GEXF (Gephi) via networkx: :func:`to_graphml`, :func:`to_gexf`;
* CSV (``values.csv``, ``edges.csv``): :func:`to_csv_tables`;
* training data as JSONL: :func:`preference_pairs`, :func:`rubrics`, with dataset cards
  :func:`preference_pairs_card`, :func:`rubrics_card`.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import networkx as nx
import pandas as pd

from graph.scoring import Analysis
from graph.stats import COUNT_COLUMNS, edge_stats_from_counts
from graph.types import CHOICES, EdgeStats, GraphError, ImportFormatError, Value, Vote

__all__ = [
    "NATIVE_SCHEMA",
    "NATIVE_SCHEMA_VERSION",
    "DumpCard",
    "DumpData",
    "dumps_json",
    "parse_mge_dump",
    "parse_mge_summary",
    "preference_pairs",
    "preference_pairs_card",
    "read_mge_summary",
    "rubrics",
    "rubrics_card",
    "to_csv_tables",
    "to_gexf",
    "to_graphml",
    "to_jsonl",
    "to_mge_summary",
    "to_native_json",
    "write_csv_tables",
    "write_gexf",
    "write_graphml",
    "write_json",
    "write_jsonl",
    "write_text",
]

NATIVE_SCHEMA = "mge-graph"
NATIVE_SCHEMA_VERSION = 1

_MGE_COUNTS = {
    "marked_wiser": "markedWiser",
    "marked_not_wiser": "markedNotWiser",
    "marked_less_wise": "markedLessWise",
    "marked_unsure": "markedUnsure",
    "impressions": "impressions",
}


# --------------------------------------------------------------------------- helpers


def dumps_json(doc: Any) -> str:
    """Serialise deterministically: sorted keys, two-space indent, UTF-8 text, final newline."""
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def to_jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    """One JSON object per line, keys sorted."""
    return "".join(
        json.dumps(row, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n" for row in rows
    )


def write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` as UTF-8 (Unix newlines), creating parent folders; return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8", newline="\n")
    return target


def write_json(doc: Any, path: str | Path) -> Path:
    return write_text(dumps_json(doc), path)


def write_jsonl(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    return write_text(to_jsonl(rows), path)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- mge-summary


def _value_to_mge(value: Value) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": value.id,
        "title": value.title,
        "instructionsShort": value.description,
        "instructionsDetailed": value.detail or value.description,
        "evaluationCriteria": list(value.policies),
    }
    if value.created_at is not None:
        out["createdAt"] = value.created_at
    if value.updated_at is not None:
        out["updatedAt"] = value.updated_at
    return out


def _edge_to_mge(edge: EdgeStats) -> dict[str, Any]:
    return {
        "sourceValueId": edge.source_id,
        "wiserValueId": edge.wiser_id,
        "contexts": list(edge.contexts),
        "counts": {camel: getattr(edge, snake) for snake, camel in _MGE_COUNTS.items()},
        "summary": {"wiserLikelihood": edge.wiser_likelihood, "entropy": edge.entropy},
    }


def to_mge_summary(values: Iterable[Value], edge_stats: Iterable[EdgeStats]) -> dict[str, Any]:
    """The reference summary: kept edges only, and the values on them (in input order).

    Our ``description`` becomes ``instructionsShort``, ``detail`` (or ``description`` when
    empty) ``instructionsDetailed`` and ``policies`` ``evaluationCriteria``.

    Raises
    ------
    GraphError
        When a kept edge names a value that is not in ``values``.

    Examples
    --------
    >>> from graph.types import Value
    >>> from graph.stats import edge_stats_from_counts
    >>> values = [Value(i, f"V{i}", "Short.", "", ("THINGS",)) for i in (1, 2, 3)]
    >>> counts = dict(marked_wiser=3, marked_not_wiser=0, marked_less_wise=0,
    ...               marked_unsure=1, impressions=4)
    >>> s = to_mge_summary(values, [edge_stats_from_counts(1, 2, contexts=["When x"],
    ...                                                    counts=counts)])
    >>> [v["id"] for v in s["values"]], s["edges"][0]["summary"]
    ([1, 2], {'wiserLikelihood': 0.75, 'entropy': 1.4056390622295665})
    """
    kept = [e for e in edge_stats if e.kept]
    used = {v for e in kept for v in (e.source_id, e.wiser_id)}
    chosen = [v for v in values if v.id in used]
    missing = used - {v.id for v in chosen}
    if missing:
        raise GraphError(f"kept edges name values missing from the values: {sorted(missing)}")
    return {
        "values": [_value_to_mge(v) for v in chosen],
        "edges": [_edge_to_mge(e) for e in kept],
    }


class _Rows:
    """Field access with one clear error message naming the file and the row."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, row: int | None, message: str) -> ImportFormatError:
        where = self.source if row is None else f"{self.source} row {row}"
        return ImportFormatError(f"{where}: {message}")

    def obj(self, item: Any, row: int) -> Mapping[str, Any]:
        if not isinstance(item, dict):
            raise self.fail(row, f"expected an object, got {type(item).__name__}")
        return item

    def get(self, item: Mapping[str, Any], row: int, key: str) -> Any:
        if key not in item:
            raise self.fail(row, f"missing field '{key}'")
        return item[key]

    def integer(self, item: Mapping[str, Any], row: int, key: str) -> int:
        value = self.get(item, row, key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(row, f"field '{key}' must be an integer, got {value!r}")
        return value

    def number(self, item: Mapping[str, Any], row: int, key: str) -> float:
        value = self.get(item, row, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(row, f"field '{key}' must be a number, got {value!r}")
        return float(value)

    def text(self, item: Mapping[str, Any], row: int, key: str) -> str:
        value = self.get(item, row, key)
        if not isinstance(value, str):
            raise self.fail(row, f"field '{key}' must be a string, got {value!r}")
        return value

    def nullable_text(self, item: Mapping[str, Any], row: int, key: str) -> str:
        """A field that must be present but may be null (read as "")."""
        return "" if self.get(item, row, key) is None else self.text(item, row, key)

    def timestamp(self, item: Mapping[str, Any], row: int, key: str) -> str | None:
        value = item.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(row, f"field '{key}' must be an ISO timestamp string, got {value!r}")
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise self.fail(row, f"field '{key}' is not an ISO timestamp: {value!r}") from None
        return value

    def criteria(self, item: Mapping[str, Any], row: int, key: str) -> tuple[str, ...]:
        raw = self.get(item, row, key)
        parsed: Any = raw
        if isinstance(raw, str):
            # A string holding a list, written as JSON or as a Python literal (single quotes).
            try:
                parsed = json.loads(raw)
            except ValueError:
                try:
                    parsed = ast.literal_eval(raw)
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    raise self.fail(
                        row, f"field '{key}' is a string but not a list: {raw[:60]!r}"
                    ) from None
        if not isinstance(parsed, list | tuple) or not all(isinstance(p, str) for p in parsed):
            raise self.fail(row, f"field '{key}' must be a list of strings")
        return tuple(parsed)

    def array(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            raise self.fail(None, f"expected a JSON array of rows, got {type(data).__name__}")
        return data


def _value_from_mge(rows: _Rows, item: Any, row: int, *, contributors: int = 0) -> Value:
    obj = rows.obj(item, row)
    return Value(
        id=rows.integer(obj, row, "id"),
        title=rows.text(obj, row, "title"),
        description=rows.nullable_text(obj, row, "instructionsShort"),
        detail=rows.nullable_text(obj, row, "instructionsDetailed"),
        policies=rows.criteria(obj, row, "evaluationCriteria"),
        created_at=rows.timestamp(obj, row, "createdAt"),
        updated_at=rows.timestamp(obj, row, "updatedAt"),
        contributors=contributors,
    )


def parse_mge_summary(
    data: Any, *, source: str = "summary", check: bool = True
) -> tuple[list[Value], list[EdgeStats]]:
    """Read a reference summary into values and edges (edges keep their counts).

    Likelihood and entropy are recomputed from the counts with our formulas; with ``check`` a
    stored summary that disagrees by more than 1e-9 is rejected. Every edge of a summary is a
    kept edge (the summary lists only those), so ``kept`` is True. Feeding the result back to
    :func:`to_mge_summary` reproduces the summary.

    Raises
    ------
    ImportFormatError
        Naming the part and row at fault, e.g. ``summary edges row 3: missing field 'counts'``.

    Examples
    --------
    >>> values, edges = parse_mge_summary({"values": [], "edges": [{
    ...     "sourceValueId": 1, "wiserValueId": 2, "contexts": ["When x"],
    ...     "counts": {"markedWiser": 3, "markedNotWiser": 0, "markedLessWise": 0,
    ...                "markedUnsure": 1, "impressions": 4},
    ...     "summary": {"wiserLikelihood": 0.75, "entropy": 1.4056390622295665}}]})
    >>> edges[0].marked_wiser, edges[0].entropy, edges[0].kept
    (3, 1.4056390622295665, True)
    """
    top = _Rows(source)
    if not isinstance(data, dict):
        raise top.fail(None, "expected an object with 'values' and 'edges'")
    value_rows = _Rows(f"{source} values")
    edge_rows = _Rows(f"{source} edges")
    values = [
        _value_from_mge(value_rows, item, i)
        for i, item in enumerate(value_rows.array(top.get(data, 0, "values")))
    ]
    edges: list[EdgeStats] = []
    for i, item in enumerate(edge_rows.array(top.get(data, 0, "edges"))):
        obj = edge_rows.obj(item, i)
        counts_obj = edge_rows.obj(edge_rows.get(obj, i, "counts"), i)
        counts = {
            snake: edge_rows.integer(counts_obj, i, camel) for snake, camel in _MGE_COUNTS.items()
        }
        contexts = edge_rows.get(obj, i, "contexts")
        if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
            raise edge_rows.fail(i, "field 'contexts' must be a list of strings")
        try:
            edge = edge_stats_from_counts(
                edge_rows.integer(obj, i, "sourceValueId"),
                edge_rows.integer(obj, i, "wiserValueId"),
                contexts=contexts,
                counts=counts,
                kept=True,
            )
        except GraphError as exc:
            raise edge_rows.fail(i, str(exc)) from None
        if check:
            summary = edge_rows.obj(edge_rows.get(obj, i, "summary"), i)
            for key, ours in (
                ("wiserLikelihood", edge.wiser_likelihood),
                ("entropy", edge.entropy),
            ):
                stored = edge_rows.number(summary, i, key)
                if abs(stored - ours) > 1e-9:
                    raise edge_rows.fail(
                        i, f"summary.{key} {stored!r} does not match its counts ({ours!r})"
                    )
        edges.append(edge)
    return values, edges


def _load_json_file(path: Path, name: str) -> Any:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImportFormatError(f"{name}: file not found in {path.parent}") from None
    except OSError as exc:
        raise ImportFormatError(f"{name}: cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(
            f"{name}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFormatError(
            f"{name}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def read_mge_summary(
    path: str | Path, *, check: bool = True
) -> tuple[list[Value], list[EdgeStats]]:
    """Read and parse a reference summary file (see :func:`parse_mge_summary`)."""
    p = Path(path)
    return parse_mge_summary(_load_json_file(p, p.name), source=p.name, check=check)


# --------------------------------------------------------------------------- database dump


@dataclass(frozen=True, slots=True)
class DumpCard:
    """A participant's values card from ``valuesCard.json`` (before deduplication)."""

    value: Value
    canonical_id: int | None
    user_id: str | None


@dataclass(frozen=True, slots=True)
class DumpData:
    """The contents of a reference database dump.

    ``values`` are the canonical values (``contributors`` = distinct users whose cards map to
    them); ``votes`` the wiser-than judgements of ``edge.json`` in file order; ``groups`` the
    participant -> {field: label} map of ``demographic.json``; ``card_votes`` and
    ``impressions`` the raw rows of ``vote.json`` and ``impression.json`` (each row an object).
    """

    values: list[Value]
    votes: list[Vote]
    cards: list[DumpCard]
    groups: dict[str, dict[str, str]]
    card_votes: list[dict[str, Any]]
    impressions: list[dict[str, Any]]


def _user(rows: _Rows, item: Mapping[str, Any], row: int) -> str:
    value = rows.get(item, row, "userId")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise rows.fail(row, f"field 'userId' must be an integer or a string, got {value!r}")
    return str(value)


_DEMOGRAPHIC_SKIP = {"userId", "id", "createdAt", "updatedAt"}


def parse_mge_dump(folder: str | Path) -> DumpData:
    """Read a reference database dump folder (DESIGN.md section 7).

    Required: ``canonicalValuesCard.json`` and ``edge.json``; optional: ``valuesCard.json``,
    ``vote.json``, ``impression.json``, ``demographic.json``. Edge ``fromId``/``toId`` must name
    canonical values; ``contextId`` is the context text; ``comment`` and ``story`` are not
    imported (free text, kept out of every export).

    Raises
    ------
    ImportFormatError
        One message naming the file and row, e.g.
        ``edge.json row 12: relationship 'maybe' is not one of upgrade, no_upgrade, not_sure``.
    """
    base = Path(folder)

    def load(name: str, *, required: bool) -> list[Any]:
        path = base / name
        if not required and not path.exists():
            return []
        return _Rows(name).array(_load_json_file(path, name))

    cards_rows = _Rows("valuesCard.json")
    cards: list[DumpCard] = []
    for i, item in enumerate(load("valuesCard.json", required=False)):
        obj = cards_rows.obj(item, i)
        canonical = obj.get("canonicalCardId")
        if canonical is not None and (
            isinstance(canonical, bool) or not isinstance(canonical, int)
        ):
            raise cards_rows.fail(
                i, f"field 'canonicalCardId' must be an integer, got {canonical!r}"
            )
        cards.append(
            DumpCard(
                value=_value_from_mge(cards_rows, obj, i),
                canonical_id=canonical,
                user_id=None if obj.get("userId") is None else _user(cards_rows, obj, i),
            )
        )

    contributors: dict[int, set[str]] = {}
    for n, card in enumerate(cards):
        if card.canonical_id is not None:
            who = card.user_id if card.user_id is not None else f"card:{n}"
            contributors.setdefault(card.canonical_id, set()).add(who)

    canon_rows = _Rows("canonicalValuesCard.json")
    values: list[Value] = []
    seen_ids: dict[int, int] = {}
    for i, item in enumerate(load("canonicalValuesCard.json", required=True)):
        value = _value_from_mge(canon_rows, item, i)
        if value.id in seen_ids:
            raise canon_rows.fail(i, f"id {value.id} repeats row {seen_ids[value.id]}")
        seen_ids[value.id] = i
        values.append(
            Value(
                id=value.id,
                title=value.title,
                description=value.description,
                detail=value.detail,
                policies=value.policies,
                created_at=value.created_at,
                updated_at=value.updated_at,
                contributors=len(contributors.get(value.id, ())),
            )
        )
    for n, card in enumerate(cards):
        if card.canonical_id is not None and card.canonical_id not in seen_ids:
            raise cards_rows.fail(
                n, f"canonicalCardId {card.canonical_id} is not in canonicalValuesCard.json"
            )

    edge_rows = _Rows("edge.json")
    votes: list[Vote] = []
    first_vote: dict[tuple[str, int, int, str], int] = {}
    for i, item in enumerate(load("edge.json", required=True)):
        obj = edge_rows.obj(item, i)
        user = _user(edge_rows, obj, i)
        from_id = edge_rows.integer(obj, i, "fromId")
        to_id = edge_rows.integer(obj, i, "toId")
        context = edge_rows.text(obj, i, "contextId")
        relationship = edge_rows.get(obj, i, "relationship")
        if relationship not in CHOICES:
            raise edge_rows.fail(
                i, f"relationship {relationship!r} is not one of {', '.join(CHOICES)}"
            )
        for key, end in (("fromId", from_id), ("toId", to_id)):
            if end not in seen_ids:
                raise edge_rows.fail(i, f"{key} {end} is not in canonicalValuesCard.json")
        if from_id == to_id:
            raise edge_rows.fail(i, f"fromId equals toId ({from_id})")
        key4 = (user, from_id, to_id, context)
        if key4 in first_vote:
            raise edge_rows.fail(
                i,
                f"the same user already judged this pair in this context (row {first_vote[key4]})",
            )
        first_vote[key4] = i
        created = edge_rows.timestamp(obj, i, "createdAt")
        votes.append(
            Vote(
                participant=user,
                from_id=from_id,
                to_id=to_id,
                context=context,
                choice=relationship,
                created_at=None if created is None else datetime.fromisoformat(created),
            )
        )

    demo_rows = _Rows("demographic.json")
    groups: dict[str, dict[str, str]] = {}
    for i, item in enumerate(load("demographic.json", required=False)):
        obj = demo_rows.obj(item, i)
        user = _user(demo_rows, obj, i)
        fields = groups.setdefault(user, {})
        for key, value in obj.items():
            if key in _DEMOGRAPHIC_SKIP or value is None:
                continue
            if isinstance(value, dict | list):
                raise demo_rows.fail(i, f"field '{key}' must be a scalar, got {value!r}")
            fields[key] = str(value)

    def raw_rows(name: str) -> list[dict[str, Any]]:
        rows = _Rows(name)
        return [dict(rows.obj(item, i)) for i, item in enumerate(load(name, required=False))]

    return DumpData(
        values=values,
        votes=votes,
        cards=cards,
        groups=groups,
        card_votes=raw_rows("vote.json"),
        impressions=raw_rows("impression.json"),
    )


# --------------------------------------------------------------------------- native JSON


def _native_value(value: Value) -> dict[str, Any]:
    return {
        "id": value.id,
        "title": value.title,
        "description": value.description,
        "detail": value.detail,
        "policies": list(value.policies),
        "contributors": value.contributors,
        "created_at": value.created_at,
        "updated_at": value.updated_at,
    }


def _native_edge(edge: EdgeStats, interval: tuple[float, float] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "source_id": edge.source_id,
        "wiser_id": edge.wiser_id,
        "contexts": list(edge.contexts),
        "counts": {name: getattr(edge, name) for name in COUNT_COLUMNS},
        "wiser_likelihood": edge.wiser_likelihood,
        "entropy": edge.entropy,
        "kept": edge.kept,
    }
    if interval is not None:
        low, high = interval
        out["likelihood_interval"] = [_finite(low), _finite(high)]
    return out


def _native_scores(scores: Mapping[int, float]) -> dict[str, float]:
    return {str(k): float(v) for k, v in sorted(scores.items())}


def to_native_json(
    values: Iterable[Value],
    analysis: Analysis,
    *,
    provenance: Mapping[str, Any] | None = None,
    filters: Mapping[str, Any] | None = None,
    generated_at: str | None = None,
) -> dict[str, Any]:
    """Our own schema-versioned graph document (``mge-graph``, version 1).

    Per context (sorted by text): every pair with its counts, likelihood, entropy, kept flag
    and, when the analysis ran the bootstrap, ``likelihood_interval``; the PageRank scores, the
    winner and ``winner_stability`` (probability the winner stays the winner, or None). The
    ``pooled`` section holds the reference view (all contexts together) with both PageRank
    variants. ``provenance``, ``filters`` and ``generated_at`` are the caller's and copied as is.

    Examples
    --------
    >>> from graph.types import Value, Vote
    >>> from graph.scoring import analyse
    >>> votes = [Vote(p, a, b, "When lost", "upgrade")
    ...          for p in ("x", "y") for a, b in ((1, 2), (2, 3))]
    >>> values = [Value(i, f"V{i}", "", "", ()) for i in (1, 2, 3)]
    >>> doc = to_native_json(values, analyse(votes), provenance={"source": "doctest"})
    >>> doc["schema"], doc["contexts"][0]["winner"], len(doc["contexts"][0]["edges"])
    ('mge-graph', 3, 4)
    """
    intervals: dict[tuple[str, int, int], tuple[float, float]] = {}
    stability: dict[str, float] = {}
    if analysis.bootstrap is not None:
        for iv in analysis.bootstrap.edges:
            intervals[(iv.context, iv.source_id, iv.wiser_id)] = (iv.low, iv.high)
        stability = {c: s.probability for c, s in analysis.bootstrap.winners.items()}
    contexts = []
    for context in sorted(analysis.contexts):
        edges = sorted(
            analysis.by_context.get(context, []), key=lambda e: (e.source_id, e.wiser_id)
        )
        contexts.append(
            {
                "context": context,
                "edges": [
                    _native_edge(e, intervals.get((context, e.source_id, e.wiser_id)))
                    for e in edges
                ],
                "scores": _native_scores(analysis.scores.get(context, {})),
                "winner": analysis.winners.get(context),
                "winner_stability": stability.get(context),
            }
        )
    th = analysis.thresholds
    return {
        "schema": NATIVE_SCHEMA,
        "schema_version": NATIVE_SCHEMA_VERSION,
        "generated_at": generated_at,
        "provenance": dict(provenance or {}),
        "filters": dict(filters or {}),
        "thresholds": {
            "min_wiser": th.min_wiser,
            "min_likelihood": th.min_likelihood,
            "max_entropy": th.max_entropy,
        },
        "bootstrap": None
        if analysis.bootstrap is None
        else {"replicates": analysis.bootstrap.n, "seed": analysis.bootstrap.seed},
        "values": [_native_value(v) for v in sorted(values, key=lambda v: v.id)],
        "contexts": contexts,
        "pooled": {
            "edges": [
                _native_edge(e)
                for e in sorted(analysis.pooled, key=lambda e: (e.source_id, e.wiser_id))
            ],
            "scores": _native_scores(analysis.pooled_scores),
            "reference_scores": _native_scores(analysis.pooled_reference_scores),
        },
    }


# --------------------------------------------------------------------------- GraphML / GEXF


def to_graphml(graph: nx.DiGraph[int]) -> str:
    """GraphML text of a graph from :func:`graph.build.build_graph`.

    Read it back with ``networkx.read_graphml(path, node_type=int)``.
    """
    return "\n".join(nx.generate_graphml(graph)) + "\n"


_GEXF_DATE = re.compile(r'\s+lastmodifieddate="[^"]*"')


def to_gexf(graph: nx.DiGraph[int]) -> str:
    """GEXF 1.2 text (Gephi) of a graph from :func:`graph.build.build_graph`.

    networkx stamps today's date into ``<meta>``; it is removed so the export is deterministic.
    Read it back with ``networkx.read_gexf(path, node_type=int)``.
    """
    return _GEXF_DATE.sub("", "\n".join(nx.generate_gexf(graph)), count=1) + "\n"


def write_graphml(graph: nx.DiGraph[int], path: str | Path) -> Path:
    return write_text(to_graphml(graph), path)


def write_gexf(graph: nx.DiGraph[int], path: str | Path) -> Path:
    return write_text(to_gexf(graph), path)


# --------------------------------------------------------------------------- CSV

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    """Neutralise spreadsheet formulas in participant text (OWASP CSV injection)."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _edge_row(edge: EdgeStats) -> dict[str, Any]:
    row: dict[str, Any] = {
        "source_id": edge.source_id,
        "wiser_id": edge.wiser_id,
        "contexts": json.dumps(list(edge.contexts), ensure_ascii=False),
    }
    for name in COUNT_COLUMNS:
        row[name] = getattr(edge, name)
    row["wiser_likelihood"] = edge.wiser_likelihood
    row["entropy"] = edge.entropy
    row["kept"] = edge.kept
    return row


_EDGE_COLUMNS = [
    "source_id",
    "wiser_id",
    "contexts",
    *COUNT_COLUMNS,
    "wiser_likelihood",
    "entropy",
    "kept",
]
_VALUE_COLUMNS = [
    "id",
    "title",
    "description",
    "detail",
    "policies",
    "contributors",
    "score",
    "created_at",
    "updated_at",
]


def to_csv_tables(
    values: Iterable[Value],
    edges: Sequence[EdgeStats] | Mapping[str, Sequence[EdgeStats]],
    *,
    scores: Mapping[int, float] | None = None,
) -> dict[str, str]:
    """``{"values.csv": text, "edges.csv": text}``.

    ``edges`` is a list (pooled) or a mapping context -> list, which adds a leading ``context``
    column. Lists (policies, contexts) are JSON arrays in one cell; text that a spreadsheet would
    run as a formula (starting with ``= + - @``) is prefixed with ``'``. Rows are sorted.

    Examples
    --------
    >>> from graph.types import Value
    >>> tables = to_csv_tables([Value(1, "Calm", "d", "", ("MOMENTS",))], [])
    >>> tables["values.csv"].splitlines()[1]
    '1,Calm,d,,"[""MOMENTS""]",0,0.0,,'
    """
    score_of = dict(scores or {})
    value_rows = [
        {
            "id": v.id,
            "title": _cell(v.title),
            "description": _cell(v.description),
            "detail": _cell(v.detail),
            "policies": json.dumps(list(v.policies), ensure_ascii=False),
            "contributors": v.contributors,
            "score": float(score_of.get(v.id, 0.0)),
            "created_at": v.created_at or "",
            "updated_at": v.updated_at or "",
        }
        for v in sorted(values, key=lambda v: v.id)
    ]
    if isinstance(edges, Mapping):
        edge_rows = [
            {"context": context, **_edge_row(e)}
            for context in sorted(edges)
            for e in sorted(edges[context], key=lambda e: (e.source_id, e.wiser_id))
        ]
        edge_columns = ["context", *_EDGE_COLUMNS]
    else:
        edge_rows = [_edge_row(e) for e in sorted(edges, key=lambda e: (e.source_id, e.wiser_id))]
        edge_columns = _EDGE_COLUMNS
    return {
        "values.csv": pd.DataFrame(value_rows, columns=_VALUE_COLUMNS).to_csv(
            index=False, lineterminator="\n"
        ),
        "edges.csv": pd.DataFrame(edge_rows, columns=edge_columns).to_csv(
            index=False, lineterminator="\n"
        ),
    }


def write_csv_tables(
    values: Iterable[Value],
    edges: Sequence[EdgeStats] | Mapping[str, Sequence[EdgeStats]],
    folder: str | Path,
    *,
    scores: Mapping[int, float] | None = None,
) -> list[Path]:
    """Write ``values.csv`` and ``edges.csv`` into ``folder``; return their paths."""
    tables = to_csv_tables(values, edges, scores=scores)
    return [write_text(text, Path(folder) / name) for name, text in sorted(tables.items())]


# --------------------------------------------------------------------------- training data


def _card(value: Value) -> dict[str, Any]:
    return {
        "title": value.title,
        "description": value.description,
        "policies": list(value.policies),
    }


def _prompts(
    contexts: Iterable[str], questions: Mapping[str, Sequence[str]] | None
) -> list[tuple[str | None, str]]:
    """(question text, context) pairs, sorted; every context with prompt None without questions."""
    present = set(contexts)
    if questions is None:
        return [(None, c) for c in sorted(present)]
    return sorted(
        {(q, c) for q, cs in questions.items() for c in cs if c in present},
    )


def _values_by_id(values: Iterable[Value]) -> dict[int, Value]:
    return {v.id: v for v in values}


def preference_pairs(
    by_context: Mapping[str, Sequence[EdgeStats]],
    values: Iterable[Value],
    *,
    questions: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """One training row per kept edge per context (per question that has the context).

    Row: ``prompt`` (the question text, or None without ``questions``), ``context``, ``chosen``
    (the wiser value's card: title, description, policies), ``rejected`` (the less wise one) and
    ``evidence`` (the five counts, ``wiser_likelihood``, ``entropy``). ``questions`` maps each
    question text to its contexts. Sorted by prompt, context, then value ids.

    Examples
    --------
    >>> from graph.types import Value, Vote
    >>> from graph.stats import edge_statistics_by_context
    >>> votes = [Vote(p, 1, 2, "When lost", "upgrade") for p in ("x", "y")]
    >>> values = [Value(i, f"V{i}", "", "", ("THINGS",)) for i in (1, 2, 3)]
    >>> rows = preference_pairs(edge_statistics_by_context(votes), values,
    ...                         questions={"I feel lost, what now?": ["When lost"]})
    >>> rows[0]["prompt"], rows[0]["chosen"]["title"], rows[0]["rejected"]["title"]
    ('I feel lost, what now?', 'V2', 'V1')
    """
    by_id = _values_by_id(values)
    rows: list[dict[str, Any]] = []
    for prompt, context in _prompts(by_context, questions):
        for e in sorted(by_context[context], key=lambda e: (e.source_id, e.wiser_id)):
            if not e.kept:
                continue
            for end in (e.source_id, e.wiser_id):
                if end not in by_id:
                    raise GraphError(
                        f"edge {e.source_id} -> {e.wiser_id} names unknown value {end}"
                    )
            evidence: dict[str, Any] = {name: getattr(e, name) for name in COUNT_COLUMNS}
            evidence["wiser_likelihood"] = e.wiser_likelihood
            evidence["entropy"] = e.entropy
            rows.append(
                {
                    "prompt": prompt,
                    "context": context,
                    "chosen": _card(by_id[e.wiser_id]),
                    "rejected": _card(by_id[e.source_id]),
                    "evidence": evidence,
                }
            )
    return rows


def rubrics(
    scores: Mapping[str, Mapping[int, float]],
    values: Iterable[Value],
    *,
    questions: Mapping[str, Sequence[str]] | None = None,
    top: int = 3,
) -> list[dict[str, Any]]:
    """One rubric per question and context: the ``top`` highest-scored values' policies.

    Row: ``prompt``, ``context``, ``rubric`` = list of ``{"title", "policies", "score"}``, best
    first (ties by value id). ``scores`` is context -> {value id: score}, e.g.
    :func:`graph.scoring.pagerank_by_context`.

    Examples
    --------
    >>> from graph.types import Value
    >>> values = [Value(i, f"V{i}", "", "", (f"THINGS {i}",)) for i in (1, 2, 3)]
    >>> rows = rubrics({"When lost": {1: 0.2, 2: 0.3, 3: 0.5}}, values, top=2)
    >>> [(r["title"], r["score"]) for r in rows[0]["rubric"]]
    [('V3', 0.5), ('V2', 0.3)]
    """
    if top < 1:
        raise GraphError("top must be >= 1")
    by_id = _values_by_id(values)
    rows: list[dict[str, Any]] = []
    for prompt, context in _prompts(scores, questions):
        ranked = sorted(scores[context].items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        rubric = []
        for value_id, score in ranked:
            if value_id not in by_id:
                raise GraphError(f"context {context!r} scores unknown value {value_id}")
            value = by_id[value_id]
            rubric.append(
                {"title": value.title, "policies": list(value.policies), "score": float(score)}
            )
        rows.append({"prompt": prompt, "context": context, "rubric": rubric})
    return rows


def _card_header(name: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    size = "n<1K" if len(rows) < 1000 else ("1K<n<10K" if len(rows) < 10_000 else "10K<n<100K")
    return [
        "---",
        f"pretty_name: {json.dumps(name)}",
        "language:",
        "- en",
        "size_categories:",
        f"- {size}",
        "tags:",
        "- moral-graph-elicitation",
        "- alignment",
        "---",
        "",
        f"# {name}",
        "",
    ]


def _card_provenance(provenance: Mapping[str, Any] | None) -> list[str]:
    if not provenance:
        return []
    lines = ["## Provenance", ""]
    for key in sorted(provenance):
        lines.append(
            f"- `{key}`: `{json.dumps(provenance[key], ensure_ascii=False, sort_keys=True)}`"
        )
    return [*lines, ""]


_PRIVACY = (
    "No personal data: rows carry value cards and vote counts only, never a participant id, "
    "a chat transcript or a free-text comment."
)


def preference_pairs_card(
    rows: Sequence[Mapping[str, Any]],
    *,
    name: str = "Moral graph preference pairs",
    provenance: Mapping[str, Any] | None = None,
) -> str:
    """The dataset card (README.md) for :func:`preference_pairs` rows."""
    contexts = sorted({str(r["context"]) for r in rows})
    prompts = sorted({str(r["prompt"]) for r in rows if r["prompt"] is not None})
    lines = [
        *_card_header(name, rows),
        "Preference pairs from a Moral Graph Elicitation deliberation (Klingefjord, Lowe & "
        "Edelman 2024). Each row says that, in a context of a question, participants judged the "
        "`chosen` value wiser than the `rejected` one; `evidence` holds the votes behind it.",
        "",
        "## Size",
        "",
        f"- rows: {len(rows)}",
        f"- questions: {len(prompts)}",
        f"- contexts: {len(contexts)}",
        "",
        "## Fields",
        "",
        "- `prompt`: the question a user might ask an AI (null when not recorded)",
        "- `context`: the situation in which the judgement holds",
        "- `chosen`, `rejected`: value cards (`title`, `description`, `policies`)",
        "- `evidence`: `marked_wiser`, `marked_not_wiser`, `marked_less_wise`, `marked_unsure`, "
        "`impressions`, `wiser_likelihood`, `entropy`",
        "",
        "Only edges kept by the moral graph's thresholds are included.",
        "",
        "## Privacy",
        "",
        _PRIVACY,
        "",
        *_card_provenance(provenance),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def rubrics_card(
    rows: Sequence[Mapping[str, Any]],
    *,
    name: str = "Moral graph rubrics",
    provenance: Mapping[str, Any] | None = None,
) -> str:
    """The dataset card (README.md) for :func:`rubrics` rows."""
    contexts = sorted({str(r["context"]) for r in rows})
    lines = [
        *_card_header(name, rows),
        "Rubrics from a Moral Graph Elicitation deliberation: for each question and context, the "
        "attentional policies of the values the moral graph scores wisest there, with their "
        "scores, for grading or steering responses.",
        "",
        "## Size",
        "",
        f"- rows: {len(rows)}",
        f"- contexts: {len(contexts)}",
        "",
        "## Fields",
        "",
        "- `prompt`: the question (null when not recorded)",
        "- `context`: the situation",
        "- `rubric`: list of `{title, policies, score}`, best first (PageRank on the context's "
        "graph)",
        "",
        "## Privacy",
        "",
        _PRIVACY,
        "",
        *_card_provenance(provenance),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"
