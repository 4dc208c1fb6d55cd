"""Import reference data (DESIGN.md section 7) into a deliberation: a summary or a dump.

Both imports create the deliberation when it is missing (its title made from the slug), validate
the whole file before writing anything, then write everything in one transaction
(:func:`db.queries.create_import`). Importing the same data again adds nothing: rows are matched
on the reference ids (``ref_id``), the imported user ids (``Participant.external_ref``) and the
database's unique constraints. A bad file raises :class:`graph.types.ImportFormatError` with
one line naming the file and the row.

**Dump** (``mge-dump``, a folder of JSON arrays): canonical values keep their reference id in
``ref_id``; each distinct ``userId`` becomes a pseudonymous participant (``entry_channel``
"import", ``external_ref`` = the userId, a random token hash nobody holds, no consent to publish);
every row of ``edge.json`` becomes a wiser-than vote with its ``createdAt`` (the import time when
absent) and its comment; stories become hypotheses (origin "import", the first story per
from/to/context wins); ``valuesCard.json`` cards are stored and linked to their canonical value
only when ``canonicalCardId`` is given; ``demographic.json`` rows become the participants'
demographics. ``vote.json`` and ``impression.json`` (peer-value choices keyed on the reference's
own card ids) are not imported.

**Summary** (``mge-summary``) holds vote *counts* per kept edge, not votes. Design choice: we
synthesise the smallest set of pseudonymous votes that reproduces every count exactly, rather
than storing the summary's statistics in a table of their own. Everything downstream (per-context
statistics, PageRank, exports, the ``--until`` filter, deletion) then runs on one kind of data,
and the round trip summary -> database -> summary is exact by construction. For an edge
``A -> B`` with counts W, N, L, U and impressions I:

* W "upgrade", N "no_upgrade" and U "not_sure" votes on ``A -> B``;
* L "upgrade" votes on ``B -> A`` (markedLessWise of ``A -> B`` *is* the upgrades of ``B -> A``);
* ``I - (W + N + U + L)`` more votes on ``B -> A`` that are not upgrades (they only add
  impressions to ``A -> B``; which of no_upgrade / not_sure they were is not in the file, and
  they are stored as no_upgrade). When ``B -> A`` is itself an edge of the file, its own counts
  say how they split.
* Contexts are given to the votes in order (the first vote of the pair carries the first context,
  the next the second, ...), so the pair's contexts come out in the file's order.

Each synthetic vote has its own pseudonymous participant (``external_ref``
``mge-summary:A>B:k``), so a bootstrap over participants resamples votes independently - the
file says nothing about who cast which votes, and one participant per vote assumes nothing.
Votes are timestamped after the newest value timestamp of the file, one microsecond apart in file
order, so the edges come out in the file's order. Before anything is written the statistics of
the synthetic votes are recomputed and compared with the file (counts and contexts exactly,
wiserLikelihood and entropy to 1e-12); an edge that cannot be reproduced (impressions smaller
than W + N + U + L, fewer votes than contexts, a reverse edge contradicting it) raises
:class:`ImportFormatError` naming the edge.

Context texts are stored with runs of whitespace collapsed, as everywhere in the app.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from db.engine import session_scope
from db.queries.graphdata import (
    ImportBatch,
    ImportCard,
    ImportResult,
    ImportStory,
    ImportValue,
    ImportVote,
    create_import,
)
from elicit.console import validate_slug
from graph.formats import parse_mge_dump, read_mge_summary
from graph.stats import edge_statistics
from graph.types import EdgeStats, ImportFormatError, Value, Vote

__all__ = [
    "SUMMARY_USER_PREFIX",
    "import_mge_dump",
    "import_mge_summary",
    "summary_votes",
    "title_from_slug",
]

SUMMARY_USER_PREFIX = "mge-summary:"
"""``external_ref`` prefix of the pseudonymous participants synthesised for a summary."""

TOLERANCE = 1e-12

# Column limits of db.models (SQLite would not enforce them, PostgreSQL would fail mid-import).
_MAX_TITLE = 200
_MAX_CONTEXT = 500
_MAX_USER = 128
_MAX_COMMENT = 2000


def title_from_slug(slug: str) -> str:
    """``reference-2023`` -> ``Reference 2023``."""
    return slug.replace("-", " ").strip().capitalize() or slug


def _context(text: str) -> str:
    return " ".join(text.split())


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _check_length(where: str, name: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise ImportFormatError(f"{where}: {name} is {len(text)} characters long (at most {limit})")


def _import_values(values: Sequence[Value], source: str) -> list[ImportValue]:
    seen: dict[int, int] = {}
    out = []
    for row, v in enumerate(values):
        where = f"{source} row {row}"
        if v.id in seen:
            raise ImportFormatError(f"{where}: id {v.id} repeats row {seen[v.id]}")
        seen[v.id] = row
        _check_length(where, "title", v.title, _MAX_TITLE)
        out.append(
            ImportValue(
                ref_id=v.id,
                title=v.title,
                description=v.description,
                detail=v.detail,
                policies=v.policies,
                created_at=v.created_at,
                updated_at=v.updated_at,
            )
        )
    return out


# --- summary ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Planned:
    """A synthetic vote before it becomes an ImportVote."""

    user: str
    from_id: int
    to_id: int
    context: str
    choice: str


def _edge_name(source: str, row: int, edge: EdgeStats) -> str:
    return f"{source} edges row {row} ({edge.source_id} -> {edge.wiser_id})"


def _plan_pair(
    edge: EdgeStats, reverse: EdgeStats | None, contexts: Sequence[str], where: str
) -> list[_Planned]:
    a, b = edge.source_id, edge.wiser_id
    w, n, less, u = (
        edge.marked_wiser,
        edge.marked_not_wiser,
        edge.marked_less_wise,
        edge.marked_unsure,
    )
    others = edge.impressions - (w + n + u + less)
    if others < 0:
        raise ImportFormatError(
            f"{where}: impressions {edge.impressions} is less than markedWiser + markedNotWiser "
            f"+ markedUnsure + markedLessWise ({w + n + u + less}); no set of votes has these counts"
        )
    if reverse is None:
        back = ["upgrade"] * less + ["no_upgrade"] * others
    else:
        if (
            reverse.marked_wiser != less
            or reverse.marked_less_wise != w
            or reverse.impressions != edge.impressions
            or reverse.marked_not_wiser + reverse.marked_unsure != others
        ):
            raise ImportFormatError(
                f"{where}: its counts contradict those of the reverse edge {b} -> {a} "
                "(markedWiser and markedLessWise must swap, impressions must be equal)"
            )
        back = (
            ["upgrade"] * less
            + ["no_upgrade"] * reverse.marked_not_wiser
            + ["not_sure"] * reverse.marked_unsure
        )
    forward = ["upgrade"] * w + ["no_upgrade"] * n + ["not_sure"] * u
    if not contexts:
        raise ImportFormatError(f"{where}: the edge has no context")
    if len(contexts) > len(forward) + len(back):
        raise ImportFormatError(
            f"{where}: {len(contexts)} contexts but only {len(forward) + len(back)} votes to "
            "carry them"
        )
    planned = []
    for k, (frm, to, choice) in enumerate([(a, b, c) for c in forward] + [(b, a, c) for c in back]):
        planned.append(
            _Planned(
                user=f"{SUMMARY_USER_PREFIX}{a}>{b}:{k}",
                from_id=frm,
                to_id=to,
                context=contexts[k % len(contexts)],
                choice=choice,
            )
        )
    return planned


def summary_votes(
    edges: Sequence[EdgeStats],
    *,
    stored: Sequence[Mapping[str, float]] | None = None,
    source: str = "summary",
    start: datetime,
) -> list[ImportVote]:
    """Synthesise votes whose statistics are exactly the summary's ``edges`` (see the module
    docstring), and check it: counts and contexts equal, wiserLikelihood and entropy within
    1e-12 of ``stored`` (the file's ``summary`` objects, row by row; our recomputation when
    None). Votes are timestamped ``start`` + 1 microsecond each, in file order.

    Raises
    ------
    ImportFormatError
        Naming the edge that cannot be reproduced.

    Examples
    --------
    >>> from graph.stats import edge_stats_from_counts
    >>> e = edge_stats_from_counts(1, 2, contexts=["When lost"], counts=dict(
    ...     marked_wiser=3, marked_not_wiser=0, marked_less_wise=1, marked_unsure=1,
    ...     impressions=6))
    >>> votes = summary_votes([e], start=datetime(2024, 1, 1, tzinfo=UTC))
    >>> [(v.from_ref, v.to_ref, v.choice) for v in votes][-2:]
    [(2, 1, 'upgrade'), (2, 1, 'no_upgrade')]
    """
    index = {(e.source_id, e.wiser_id): row for row, e in enumerate(edges)}
    planned: list[_Planned] = []
    done: set[frozenset[int]] = set()
    for row, edge in enumerate(edges):
        where = _edge_name(source, row, edge)
        if edge.source_id == edge.wiser_id:
            raise ImportFormatError(f"{where}: sourceValueId equals wiserValueId")
        pair = frozenset((edge.source_id, edge.wiser_id))
        if pair in done:
            continue  # both directions are in the file; the first one planned the votes
        done.add(pair)
        rev_row = index.get((edge.wiser_id, edge.source_id))
        reverse = None if rev_row is None else edges[rev_row]
        contexts = list(dict.fromkeys(_context(c) for c in edge.contexts))
        if len(contexts) != len(edge.contexts):
            raise ImportFormatError(f"{where}: a context is listed twice")
        for c in contexts:
            _check_length(where, "a context", c, _MAX_CONTEXT)
        planned += _plan_pair(edge, reverse, contexts, where)

    votes = [Vote(p.user, p.from_id, p.to_id, p.context, p.choice) for p in planned]  # type: ignore[arg-type]
    recomputed = {(e.source_id, e.wiser_id): e for e in edge_statistics(votes)}
    for row, edge in enumerate(edges):
        where = _edge_name(source, row, edge)
        got = recomputed.get((edge.source_id, edge.wiser_id))
        want_contexts = tuple(_context(c) for c in edge.contexts)
        problem = None
        if got is None:
            problem = "no vote reproduces it"
        elif got.contexts != want_contexts:
            problem = f"contexts come out as {list(got.contexts)}, not {list(want_contexts)}"
        else:
            for name in (
                "marked_wiser",
                "marked_not_wiser",
                "marked_less_wise",
                "marked_unsure",
                "impressions",
            ):
                if getattr(got, name) != getattr(edge, name):
                    problem = f"{name} comes out as {getattr(got, name)}, not {getattr(edge, name)}"
                    break
        if problem is None and got is not None:
            want = (
                stored[row]
                if stored is not None
                else {
                    "wiserLikelihood": edge.wiser_likelihood,
                    "entropy": edge.entropy,
                }
            )
            for key, ours in (("wiserLikelihood", got.wiser_likelihood), ("entropy", got.entropy)):
                if abs(float(want[key]) - ours) > TOLERANCE:
                    problem = f"summary.{key} {want[key]!r} differs from {ours!r} by over 1e-12"
                    break
        if problem is not None:
            raise ImportFormatError(f"{where}: cannot be reproduced exactly by votes: {problem}")
    listed = set(index)
    for ends, found in recomputed.items():
        if found.kept and ends not in listed:
            a, b = ends
            raise ImportFormatError(
                f"{source} edges: the reverse pair {a} -> {b} of edge row "
                f"{index.get((b, a))} would itself be kept, which the summary does not list"
            )
    return [
        ImportVote(
            user=p.user,
            from_ref=p.from_id,
            to_ref=p.to_id,
            context=p.context,
            choice=p.choice,
            created_at=start + timedelta(microseconds=k),
        )
        for k, p in enumerate(planned)
    ]


def _stored_summaries(path: Path) -> list[Mapping[str, float]]:
    """The file's own ``summary`` numbers (read_mge_summary has validated the file already)."""
    data = json.loads(path.read_bytes().decode("utf-8"))
    return [dict(edge["summary"]) for edge in data["edges"]]


def _latest(values: Iterable[Value]) -> datetime | None:
    stamps = [
        t for v in values for t in (_when(v.created_at), _when(v.updated_at)) if t is not None
    ]
    return max(stamps) if stamps else None


def import_mge_summary(engine: Engine, path: str | Path, *, slug: str) -> ImportResult:
    """Import a reference summary file into the deliberation ``slug`` (see the module docstring).

    Raises
    ------
    ImportFormatError
        The file is unreadable, not UTF-8 JSON, not in the format, or an edge cannot be
        reproduced exactly (the message names the file and the row).
    elicit.console.ConsoleError
        ``slug`` is not a valid deliberation slug.
    """
    slug = validate_slug(slug)
    p = Path(path)
    values, edges = read_mge_summary(p, check=True)
    imported = _import_values(values, f"{p.name} values")
    known = {v.ref_id for v in imported}
    for row, edge in enumerate(edges):
        for end in (edge.source_id, edge.wiser_id):
            if end not in known:
                raise ImportFormatError(
                    f"{_edge_name(p.name, row, edge)}: value {end} is not among the values"
                )
    seen: dict[tuple[int, int], int] = {}
    for row, edge in enumerate(edges):
        key = (edge.source_id, edge.wiser_id)
        if key in seen:
            raise ImportFormatError(
                f"{_edge_name(p.name, row, edge)}: the edge repeats row {seen[key]}"
            )
        seen[key] = row
    start = (_latest(values) or datetime.now(UTC)) + timedelta(seconds=1)
    votes = summary_votes(edges, stored=_stored_summaries(p), source=p.name, start=start)
    batch = ImportBatch(values=imported, votes=votes)
    with session_scope(engine) as s:
        return create_import(s, slug=slug, title=title_from_slug(slug), batch=batch)


# --- dump ---------------------------------------------------------------------------------------


def _optional_text(item: Any, row: int, key: str, source: str) -> str:
    if not isinstance(item, dict):
        return ""
    value = item.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ImportFormatError(
            f"{source} row {row}: field '{key}' must be a string, got {value!r}"
        )
    return value


def import_mge_dump(engine: Engine, folder: str | Path, *, slug: str) -> ImportResult:
    """Import a reference database dump folder into the deliberation ``slug``.

    Raises
    ------
    ImportFormatError
        A file is missing, unreadable, not UTF-8 JSON or not in the format (the message names
        the file and the row).
    elicit.console.ConsoleError
        ``slug`` is not a valid deliberation slug.
    """
    slug = validate_slug(slug)
    base = Path(folder)
    if not base.is_dir():
        raise ImportFormatError(f"{base}: not a folder")
    dump = parse_mge_dump(base)
    values = _import_values(dump.values, "canonicalValuesCard.json")
    raw_edges = json.loads((base / "edge.json").read_bytes().decode("utf-8"))
    now = datetime.now(UTC)
    votes: list[ImportVote] = []
    stories: list[ImportStory] = []
    for row, (vote, item) in enumerate(zip(dump.votes, raw_edges, strict=True)):
        where = f"edge.json row {row}"
        _check_length(where, "userId", vote.participant, _MAX_USER)
        context = _context(vote.context)
        if not context:
            raise ImportFormatError(f"{where}: contextId is empty")
        _check_length(where, "contextId", context, _MAX_CONTEXT)
        comment = _optional_text(item, row, "comment", "edge.json")
        _check_length(where, "comment", comment, _MAX_COMMENT)
        story = _optional_text(item, row, "story", "edge.json")
        votes.append(
            ImportVote(
                user=vote.participant,
                from_ref=vote.from_id,
                to_ref=vote.to_id,
                context=context,
                choice=vote.choice,
                created_at=vote.created_at or now,
                comment=comment,
            )
        )
        if story.strip():
            stories.append(ImportStory(vote.from_id, vote.to_id, context, story))
    cards = []
    for row, card in enumerate(dump.cards):
        where = f"valuesCard.json row {row}"
        _check_length(where, "title", card.value.title, _MAX_TITLE)
        if card.user_id is not None:
            _check_length(where, "userId", card.user_id, _MAX_USER)
        cards.append(
            ImportCard(
                ref_id=card.value.id,
                user=card.user_id,
                canonical_ref=card.canonical_id,
                title=card.value.title,
                description=card.value.description,
                detail=card.value.detail,
                policies=card.value.policies,
                created_at=_when(card.value.created_at),
            )
        )
    for row, user in enumerate(dump.groups):
        _check_length(f"demographic.json row {row}", "userId", user, _MAX_USER)
    users = [v.user for v in votes] + [c.user for c in cards if c.user] + list(dump.groups)
    batch = ImportBatch(
        values=values,
        votes=votes,
        stories=stories,
        cards=cards,
        users=users,
        demographics=dump.groups,
    )
    with session_scope(engine) as s:
        return create_import(s, slug=slug, title=title_from_slug(slug), batch=batch)
