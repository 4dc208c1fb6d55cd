"""Console: the live dashboard. Funnel, completion, time per step, counts, LLM usage and cost."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from elicit import console
from pages import common
from pages.console_common import pick_deliberation

REFRESH_SECONDS = 10

common.require_facilitator()
engine = common.engine()

st.title("Dashboard")
st.caption(common.settings().describe())
d = pick_deliberation("dash_delib")
if d is None:
    st.stop()
assert d.id is not None
deliberation_id = d.id
toggle_col, scope_col = st.columns(2)
auto = toggle_col.toggle(f"Refresh every {REFRESH_SECONDS} seconds", key="dash_auto")
whole_ledger = scope_col.checkbox(
    "LLM usage of the whole deployment, not only this deliberation", key="dash_whole_ledger"
)


def _tokens(n: int) -> str:
    return f"{n:,}"


@st.fragment(run_every=REFRESH_SECONDS if auto else None)
def live() -> None:
    if common.facilitator() is None:  # the session ended since the page loaded
        st.rerun(scope="app")
    dash = console.build_dashboard(
        engine,
        deliberation_id=deliberation_id,
        prices=common.settings().prices(),
        whole_ledger=whole_ledger,
    )
    st.button("Refresh now", key="dash_refresh")
    st.caption(f"As of {dash.computed_at:%Y-%m-%d %H:%M:%S} UTC")

    st.subheader("Participants")
    cols = st.columns(4)
    cols[0].metric("Participants", dash.participants)
    cols[1].metric("Finished", dash.finished)
    rate = "–" if dash.completion_rate is None else f"{dash.completion_rate:.0%}"
    cols[2].metric("Completion rate", rate)
    cols[3].metric("Interviews", dash.counts["interviews"])

    steps = pd.DataFrame(
        [
            {
                "step": s.label,
                "reached": s.reached,
                "now here": s.current,
                "median minutes": s.median_minutes,
                "timed": s.timed,
            }
            for s in dash.steps
        ]
    )
    order = [s.label for s in dash.steps]
    funnel_col, time_col = st.columns(2)
    with funnel_col:
        st.altair_chart(
            alt.Chart(steps, title="Participants per step (reached)")
            .mark_bar()
            .encode(
                x=alt.X("reached:Q", title="participants"),
                y=alt.Y("step:N", sort=order, title=None),
                tooltip=["step", "reached", "now here"],
            ),
            key="dash_funnel_chart",
        )
    with time_col:
        st.altair_chart(
            alt.Chart(steps.dropna(subset=["median minutes"]), title="Median minutes per step")
            .mark_bar()
            .encode(
                x=alt.X("median minutes:Q", title="minutes"),
                y=alt.Y("step:N", sort=order, title=None),
                tooltip=["step", alt.Tooltip("median minutes:Q", format=".1f"), "timed"],
            ),
            key="dash_minutes_chart",
        )
    st.dataframe(steps, hide_index=True, key="dash_steps_table")

    st.subheader("Values and votes")
    cols = st.columns(4)
    cols[0].metric("Cards submitted", dash.counts["cards_submitted"])
    cols[1].metric("Canonical values", dash.counts["canonical_values"])
    cols[2].metric("Hypotheses", dash.counts["hypotheses"])
    cols[3].metric("Wiser votes", dash.counts["wiser_votes"])

    ledger = dash.ledger
    scope = "all deliberations" if dash.ledger_scope == "all" else "this deliberation"
    st.subheader(f"LLM usage ({scope})")
    cols = st.columns(5)
    cols[0].metric("LLM calls", _tokens(ledger.calls), help=f"{ledger.errors} failed")
    cols[1].metric("Input tokens", _tokens(ledger.input_tokens))
    cols[2].metric("Cached input tokens", _tokens(ledger.cached_input_tokens))
    cols[3].metric("Output tokens", _tokens(ledger.output_tokens))
    cols[4].metric("Estimated cost", f"${ledger.cost_usd:,.4f}")
    if ledger.unpriced_models:
        st.warning(
            console.escape_markdown(
                "No price is set for: "
                + ", ".join(ledger.unpriced_models)
                + ". Their calls add no cost; set MGE_PRICES to include them."
            )
        )
    if ledger.rows:
        usage = pd.DataFrame(
            [
                {
                    "purpose": r.purpose,
                    "model": r.model,
                    "calls": r.calls,
                    "errors": r.errors,
                    "input (uncached)": max(r.input_tokens - r.cached_input_tokens, 0),
                    "cached input": r.cached_input_tokens,
                    "output": r.output_tokens,
                    "cost (USD)": r.cost_usd,
                }
                for r in ledger.rows
            ]
        )
        tokens = usage.melt(
            id_vars=["purpose"],
            value_vars=["input (uncached)", "cached input", "output"],
            var_name="kind",
            value_name="tokens",
        )
        st.altair_chart(
            alt.Chart(tokens, title="Tokens by purpose")
            .mark_bar()
            .encode(
                x=alt.X("sum(tokens):Q", title="tokens"),
                y=alt.Y("purpose:N", title=None),
                color=alt.Color("kind:N", title=None),
                tooltip=["purpose", "kind", "sum(tokens):Q"],
            ),
            key="dash_tokens_chart",
        )
        st.dataframe(usage, hide_index=True, key="dash_usage_table")
    else:
        st.caption("No LLM calls yet.")


live()
