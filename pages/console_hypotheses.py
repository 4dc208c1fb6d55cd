"""Console: wiser-than hypotheses. Generate per context, review stories, archive, add by hand."""

from __future__ import annotations

import streamlit as st

from elicit import console
from elicit import hypotheses as hyp
from elicit.values import embedder_from_settings
from pages import common
from pages.console_common import flash, pick_deliberation, show_error, show_flash

common.require_facilitator()
engine = common.engine()

st.title("Wiser-than hypotheses")
show_flash()
d = pick_deliberation("hy_delib")
if d is None:
    st.stop()
assert d.id is not None
gateway = common.gateway()
contexts = dict(hyp.list_contexts(engine, deliberation_id=d.id))
ALL = 0  # "every context" in the pickers


def context_label(context_id: int) -> str:
    return "Every context" if context_id == ALL else contexts.get(context_id, str(context_id))


def show_value(title: str, view: hyp.ValueView) -> None:
    st.markdown(f"**{title}**")
    st.markdown("**" + console.escape_markdown(view.title) + "**")
    st.markdown(console.escape_markdown(view.description))
    for policy in view.policies:
        st.markdown("- " + console.escape_markdown(policy))


if not contexts:
    st.info("This deliberation has no contexts yet. Add them on the Questions and contexts page.")
    st.stop()

# --- generate ---------------------------------------------------------------------------------

st.header("Generate")
if gateway is None:
    st.info(
        "No LLM is configured, so stories are templated from the two cards. Edit them below, "
        "or write your own hypotheses by hand."
    )
with st.form("hy_generate_form"):
    st.selectbox("For", [ALL, *contexts], format_func=context_label, key="hy_gen_context")
    st.number_input(
        "Value pairs per context (each gives two hypotheses, one per direction)",
        min_value=1,
        max_value=50,
        value=hyp.DEFAULT_PER_CONTEXT,
        key="hy_per_context",
    )
    generate = st.form_submit_button("Generate hypotheses", key="hy_generate", type="primary")
if generate:
    common.require_facilitator()
    chosen = st.session_state.hy_gen_context
    bar = st.progress(0.0, text="Choosing value pairs...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"{done} of {total} stories")

    try:
        result = hyp.generate_hypotheses(
            engine,
            deliberation_id=d.id,
            embedder=embedder_from_settings(common.settings(), gateway),
            gateway=gateway,
            per_context=int(st.session_state.hy_per_context),
            context_ids=None if chosen == ALL else [chosen],
            progress=progress,
        )
    except hyp.HypothesisError as exc:
        bar.empty()
        show_error(exc)
    else:
        flash(result.summary())
        st.rerun()

# --- review -----------------------------------------------------------------------------------

st.header("Review")
filter_col, archived_col = st.columns([3, 1], vertical_alignment="bottom")
filter_col.selectbox("Context", [ALL, *contexts], format_func=context_label, key="hy_ctx_filter")
archived_col.toggle("Show archived", key="hy_show_archived")
chosen_filter = st.session_state.hy_ctx_filter
views = hyp.list_for_review(
    engine,
    deliberation_id=d.id,
    context_id=None if chosen_filter == ALL else chosen_filter,
    include_archived=st.session_state.hy_show_archived,
)
if not views:
    st.caption("No hypotheses here yet.")
else:
    st.subheader("Votes per hypothesis")
    st.dataframe(
        [
            {
                "id": h.id,
                "context": h.context_text,
                "from": h.from_value.title,
                "to (wiser?)": h.to_value.title,
                "upgrade": h.votes["upgrade"],
                "no_upgrade": h.votes["no_upgrade"],
                "not_sure": h.votes["not_sure"],
                "origin": h.origin,
                "archived": h.archived,
            }
            for h in views
        ],
        hide_index=True,
        key="hy_votes_table",
    )
    current = None
    for h in views:
        if h.context_id != current:
            current = h.context_id
            st.subheader(console.escape_markdown(h.context_text or f"Context {h.context_id}"))
        with st.container(border=True):
            votes = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in h.votes.items())
            state = " · archived" if h.archived else ""
            st.caption(f"Hypothesis {h.id} · {h.origin} · votes: {votes}{state}")
            left, right = st.columns(2)
            with left:
                show_value("Before", h.from_value)
            with right:
                show_value("After (wiser?)", h.to_value)
            st.text_area("Story", value=h.story, key=f"hy_story_{h.id}", height=180)
            save_col, archive_col = st.columns(2)
            if save_col.button("Save story", key=f"hy_save_{h.id}"):
                common.require_facilitator()
                try:
                    hyp.edit_story(
                        engine,
                        deliberation_id=d.id,
                        hypothesis_id=h.id,
                        story=st.session_state[f"hy_story_{h.id}"],
                    )
                except hyp.HypothesisError as exc:
                    show_error(exc)
                else:
                    flash(f"Story of hypothesis {h.id} saved.")
                    st.rerun()
            if archive_col.button("Restore" if h.archived else "Archive", key=f"hy_archive_{h.id}"):
                common.require_facilitator()
                try:
                    hyp.set_archived(
                        engine, deliberation_id=d.id, hypothesis_id=h.id, archived=not h.archived
                    )
                except hyp.HypothesisError as exc:
                    show_error(exc)
                else:
                    flash(f"Hypothesis {h.id} {'restored' if h.archived else 'archived'}.")
                    st.rerun()

# --- by hand ----------------------------------------------------------------------------------

st.header("Add one by hand")
values = dict(hyp.list_value_options(engine, deliberation_id=d.id))
if len(values) < 2:
    st.caption("Hypotheses need at least two values.")
else:
    if st.session_state.pop("_hy_add_clear", False):
        st.session_state["hy_add_story"] = ""
    with st.form("hy_add"):
        st.selectbox("Context", list(contexts), format_func=context_label, key="hy_add_context")
        label = {v: f"{v}: {t}" for v, t in values.items()}
        st.selectbox(
            "Before (less wise)", list(values), format_func=label.__getitem__, key="hy_add_from"
        )
        st.selectbox(
            "After (wiser)", list(values), index=1, format_func=label.__getitem__, key="hy_add_to"
        )
        st.text_area(
            "Story (first person: how someone came from the first to the second)",
            key="hy_add_story",
        )
        add = st.form_submit_button("Add hypothesis", key="hy_add_submit", type="primary")
    if add:
        common.require_facilitator()
        s = st.session_state
        try:
            new_id = hyp.add_hypothesis(
                engine,
                deliberation_id=d.id,
                from_value_id=s.hy_add_from,
                to_value_id=s.hy_add_to,
                context_id=s.hy_add_context,
                story=s.hy_add_story,
            )
        except hyp.HypothesisError as exc:
            show_error(exc)
        else:
            st.session_state["_hy_add_clear"] = True
            flash(f"Hypothesis {new_id} added.")
            st.rerun()
