"""Console: deliberations (placeholder until the console lands)."""

from __future__ import annotations

import streamlit as st

from db import queries
from db.engine import session_scope
from pages import common

common.require_facilitator()
st.title("Deliberations")
with session_scope(common.engine()) as s:
    rows = queries.list_deliberations(s)
st.dataframe([{"slug": d.slug, "title": d.title, "open": d.is_open} for d in rows])
