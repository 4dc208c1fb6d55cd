"""The router: settings, the engine, the page list, one st.navigation, the shared sidebar."""

from __future__ import annotations

import streamlit as st

from pages import common

st.set_page_config(
    page_title="Moral Graph Elicitation", page_icon=":material/hub:", layout="centered"
)

common.engine()  # applies migrations once per process; a database problem stops here, plainly

participant_pages = [
    st.Page(
        "pages/participate.py",
        title="Take part",
        icon=":material/forum:",
        default=True,
        url_path="participate",
    ),
]
console_pages = [
    st.Page(
        "pages/console_deliberations.py",
        title="Deliberations",
        icon=":material/folder:",
        url_path="console",
    ),
    st.Page(
        "pages/console_questions.py",
        title="Questions and contexts",
        icon=":material/quiz:",
        url_path="console-questions",
    ),
    st.Page(
        "pages/console_dashboard.py",
        title="Dashboard",
        icon=":material/monitoring:",
        url_path="console-dashboard",
    ),
    st.Page(
        "pages/console_dedupe.py",
        title="Deduplication",
        icon=":material/merge:",
        url_path="console-dedupe",
    ),
    st.Page(
        "pages/console_hypotheses.py",
        title="Wiser-than hypotheses",
        icon=":material/compare_arrows:",
        url_path="console-hypotheses",
    ),
    st.Page(
        "pages/console_graph.py",
        title="Moral graph",
        icon=":material/hub:",
        url_path="console-graph",
    ),
    st.Page(
        "pages/console_exports.py",
        title="Exports",
        icon=":material/download:",
        url_path="console-exports",
    ),
    st.Page(
        "pages/console_interviews.py",
        title="Interviews and cards",
        icon=":material/forum:",
        url_path="console-interviews",
    ),
    st.Page(
        "pages/console_participants.py",
        title="Participant data",
        icon=":material/person_search:",
        url_path="console-participants",
    ),
    st.Page(
        "pages/console_accounts.py",
        title="Accounts",
        icon=":material/manage_accounts:",
        url_path="console-accounts",
    ),
]

user = common.facilitator()
if user is None:
    login = st.Page(
        common.login_form, title="Facilitator login", icon=":material/login:", url_path="login"
    )
    nav = st.navigation({"": participant_pages, "Console": [login]})
else:
    nav = st.navigation({"": participant_pages, "Console": console_pages})
    with st.sidebar:
        st.caption(f"Logged in as **{user}**")
        if st.button("Log out", key="logout"):
            common.logout()
            st.rerun()
        st.caption(common.settings().describe())

nav.run()
