"""The router: settings, the engine, the page list, one st.navigation, the shared sidebar."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages import common

# A local favicon: a ":material/...:" icon would make every participant's browser fetch it
# from Google Fonts, telling a third party who is taking part.
ICON = Path(__file__).resolve().parent / "pages" / "assets" / "icon.png"
st.set_page_config(page_title="Moral Graph Elicitation", page_icon=str(ICON), layout="centered")

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
CONSOLE = [
    ("pages/console_deliberations.py", "Deliberations", ":material/folder:", "console"),
    (
        "pages/console_questions.py",
        "Questions and contexts",
        ":material/quiz:",
        "console-questions",
    ),
    ("pages/console_dashboard.py", "Dashboard", ":material/monitoring:", "console-dashboard"),
    ("pages/console_dedupe.py", "Deduplication", ":material/merge:", "console-dedupe"),
    (
        "pages/console_hypotheses.py",
        "Wiser-than hypotheses",
        ":material/compare_arrows:",
        "console-hypotheses",
    ),
    ("pages/console_graph.py", "Moral graph", ":material/hub:", "console-graph"),
    ("pages/console_exports.py", "Exports", ":material/download:", "console-exports"),
    (
        "pages/console_interviews.py",
        "Interviews and cards",
        ":material/forum:",
        "console-interviews",
    ),
    (
        "pages/console_participants.py",
        "Participant data",
        ":material/person_search:",
        "console-participants",
    ),
    ("pages/console_accounts.py", "Accounts", ":material/manage_accounts:", "console-accounts"),
]


def console_pages(*, visible: bool) -> list[st.Page]:
    """The console pages. Logged out, they are still registered (hidden from the sidebar), so
    a bookmarked console link opens that page, whose own check shows the login form, and
    after logging in the facilitator is where they meant to go."""
    return [
        st.Page(
            path,
            title=title,
            icon=icon,
            url_path=url_path,
            visibility="visible" if visible else "hidden",
        )
        for path, title, icon, url_path in CONSOLE
    ]


user = common.facilitator()
if user is None:
    login = st.Page(
        common.login_form, title="Facilitator login", icon=":material/login:", url_path="login"
    )
    nav = st.navigation({"": participant_pages, "Console": [login, *console_pages(visible=False)]})
else:
    nav = st.navigation({"": participant_pages, "Console": console_pages(visible=True)})
    with st.sidebar:
        st.caption(f"Logged in as **{user}**")
        if st.button("Log out", key="logout"):
            common.logout()
            st.rerun()
        st.caption(common.settings().describe())

nav.run()
common.freeze_startup_heap()  # after the first full run: see its docstring
