"""Canonical values, deduplication decisions and wiser-than hypotheses."""

from __future__ import annotations

__all__: list[str] = []
