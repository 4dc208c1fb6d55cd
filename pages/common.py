"""What every page shares: settings, the cached engine and gateway, the console login gate."""

from __future__ import annotations

import gc
import threading
from typing import TYPE_CHECKING, Any

import streamlit as st

from elicit import auth
from elicit.config import Settings, get_settings
from elicit.runtime import StartupError, open_database

if TYPE_CHECKING:  # pages reach the database only through elicit
    from sqlalchemy.engine import Engine

SESSION_KEY = "console_token"
_heap = {"frozen": False}
_heap_lock = threading.Lock()


def settings() -> Settings:
    return get_settings()


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Engine:
    return open_database(settings().model_copy(update={"database_url": url}))


def engine() -> Engine:
    """The app's engine (migrations applied once per process); stops the page on failure."""
    try:
        return _engine(settings().database_url)
    except StartupError as exc:
        st.error(f"The app cannot reach its database. {exc}")
        st.stop()
        raise  # unreachable: st.stop raises


@st.cache_resource(show_spinner=False)
def _gateway(url: str, base: str | None, key: str | None) -> Any:
    from elicit.llm import gateway_from_settings

    return gateway_from_settings(settings(), _engine(url))


def gateway() -> Any:
    """The LLM gateway, or None in offline mode (no LLM configured)."""
    s = settings()
    return _gateway(s.database_url, s.openai_base_url, s.openai_api_key)


def facilitator() -> str | None:
    """The logged-in facilitator's username, checked against the database on every call."""
    return auth.current_facilitator(engine(), st.session_state.get(SESSION_KEY))


def require_facilitator() -> str:
    """Gate for every console page and action: without a live session, show the login form only."""
    user = facilitator()
    if user is None:
        st.session_state.pop(SESSION_KEY, None)
        login_form()
        st.stop()
    assert user is not None
    return user


def login_form() -> None:
    st.title("Facilitator login")
    with st.form("login"):
        username = st.text_input("Username", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in")
    if submitted:
        try:
            result = auth.login(
                engine(), username=username, password=password, hours=settings().mge_session_hours
            )
        except auth.AuthError as exc:
            st.error(str(exc).capitalize() + ".")
            return
        st.session_state[SESSION_KEY] = result.token
        st.rerun()


def logout() -> None:
    auth.logout(engine(), st.session_state.pop(SESSION_KEY, None))


def freeze_startup_heap() -> None:
    """Once per process, after the first complete script run: collect, then move every object
    alive now (modules, the engine, compiled pages) out of the garbage collector's reach.

    Streamlit runs a full `gc.collect()` after every script run (`runner.postScriptGC`), so
    that memory from a finished run is returned at once. A full collection walks every tracked
    object; with pandas, SQLAlchemy, pydantic and openai loaded that is most of the server's CPU
    per participant turn (`bench/interview_overhead.py`). Frozen objects are still freed by
    reference counting; they are only skipped by the cycle collector, which is what we want
    for objects that live as long as the process.
    """
    if _heap["frozen"]:
        return
    with _heap_lock:
        if _heap["frozen"]:
            return
        gc.collect()
        gc.freeze()
        _heap["frozen"] = True
