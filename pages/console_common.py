"""What the console pages share: the deliberation picker and one-shot messages after actions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from elicit import console
from pages import common

if TYPE_CHECKING:  # pages reach the database only through elicit
    from db.models import Deliberation

CHOSEN_SLUG = "console_slug"  # the deliberation last picked on any console page
_FLASH = "console_flash"


def pick_deliberation(key: str, *, label: str = "Deliberation") -> Deliberation | None:
    """A select box of every deliberation; remembers the choice across console pages."""
    rows = [r.deliberation for r in console.list_deliberations(common.engine())]
    if not rows:
        st.info("There are no deliberations yet. Create one on the Deliberations page.")
        return None
    by_slug = {d.slug: d for d in rows}
    chosen = st.session_state.get(CHOSEN_SLUG)
    if st.session_state.get(key) not in by_slug:
        st.session_state[key] = chosen if chosen in by_slug else rows[0].slug
    slug = st.selectbox(
        label,
        list(by_slug),
        key=key,
        format_func=lambda s: f"{by_slug[s].title} ({s})",
    )
    st.session_state[CHOSEN_SLUG] = slug
    return by_slug[slug]


def show_error(error: Exception | str) -> None:
    """An error box whose text is shown literally (it may quote LLM or participant text)."""
    st.error(console.escape_markdown(str(error)))


def flash(message: str) -> None:
    """Show `message` as a success note on the next run (after `st.rerun()`)."""
    st.session_state[_FLASH] = message


def show_flash() -> None:
    message = st.session_state.pop(_FLASH, None)
    if message:
        st.success(console.escape_markdown(message))
