"""`mge participant ...`: a participant's data from the command line (export, delete).

The same functions as the console's Participant data page (`elicit.participants`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# Defined before importing elicit.cli: cli.py imports this module at its bottom, and under
# `python -m elicit.cli` that import meets this module half-initialised.
participant_app = typer.Typer(
    help="Participant data: export it, or delete it when a participant withdraws.",
    no_args_is_help=True,
)

from elicit import participants  # noqa: E402
from elicit.cli import DatabaseURL, deliberation_id, engine_for, fail, user_errors  # noqa: E402

Deliberation = Annotated[
    str, typer.Option("--deliberation", "-d", help="The deliberation's slug.", show_default=False)
]
Token = Annotated[
    str | None, typer.Option("--token", help="The participant's resume token.", show_default=False)
]
PanelId = Annotated[
    str | None,
    typer.Option(
        "--panel-id", help="The participant's panel id (e.g. PROLIFIC_PID).", show_default=False
    ),
]


def _which(token: str | None, panel_id: str | None) -> None:
    if bool(token and token.strip()) == bool(panel_id and panel_id.strip()):
        fail("give either --token or --panel-id (one of them)")


@participant_app.command("export")
@user_errors
def export(
    deliberation: Deliberation,
    token: Token = None,
    panel_id: PanelId = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the JSON to this file instead of stdout."),
    ] = None,
    database_url: DatabaseURL = None,
) -> None:
    """Print (or write) everything stored about one participant as JSON."""
    _which(token, panel_id)
    with engine_for(database_url) as engine:
        did = deliberation_id(engine, deliberation)
        found = participants.find_participant(
            engine, deliberation_id=did, token=token, panel_id=panel_id
        )
        text = participants.export_participant_json(engine, participant_id=found.id)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"participant {found.id} exported to {output}", err=True)


@participant_app.command("delete")
@user_errors
def delete(
    deliberation: Deliberation,
    token: Token = None,
    panel_id: PanelId = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseURL = None,
) -> None:
    """Delete a participant and everything they contributed (a withdrawal; cannot be undone)."""
    _which(token, panel_id)
    with engine_for(database_url) as engine:
        did = deliberation_id(engine, deliberation)
        found = participants.find_participant(
            engine, deliberation_id=did, token=token, panel_id=panel_id
        )
        if not yes:
            typer.confirm(
                f"Delete participant {found.id} of {deliberation!r} with {found.interviews} "
                f"interview(s), {found.cards} card(s) and {found.wiser_votes} vote(s)?",
                abort=True,
            )
        counts = participants.delete_participant(engine, participant_id=found.id)
    detail = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
    typer.echo(f"participant {found.id} deleted ({detail})")
