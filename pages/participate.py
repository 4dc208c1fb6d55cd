"""Participant entry: the landing page (placeholder until the journey lands)."""

from __future__ import annotations

import streamlit as st

from db import queries
from db.engine import session_scope
from pages import common

st.title("Moral Graph Elicitation")
with session_scope(common.engine()) as s:
    open_ones = [d for d in queries.list_deliberations(s) if d.is_open]
if not open_ones:
    st.info("There is no open deliberation yet. A facilitator can create one in the console.")
for d in open_ones:
    st.markdown(f"- [{d.title}](?d={d.slug})")
