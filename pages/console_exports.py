"""Console: exports. Every format as a download, with the Graph page's filters."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from elicit import auth, graphs
from pages import common
from pages.console_common import pick_deliberation
from pages.graph_common import Filters, graph_filters

common.require_facilitator()
engine = common.engine()

st.title("Exports")
st.caption(
    "Every export holds vote counts and value texts only: no participant, panel or token ids. "
    "Comments appear only in the native JSON, and only from participants who agreed to publish. "
    "The same exports run from the command line: `mge export --format ...`."
)
d = pick_deliberation("exports_delib")
if d is None:
    st.stop()
assert d.id is not None
deliberation_id = d.id
filters = graph_filters(engine, deliberation_id, prefix="exports")
token = st.session_state.get(common.SESSION_KEY)


def build(fmt: str, chosen: Filters) -> Callable[[], bytes]:
    """The file is made when the button is clicked, after checking the session again."""

    def data() -> bytes:
        if auth.current_facilitator(engine, token) is None:
            raise PermissionError("the console session has ended; log in again")
        return graphs.export_download(
            engine,
            deliberation_id=deliberation_id,
            fmt=fmt,
            until=chosen.until,
            question_id=chosen.question_id,
            context=chosen.context,
            min_wiser=chosen.min_wiser,
        ).data

    return data


for fmt, info in graphs.FORMATS.items():
    name, mime = graphs.download_name(d.slug, fmt)
    left, right = st.columns([2, 3])
    left.download_button(
        info.label,
        data=build(fmt, filters),
        file_name=name,
        mime=mime,
        key=f"exports_{fmt}",
        on_click="ignore",
        icon=":material/download:",
    )
    right.caption(f"`{name}`: " + ", ".join(f"`{f}`" for f in info.files))
