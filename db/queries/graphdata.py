"""Reading votes and values for the graph engine; writing imported reference data."""

from __future__ import annotations

__all__: list[str] = []
