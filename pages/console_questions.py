"""Console: questions and contexts. Write, edit, archive, link; or review LLM drafts."""

from __future__ import annotations

import streamlit as st

from elicit import console, questions
from pages import common
from pages.console_common import flash, pick_deliberation, show_error, show_flash

common.require_facilitator()
engine = common.engine()

st.title("Questions and contexts")
show_flash()
d = pick_deliberation("q_delib")
if d is None:
    st.stop()
assert d.id is not None
board = console.question_board(engine, deliberation_id=d.id)
show_archived = st.toggle("Show archived questions and contexts", key="q_show_archived")
context_label = {c.id: c.text + (" (archived)" if c.archived else "") for c in board.contexts}
live_contexts = [c.id for c in board.contexts if not c.archived]
question_label = {q.id: f"{q.position + 1}. {q.title}" for q in board.questions}


def context_pill(context_id: int) -> str:
    """Pills render Markdown, so context text is escaped."""
    return console.escape_markdown(context_label.get(context_id, str(context_id)))


# --- questions --------------------------------------------------------------------------------

st.header("Questions")
if not board.questions:
    st.info("No questions yet: write one below, or let the LLM draft some.")
for q in board.questions:
    if q.archived and not show_archived:
        continue
    label = f"{q.position + 1}\\. {console.escape_markdown(q.title)}"
    with st.expander(label + (" (archived)" if q.archived else "")):
        st.text_input("Title", value=q.title, key=f"q_title_{q.id}")
        st.text_area("Question", value=q.text, key=f"q_text_{q.id}")
        options = list(dict.fromkeys([*live_contexts, *q.context_ids]))
        st.pills(
            "Contexts of this question",
            options,
            selection_mode="multi",
            default=list(q.context_ids),
            format_func=context_pill,
            key=f"q_ctx_{q.id}",
        )
        save_col, archive_col = st.columns(2)
        if save_col.button("Save question", key=f"q_save_{q.id}", type="primary"):
            common.require_facilitator()
            try:
                console.edit_question(
                    engine,
                    deliberation_id=d.id,
                    question_id=q.id,
                    title=st.session_state[f"q_title_{q.id}"],
                    text=st.session_state[f"q_text_{q.id}"],
                )
                console.set_question_contexts(
                    engine,
                    deliberation_id=d.id,
                    question_id=q.id,
                    context_ids=st.session_state[f"q_ctx_{q.id}"],
                )
            except console.ConsoleError as exc:
                show_error(exc)
            else:
                flash(f"Question {q.position + 1} saved.")
                st.rerun()
        if archive_col.button("Restore" if q.archived else "Archive", key=f"q_archive_{q.id}"):
            common.require_facilitator()
            console.set_question_archived(
                engine, deliberation_id=d.id, question_id=q.id, archived=not q.archived
            )
            flash(f"Question {q.position + 1} {'restored' if q.archived else 'archived'}.")
            st.rerun()

if st.session_state.pop("_q_add_clear", False):
    st.session_state.update(q_add_title="", q_add_text="", q_add_contexts="", q_add_existing=[])
with st.form("q_add"):
    st.subheader("Add a question")
    st.text_input("Title (a few words)", key="q_add_title")
    st.text_area("Question, as a user would ask an AI", key="q_add_text")
    st.pills(
        "Existing contexts",
        live_contexts,
        selection_mode="multi",
        format_func=context_pill,
        key="q_add_existing",
    )
    st.text_area('New contexts, one per line, each starting with "When"', key="q_add_contexts")
    add_question = st.form_submit_button("Add question", key="q_add_submit", type="primary")
if add_question:
    common.require_facilitator()
    s = st.session_state
    try:
        console.add_question(
            engine,
            deliberation_id=d.id,
            title=s.q_add_title,
            text=s.q_add_text,
            contexts=[line for line in s.q_add_contexts.splitlines() if line.strip()],
            context_ids=s.q_add_existing,
        )
    except console.ConsoleError as exc:
        show_error(exc)
    else:
        st.session_state["_q_add_clear"] = True
        flash("Question added.")
        st.rerun()

# --- contexts ---------------------------------------------------------------------------------

st.header("Contexts")
for c in board.contexts:
    if c.archived and not show_archived:
        continue
    used = sum(1 for q in board.questions if c.id in q.context_ids)
    text_col, save_col, archive_col = st.columns([6, 1, 1], vertical_alignment="bottom")
    text_col.text_input(
        f"Context {c.id} (used by {used} question{'s' if used != 1 else ''})"
        + (" (archived)" if c.archived else ""),
        value=c.text,
        key=f"c_text_{c.id}",
    )
    if save_col.button("Save", key=f"c_save_{c.id}"):
        common.require_facilitator()
        try:
            console.edit_context(
                engine,
                deliberation_id=d.id,
                context_id=c.id,
                text=st.session_state[f"c_text_{c.id}"],
            )
        except console.ConsoleError as exc:
            show_error(exc)
        else:
            flash(f"Context {c.id} saved.")
            st.rerun()
    if archive_col.button("Restore" if c.archived else "Archive", key=f"c_archive_{c.id}"):
        common.require_facilitator()
        console.set_context_archived(
            engine, deliberation_id=d.id, context_id=c.id, archived=not c.archived
        )
        flash(f"Context {c.id} {'restored' if c.archived else 'archived'}.")
        st.rerun()

if st.session_state.pop("_c_add_clear", False):
    st.session_state.update(c_add_text="", c_add_questions=[])
with st.form("c_add"):
    st.subheader("Add a context")
    st.text_input('Context (starts with "When")', key="c_add_text")
    st.pills(
        "Link it to these questions",
        [q.id for q in board.questions if not q.archived],
        selection_mode="multi",
        format_func=lambda qid: console.escape_markdown(question_label.get(qid, str(qid))),
        key="c_add_questions",
    )
    add_context = st.form_submit_button("Add context", key="c_add_submit", type="primary")
if add_context:
    common.require_facilitator()
    try:
        console.add_context(
            engine,
            deliberation_id=d.id,
            text=st.session_state.c_add_text,
            question_ids=st.session_state.c_add_questions,
        )
    except console.ConsoleError as exc:
        show_error(exc)
    else:
        st.session_state["_c_add_clear"] = True
        flash("Context added.")
        st.rerun()

# --- LLM drafts -------------------------------------------------------------------------------

st.header("Draft with the LLM")
gateway = common.gateway()
if gateway is None:
    st.info("No LLM is configured (see the status line), so write questions and contexts by hand.")
    st.stop()

st.caption("Drafts are not saved until you review them and press Save.")
with st.form("llm_questions"):
    st.number_input("How many questions", 1, questions.MAX_QUESTIONS, 3, key="llm_n_questions")
    st.number_input("Contexts per question", 1, questions.MAX_CONTEXTS, 3, key="llm_n_contexts")
    propose = st.form_submit_button("Propose questions from the topic", key="llm_propose")
if propose:
    common.require_facilitator()
    try:
        with st.spinner("Asking the LLM..."):
            drafts = questions.propose_questions(
                gateway,
                deliberation_id=d.id,
                topic=d.topic,
                n_questions=st.session_state.llm_n_questions,
                contexts_per_question=st.session_state.llm_n_contexts,
                existing_questions=[q.text for q in board.questions if not q.archived],
            )
    except questions.ProposalError as exc:
        show_error(exc)
    else:
        st.session_state["q_drafts"] = {"deliberation_id": d.id, "count": len(drafts)}
        for i, draft in enumerate(drafts):
            st.session_state[f"prop_keep_{i}"] = True
            st.session_state[f"prop_title_{i}"] = draft.title
            st.session_state[f"prop_text_{i}"] = draft.text
            st.session_state[f"prop_ctx_{i}"] = "\n".join(draft.contexts)
        st.rerun()

q_drafts = st.session_state.get("q_drafts")
if q_drafts and q_drafts["deliberation_id"] == d.id:
    st.subheader("Review the drafted questions")
    for i in range(q_drafts["count"]):
        with st.container(border=True):
            st.checkbox("Keep this question", key=f"prop_keep_{i}")
            st.text_input("Title", key=f"prop_title_{i}")
            st.text_area("Question", key=f"prop_text_{i}")
            st.text_area("Contexts, one per line", key=f"prop_ctx_{i}")
    save_col, discard_col = st.columns(2)
    if save_col.button("Save the kept questions", key="prop_save", type="primary"):
        common.require_facilitator()
        s = st.session_state
        kept = [
            questions.Draft(
                title=s[f"prop_title_{i}"],
                text=s[f"prop_text_{i}"],
                contexts=[c for c in s[f"prop_ctx_{i}"].splitlines() if c.strip()],
            )
            for i in range(q_drafts["count"])
            if s[f"prop_keep_{i}"]
        ]
        try:
            saved = questions.save_question_proposals(engine, deliberation_id=d.id, proposals=kept)
        except console.ConsoleError as exc:
            show_error(exc)
        else:
            st.session_state.pop("q_drafts", None)
            flash(f"{len(saved)} question(s) saved.")
            st.rerun()
    if discard_col.button("Discard the drafts", key="prop_discard"):
        st.session_state.pop("q_drafts", None)
        st.rerun()

live_questions = [q for q in board.questions if not q.archived]
if live_questions:
    with st.form("llm_contexts"):
        st.selectbox(
            "More contexts for the question",
            [q.id for q in live_questions],
            format_func=lambda qid: question_label.get(qid, str(qid)),
            key="llm_ctx_question",
        )
        st.number_input("How many contexts", 1, questions.MAX_CONTEXTS, 3, key="llm_ctx_n")
        propose_contexts = st.form_submit_button("Propose contexts", key="llm_ctx_propose")
    if propose_contexts:
        common.require_facilitator()
        target = next(q for q in live_questions if q.id == st.session_state.llm_ctx_question)
        try:
            with st.spinner("Asking the LLM..."):
                drafted = questions.propose_contexts(
                    gateway,
                    deliberation_id=d.id,
                    question_text=target.text,
                    n_contexts=st.session_state.llm_ctx_n,
                    existing_contexts=[board.context_text(cid) for cid in target.context_ids],
                )
        except questions.ProposalError as exc:
            show_error(exc)
        else:
            st.session_state["ctx_drafts"] = {
                "deliberation_id": d.id,
                "question_id": target.id,
                "count": len(drafted),
            }
            for i, text in enumerate(drafted):
                st.session_state[f"propctx_keep_{i}"] = True
                st.session_state[f"propctx_text_{i}"] = text
            st.rerun()

ctx_drafts = st.session_state.get("ctx_drafts")
if ctx_drafts and ctx_drafts["deliberation_id"] == d.id:
    st.subheader("Review the drafted contexts")
    target_label = question_label.get(ctx_drafts["question_id"], "")
    st.caption("For question " + console.escape_markdown(target_label))
    for i in range(ctx_drafts["count"]):
        keep_col, text_col = st.columns([1, 8], vertical_alignment="bottom")
        keep_col.checkbox("Keep", key=f"propctx_keep_{i}")
        text_col.text_input(f"Context {i + 1}", key=f"propctx_text_{i}")
    save_col, discard_col = st.columns(2)
    if save_col.button("Save the kept contexts", key="propctx_save", type="primary"):
        common.require_facilitator()
        s = st.session_state
        kept_texts = [
            s[f"propctx_text_{i}"] for i in range(ctx_drafts["count"]) if s[f"propctx_keep_{i}"]
        ]
        try:
            questions.save_context_proposals(
                engine,
                deliberation_id=d.id,
                question_id=ctx_drafts["question_id"],
                texts=kept_texts,
            )
        except console.ConsoleError as exc:
            show_error(exc)
        else:
            st.session_state.pop("ctx_drafts", None)
            flash(f"{len(kept_texts)} context(s) saved.")
            st.rerun()
    if discard_col.button("Discard the drafts", key="propctx_discard"):
        st.session_state.pop("ctx_drafts", None)
        st.rerun()
