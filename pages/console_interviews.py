"""Console: interviews and cards. Search transcripts, see card versions, flag and archive.

Everything participants or the LLM wrote is shown with `st.text` or in tables: never as
Markdown or HTML.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from elicit import console
from pages import common
from pages.console_common import flash, pick_deliberation, show_flash

common.require_facilitator()
engine = common.engine()

st.title("Interviews and cards")
show_flash()
d = pick_deliberation("iv_delib")
if d is None:
    st.stop()
assert d.id is not None
deliberation_id = d.id


def show_card_text(title: str, description: str, policies: tuple[str, ...]) -> None:
    st.text(title)
    if description:
        st.text(description)
    for policy in policies:
        st.text(f"• {policy}")


interviews_tab, cards_tab = st.tabs(["Interviews", "Cards"])

with interviews_tab:
    search_col, flagged_col, archived_col = st.columns([3, 1, 1], vertical_alignment="bottom")
    search = search_col.text_input("Search the messages", key="iv_search")
    flagged_only = flagged_col.checkbox("Flagged only", key="iv_flagged_only")
    hide_archived = archived_col.checkbox("Hide archived", key="iv_hide_archived")
    found = console.search_interviews(
        engine,
        deliberation_id=deliberation_id,
        search=search,
        flagged_only=flagged_only,
        include_archived=not hide_archived,
    )
    st.caption(f"{len(found)} interview(s)")
    if found:
        st.dataframe(pd.DataFrame(found), hide_index=True, key="iv_table")
        ids = [row["interview_id"] for row in found]
        chosen = st.selectbox(
            "Open interview", ids, format_func=lambda i: f"Interview {i}", key="iv_pick"
        )
        detail = console.interview_detail(
            engine, deliberation_id=deliberation_id, interview_id=chosen
        )
        marks = []
        if detail.flagged:
            marks.append("flagged")
        if detail.archived:
            marks.append("archived")
        if detail.participant_flagged:
            marks.append("participant flagged")
        st.caption(
            f"Interview {detail.id} · participant {detail.participant_id} · mode {detail.mode}"
            f" · status {detail.status}" + (f" · {', '.join(marks)}" if marks else "")
        )
        flag_col, archive_col, participant_col = st.columns(3)
        if flag_col.button("Unflag" if detail.flagged else "Flag", key="iv_flag"):
            common.require_facilitator()
            console.mark_interview(
                engine,
                deliberation_id=deliberation_id,
                interview_id=detail.id,
                flagged=not detail.flagged,
            )
            flash(f"Interview {detail.id} {'unflagged' if detail.flagged else 'flagged'}.")
            st.rerun()
        if archive_col.button("Restore" if detail.archived else "Archive", key="iv_archive"):
            common.require_facilitator()
            console.mark_interview(
                engine,
                deliberation_id=deliberation_id,
                interview_id=detail.id,
                archived=not detail.archived,
            )
            flash(f"Interview {detail.id} {'restored' if detail.archived else 'archived'}.")
            st.rerun()
        if participant_col.button(
            "Unflag participant" if detail.participant_flagged else "Flag participant",
            key="iv_flag_participant",
        ):
            common.require_facilitator()
            console.mark_participant(
                engine,
                deliberation_id=deliberation_id,
                participant_id=detail.participant_id,
                flagged=not detail.participant_flagged,
            )
            flash(f"Participant {detail.participant_id} updated.")
            st.rerun()

        st.subheader("Transcript")
        if not detail.transcript:
            st.caption("No messages.")
        for line in detail.transcript:
            avatar = {"user": ":material/person:", "assistant": ":material/smart_toy:"}.get(
                line.role, ":material/info:"
            )
            with st.chat_message(
                line.role if line.role in ("user", "assistant") else "ai", avatar=avatar
            ):
                st.caption(f"{line.speaker} · {line.created_at:%Y-%m-%d %H:%M:%S}")
                st.text(line.text)

        st.subheader("Cards and their versions")
        if not detail.cards:
            st.caption("This interview has no card.")
        for card in detail.cards:
            with st.container(border=True):
                state = ["submitted" if card.submitted else "draft"]
                if card.flagged:
                    state.append("flagged")
                if card.archived:
                    state.append("archived")
                if card.canonical_value_id is not None:
                    state.append(f"canonical value {card.canonical_value_id}")
                st.caption(f"Card {card.id} · {', '.join(state)}")
                show_card_text(card.title, card.description, card.policies)
                flag_col, archive_col = st.columns(2)
                if flag_col.button(
                    "Unflag card" if card.flagged else "Flag card", key=f"card_flag_{card.id}"
                ):
                    common.require_facilitator()
                    console.mark_card(
                        engine,
                        deliberation_id=deliberation_id,
                        card_id=card.id,
                        flagged=not card.flagged,
                    )
                    flash(f"Card {card.id} {'unflagged' if card.flagged else 'flagged'}.")
                    st.rerun()
                if archive_col.button(
                    "Restore card" if card.archived else "Archive card",
                    key=f"card_archive_{card.id}",
                ):
                    common.require_facilitator()
                    console.mark_card(
                        engine,
                        deliberation_id=deliberation_id,
                        card_id=card.id,
                        archived=not card.archived,
                    )
                    flash(f"Card {card.id} {'restored' if card.archived else 'archived'}.")
                    st.rerun()
                for v in card.versions:
                    changed = f" (changed: {', '.join(v.changed)})" if v.changed else ""
                    with st.expander(f"Version {v.version}: {v.origin_label}{changed}"):
                        st.caption(f"{v.created_at:%Y-%m-%d %H:%M:%S} · origin: {v.origin}")
                        show_card_text(v.title, v.description, v.policies)

with cards_tab:
    search_col, flagged_col, archived_col = st.columns([3, 1, 1], vertical_alignment="bottom")
    card_search = search_col.text_input("Search the cards", key="cards_search")
    cards_flagged = flagged_col.checkbox("Flagged only", key="cards_flagged_only")
    cards_hide_archived = archived_col.checkbox("Hide archived", key="cards_hide_archived")
    cards = console.search_cards(
        engine,
        deliberation_id=deliberation_id,
        search=card_search,
        flagged_only=cards_flagged,
        include_archived=not cards_hide_archived,
    )
    st.caption(f"{len(cards)} card(s)")
    if cards:
        st.dataframe(pd.DataFrame(cards), hide_index=True, key="cards_table")
        by_id = {row["card_id"]: row for row in cards}
        card_id = st.selectbox(
            "Card", list(by_id), format_func=lambda i: f"Card {i}", key="cards_pick"
        )
        row = by_id[card_id]
        show_card_text(row["title"], row["description"], tuple(row["policies"].splitlines()))
        flag_col, archive_col = st.columns(2)
        if flag_col.button("Unflag" if row["flagged"] else "Flag", key="cards_flag"):
            common.require_facilitator()
            console.mark_card(
                engine,
                deliberation_id=deliberation_id,
                card_id=card_id,
                flagged=not row["flagged"],
            )
            flash(f"Card {card_id} {'unflagged' if row['flagged'] else 'flagged'}.")
            st.rerun()
        if archive_col.button("Restore" if row["archived"] else "Archive", key="cards_archive"):
            common.require_facilitator()
            console.mark_card(
                engine,
                deliberation_id=deliberation_id,
                card_id=card_id,
                archived=not row["archived"],
            )
            flash(f"Card {card_id} {'restored' if row['archived'] else 'archived'}.")
            st.rerun()
