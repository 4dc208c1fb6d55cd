"""Plain input and output types of the graph engine, and its errors.

Everything here is a frozen dataclass of plain Python values, so callers (the database layer,
the CLI, tests) can build them without importing numpy or networkx.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Choice = Literal["upgrade", "no_upgrade", "not_sure"]
"""A participant's judgement of a wiser-than hypothesis A -> B."""

CHOICES: tuple[Choice, ...] = ("upgrade", "no_upgrade", "not_sure")
"""Every valid choice, in the order the vectorised code numbers them (0, 1, 2)."""

Groups = Mapping[str, Mapping[str, str]]
"""Participant id -> {field: group label}, e.g. ``{"p1": {"party": "D", "channel": "panel"}}``.

Participant ids are matched as strings (``str(vote.participant)``)."""


class GraphError(ValueError):
    """Invalid input to a graph function (an unknown choice, a self-loop vote, ...)."""


class ImportFormatError(GraphError):
    """A file being imported is not in the expected format; the message names file and row."""


@dataclass(frozen=True, slots=True)
class Vote:
    """One participant's judgement that ``to_id`` is (or is not) wiser than ``from_id``.

    ``participant`` is only used to group votes (bootstrap, robustness, bridging); it never
    appears in any export.
    """

    participant: str
    from_id: int
    to_id: int
    context: str
    choice: Choice
    created_at: datetime | None = None
    question_id: int | None = None


@dataclass(frozen=True, slots=True)
class Value:
    """A canonical value (the node of the moral graph)."""

    id: int
    title: str
    description: str
    detail: str
    policies: tuple[str, ...]
    created_at: str | None = None
    updated_at: str | None = None
    contributors: int = 0


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When a pair is kept as an edge of the moral graph (DESIGN.md 5.1).

    The reference also drops every pair with no "upgrade" vote at all, so ``min_wiser=0`` still
    requires one.
    """

    min_wiser: int = 2
    min_likelihood: float = 0.33
    max_entropy: float = 1.69


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True, slots=True)
class EdgeStats:
    """Vote counts and summary of one ordered pair ``source_id -> wiser_id``.

    ``marked_less_wise`` counts "upgrade" votes cast on the reverse hypothesis
    (``wiser_id -> source_id``); ``impressions`` counts every vote on either direction.
    """

    source_id: int
    wiser_id: int
    contexts: tuple[str, ...]
    marked_wiser: int
    marked_not_wiser: int
    marked_less_wise: int
    marked_unsure: int
    impressions: int
    wiser_likelihood: float
    entropy: float
    kept: bool
