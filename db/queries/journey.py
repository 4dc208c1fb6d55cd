"""Participant journey: entry, steps, interviews, messages, cards, peer values, wiser votes, survey."""

from __future__ import annotations

__all__: list[str] = []
