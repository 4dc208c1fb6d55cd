"""The Graph and Exports console pages through AppTest.

Behaviours, one test each:

Both pages
- logged out (no token, or a forged one): only the login form, none of the data.
- session ended while the page was open: the next run shows the login form only.
- logged in: renders without exception on SQLite and PostgreSQL.
Graph (console_graph.py)
- shows vote and edge counts, the graph frame, winners, the table twin (edges and values).
- a value chosen in "Value details" shows its card as plain text, its contributors and edges.
- filters: a context, a minimum of wiser votes and a date window change what is counted.
- the group picker shows bridging and the minority report for the chosen field.
- a deliberation without votes says there is nothing to draw.
- picking another deliberation drops the filters and chosen value that do not exist there.
Exports (console_exports.py)
- one download per format, named after the deliberation; the file is made on click and holds
  the export; once the session has ended the click produces nothing.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from sqlalchemy import delete
from sqlmodel import Session
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from db.engine import make_engine
from db.models import CanonicalValue, Deliberation, FacilitatorSession, utcnow
from elicit import auth
from elicit.config import get_settings
from tests import factories
from tests.graph_seed import SECRET_PANEL, seed_native

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "**bold** <script>alert('x')</script> [click](http://evil.example)"


@pytest.fixture
def env(monkeypatch, db_url):
    monkeypatch.setenv("DATABASE_URL", db_url)
    get_settings.cache_clear()
    st.cache_resource.clear()
    engine = make_engine(db_url)
    auth.create_account(engine, username="fac", password="password123")
    token = auth.login(engine, username="fac", password="password123", hours=1).token
    yield engine, token
    st.cache_resource.clear()
    engine.dispose()


def page(name: str, token: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / f"{name}.py"), default_timeout=60)
    if token is not None:
        at.session_state["console_token"] = token
    return run(at)


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at: AppTest) -> str:
    parts = [
        str(e.value) for kind in ("title", "markdown", "caption", "info") for e in at.get(kind)
    ]
    parts += [df.value.to_string() for df in at.dataframe]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def frames(at: AppTest) -> dict[str, Any]:
    """The page's tables by role (AppTest does not expose a dataframe's key)."""
    out: dict[str, Any] = {}
    edge_like = []
    for df in at.dataframe:
        columns = set(df.value.columns)
        if "p_stays_winner" in columns:
            out["winners"] = df.value
        elif "contributors" in columns:
            out["values"] = df.value
        elif "value_id" in columns:
            out["bridging_values"] = df.value
        elif "bridges" in columns:
            out["bridging_edges"] = df.value
        elif "group winner" in columns or (not columns and "winners" in out):
            out.setdefault("minority", df.value)
        else:
            edge_like.append(df.value)
    # In page order: the chosen value's edges in and out, then the whole table twin.
    for name, value in zip(("node_in", "node_out", "edges"), edge_like, strict=False):
        out[name] = value
    return out


def is_login_form(at: AppTest) -> bool:
    return [t.value for t in at.title] == ["Facilitator login"] and not at.dataframe


def _hostile(engine, n) -> None:
    with Session(engine) as s:
        v = s.get(CanonicalValue, n.values[1].id)
        v.title = HOSTILE
        v.description = HOSTILE
        s.add(v)
        s.commit()


@pytest.mark.parametrize("name", ["console_graph", "console_exports"])
@pytest.mark.parametrize("token", [None, "forged-token"])
def test_logged_out_shows_only_the_login_form(env, name, token):
    engine, _ = env
    seed_native(engine)
    at = page(name, token)
    assert is_login_form(at)
    assert "Native value" not in shown(at) and not at.get("download_button")


@pytest.mark.parametrize("name", ["console_graph", "console_exports"])
def test_ended_session_shows_the_login_form_on_the_next_run(env, name):
    engine, token = env
    seed_native(engine)
    at = page(name, token)
    assert not is_login_form(at)
    with Session(engine) as s:
        s.execute(delete(FacilitatorSession))
        s.commit()
    run(at)
    assert is_login_form(at)
    assert "Native value" not in shown(at)


def test_graph_page_renders_counts_graph_winners_and_tables(env):
    engine, token = env
    n = seed_native(engine)
    at = page("console_graph", token)
    assert metric(at, "Votes") == "18"
    assert metric(at, "Participants who voted") == "6"
    assert int(metric(at, "Kept edges")) >= 1
    (frame,) = at.get("iframe")
    assert "Native value 0" in frame.proto.srcdoc
    text = shown(at)
    for context in n.contexts:
        assert context in text
    tables = frames(at)
    winners = tables["winners"]
    assert set(winners["context"]) == set(n.contexts)
    assert len(tables["edges"]) == 3 and list(tables["values"]["id"]) == [v.id for v in n.values]
    assert winners["p_stays_winner"].between(0, 1).all()
    assert SECRET_PANEL not in text


@pytest.mark.parametrize("name", ["console_graph", "console_exports"])
def test_pilot_participants_still_counted_are_pointed_out(env, name):
    engine, token = env
    n = seed_native(engine)
    at = page(name, token)
    assert not at.warning
    with Session(engine) as s:
        d = s.get(Deliberation, n.deliberation_id)
        factories.participant(s, d, entry_channel="simulated")
        factories.participant(s, d, entry_channel="simulated", deleted_at=utcnow())
    run(at)
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("1 simulated participant(s) from a pilot are counted here")


def test_value_details_show_the_card_as_plain_text(env):
    engine, token = env
    n = seed_native(engine)
    _hostile(engine, n)
    at = page("console_graph", token)
    at.selectbox(key="graph_node").set_value(n.values[1].id)
    run(at)
    plain = [m for m in at.markdown if "script" in m.value]
    assert plain and all(not m.proto.allow_html for m in plain)
    assert all("<script>" not in m.value for m in plain)  # escaped, shown literally
    assert HOSTILE in shown(at)
    assert metric(at, "Contributing participants") == "2"
    tables = frames(at)
    assert len(tables["node_in"]) == 2 and len(tables["node_out"]) == 1


def test_filters_change_what_is_counted(env):
    engine, token = env
    n = seed_native(engine)
    at = page("console_graph", token)
    at.selectbox(key="graph_context").set_value(n.contexts[1])
    run(at)
    assert metric(at, "Votes") == "6"
    at.number_input(key="graph_min_wiser").set_value(100)
    run(at)
    assert metric(at, "Kept edges") == "0"
    assert "nothing to draw" in shown(at)
    at.number_input(key="graph_min_wiser").set_value(2)
    at.selectbox(key="graph_context").set_value(None)
    at.date_input(key="graph_until").set_value(date.today() - timedelta(days=3))
    run(at)
    assert metric(at, "Votes") == "0"


def test_group_picker_shows_bridging_and_minority_report(env):
    engine, token = env
    seed_native(engine)
    at = page("console_graph", token)
    at.selectbox(key="graph_group_field").set_value("party")
    run(at)
    tables = frames(at)
    assert {"bridges", "support D", "support R"} <= set(tables["bridging_values"].columns)
    assert "minority" in tables


def test_graph_page_without_votes(env):
    engine, token = env
    with Session(engine) as s:
        factories.deliberation(s, slug="empty")
    at = page("console_graph", token)
    assert metric(at, "Votes") == "0"
    assert "nothing to draw" in shown(at) and "no groups" in shown(at).lower()


@pytest.fixture
def deferred(monkeypatch) -> dict[str, Callable[[], Any]]:
    """Capture each download button's deferred callable by file name."""
    captured: dict[str, Callable[[], Any]] = {}
    original = MediaFileManager.add_deferred

    def add_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kw):
        captured[str(file_name)] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name, **kw)

    monkeypatch.setattr(MediaFileManager, "add_deferred", add_deferred)
    return captured


def test_exports_page_offers_every_format_made_on_click(env, deferred):
    engine, token = env
    n = seed_native(engine)
    at = page("console_exports", token)
    buttons = at.get("download_button")
    assert len(buttons) == 8
    assert set(deferred) == {
        "native-mge-summary.json",
        "native-graph.json",
        "native-graph.graphml",
        "native-graph.gexf",
        "native-csv.zip",
        "native-graph.html",
        "native-preferences.zip",
        "native-rubrics.zip",
    }
    summary = json.loads(deferred["native-mge-summary.json"]())
    assert {v["id"] for v in summary["values"]} <= {v.id for v in n.values} and summary["edges"]
    with zipfile.ZipFile(io.BytesIO(deferred["native-csv.zip"]())) as archive:
        assert sorted(archive.namelist()) == ["edges.csv", "values.csv"]
    auth.logout(engine, token)
    with pytest.raises(PermissionError):
        deferred["native-graph.json"]()


def test_exports_page_filters_apply_to_the_files(env, deferred):
    engine, token = env
    n = seed_native(engine)
    at = page("console_exports", token)
    at.selectbox(key="exports_context").set_value(n.contexts[1])
    run(at)
    doc = json.loads(deferred["native-graph.json"]())
    assert doc["filters"]["context"] == n.contexts[1]
    assert [c["context"] for c in doc["contexts"]] == [n.contexts[1]]


def test_switching_deliberation_forgets_the_other_ones_filters(env):
    engine, token = env
    first = seed_native(engine, slug="first")
    seed_native(engine, slug="second")
    at = page("console_graph", token)
    at.selectbox(key="graph_delib").set_value("first")
    run(at)
    at.selectbox(key="graph_question").set_value(first.question_id)
    run(at)
    at.selectbox(key="graph_context").set_value(first.contexts[0])
    run(at)
    assert metric(at, "Votes") == "12"
    at.selectbox(key="graph_delib").set_value("second")
    run(at)
    assert at.selectbox(key="graph_question").value is None
    # The same context text exists in the second deliberation, so that filter stays.
    assert at.selectbox(key="graph_context").value == first.contexts[0]
    assert metric(at, "Votes") == "12"
    at.selectbox(key="graph_context").set_value(None)
    run(at)
    assert metric(at, "Votes") == "18"
