"""Facilitator console: dashboard counts, browsing, flags, participant data export and deletion."""

from __future__ import annotations

__all__: list[str] = []
