"""Console: deduplication. Dry run, review, apply; merge and split by hand; the decision log."""

from __future__ import annotations

import streamlit as st

from elicit import console, dedupe
from elicit.values import embedder_from_settings
from pages import common
from pages.console_common import flash, pick_deliberation, show_error, show_flash

common.require_facilitator()
engine = common.engine()

st.title("Deduplication")
show_flash()
d = pick_deliberation("dd_delib")
if d is None:
    st.stop()
assert d.id is not None
gateway = common.gateway()
PLAN = "dd_plan"
VERDICTS = "dd_verdicts"  # LLM answers of this session, so a failed dry run resumes cheaply


def _value_label(value_id: int | None) -> str:
    return "new value" if value_id is None else f"value {value_id}"


# --- dry run ----------------------------------------------------------------------------------

st.header("Propose")
if gateway is None:
    st.info(
        "No LLM is configured, so cards are grouped by text similarity alone. "
        "Review the proposal carefully and correct it by hand below."
    )
else:
    st.caption("Cards are grouped by text similarity, then the LLM checks each candidate pair.")
if st.button("Run a dry run", key="dd_dry_run", type="primary"):
    common.require_facilitator()
    bar = st.progress(0.0, text="Comparing cards...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"{done} of {total} steps")

    try:
        plan = dedupe.propose(
            engine,
            deliberation_id=d.id,
            embedder=embedder_from_settings(common.settings(), gateway),
            gateway=gateway,
            progress=progress,
            verdict_cache=st.session_state.setdefault(VERDICTS, {}),
        )
    except dedupe.DedupeError as exc:
        bar.empty()
        show_error(exc)
    else:
        bar.empty()
        st.session_state[PLAN] = plan

plan: dedupe.DedupePlan | None = st.session_state.get(PLAN)
if plan is not None and plan.deliberation_id == d.id:
    st.subheader("Review the dry run")
    st.markdown(console.escape_markdown(plan.summary()))
    changing = [(k, c) for k, c in enumerate(plan.clusters) if c.changes]
    show_all = st.toggle("Show every value, also the unchanged ones", key="dd_show_all")
    shown = list(enumerate(plan.clusters)) if show_all else changing
    if not shown:
        st.success("Nothing to change: the values already match the clusters.")
    else:
        st.dataframe(
            [
                {
                    "#": k + 1,
                    "becomes": _value_label(c.target_id) + (" (set by hand)" if c.locked else ""),
                    "title": c.title,
                    "cards": len(c.cards),
                    "merges values": ", ".join(map(str, c.merged_value_ids)),
                    "takes cards": ", ".join(map(str, c.split_card_ids)),
                    "new cards": ", ".join(map(str, c.assigned_card_ids)),
                    "new text": "yes" if c.retitles or c.target_id is None else "",
                    "similarity": round(c.mean_similarity, 3),
                }
                for k, c in shown
            ],
            hide_index=True,
            key="dd_plan_table",
        )
        st.dataframe(
            [
                {
                    "#": k + 1,
                    "card": card.id,
                    "card title": card.title,
                    "now on": _value_label(card.value_id) if card.value_id else "no value",
                    "goes to": _value_label(c.target_id),
                }
                for k, c in shown
                for card in c.cards
            ],
            hide_index=True,
            key="dd_plan_cards",
        )
    apply_col, discard_col = st.columns(2)
    if apply_col.button(
        "Apply this plan", key="dd_apply", type="primary", disabled=not plan.has_changes
    ):
        user = common.require_facilitator()
        try:
            result = dedupe.apply(engine, plan, actor=user)
        except dedupe.DedupeError as exc:
            st.session_state.pop(PLAN, None)
            show_error(exc)
        else:
            st.session_state.pop(PLAN, None)
            flash(result.summary())
            st.rerun()
    if discard_col.button("Discard the dry run", key="dd_discard"):
        common.require_facilitator()
        st.session_state.pop(PLAN, None)
        st.rerun()

# --- by hand ----------------------------------------------------------------------------------

st.header("Correct by hand")
st.caption(
    "Values you merge or split by hand are locked: later dry runs leave their cards where you "
    "put them."
)
values = dedupe.list_values(engine, deliberation_id=d.id)
labels = {
    v.id: f"{v.id}: {v.title} ({len(v.card_ids)} card{'s' if len(v.card_ids) != 1 else ''})"
    + (" [locked]" if v.locked else "")
    for v in values
}
if len(values) < 2:
    st.info("Merging needs at least two values.")
else:
    with st.form("dd_merge"):
        st.subheader("Merge values")
        st.selectbox(
            "Keep this value", list(labels), format_func=labels.__getitem__, key="dd_merge_keep"
        )
        st.multiselect(
            "Merge these into it (their cards, votes and hypotheses move)",
            list(labels),
            format_func=labels.__getitem__,
            key="dd_merge_ids",
        )
        merge = st.form_submit_button("Merge", key="dd_merge_submit")
    if merge:
        user = common.require_facilitator()
        try:
            done = dedupe.merge_values(
                engine,
                keep_id=st.session_state.dd_merge_keep,
                merge_ids=st.session_state.dd_merge_ids,
                actor=user,
                deliberation_id=d.id,
            )
        except dedupe.DedupeError as exc:
            show_error(exc)
        else:
            st.session_state.pop(PLAN, None)
            dropped = (
                f"; {done.votes_dropped} duplicate vote(s) dropped" if done.votes_dropped else ""
            )
            flash(
                f"Merged {len(done.merged_value_ids)} value(s) into value {done.value_id}{dropped}."
            )
            st.rerun()

cards = {
    card_id: f"card {card_id}: {title} (on value {v.id}: {v.title})"
    for v in values
    if len(v.card_ids) > 1
    for card_id, title in zip(v.card_ids, v.card_titles, strict=True)
}
if cards:
    with st.form("dd_split"):
        st.subheader("Split a card out")
        st.selectbox(
            "Give this card a value of its own",
            list(cards),
            format_func=cards.__getitem__,
            key="dd_split_card",
        )
        split = st.form_submit_button("Split", key="dd_split_submit")
    if split:
        user = common.require_facilitator()
        try:
            done = dedupe.split_card(
                engine, card_id=st.session_state.dd_split_card, actor=user, deliberation_id=d.id
            )
        except dedupe.DedupeError as exc:
            show_error(exc)
        else:
            st.session_state.pop(PLAN, None)
            flash(f"Card {done.card_ids[0]} now has its own value {done.value_id}.")
            st.rerun()

# --- the log ----------------------------------------------------------------------------------

st.header("Decision log")
log = dedupe.list_decisions(engine, deliberation_id=d.id)
if not log:
    st.caption("No decisions yet.")
else:
    st.dataframe(
        [
            {
                "when": r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                "run": r.run_id,
                "action": r.action,
                "method": r.method,
                "by": r.actor,
                "card": r.card_id,
                "value": r.canonical_value_id,
                "score": None if r.score is None else round(r.score, 3),
                "note": r.note,
            }
            for r in log
        ],
        hide_index=True,
        key="dd_log",
    )
