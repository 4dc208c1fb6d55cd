"""Console: deliberations. Create one, edit its settings, open or close it, duplicate it."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from elicit import console, journey, simulate
from pages import common
from pages.console_common import CHOSEN_SLUG, flash, pick_deliberation, show_error, show_flash

common.require_facilitator()
engine = common.engine()

st.title("Deliberations")
show_flash()

rows = console.list_deliberations(engine)
if rows:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "slug": r.deliberation.slug,
                    "title": r.deliberation.title,
                    "open": r.deliberation.is_open,
                    "questions": r.questions,
                    "participants": r.participants,
                    "created": r.deliberation.created_at,
                }
                for r in rows
            ]
        ),
        hide_index=True,
    )

FRAMING_KEYS = list(console.FRAMINGS)

# --- edit the chosen deliberation -------------------------------------------------------------

d = pick_deliberation("delib_pick")
if d is not None:
    assert d.id is not None
    st.caption(f"Participant link: {common.settings().mge_public_url}/?d={d.slug}")
    st.write("Status: **open** to participants." if d.is_open else "Status: **closed**.")
    pilots = simulate.simulated_participant_ids(engine, deliberation_id=d.id)
    if pilots:
        st.warning(
            f"{len(pilots)} simulated participant(s) from a pilot are still counted. Delete "
            "them under 'Pilot with simulated participants' before real participants come."
        )
    if st.button(
        "Close to participants" if d.is_open else "Open to participants",
        key="delib_toggle_open",
        type="primary",
    ):
        common.require_facilitator()
        console.set_open(engine, deliberation_id=d.id, is_open=not d.is_open)
        flash(f"Deliberation {d.slug} is now {'closed' if d.is_open else 'open'}.")
        st.rerun()

    loaded = (d.id, d.updated_at)
    if st.session_state.get("_edit_loaded") != loaded:
        st.session_state.update(
            edit_title=d.title,
            edit_topic=d.topic,
            edit_welcome=d.welcome_text,
            edit_framing=d.value_framing if d.value_framing in FRAMING_KEYS else "ai",
            edit_questions_n=min(max(d.questions_per_participant, 1), 10),
            edit_stories_n=min(max(d.stories_per_participant, 1), 20),
            edit_peers_n=min(max(d.peer_values_per_participant, 0), 20),
            edit_invite=d.invite_code or "",
            edit_completion_url=d.completion_url or "",
            edit_languages=d.languages,
            _edit_loaded=loaded,
        )
    with st.form("delib_edit"):
        st.subheader("Settings")
        st.text_input("Title", key="edit_title")
        st.text_area(
            "Topic (what the deliberation is about; the LLM drafts questions from it)",
            key="edit_topic",
        )
        st.text_area("Welcome text (shown to participants first)", key="edit_welcome")
        st.radio(
            "Value framing", FRAMING_KEYS, format_func=console.FRAMINGS.get, key="edit_framing"
        )
        st.number_input("Questions offered per participant", 1, 10, key="edit_questions_n")
        st.number_input("Stories (wiser-than votes) per participant", 1, 20, key="edit_stories_n")
        st.number_input("Peer values shown per participant", 0, 20, key="edit_peers_n")
        st.text_input("Invite code (blank: anyone with the link)", key="edit_invite")
        st.text_input("Panel completion URL (blank: none)", key="edit_completion_url")
        st.text_input(
            "Languages",
            key="edit_languages",
            help="Kept with the deliberation for your records. The participant pages, the "
            "interviewer and the card checks work in English only for now.",
        )
        saved = st.form_submit_button("Save settings", key="edit_submit", type="primary")
    if saved:
        common.require_facilitator()
        s = st.session_state
        try:
            console.update_deliberation(
                engine,
                deliberation_id=d.id,
                title=s.edit_title,
                topic=s.edit_topic,
                welcome_text=s.edit_welcome,
                value_framing=s.edit_framing,
                questions_per_participant=s.edit_questions_n,
                stories_per_participant=s.edit_stories_n,
                peer_values_per_participant=s.edit_peers_n,
                invite_code=s.edit_invite,
                completion_url=s.edit_completion_url,
                languages=s.edit_languages,
            )
        except console.ConsoleError as exc:
            show_error(exc)
        else:
            flash(f"Settings of {d.slug} saved.")
            st.rerun()

    with st.form("delib_duplicate"):
        st.subheader("Duplicate")
        st.caption(
            "Copies the settings, questions and contexts (not participants). "
            "The copy starts closed."
        )
        st.text_input("Slug of the copy", key="dup_slug")
        st.text_input("Title of the copy (blank: the same title with '(copy)')", key="dup_title")
        duplicate = st.form_submit_button("Duplicate", key="dup_submit")
    if duplicate:
        common.require_facilitator()
        try:
            copy = console.duplicate_deliberation(
                engine,
                source_id=d.id,
                slug=st.session_state.dup_slug,
                title=st.session_state.dup_title or None,
            )
        except console.ConsoleError as exc:
            show_error(exc)
        else:
            st.session_state[CHOSEN_SLUG] = copy.slug
            st.session_state.pop("delib_pick", None)
            flash(f"Created {copy.slug}, a copy of {d.slug}.")
            st.rerun()

    with st.expander("Pilot with simulated participants"):
        st.caption(
            "LLM personas take part as people would, also while the deliberation is closed: "
            "the interview, a confirmed card, peer values, wiser-than stories and the survey. "
            "They count in the dashboard and the graph (as the group 'simulated') and their "
            "LLM calls are in the ledger, until you delete them."
        )
        st.write(f"Simulated participants in this deliberation: {len(pilots)}")
        gateway = common.gateway()
        if gateway is None:
            st.info("No LLM is configured: simulated participants need one.")
        else:
            st.number_input("How many to run", 1, simulate.MAX_PARTICIPANTS, 3, key="sim_n")
            if st.button("Run simulated participants", key="sim_run"):
                common.require_facilitator()
                bar = st.progress(0.0, text="Starting...")
                try:
                    runs = simulate.simulate(
                        engine,
                        gateway,
                        slug=d.slug,
                        n=int(st.session_state.sim_n),
                        seed=len(pilots),  # the next personas, not the same ones again
                        progress=lambda done, total: bar.progress(
                            done / total, text=f"{done} of {total} done"
                        ),
                    )
                except (simulate.SimulationError, journey.JourneyError) as exc:
                    show_error(exc)
                else:
                    stopped = [
                        f"participant {r.participant_id} stopped at {r.step}: {r.problem}"
                        for r in runs
                        if r.problem
                    ]
                    flash(". ".join([simulate.summary(runs), *stopped]) + ".")
                    st.rerun()
        if pilots:
            sure = st.checkbox(
                "Delete every simulated participant of this deliberation, with their cards "
                "and votes",
                key="sim_delete_sure",
            )
            if st.button("Delete simulated participants", key="sim_delete", disabled=not sure):
                common.require_facilitator()
                gone = simulate.delete_simulated(engine, deliberation_id=d.id)
                st.session_state.pop("sim_delete_sure", None)
                flash(f"Deleted {gone} simulated participant(s).")
                st.rerun()

# --- create -----------------------------------------------------------------------------------

with st.form("delib_create"):
    st.subheader("New deliberation")
    st.text_input("Slug (in the link: lowercase letters, digits and hyphens)", key="create_slug")
    st.text_input("Title", key="create_title")
    st.text_area("Topic", key="create_topic")
    st.text_area("Welcome text", key="create_welcome")
    st.radio("Value framing", FRAMING_KEYS, format_func=console.FRAMINGS.get, key="create_framing")
    st.number_input("Questions offered per participant", 1, 10, 3, key="create_questions_n")
    st.number_input("Stories (wiser-than votes) per participant", 1, 20, 4, key="create_stories_n")
    st.text_input("Invite code (optional)", key="create_invite")
    st.text_input("Panel completion URL (optional)", key="create_completion_url")
    st.checkbox("Open to participants now", key="create_open")
    create = st.form_submit_button("Create deliberation", key="create_submit", type="primary")
if create:
    common.require_facilitator()
    s = st.session_state
    try:
        new = console.create_deliberation(
            engine,
            slug=s.create_slug,
            title=s.create_title,
            topic=s.create_topic,
            welcome_text=s.create_welcome,
            value_framing=s.create_framing,
            questions_per_participant=s.create_questions_n,
            stories_per_participant=s.create_stories_n,
            invite_code=s.create_invite,
            completion_url=s.create_completion_url,
            is_open=s.create_open,
        )
    except console.ConsoleError as exc:
        show_error(exc)
    else:
        st.session_state[CHOSEN_SLUG] = new.slug
        st.session_state.pop("delib_pick", None)
        flash(f"Created {new.slug}. Add its questions on the Questions page.")
        st.rerun()
