"""The moral graph of a deliberation: load it from the database, analyse it, export it.

The glue between the database (``db.queries.graphdata``) and the pure graph engine (``graph``),
used by the CLI (``mge export``), the console's Graph and Exports pages and the participant's
"where my value landed" step:

* :func:`load_graph_inputs` reads votes, values, participant groups, question contexts and
  publishable comments, with the filters (``until``, ``question_id``, ``context``);
* :func:`compute` runs the engine (per-context and pooled statistics, PageRank, winners and the
  bootstrap);
* :func:`render_export` / :func:`export` / :func:`export_download` produce every export format
  (:data:`FORMATS`) as texts, files, or one download (a zip for multi-file formats);
* table builders for the console (:func:`edge_table`, :func:`value_table`,
  :func:`winners_table`, :func:`node_details`, :func:`bridging_tables`, :func:`minority_table`).

Exports carry no personal data: no participant, panel or token ids, only counts, the values'
texts, and free-text comments of participants who consented to publishing (native JSON only).
Values keep their reference id in every export when they were imported (``ref_id``), so an
imported graph exports with its original ids; other values use our id.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from db import queries
from db.engine import session_scope
from db.queries.graphdata import GraphComment
from graph.build import build_graph
from graph.formats import (
    dumps_json,
    preference_pairs,
    preference_pairs_card,
    rubrics,
    rubrics_card,
    to_csv_tables,
    to_gexf,
    to_graphml,
    to_jsonl,
    to_mge_summary,
    to_native_json,
    write_text,
)
from graph.scoring import Analysis, analyse, bridging, minority_report
from graph.types import EdgeStats, GraphError, Thresholds, Value, Vote

__all__ = [
    "FORMATS",
    "Download",
    "download_name",
    "ExportFile",
    "FilterOptions",
    "GraphInputs",
    "NodeDetails",
    "bridging_tables",
    "compute",
    "edge_table",
    "end_of_day",
    "export",
    "export_download",
    "export_texts",
    "filter_options",
    "graph_html",
    "group_fields",
    "load_and_compute",
    "load_graph_inputs",
    "minority_table",
    "node_details",
    "parse_until",
    "render_export",
    "value_landing",
    "value_table",
    "winners_table",
]


@dataclass(frozen=True, slots=True)
class _Format:
    files: tuple[str, ...]
    mime: str
    label: str


FORMATS: dict[str, _Format] = {
    "mge-summary": _Format(("mge-summary.json",), "application/json", "Reference summary JSON"),
    "json": _Format(("graph.json",), "application/json", "Native JSON (scores, uncertainty)"),
    "graphml": _Format(("graph.graphml",), "application/graphml+xml", "GraphML"),
    "gexf": _Format(("graph.gexf",), "application/xml", "GEXF (Gephi)"),
    "csv": _Format(("values.csv", "edges.csv"), "application/zip", "CSV tables"),
    "html": _Format(("graph.html",), "text/html", "Standalone HTML graph"),
    "preferences": _Format(
        ("preferences.jsonl", "README.md"), "application/zip", "Preference pairs (JSONL)"
    ),
    "rubrics": _Format(("rubrics.jsonl", "README.md"), "application/zip", "Rubrics (JSONL)"),
}
"""Every export format: its file names (the first one is the main file), MIME type, label."""


# --- loading and analysis ---------------------------------------------------------------------


@dataclass(frozen=True)
class GraphInputs:
    """What the engine needs for one deliberation under one set of filters.

    ``votes`` in creation order; ``values`` every non-archived value (ids ours); ``groups``
    participant -> {field: label}; ``questions`` question text -> its context texts;
    ``comments`` publishable comments only; ``ref_ids`` our value id -> reference id.
    """

    votes: list[Vote]
    values: list[Value]
    groups: dict[str, dict[str, str]]
    questions: dict[str, list[str]]
    comments: list[GraphComment] = field(default_factory=list)
    ref_ids: dict[int, int] = field(default_factory=dict)
    withheld: set[int] = field(default_factory=set)
    slug: str = ""
    title: str = ""
    filters: dict[str, Any] = field(default_factory=dict)

    @property
    def participants(self) -> int:
        """How many distinct participants cast the votes (an aggregate, not an id)."""
        return len({v.participant for v in self.votes})


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_until(text: str) -> datetime:
    """An ISO 8601 time (UTC when it has no offset); a bare date means the end of that day.

    >>> parse_until("2024-05-01T12:00:00+02:00").isoformat()
    '2024-05-01T10:00:00+00:00'
    >>> parse_until("2024-05-01").isoformat()
    '2024-05-01T23:59:59.999999+00:00'
    """
    text = text.strip()
    try:
        if len(text) == 10:
            return end_of_day(date.fromisoformat(text))
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        raise GraphError(
            f"--until {text!r} is not an ISO 8601 date or time (e.g. 2024-05-01T12:00:00Z)"
        ) from None


def end_of_day(day: date) -> datetime:
    """The last microsecond of ``day`` in UTC (the console's date window ends there)."""
    return datetime.combine(day, time.max, tzinfo=UTC)


def load_graph_inputs(
    session: Session,
    *,
    deliberation_id: int,
    until: datetime | None = None,
    question_id: int | None = None,
    context: str | None = None,
) -> GraphInputs:
    """Read one deliberation's graph inputs (see :class:`GraphInputs`).

    Votes of deleted participants and on archived values are left out; ``until`` keeps votes
    cast up to that time (inclusive), ``question_id`` the votes in that question's contexts,
    ``context`` the votes in that context.

    Raises
    ------
    db.queries.NotFound
        The deliberation, the question (in this deliberation) or the context does not exist.
    """
    deliberation = queries.get_deliberation(session, id=deliberation_id)
    if question_id is not None:
        q = queries.get_question(session, question_id=question_id)
        if q.deliberation_id != deliberation_id:
            raise queries.NotFound(f"no question {question_id} in this deliberation")
    context_id = None
    if context is not None:
        row = queries.get_context_by_text(session, deliberation_id=deliberation_id, text=context)
        if row is None:
            raise queries.NotFound(f"no context {context!r} in this deliberation")
        context_id = row.id
    until = None if until is None else _utc(until)
    return GraphInputs(
        votes=[
            Vote(*row)
            for row in queries.list_graph_votes(
                session,
                deliberation_id=deliberation_id,
                until=until,
                question_id=question_id,
                context_id=context_id,
            )
        ],
        values=[
            Value(*row)
            for row in queries.list_graph_values(
                session, deliberation_id=deliberation_id, until=until
            )
        ],
        groups=queries.list_participant_groups(session, deliberation_id=deliberation_id),
        questions=queries.list_question_context_texts(
            session, deliberation_id=deliberation_id, question_id=question_id
        ),
        comments=queries.list_graph_comments(
            session,
            deliberation_id=deliberation_id,
            until=until,
            question_id=question_id,
            context_id=context_id,
        ),
        ref_ids=queries.list_value_ref_ids(session, deliberation_id=deliberation_id),
        withheld=queries.list_withheld_value_ids(session, deliberation_id=deliberation_id),
        slug=deliberation.slug,
        title=deliberation.title,
        filters={
            "until": None if until is None else until.isoformat(),
            "question_id": question_id,
            "context": None if context is None else " ".join(context.split()),
        },
    )


def compute(
    inputs: GraphInputs, *, min_wiser: int = 2, n_bootstrap: int = 200, seed: int = 0
) -> Analysis:
    """Analyse the inputs: per-context and pooled statistics, PageRank, winners, bootstrap.

    ``min_wiser`` is the "markedWiser" threshold for keeping an edge (DESIGN.md 5.1); the other
    thresholds are the reference's. The result depends only on the votes and these arguments
    and is kept for the last few of them: the graph page reruns on every click (choosing a
    value to inspect, switching a tab), and the bootstrap is most of a page's time. The
    returned analysis is shared between callers: read it, do not change it.
    """
    if min_wiser < 0:
        raise GraphError("min_wiser must be >= 0")
    return _analyse(tuple(inputs.votes), min_wiser, n_bootstrap, seed)


@lru_cache(maxsize=4)
def _analyse(votes: tuple[Vote, ...], min_wiser: int, n_bootstrap: int, seed: int) -> Analysis:
    return analyse(
        votes, thresholds=Thresholds(min_wiser=min_wiser), n_bootstrap=n_bootstrap, seed=seed
    )


# What loading raises for an unknown deliberation or question; pages catch it from here.
NotFound = queries.NotFound

WITHHELD_TITLE = "Value not published"


def _public(inputs: GraphInputs) -> GraphInputs:
    """The inputs as exports show them: values no contributor agreed to publish lose their
    text (they still count in the graph), and imported values take their reference ids."""
    if inputs.withheld:
        inputs = replace(
            inputs,
            values=[
                replace(v, title=WITHHELD_TITLE, description="", detail="", policies=())
                if v.id in inputs.withheld
                else v
                for v in inputs.values
            ],
            withheld=set(),
        )
    if not inputs.ref_ids:
        return inputs
    new = {v.id: inputs.ref_ids.get(v.id, v.id) for v in inputs.values}
    for v in inputs.votes:
        for end in (v.from_id, v.to_id):
            new.setdefault(end, inputs.ref_ids.get(end, end))
    if len(set(new.values())) != len(new):
        seen: dict[int, int] = {}
        for ours, public in sorted(new.items()):
            if public in seen:
                raise GraphError(
                    f"values {seen[public]} and {ours} would both be exported as id {public} "
                    "(an imported reference id equals one of our ids); export them separately"
                )
            seen[public] = ours
    return replace(
        inputs,
        votes=[replace(v, from_id=new[v.from_id], to_id=new[v.to_id]) for v in inputs.votes],
        values=[replace(v, id=new[v.id]) for v in inputs.values],
        comments=[replace(c, from_id=new[c.from_id], to_id=new[c.to_id]) for c in inputs.comments],
        ref_ids={},
    )


# --- exports ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportFile:
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Download:
    file_name: str
    data: bytes
    mime: str


def _provenance(inputs: GraphInputs) -> dict[str, Any]:
    return {
        "deliberation": inputs.slug,
        "title": inputs.title,
        "votes": len(inputs.votes),
        "participants": inputs.participants,
        "values": len(inputs.values),
        "generator": "moral-graph-elicitation",
    }


def _filters(inputs: GraphInputs, min_wiser: int) -> dict[str, Any]:
    return {**inputs.filters, "min_wiser": min_wiser}


def _comments(comments: Sequence[GraphComment]) -> list[dict[str, Any]]:
    rows = [
        {
            "source_id": c.from_id,
            "wiser_id": c.to_id,
            "context": c.context,
            "choice": c.choice,
            "text": c.text,
        }
        for c in comments
    ]
    return sorted(rows, key=lambda r: (r["context"], r["source_id"], r["wiser_id"], r["text"]))


def _by_question(
    inputs: GraphInputs, contexts: Sequence[str]
) -> tuple[dict[str, list[str]] | None, list[str]]:
    """(question -> contexts for the linked contexts or None, the contexts no question has)."""
    linked = {c for cs in inputs.questions.values() for c in cs}
    return (inputs.questions or None), [c for c in contexts if c not in linked]


def _preference_rows(inputs: GraphInputs, analysis: Analysis) -> list[dict[str, Any]]:
    questions, unlinked = _by_question(inputs, list(analysis.by_context))
    rows: list[dict[str, Any]] = []
    if questions:
        rows += preference_pairs(analysis.by_context, inputs.values, questions=questions)
    if unlinked:
        rows += preference_pairs(
            {c: analysis.by_context[c] for c in unlinked}, inputs.values, questions=None
        )
    return rows


def _rubric_rows(inputs: GraphInputs, analysis: Analysis) -> list[dict[str, Any]]:
    questions, unlinked = _by_question(inputs, list(analysis.scores))
    rows: list[dict[str, Any]] = []
    if questions:
        rows += rubrics(analysis.scores, inputs.values, questions=questions)
    if unlinked:
        rows += rubrics({c: analysis.scores[c] for c in unlinked}, inputs.values, questions=None)
    return rows


def _kept_values(values: Sequence[Value], edges: Sequence[EdgeStats]) -> list[Value]:
    used = {end for e in edges if e.kept for end in (e.source_id, e.wiser_id)}
    return [v for v in values if v.id in used]


def export_texts(
    inputs: GraphInputs, analysis: Analysis, *, fmt: str, min_wiser: int = 2
) -> list[ExportFile]:
    """The files of format ``fmt`` (a key of :data:`FORMATS`) as texts, from loaded inputs.

    ``inputs`` should already carry public ids (as :func:`render_export` arranges).
    """
    if fmt not in FORMATS:
        raise GraphError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    names = FORMATS[fmt].files
    values = inputs.values
    if fmt == "mge-summary":
        texts = [dumps_json(to_mge_summary(values, analysis.pooled))]
    elif fmt == "json":
        doc = to_native_json(
            values,
            analysis,
            provenance=_provenance(inputs),
            filters=_filters(inputs, min_wiser),
        )
        doc["comments"] = _comments(inputs.comments)
        texts = [dumps_json(doc)]
    elif fmt in ("graphml", "gexf"):
        g = build_graph(values, analysis.pooled, scores=analysis.pooled_scores, kept_only=True)
        texts = [to_graphml(g) if fmt == "graphml" else to_gexf(g)]
    elif fmt == "html":
        texts = [graph_html(inputs, analysis)]
    elif fmt == "csv":
        tables = to_csv_tables(values, analysis.by_context, scores=analysis.pooled_scores)
        texts = [tables[name] for name in names]
    elif fmt == "preferences":
        rows = _preference_rows(inputs, analysis)
        card = preference_pairs_card(rows, provenance=_provenance(inputs))
        texts = [to_jsonl(rows), card]
    else:
        rows = _rubric_rows(inputs, analysis)
        texts = [to_jsonl(rows), rubrics_card(rows, provenance=_provenance(inputs))]
    return [ExportFile(n, t) for n, t in zip(names, texts, strict=True)]


def graph_html(inputs: GraphInputs, analysis: Analysis, *, height: str = "600px") -> str:
    """The pooled moral graph (kept edges and their values) as a standalone, offline page."""
    from graph.visualise import render_html

    g = build_graph(
        _kept_values(inputs.values, analysis.pooled),
        analysis.pooled,
        scores=analysis.pooled_scores,
        kept_only=True,
    )
    return render_html(g, height=height)


def render_export(
    session: Session,
    *,
    deliberation_id: int,
    fmt: str,
    until: datetime | None = None,
    question_id: int | None = None,
    context: str | None = None,
    min_wiser: int = 2,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> list[ExportFile]:
    """Load, analyse and render one export format (see :data:`FORMATS`) as texts.

    The bootstrap only runs for the native JSON (the one format that reports uncertainty).
    """
    if fmt not in FORMATS:
        raise GraphError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    inputs = _public(
        load_graph_inputs(
            session,
            deliberation_id=deliberation_id,
            until=until,
            question_id=question_id,
            context=context,
        )
    )
    analysis = compute(
        inputs, min_wiser=min_wiser, n_bootstrap=n_bootstrap if fmt == "json" else 0, seed=seed
    )
    return export_texts(inputs, analysis, fmt=fmt, min_wiser=min_wiser)


def export(
    session: Session,
    *,
    deliberation_id: int,
    fmt: str,
    out_path: str | Path,
    until: datetime | None = None,
    question_id: int | None = None,
    context: str | None = None,
    min_wiser: int = 2,
    n_bootstrap: int = 200,
    seed: int = 0,
) -> list[Path]:
    """Write one export format; return the paths written.

    ``out_path`` is the file for single-file formats, the folder for ``csv`` (``values.csv``
    and ``edges.csv`` inside), and the JSONL file for ``preferences``/``rubrics`` (with the
    dataset card ``README.md`` beside it).
    """
    files = render_export(
        session,
        deliberation_id=deliberation_id,
        fmt=fmt,
        until=until,
        question_id=question_id,
        context=context,
        min_wiser=min_wiser,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )
    out = Path(out_path)
    if fmt == "csv":
        if out.exists() and not out.is_dir():
            raise GraphError(f"{out} is a file; csv writes a folder (values.csv, edges.csv)")
        targets = [out / f.name for f in files]
    elif len(files) == 2:
        if out.is_dir():
            raise GraphError(f"{out} is a folder; give the .jsonl file to write")
        targets = [out, out.parent / files[1].name]
    else:
        if out.is_dir():
            raise GraphError(f"{out} is a folder; give the file to write")
        targets = [out]
    return [write_text(f.text, target) for f, target in zip(files, targets, strict=True)]


def _zip(files: Sequence[ExportFile]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for f in files:
            # A fixed date keeps the archive byte-for-byte reproducible.
            info = zipfile.ZipInfo(f.name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, f.text.encode("utf-8"))
    return buffer.getvalue()


def export_download(
    engine: Engine,
    *,
    deliberation_id: int,
    fmt: str,
    until: datetime | None = None,
    question_id: int | None = None,
    context: str | None = None,
    min_wiser: int = 2,
    n_bootstrap: int = 200,
) -> Download:
    """One export as a download: the file itself, or a zip for multi-file formats."""
    with session_scope(engine) as s:
        slug = queries.get_deliberation(s, id=deliberation_id).slug
        files = render_export(
            s,
            deliberation_id=deliberation_id,
            fmt=fmt,
            until=until,
            question_id=question_id,
            context=context,
            min_wiser=min_wiser,
            n_bootstrap=n_bootstrap,
        )
    name, mime = download_name(slug, fmt)
    if len(files) == 1:
        return Download(name, files[0].text.encode("utf-8"), mime)
    return Download(name, _zip(files), mime)


def download_name(slug: str, fmt: str) -> tuple[str, str]:
    """(file name, MIME type) of the download of ``fmt``: a zip for multi-file formats.

    >>> download_name("study", "csv")
    ('study-csv.zip', 'application/zip')
    """
    if fmt not in FORMATS:
        raise GraphError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    info = FORMATS[fmt]
    if len(info.files) == 1:
        return f"{slug}-{info.files[0]}", info.mime
    return f"{slug}-{fmt}.zip", "application/zip"


# --- console views ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterOptions:
    """What the console's filters offer: questions (id, title) and contexts per question
    (``None`` -> every context of the deliberation)."""

    questions: list[tuple[int, str]]
    contexts: dict[int | None, list[str]]


def filter_options(engine: Engine, *, deliberation_id: int) -> FilterOptions:
    with session_scope(engine) as s:
        questions = queries.list_questions(s, deliberation_id=deliberation_id)
        contexts: dict[int | None, list[str]] = {
            None: [
                c.text
                for c in queries.list_contexts(
                    s, deliberation_id=deliberation_id, include_archived=True
                )
            ]
        }
        for q in questions:
            assert q.id is not None
            contexts[q.id] = [
                c.text
                for c in queries.list_contexts(
                    s, deliberation_id=deliberation_id, question_id=q.id, include_archived=True
                )
            ]
    return FilterOptions([(int(q.id or 0), q.title) for q in questions], contexts)


def load_and_compute(
    engine: Engine,
    *,
    deliberation_id: int,
    until: datetime | None = None,
    question_id: int | None = None,
    context: str | None = None,
    min_wiser: int = 2,
    n_bootstrap: int = 200,
) -> tuple[GraphInputs, Analysis]:
    """:func:`load_graph_inputs` then :func:`compute`, for pages (our ids, not public ones)."""
    with session_scope(engine) as s:
        inputs = load_graph_inputs(
            s,
            deliberation_id=deliberation_id,
            until=until,
            question_id=question_id,
            context=context,
        )
    return inputs, compute(inputs, min_wiser=min_wiser, n_bootstrap=n_bootstrap)


def _titles(inputs: GraphInputs) -> dict[int, str]:
    return {v.id: v.title for v in inputs.values}


def _intervals(analysis: Analysis) -> dict[tuple[str, int, int], tuple[float, float]]:
    if analysis.bootstrap is None:
        return {}
    return {(i.context, i.source_id, i.wiser_id): (i.low, i.high) for i in analysis.bootstrap.edges}


def _judged(e: EdgeStats) -> bool:
    """The hypothesis itself got votes (not only the mirror image of its reverse)."""
    return e.marked_wiser + e.marked_not_wiser + e.marked_unsure > 0


def _edge_row(
    context: str,
    e: EdgeStats,
    titles: Mapping[int, str],
    ci: Mapping[tuple[str, int, int], tuple[float, float]],
) -> dict[str, Any]:
    low, high = ci.get((context, e.source_id, e.wiser_id), (float("nan"), float("nan")))
    return {
        "context": context,
        "from": titles.get(e.source_id, str(e.source_id)),
        "wiser": titles.get(e.wiser_id, str(e.wiser_id)),
        "from_id": e.source_id,
        "wiser_id": e.wiser_id,
        "marked_wiser": e.marked_wiser,
        "marked_not_wiser": e.marked_not_wiser,
        "marked_less_wise": e.marked_less_wise,
        "marked_unsure": e.marked_unsure,
        "impressions": e.impressions,
        "wiser_likelihood": e.wiser_likelihood,
        "ci_low": low,
        "ci_high": high,
        "entropy": e.entropy,
        "kept": e.kept,
    }


def edge_table(
    inputs: GraphInputs, analysis: Analysis, *, kept_only: bool = False
) -> list[dict[str, Any]]:
    """Every judged hypothesis per context, with counts, likelihood, its bootstrap interval
    (95 %) and whether it is kept: the table twin of the graph."""
    titles, ci = _titles(inputs), _intervals(analysis)
    return [
        _edge_row(context, e, titles, ci)
        for context, edges in analysis.by_context.items()
        for e in edges
        if _judged(e) and (e.kept or not kept_only)
    ]


def value_table(inputs: GraphInputs, analysis: Analysis) -> list[dict[str, Any]]:
    """Every value with its contributors, pooled PageRank score and the contexts it wins."""
    wins: dict[int, list[str]] = {}
    for context, winner in analysis.winners.items():
        if winner is not None:
            wins.setdefault(winner, []).append(context)
    return [
        {
            "id": v.id,
            "title": v.title,
            "contributors": v.contributors,
            "score": analysis.pooled_scores.get(v.id),
            "wins": "; ".join(wins.get(v.id, [])),
            "description": v.description,
            "policies": "\n".join(v.policies),
        }
        for v in inputs.values
    ]


def winners_table(inputs: GraphInputs, analysis: Analysis) -> list[dict[str, Any]]:
    """Per context: the winner, its score, and how often it stays the winner when participants
    are resampled (the bootstrap's probability; None without a bootstrap)."""
    titles = _titles(inputs)
    stability = {} if analysis.bootstrap is None else analysis.bootstrap.winners
    votes_in: dict[str, int] = {}
    for v in inputs.votes:
        votes_in[v.context] = votes_in.get(v.context, 0) + 1
    rows = []
    for context in analysis.contexts:
        winner = analysis.winners.get(context)
        st = stability.get(context)
        rows.append(
            {
                "context": context,
                "winner": None if winner is None else titles.get(winner, str(winner)),
                "winner_id": winner,
                "score": None if winner is None else analysis.scores.get(context, {}).get(winner),
                "p_stays_winner": None if st is None else st.probability,
                "votes": votes_in.get(context, 0),
            }
        )
    return rows


@dataclass(frozen=True)
class NodeDetails:
    """One value in the graph: its card, contributors, score and judged edges per context.

    ``wiser_than`` lists hypotheses where this value is the wiser one (edges into it),
    ``less_wise_than`` those where another value is proposed as wiser (edges out of it).
    """

    value: Value
    score: float | None
    wins: list[str]
    wiser_than: list[dict[str, Any]]
    less_wise_than: list[dict[str, Any]]


def node_details(inputs: GraphInputs, analysis: Analysis, value_id: int) -> NodeDetails:
    """Details of ``value_id`` (one of ``inputs.values``); raises GraphError when unknown."""
    value = next((v for v in inputs.values if v.id == value_id), None)
    if value is None:
        raise GraphError(f"value {value_id} is not in this graph")
    rows = edge_table(inputs, analysis)
    return NodeDetails(
        value=value,
        score=analysis.pooled_scores.get(value_id),
        wins=[c for c, w in analysis.winners.items() if w == value_id],
        wiser_than=[r for r in rows if r["wiser_id"] == value_id],
        less_wise_than=[r for r in rows if r["from_id"] == value_id],
    )


def value_landing(
    engine: Engine,
    *,
    deliberation_id: int,
    value_id: int,
    question_id: int | None = None,
    n_bootstrap: int = 0,
) -> NodeDetails | None:
    """Where a value landed in the current graph (the participant's step 3.7); None when the
    value is not (or no longer) in the deliberation."""
    inputs, analysis = load_and_compute(
        engine, deliberation_id=deliberation_id, question_id=question_id, n_bootstrap=n_bootstrap
    )
    try:
        return node_details(inputs, analysis, value_id)
    except GraphError:
        return None


def group_fields(inputs: GraphInputs) -> list[str]:
    """The group fields known for the participants who voted (``entry_channel`` included)."""
    voters = {v.participant for v in inputs.votes}
    return sorted({f for p, fields in inputs.groups.items() if p in voters for f in fields})


def bridging_tables(
    inputs: GraphInputs, *, field: str, min_wiser: int = 2, threshold: float = 0.33
) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """(groups, value rows, edge rows) of :func:`graph.scoring.bridging` over ``field``.

    Rows carry ``support <group>`` (on the likelihood scale, None with no votes) and
    ``votes <group>`` columns, and ``bridges`` (every group's support >= ``threshold``).
    """
    if not inputs.votes:
        return [], [], []
    report = bridging(
        inputs.votes,
        inputs.groups,
        field=field,
        threshold=threshold,
        thresholds=Thresholds(min_wiser=min_wiser),
    )
    titles = _titles(inputs)

    def per_group(support: Mapping[str, float | None], votes: Mapping[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for g in report.groups:
            out[f"support {g}"] = support.get(g)
            out[f"votes {g}"] = votes.get(g, 0)
        return out

    values = [
        {
            "value": titles.get(v.value_id, str(v.value_id)),
            "value_id": v.value_id,
            "bridges": v.bridges,
            **per_group(v.support, v.votes),
        }
        for v in report.values
    ]
    edges = [
        {
            "from": titles.get(e.source_id, str(e.source_id)),
            "wiser": titles.get(e.wiser_id, str(e.wiser_id)),
            "kept": e.kept,
            "bridges": e.bridges,
            **per_group(e.support, e.votes),
        }
        for e in report.edges
        if sum(e.votes.values()) > 0 and e.kept
    ]
    return list(report.groups), values, edges


def minority_table(inputs: GraphInputs, *, field: str, min_wiser: int = 2) -> list[dict[str, Any]]:
    """Values that win a context among one group's votes but not among everyone's."""
    if not inputs.votes:
        return []
    titles = _titles(inputs)
    return [
        {
            "group": m.group,
            "context": m.context,
            "group winner": titles.get(m.value_id, str(m.value_id)),
            "group score": m.group_score,
            "overall winner": None
            if m.overall_winner is None
            else titles.get(m.overall_winner, str(m.overall_winner)),
            "its overall rank": m.overall_rank,
        }
        for m in minority_report(
            inputs.votes, inputs.groups, field=field, thresholds=Thresholds(min_wiser=min_wiser)
        )
    ]
