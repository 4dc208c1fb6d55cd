"""The `mge` command. Each command calls the same functions the pages use.

Command groups live in their own modules (`cli_*.py`) and are registered at the bottom.
User mistakes end with one clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.engine import Engine

from db import queries
from db.engine import session_scope
from db.migrate import current_revision, table_names
from elicit.auth import AuthError, create_account
from elicit.config import Settings, get_settings
from elicit.runtime import StartupError, open_database

app = typer.Typer(
    help="Moral Graph Elicitation: run deliberations, build and export moral graphs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
admin_app = typer.Typer(help="Facilitator accounts.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")

DatabaseURL = Annotated[
    str | None,
    typer.Option(
        "--database-url", envvar="DATABASE_URL", help="Database URL (default from settings)."
    ),
]


class CLIError(Exception):
    """A user-facing failure: printed as one line, exit code 1."""


def fail(message: str) -> None:
    raise CLIError(message)


F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Turn the app's own error types into one line and exit 1."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from graph.types import GraphError

        try:
            return fn(*args, **kwargs)
        except (
            CLIError,
            StartupError,
            AuthError,
            queries.NotFound,
            queries.Conflict,
            GraphError,
        ) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def settings_for(database_url: str | None) -> Settings:
    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return settings


@contextmanager
def engine_for(database_url: str | None, *, migrate: bool = True) -> Iterator[Engine]:
    engine = open_database(settings_for(database_url), migrate=migrate)
    try:
        yield engine
    finally:
        engine.dispose()


def deliberation_id(engine: Engine, slug: str) -> int:
    with session_scope(engine) as s:
        d = queries.get_deliberation(s, slug=slug)
        assert d.id is not None
        return d.id


# --- db -------------------------------------------------------------------------------------


@db_app.command("upgrade")
@user_errors
def db_upgrade(database_url: DatabaseURL = None) -> None:
    """Apply migrations (safe to run again: it changes nothing when up to date)."""
    with engine_for(database_url) as engine:
        typer.echo(f"schema at {current_revision(engine)} ({len(table_names(engine))} tables)")


@db_app.command("current")
@user_errors
def db_current(database_url: DatabaseURL = None) -> None:
    """Show the schema revision without changing anything."""
    with engine_for(database_url, migrate=False) as engine:
        typer.echo(current_revision(engine) or "empty (run: mge db upgrade)")


# --- admin ----------------------------------------------------------------------------------


@admin_app.command("create")
@user_errors
def admin_create(
    username: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    database_url: DatabaseURL = None,
) -> None:
    """Create a facilitator account."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            fail("no terminal to ask for a password: use --password-stdin")
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with engine_for(database_url) as engine:
        create_account(engine, username=username, password=password)
    typer.echo(f"facilitator {username!r} created")


# --- demo, logs -----------------------------------------------------------------------------


@app.command("demo")
@user_errors
def demo(database_url: DatabaseURL = None) -> None:
    """Create a demo deliberation (questions and contexts only; no participant data)."""
    from elicit.demo import DEMO_SLUG, create_demo

    settings = settings_for(database_url)
    with engine_for(database_url) as engine:
        _, created = create_demo(engine)
    what = "created" if created else "already exists"
    typer.echo(f"demo deliberation {what}: {settings.mge_public_url}/?d={DEMO_SLUG}")


@app.command("logs")
@user_errors
def logs(
    limit: Annotated[int, typer.Option("-n", "--limit", help="How many calls.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    database_url: DatabaseURL = None,
) -> None:
    """List recent LLM calls from the ledger, newest first."""
    with engine_for(database_url) as engine, session_scope(engine) as s:
        rows = queries.list_llm_calls(s, limit=limit)
    for r in rows:
        if as_json:
            typer.echo(json.dumps(r.model_dump(mode="json"), sort_keys=True))
        else:
            tokens = f"{r.input_tokens or 0}+{r.output_tokens or 0} tok"
            cached = f" ({r.cached_input_tokens} cached)" if r.cached_input_tokens else ""
            err = f" {r.error_type}: {r.error_message}" if r.outcome != "ok" else ""
            typer.echo(
                f"{r.created_at:%Y-%m-%d %H:%M:%S} {r.purpose:<11} {r.model:<20} "
                f"{r.outcome:<5} {r.duration_ms:>6} ms {tokens}{cached}{err}"
            )


from elicit.cli_console import participant_app  # noqa: E402

app.add_typer(participant_app, name="participant")
from elicit.cli_graph import graph_app  # noqa: E402

app.add_typer(graph_app)
from elicit.cli_values import values_app  # noqa: E402

app.add_typer(values_app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
