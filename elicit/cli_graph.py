"""`mge import ...` and `mge export`: reference data in, every export format out.

The same functions as the console's Graph and Exports pages (`elicit.imports`, `elicit.graphs`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

# Defined before importing elicit.cli: cli.py imports this module at its bottom, and under
# `python -m elicit.cli` that import meets this module half-initialised.
graph_app: typer.Typer = typer.Typer()
import_app = typer.Typer(
    help="Import reference data (a summary file or a database dump) into a deliberation.",
    no_args_is_help=True,
)
graph_app.add_typer(import_app, name="import")

from db.engine import session_scope  # noqa: E402
from db.queries.graphdata import ImportResult  # noqa: E402
from elicit import graphs, imports  # noqa: E402
from elicit.cli import (  # noqa: E402
    CLIError,
    DatabaseURL,
    deliberation_id,
    engine_for,
    user_errors,
)
from elicit.console import ConsoleError  # noqa: E402

Deliberation = Annotated[
    str, typer.Option("--deliberation", "-d", help="The deliberation's slug.", show_default=False)
]


class Format(StrEnum):
    mge_summary = "mge-summary"
    json = "json"
    graphml = "graphml"
    gexf = "gexf"
    csv = "csv"
    html = "html"
    preferences = "preferences"
    rubrics = "rubrics"


def _report(result: ImportResult, slug: str) -> None:
    made = "created" if result.deliberation_created else "existing"
    typer.echo(
        f"imported into {made} deliberation {slug!r}: {result.values} values, "
        f"{result.contexts} contexts, {result.participants} participants, {result.votes} votes, "
        f"{result.hypotheses} stories, {result.cards} cards"
    )


@import_app.command("mge-summary")
@user_errors
def import_summary(
    file: Annotated[Path, typer.Argument(help="A reference summary JSON file.")],
    deliberation: Deliberation,
    database_url: DatabaseURL = None,
) -> None:
    """Import a reference summary (values and kept edges with their vote counts)."""
    try:
        with engine_for(database_url) as engine:
            result = imports.import_mge_summary(engine, file, slug=deliberation)
    except ConsoleError as exc:
        raise CLIError(str(exc)) from None
    _report(result, deliberation)


@import_app.command("mge-dump")
@user_errors
def import_dump(
    folder: Annotated[Path, typer.Argument(help="A folder of the reference's JSON tables.")],
    deliberation: Deliberation,
    database_url: DatabaseURL = None,
) -> None:
    """Import a reference database dump (canonicalValuesCard.json, edge.json, ...)."""
    try:
        with engine_for(database_url) as engine:
            result = imports.import_mge_dump(engine, folder, slug=deliberation)
    except ConsoleError as exc:
        raise CLIError(str(exc)) from None
    _report(result, deliberation)


@graph_app.command("export")
@user_errors
def export(
    deliberation: Deliberation,
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="The export format.", show_default=False)
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="The file to write (csv: a folder; preferences/rubrics: the .jsonl file, "
            "with README.md beside it).",
            show_default=False,
        ),
    ],
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="Only votes cast up to this ISO 8601 time (UTC without an offset; a bare date means the end of that day).",
        ),
    ] = None,
    question: Annotated[
        int | None, typer.Option("--question", help="Only the contexts of this question id.")
    ] = None,
    context: Annotated[str | None, typer.Option("--context", help="Only this context.")] = None,
    min_wiser: Annotated[
        int, typer.Option("--min-wiser", min=0, help="markedWiser needed to keep an edge.")
    ] = 2,
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Bootstrap replicates (json only).")
    ] = 200,
    database_url: DatabaseURL = None,
) -> None:
    """Export the deliberation's moral graph (no personal data in any format)."""
    when = graphs.parse_until(until) if until else None
    with engine_for(database_url) as engine:
        did = deliberation_id(engine, deliberation)
        with session_scope(engine) as s:
            try:
                paths = graphs.export(
                    s,
                    deliberation_id=did,
                    fmt=fmt.value,
                    out_path=output,
                    until=when,
                    question_id=question,
                    context=context,
                    min_wiser=min_wiser,
                    n_bootstrap=bootstrap,
                )
            except OSError as exc:
                raise CLIError(f"cannot write {output}: {exc.strerror or exc}") from None
    for path in paths:
        typer.echo(f"wrote {path}")
