"""What the Graph and Exports console pages share: the graph filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import streamlit as st

from elicit import graphs, simulate

if TYPE_CHECKING:  # pages reach the database only through elicit
    from sqlalchemy.engine import Engine


@dataclass(frozen=True)
class Filters:
    """The filters a facilitator chose (None = no filter)."""

    question_id: int | None
    context: str | None
    min_wiser: int
    until: datetime | None


def graph_filters(engine: Engine, deliberation_id: int, *, prefix: str) -> Filters:
    """Question, context, minimum wiser votes and the date window's end, in one row; above
    them, a warning while a pilot's simulated participants are still counted."""
    pilots = simulate.simulated_participant_ids(engine, deliberation_id=deliberation_id)
    if pilots:
        st.warning(
            f"{len(pilots)} simulated participant(s) from a pilot are counted here. Delete them "
            "on the Deliberations page before you use these results."
        )
    options = graphs.filter_options(engine, deliberation_id=deliberation_id)
    titles = dict(options.questions)
    # Another deliberation was picked: forget a question or context that is not in it.
    if st.session_state.get(f"{prefix}_question") not in [None, *titles]:
        st.session_state[f"{prefix}_question"] = None
    left, middle, right, last = st.columns(4)
    question = left.selectbox(
        "Question",
        [None, *titles],
        format_func=lambda q: "All questions" if q is None else titles[q],
        key=f"{prefix}_question",
    )
    contexts = options.contexts.get(question, [])
    if st.session_state.get(f"{prefix}_context") not in [None, *contexts]:
        st.session_state[f"{prefix}_context"] = None
    context = middle.selectbox(
        "Context",
        [None, *contexts],
        format_func=lambda c: "All contexts" if c is None else c,
        key=f"{prefix}_context",
    )
    min_wiser = right.number_input(
        "Min. wiser votes",
        min_value=0,
        max_value=1000,
        value=2,
        step=1,
        key=f"{prefix}_min_wiser",
        help="How many participants must judge the wiser value wiser for an edge to be kept.",
    )
    day = last.date_input(
        "Votes up to",
        value=None,
        key=f"{prefix}_until",
        help="Only votes cast up to the end of this day (UTC). Empty: every vote.",
    )
    return Filters(
        question_id=question,
        context=context,
        min_wiser=int(min_wiser),
        until=None if day is None else graphs.end_of_day(day),
    )
