"""Console: accounts. Change your own password; create another facilitator."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from elicit import console
from pages import common
from pages.console_common import flash, show_error, show_flash

user = common.require_facilitator()
engine = common.engine()
hours = common.settings().mge_session_hours

st.title("Accounts")
show_flash()
st.caption(
    f"Logged in as {console.escape_markdown(user)}. Console sessions end after "
    f"{hours:g} hours; log in again then."
)

if st.session_state.pop("_acct_clear", False):
    st.session_state.update(acct_current="", acct_new="", acct_repeat="")
with st.form("acct_password"):
    st.subheader("Change your password")
    st.text_input("Current password", type="password", key="acct_current")
    st.text_input("New password", type="password", key="acct_new")
    st.text_input("New password again", type="password", key="acct_repeat")
    change = st.form_submit_button("Change password", key="acct_password_submit", type="primary")
if change:
    common.require_facilitator()
    s = st.session_state
    try:
        console.change_password(
            engine,
            token=s.get(common.SESSION_KEY, ""),
            current=s.acct_current,
            new=s.acct_new,
            repeat=s.acct_repeat,
        )
    except console.ConsoleError as exc:
        show_error(exc)
    else:
        st.session_state["_acct_clear"] = True
        flash("Password changed. Your other sessions have ended.")
        st.rerun()

if st.session_state.pop("_acct_new_clear", False):
    st.session_state.update(acct_new_user="", acct_new_password="", acct_new_repeat="")
with st.form("acct_create"):
    st.subheader("Create another facilitator")
    st.text_input("Username", key="acct_new_user")
    st.text_input("Password (at least 8 characters)", type="password", key="acct_new_password")
    st.text_input("Password again", type="password", key="acct_new_repeat")
    create = st.form_submit_button("Create facilitator", key="acct_create_submit")
if create:
    common.require_facilitator()
    s = st.session_state
    try:
        console.create_facilitator(
            engine,
            username=s.acct_new_user,
            password=s.acct_new_password,
            repeat=s.acct_new_repeat,
        )
    except console.ConsoleError as exc:
        show_error(exc)
    else:
        st.session_state["_acct_new_clear"] = True
        flash("Facilitator created.")
        st.rerun()

st.subheader("Facilitators")
st.dataframe(
    pd.DataFrame(
        [
            {"username": a.username, "created": a.created_at, "last login": a.last_login_at}
            for a in console.list_accounts(engine)
        ]
    ),
    hide_index=True,
    key="acct_table",
)
