"""Console: the moral graph. Filters, the interactive view, a value's details, each context's
winner and how sure it is, the table twin of the graph, bridging and the minority report."""

from __future__ import annotations

import streamlit as st

from elicit import graphs
from elicit.console import escape_markdown
from graph.types import GraphError
from pages import common
from pages.console_common import pick_deliberation, show_error
from pages.graph_common import graph_filters

common.require_facilitator()
engine = common.engine()

st.title("Moral graph")
st.caption(
    "Values are nodes; an arrow points from a value to the one participants judged wiser in a "
    "context. Only edges that clear the thresholds are drawn; the tables below list every "
    "judged pair."
)
d = pick_deliberation("graph_delib")
if d is None:
    st.stop()
assert d.id is not None
filters = graph_filters(engine, d.id, prefix="graph")
try:
    inputs, analysis = graphs.load_and_compute(
        engine,
        deliberation_id=d.id,
        until=filters.until,
        question_id=filters.question_id,
        context=filters.context,
        min_wiser=filters.min_wiser,
    )
except (graphs.NotFound, GraphError) as exc:
    show_error(exc)
    st.stop()

left, middle, right = st.columns(3)
left.metric("Votes", len(inputs.votes))
middle.metric("Participants who voted", inputs.participants)
right.metric("Kept edges", sum(e.kept for e in analysis.pooled))

view, winners, table, groups = st.tabs(["Graph", "Winners", "Table", "Groups"])

with view:
    if not any(e.kept for e in analysis.pooled):
        st.info("No edge clears the thresholds yet: there is nothing to draw.")
    else:
        st.iframe(
            graphs.graph_html(inputs, analysis, height="600px"),
            height=640,
            alt="Interactive moral graph: values and the wiser-than edges between them",
        )
    if inputs.values:
        titles = {v.id: v.title for v in inputs.values}
        if st.session_state.get("graph_node") not in titles:
            st.session_state.pop("graph_node", None)  # a value of another deliberation
        chosen = st.selectbox(
            "Value details",
            list(titles),
            format_func=lambda i: titles[i],
            key="graph_node",
        )
        node = graphs.node_details(inputs, analysis, chosen)
        st.markdown(f"**{escape_markdown(node.value.title)}**")
        if node.value.description:
            st.markdown(escape_markdown(node.value.description))
        for policy in node.value.policies:
            st.markdown(f"- {escape_markdown(policy)}")
        a, b, c = st.columns(3)
        a.metric("Contributing participants", node.value.contributors)
        b.metric("Score (pooled)", "-" if node.score is None else f"{node.score:.3f}")
        c.metric("Contexts it wins", len(node.wins))
        st.caption("Judged wiser than (edges into this value), with 95% bootstrap intervals")
        st.dataframe(node.wiser_than, hide_index=True, key="graph_node_in")
        st.caption("Proposed as less wise than (edges out of this value)")
        st.dataframe(node.less_wise_than, hide_index=True, key="graph_node_out")

with winners:
    st.caption(
        "The top-scored value of each context's own graph, and the share of bootstrap "
        "resamples of participants in which it stays the winner."
    )
    st.dataframe(graphs.winners_table(inputs, analysis), hide_index=True, key="graph_winners")

with table:
    kept_only = st.toggle("Only kept edges", key="graph_kept_only")
    st.caption("Edges per context")
    st.dataframe(
        graphs.edge_table(inputs, analysis, kept_only=kept_only),
        hide_index=True,
        key="graph_edges",
    )
    st.caption("Values")
    st.dataframe(graphs.value_table(inputs, analysis), hide_index=True, key="graph_values")

with groups:
    fields = graphs.group_fields(inputs)
    if not fields:
        st.info("No votes yet, so there are no groups to compare.")
    else:
        field = st.selectbox("Group participants by", fields, key="graph_group_field")
        names, value_rows, edge_rows = graphs.bridging_tables(
            inputs, field=field, min_wiser=filters.min_wiser
        )
        st.caption(
            f"Bridging over {len(names)} group(s): support within each group on the likelihood "
            "scale (-1 to 1); a value bridges when every group's support is at least 0.33."
        )
        st.dataframe(value_rows, hide_index=True, key="graph_bridging_values")
        st.caption("Kept edges, support within each group")
        st.dataframe(edge_rows, hide_index=True, key="graph_bridging_edges")
        st.caption("Minority report: values that win a context within one group but not overall")
        st.dataframe(
            graphs.minority_table(inputs, field=field, min_wiser=filters.min_wiser),
            hide_index=True,
            key="graph_minority",
        )
