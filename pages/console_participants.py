"""Console: participant data. Find a participant, export their data as JSON, delete them."""

from __future__ import annotations

import streamlit as st

from elicit import participants
from pages import common
from pages.console_common import flash, pick_deliberation, show_error, show_flash

FOUND = "pd_found"  # (deliberation id, participant id) of the last lookup

common.require_facilitator()
engine = common.engine()

st.title("Participant data")
show_flash()
st.caption(
    "Find a participant by their resume token or panel id to export what is stored about them, "
    "or to delete it when they withdraw. Deleting removes their interviews, cards, votes and "
    "survey answers, and the values only they supported, from every graph and export made "
    "afterwards."
)
d = pick_deliberation("pd_delib")
if d is None:
    st.stop()
assert d.id is not None

with st.form("pd_lookup_form"):
    by = st.radio("Find by", ["Resume token", "Panel id"], horizontal=True, key="pd_by")
    st.text_input("Resume token or panel id", key="pd_query")
    lookup = st.form_submit_button("Find participant", key="pd_lookup", type="primary")
if lookup:
    common.require_facilitator()
    query = st.session_state.pd_query
    st.session_state.pop(FOUND, None)
    try:
        found = participants.find_participant(
            engine,
            deliberation_id=d.id,
            token=query if by == "Resume token" else None,
            panel_id=query if by == "Panel id" else None,
        )
    except (participants.ParticipantNotFound, participants.LookupInputError) as exc:
        show_error(str(exc).capitalize() + ".")
    else:
        st.session_state[FOUND] = (d.id, found.id)

chosen = st.session_state.get(FOUND)
if chosen and chosen[0] == d.id:
    try:
        summary = participants.participant_summary(
            engine, deliberation_id=d.id, participant_id=chosen[1]
        )
    except participants.ParticipantNotFound:
        st.session_state.pop(FOUND, None)
        st.stop()
    st.subheader(f"Participant {summary.id}")
    st.dataframe(
        [
            {"field": "entry", "value": summary.entry_channel},
            {"field": "panel id", "value": summary.panel_pid or ""},
            {"field": "step", "value": summary.step},
            {"field": "joined", "value": f"{summary.created_at:%Y-%m-%d %H:%M}"},
            {"field": "flagged", "value": "yes" if summary.flagged else "no"},
            {"field": "interviews", "value": str(summary.interviews)},
            {"field": "messages", "value": str(summary.messages)},
            {"field": "cards", "value": str(summary.cards)},
            {"field": "wiser votes", "value": str(summary.wiser_votes)},
            {"field": "peer value votes", "value": str(summary.value_votes)},
            {"field": "survey answers", "value": str(summary.survey_answers)},
        ],
        hide_index=True,
        key="pd_summary",
    )
    st.download_button(
        "Download their data (JSON)",
        data=participants.export_participant_json(engine, participant_id=summary.id),
        file_name=f"participant-{d.slug}-{summary.id}.json",
        mime="application/json",
        key="pd_export",
        on_click="ignore",
    )
    if st.button("Unflag" if summary.flagged else "Flag", key="pd_flag"):
        common.require_facilitator()
        participants.set_flag(
            engine, deliberation_id=d.id, participant_id=summary.id, flagged=not summary.flagged
        )
        flash(f"Participant {summary.id} {'unflagged' if summary.flagged else 'flagged'}.")
        st.rerun()

    st.subheader("Delete")
    st.checkbox(
        "I understand this deletes the participant and everything they contributed, for good.",
        key="pd_confirm",
    )
    if st.button("Delete participant", key="pd_delete", type="primary"):
        common.require_facilitator()
        if not st.session_state.pd_confirm:
            show_error("Tick the box above to confirm the deletion first.")
        else:
            counts = participants.delete_participant(engine, participant_id=summary.id)
            st.session_state.pop(FOUND, None)
            st.session_state.pop("pd_confirm", None)
            gone = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items() if n)
            flash(f"Participant {summary.id} deleted ({gone}).")
            st.rerun()
