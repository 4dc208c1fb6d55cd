"""`mge dedupe` and `mge hypotheses`: deduplication and wiser-than hypotheses from the terminal.

The same functions as the console's Deduplication and Hypotheses pages (`elicit.dedupe`,
`elicit.hypotheses`). Progress bars go to stderr, so `--json` output on stdout stays clean.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

# Defined before importing elicit.cli: cli.py imports this module at its bottom, and whichever
# of the two is imported first meets the other half-initialised. `values_app` holds `dedupe`
# and the `hypotheses` group; cli.py merges it into the top level.
values_app: typer.Typer = typer.Typer()
hypotheses_app: typer.Typer = typer.Typer(
    help="Wiser-than hypotheses: generate them per context (default) or list them.",
    invoke_without_command=True,
)
values_app.add_typer(hypotheses_app, name="hypotheses")

from elicit import dedupe as dedupe_core  # noqa: E402
from elicit import hypotheses as hyp  # noqa: E402
from elicit.cli import (  # noqa: E402
    DatabaseURL,
    deliberation_id,
    engine_for,
    fail,
    settings_for,
    user_errors,
)
from elicit.values import embedder_from_settings  # noqa: E402

Deliberation = Annotated[
    str, typer.Option("--deliberation", "-d", help="The deliberation's slug.", show_default=False)
]
NoLLM = Annotated[
    bool, typer.Option("--no-llm", help="Do not use the LLM even when one is configured.")
]


@contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback drawing a bar on stderr (None when disabled)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _tools(database_url: str | None, engine: Any, no_llm: bool) -> tuple[Any, Any]:
    """(gateway or None, embedder) as the settings say."""
    settings = settings_for(database_url)
    gateway = None
    if not no_llm and settings.llm_enabled:
        from elicit.llm import gateway_from_settings

        gateway = gateway_from_settings(settings, engine)
    return gateway, embedder_from_settings(settings, gateway)


def _describe_plan(plan: dedupe_core.DedupePlan) -> list[str]:
    lines = [plan.summary()]
    for cluster in plan.clusters:
        if not cluster.changes:
            continue
        target = "new value" if cluster.target_id is None else f"value {cluster.target_id}"
        parts = []
        if cluster.merged_value_ids:
            parts.append("merges " + ", ".join(f"value {v}" for v in cluster.merged_value_ids))
        if cluster.split_card_ids:
            parts.append("takes card(s) " + ", ".join(map(str, cluster.split_card_ids)))
        if cluster.assigned_card_ids:
            parts.append("places card(s) " + ", ".join(map(str, cluster.assigned_card_ids)))
        if cluster.retitles:
            parts.append("takes the text of card " + str(cluster.representative_id))
        cards = ", ".join(str(c) for c in cluster.card_ids)
        lines.append(f"  {target} {cluster.title!r} (cards {cards}): {'; '.join(parts)}")
    return lines


@values_app.command("dedupe")
@user_errors
def dedupe(
    deliberation: Deliberation,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan without changing anything.")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help='Print only {"clusters": [{"canonical_id", "card_ids"}]}.'),
    ] = False,
    no_llm: NoLLM = False,
    actor: Annotated[
        str, typer.Option("--actor", help="Who the decision log names.", show_default=True)
    ] = "cli",
    database_url: DatabaseURL = None,
) -> None:
    """Cluster the deliberation's cards into canonical values and apply it.

    With an LLM configured, a "same value?" check decides each candidate
    pair; otherwise the similarity threshold does. Every decision is logged;
    running it again changes nothing.
    """
    with engine_for(database_url) as engine:
        did = deliberation_id(engine, deliberation)
        gateway, embedder = _tools(database_url, engine, no_llm)
        try:
            with _progress("Deduplicating", enabled=not as_json) as progress:
                plan = dedupe_core.propose(
                    engine,
                    deliberation_id=did,
                    embedder=embedder,
                    gateway=gateway,
                    progress=progress,
                )
            apply_it = not dry_run and plan.has_changes
            result = dedupe_core.apply(engine, plan, actor=actor[:64]) if apply_it else None
        except dedupe_core.DedupeError as exc:
            fail(str(exc))
            return
        finally:
            if gateway is not None:
                gateway.close()
    if as_json:
        ids = result.value_ids if result is not None else None
        typer.echo(json.dumps(plan.to_json(ids)))
        return
    for line in _describe_plan(plan):
        typer.echo(line)
    if plan.llm_calls:
        typer.echo(f"{plan.llm_calls} LLM check(s) made")
    if dry_run:
        typer.echo("dry run: nothing changed")
    else:
        typer.echo(result.summary() if result is not None else "nothing to change")


@hypotheses_app.callback()
@user_errors
def hypotheses(
    ctx: typer.Context,
    deliberation: Annotated[
        str | None,
        typer.Option("--deliberation", "-d", help="The deliberation's slug.", show_default=False),
    ] = None,
    per_context: Annotated[
        int,
        typer.Option(
            "--per-context",
            min=1,
            help="Value pairs per context (each pair gives two hypotheses, one per direction).",
        ),
    ] = hyp.DEFAULT_PER_CONTEXT,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be generated; write nothing.")
    ] = False,
    no_llm: NoLLM = False,
    database_url: DatabaseURL = None,
) -> None:
    """Generate wiser-than hypotheses for every context (both directions).

    Stories come from the LLM when one is configured, else from a template.
    Hypotheses that exist already are kept, so running it again only fills
    gaps.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not deliberation:
        fail("give --deliberation SLUG")
    assert deliberation is not None
    with engine_for(database_url) as engine:
        did = deliberation_id(engine, deliberation)
        gateway, embedder = _tools(database_url, engine, no_llm)
        try:
            if dry_run:
                plans = hyp.plan_hypotheses(
                    engine, deliberation_id=did, embedder=embedder, per_context=per_context
                )
                for plan in plans:
                    typer.echo(
                        f"context {plan.context_id} {plan.context_text!r}: "
                        f"{len(plan.value_ids)} values, {len(plan.pairs)} pairs, "
                        f"{plan.missing} hypothesis(es) to write"
                    )
                total = sum(p.missing for p in plans)
                typer.echo(f"dry run: {total} hypothesis(es) would be written; nothing changed")
                return
            with _progress("Writing hypotheses", enabled=True) as progress:
                result = hyp.generate_hypotheses(
                    engine,
                    deliberation_id=did,
                    embedder=embedder,
                    gateway=gateway,
                    per_context=per_context,
                    progress=progress,
                )
        except hyp.HypothesisError as exc:
            fail(str(exc))
            return
        finally:
            if gateway is not None:
                gateway.close()
    for context_id, n in sorted(result.per_context.items()):
        typer.echo(f"context {context_id}: {n} new")
    typer.echo(result.summary())


@hypotheses_app.command("list")
@user_errors
def list_hypotheses(
    deliberation: Deliberation,
    context: Annotated[
        int | None, typer.Option("--context", help="Only this context id.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    database_url: DatabaseURL = None,
) -> None:
    """List hypotheses with their votes (upgrade / no_upgrade / not_sure)."""
    with engine_for(database_url) as engine:
        did = deliberation_id(engine, deliberation)
        rows = hyp.list_for_review(engine, deliberation_id=did, context_id=context)
    for h in rows:
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "id": h.id,
                        "context_id": h.context_id,
                        "context": h.context_text,
                        "from_id": h.from_value.id,
                        "to_id": h.to_value.id,
                        "from_title": h.from_value.title,
                        "to_title": h.to_value.title,
                        "origin": h.origin,
                        "archived": h.archived,
                        "votes": h.votes,
                        "story": h.story,
                    },
                    sort_keys=True,
                )
            )
        else:
            votes = " ".join(f"{k}={n}" for k, n in h.votes.items())
            mark = " (archived)" if h.archived else ""
            typer.echo(
                f"{h.id:>5} ctx {h.context_id:<4} {h.from_value.title!r} -> "
                f"{h.to_value.title!r} [{h.origin}] {votes}{mark}"
            )


@values_app.command("simulate")
@user_errors
def simulate(
    deliberation: Deliberation,
    n: Annotated[
        int, typer.Option("--n", "-n", help="How many simulated participants to run.")
    ] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Personas and choices follow it.")] = 0,
    delete: Annotated[
        bool,
        typer.Option("--delete", help="Delete the deliberation's simulated participants instead."),
    ] = False,
    database_url: DatabaseURL = None,
) -> None:
    """Pilot a deliberation with LLM personas before launch.

    Each persona takes part like a person (also while the deliberation is
    closed): the real interview, a confirmed card, peer values, wiser-than
    stories, the survey. They are marked "simulated"; `--delete` removes
    them, their cards and votes before the real participants come.
    """
    from elicit import journey
    from elicit import simulate as sim

    with engine_for(database_url) as engine:
        did = deliberation_id(engine, deliberation)
        if delete:
            typer.echo(
                f"deleted {sim.delete_simulated(engine, deliberation_id=did)} "
                "simulated participant(s)"
            )
            return
        gateway, _embedder = _tools(database_url, engine, no_llm=False)
        try:
            with _progress("Simulating", enabled=True) as progress:
                runs = sim.simulate(
                    engine,
                    gateway,
                    slug=deliberation,
                    n=n,
                    seed=seed,
                    progress=progress,
                )
        except (sim.SimulationError, journey.JourneyError) as exc:
            fail(str(exc))
            return
        finally:
            if gateway is not None:
                gateway.close()
    for r in runs:
        card = repr(r.card_title) if r.card_title else "no card"
        line = f"  participant {r.participant_id}: {r.step}, {r.turns} message(s), {card}"
        typer.echo(line + (f" ({r.problem})" if r.problem else ""))
    typer.echo(sim.summary(runs))
    if any(r.problem for r in runs):
        raise typer.Exit(1)
