"""Renderers for each step of the participant journey (not a page: `participate.py` calls them).

Everything a participant or an LLM wrote goes through `plain()` before `st.markdown`, so it is
shown as text: markdown syntax, HTML and Streamlit's colour/icon directives are escaped.

Widget keys (stable, for tests and browser runs):
consent `invite_code`, `consent_sharing`, `consent_training`, button `consent_agree` "I agree";
question `question_choice`, button `question_start` "Start";
interview `chat_input`, `chat_retry` "Try again", card `card_title`, `card_description`,
`card_policies`, `card_save` "Save changes", `card_confirm` "Confirm card";
guided form `form_story` + `form_story_next` "Next", `form_attention` + `form_attention_next`;
peers `peer_<value id>`, `peer_none`, button `peers_submit` "Next";
wiser form `wiser_choice`, `wiser_comment`, `wiser_submit` "Submit";
landed `landed_next` "Next"; survey `survey_<item>`, `survey_comment`, `survey_submit` "Finish".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import streamlit as st

from elicit import interview, journey, values
from elicit.cards import CARD_TOOL_NAME, Problem, check_card, split_policies
from elicit.config import Settings
from elicit.llm import LLMError
from pages import common

if TYPE_CHECKING:  # pages reach the database only through elicit
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^&\"'@%])")
FLASH = "journey_flash"
CHAT_ERROR = "journey_chat_error"
CHAT_WARNING = "journey_chat_warning"  # the message was refused (empty, too long): why
PENDING_REPLY = "journey_pending_reply"  # started in the chat callback, drawn by the page
LAST_REPLY = "journey_last_reply"  # the newest started reply, until it is stored
GENERIC_ERROR = (
    "Something went wrong on our side. Everything you sent is saved; please reload the page."
)


def plain(text: str | None) -> str:
    """Markdown that displays `text` literally: every ASCII punctuation mark that markdown (or
    Streamlit's `:color[...]`/`:icon:` syntax) could read is backslash-escaped, and line breaks
    are kept.

    >>> plain("*hi* <b>x</b>")
    '\\\\*hi\\\\* \\\\<b\\\\>x\\\\</b\\\\>'
    """
    escaped = _MD_SPECIAL.sub(r"\\\1", text or "")
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


def escaped_stream(deltas: Iterable[str]) -> Iterator[str]:
    """Escape each streamed delta (escaping is per character, so pieces can be joined)."""
    for delta in deltas:
        yield plain(delta)


def flash(text: str | None) -> None:
    if text:
        st.session_state[FLASH] = text


def show_flash() -> None:
    text = st.session_state.pop(FLASH, None)
    if text:
        st.info(plain(text))


def show_problems(problems: Iterable[Problem], *, advice: bool = True) -> None:
    for p in problems:
        if p.blocking:
            st.error(plain(str(p)), icon=":material/edit:")
        elif advice:
            st.caption(":material/lightbulb: " + plain(str(p)))


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def gateway() -> Any:
    """The LLM gateway, or None: a gateway that cannot even be built means the guided form,
    not a stuck participant."""
    try:
        return common.gateway()
    except LLMError:
        log.exception("the LLM gateway could not be built; using the guided form")
        return None


def embedder() -> Any:
    """The embedder that places confirmed cards among the values (offline unless an API
    embedding provider is configured)."""
    return values.embedder_from_settings(common.settings(), gateway())


def render_value(v: journey.ValueView, *, label: str | None = None) -> None:
    """A values card, in a bordered box that stacks on narrow screens."""
    with st.container(border=True):
        if label:
            st.caption(label)
        st.markdown(f"**{plain(v.title)}**")
        if v.description:
            st.markdown(plain(v.description))
        if v.policies:
            st.markdown("\n".join(f"- {plain(p)}" for p in v.policies))


# --- landing and entry ----------------------------------------------------------------------


def render_landing(engine: Engine) -> None:
    st.title("Moral Graph Elicitation")
    open_ones = journey.list_open(engine)
    if not open_ones:
        st.info("There is no open deliberation yet. A facilitator can create one in the console.")
        return
    st.write("Choose a deliberation to take part in:")
    for d in open_ones:
        with st.container(border=True):
            st.markdown(f"**{plain(d.title)}**")
            if d.topic:
                st.caption(plain(d.topic))
            st.markdown(f"[Take part](?d={quote(d.slug, safe='')})")


def render_consent(
    engine: Engine,
    visit: journey.Visit,
    *,
    panel: journey.PanelIds | None,
    invite_from_link: str | None,
) -> journey.Entry | None:
    """The welcome, what happens and what is shared, the three choices; creates the
    participant on "I agree"."""
    d = visit.deliberation
    st.session_state.setdefault("journey_arrived_at", now_iso())
    st.title(plain(d.title))
    if visit.bad_token:
        st.warning("This resume link does not open anything here. You can start afresh below.")
    if d.welcome_text:
        st.markdown(plain(d.welcome_text))
    st.subheader("What happens")
    st.markdown(
        "1. You choose a question and talk it through with an interviewer, who helps you "
        "put into words what a wise response would pay attention to. That becomes your "
        "**values card**; you can edit it before you confirm it.\n"
        "2. You see other people's values and say which you find wise.\n"
        "3. You read a few short stories and judge whether the person in each became wiser.\n"
        "4. You see where your value landed, and answer four short questions.\n\n"
        "It takes about 15 minutes. You can stop and come back with your personal link."
    )
    st.subheader("What is shared")
    st.markdown(
        "Your card may be shown to other participants and included in the results. Your "
        "conversation with the interviewer is kept for the organisers and is never published "
        "unless you allow it below. No names or panel ids are ever published."
    )
    sharing = st.radio(
        "How may your card be shared?",
        options=["publish", "aggregate"],
        format_func=lambda o: {
            "publish": "Publish my card's text with the results",
            "aggregate": "Use my card only in aggregate counts, never its text",
        }[o],
        key="consent_sharing",
    )
    training = st.checkbox(
        "Allow my card and my conversation, without my identity, to be used to train or "
        "evaluate AI systems",
        key="consent_training",
    )
    code = invite_from_link
    if d.needs_invite and not invite_from_link:
        code = st.text_input("Invite code", key="invite_code")
    if st.button("I agree", key="consent_agree", type="primary"):
        arrived = datetime.fromisoformat(st.session_state["journey_arrived_at"])
        return journey.join(
            engine,
            slug=d.slug,
            consent=journey.Consent(sharing=sharing or "publish", training=bool(training)),
            invite_code=code,
            panel=panel,
            arrived_at=arrived,
        )
    return None


def render_resume_box(settings: Settings, *, slug: str, token: str) -> None:
    link = journey.resume_link(settings.mge_public_url, slug=slug, token=token)
    with st.expander("Keep your place", icon=":material/bookmark:"):
        st.caption(
            "This personal link brings you back to where you are, on any device. Keep it "
            "private: anyone with it can see and change your answers."
        )
        st.code(link, language=None)


# --- question -------------------------------------------------------------------------------


def render_question(engine: Engine, participant_id: int) -> None:
    questions = journey.offered_questions(engine, participant_id=participant_id)
    st.subheader("Choose a question")
    st.write(
        "Each is something a person might ask an AI. Pick the one you have the most to say about."
    )
    by_id = {q.id: q for q in questions}
    choice = st.radio(
        "Question",
        options=list(by_id),
        format_func=lambda i: plain(by_id[i].text),
        index=None,
        key="question_choice",
        label_visibility="collapsed",
    )
    if st.button("Start", key="question_start", type="primary", disabled=choice is None):
        assert choice is not None
        journey.choose_question(engine, participant_id=participant_id, question_id=choice)
        st.rerun()


# --- interview ------------------------------------------------------------------------------


def _render_message(m: interview.ChatMessage) -> None:
    if m.role == "user":
        with st.chat_message("user"):
            st.markdown(plain(m.content))
    elif m.role == "assistant":
        if m.content.strip():
            with st.chat_message("assistant"):
                st.markdown(plain(m.content))
        elif any(tc.get("name") == CARD_TOOL_NAME for tc in m.tool_calls):
            pass  # the card itself is shown below the chat
    elif m.role == "notice":
        if m.content in interview.FORM_PROMPTS.values():
            with st.chat_message("guide", avatar=":material/assignment:"):
                st.markdown(plain(m.content))
        else:
            st.caption(plain(m.content))


def _sync_card_fields(state: interview.InterviewState) -> None:
    """Put the stored card into the editor's fields when it changed (a new version), so the
    widgets keep stable keys yet never show an outdated text."""
    card = state.card
    marker = (card.card_id, card.version) if card else None
    if st.session_state.get("card_seen") != marker or "card_title" not in st.session_state:
        st.session_state["card_seen"] = marker
        st.session_state["card_title"] = card.title if card else ""
        st.session_state["card_description"] = card.description if card else ""
        st.session_state["card_policies"] = "\n".join(card.policies) if card else ""


CARD_GUIDE = (
    "**Title**: 2 to 5 words.  \n"
    "**Description**: one or two plain sentences.  \n"
    "**What you pay attention to**: 3 to 7 lines. Start each with a few words in CAPITALS, "
    "in the plural, then say in lowercase what exactly you notice. For example, on a card "
    "about teaching a child:  \n"
    "- MOMENTS when the child is about to find the answer themselves\n"
    "- QUESTIONS that let them say what they already know\n"
    "- SMALL SUCCESSES worth naming out loud\n\n"
    "Use general words (no names), and describe what you notice rather than rules."
)


def render_card_editor(engine: Engine, state: interview.InterviewState) -> None:
    """The card inline, every field editable, live checks, Save and Confirm."""
    _sync_card_fields(state)
    with st.container(border=True):
        if state.card is None:
            st.markdown("**Write your values card**")
            st.markdown(CARD_GUIDE)
        else:
            st.markdown("**Your values card**")
            st.caption(
                "Does this feel like yours? Edit any field, ask the interviewer for changes, or "
                "confirm it."
                if state.mode == "llm"
                else "Edit any field, then confirm your card."
            )
        title = st.text_input("Title", key="card_title", max_chars=200)
        description = st.text_area("Description", key="card_description", height=90)
        policies_text = st.text_area(
            "What you pay attention to (one per line)", key="card_policies", height=180
        )
        policies = split_policies(policies_text)
        if title or description or policies:
            show_problems(check_card(title, description, policies, story_names=state.names))
        save = st.button("Save changes", key="card_save")
        confirm = st.button("Confirm card", key="card_confirm", type="primary")
    if save:
        try:
            interview.save_card(
                engine,
                interview_id=state.interview_id,
                title=title,
                description=description,
                policies=policies,
            )
        except interview.InterviewError as exc:
            st.error(plain(str(exc)))
            return
        st.rerun()
    if confirm:
        try:
            interview.confirm_card(
                engine,
                interview_id=state.interview_id,
                title=title,
                description=description,
                policies=policies,
                embedder=embedder(),
            )
        except interview.InterviewError as exc:
            st.error(plain(str(exc)))
            show_problems(exc.problems)
            return
        flash("Thank you! Your card is saved.")
        st.rerun()


def _stream_reply(reply: interview.Reply) -> None:
    with st.chat_message("assistant"):
        st.write_stream(escaped_stream(reply))
    if reply.error:
        st.session_state[CHAT_ERROR] = reply.error


def render_interview(engine: Engine, gateway: Any, settings: Settings, participant_id: int) -> None:
    state = interview.load_state(
        engine, participant_id=participant_id, llm_available=gateway is not None
    )
    if state.mode == "llm" and gateway is None:  # pragma: no cover - load_state switches it
        return
    with st.container(border=True):
        st.caption("Your question")
        st.markdown(plain(state.question))
    pending = st.session_state.pop(PENDING_REPLY, None)
    if pending is not None and pending.interview_id != state.interview_id:
        pending = None
    if pending is not None and not (state.mode == "llm" and state.awaiting_reply):
        # The reply started by the chat callback got further than this run's state before it
        # was loaded: its message is stored (a card may still be re-asked) or it switched the
        # chat to the form. Wait for its end, then draw the interview as it now is.
        pending.consume()
        if pending.error:
            st.session_state[CHAT_ERROR] = pending.error
        st.rerun()
    error = st.session_state.pop(CHAT_ERROR, None)
    if state.mode == "form":
        if error:  # e.g. why the interview just switched to the guided form
            st.warning(plain(error))
        render_form(engine, settings, state)
        return
    for m in state.messages:
        _render_message(m)
    if error:
        st.warning(plain(error))
    running = interview.in_flight(engine, state.interview_id) if pending is None else None
    if state.awaiting_reply and running is not None:  # e.g. reloaded while it was coming
        with st.spinner("The interviewer is answering..."):
            running.wait(_reply_timeout_s(settings))
        st.rerun()
    if state.awaiting_reply and pending is None:
        st.caption("The interviewer has not answered your last message yet.")
        if st.button("Try again", key="chat_retry"):
            _stream_reply(
                interview.reply(
                    engine,
                    gateway,
                    interview_id=state.interview_id,
                    turn_budget=settings.mge_turn_budget,
                )
            )
            st.rerun()
    if pending is not None:
        _stream_reply(pending)
        st.rerun()
    if state.status == "card":
        render_card_editor(engine, state)
    st.chat_input(
        "Ask for changes, or type your answer" if state.card else "Type your answer",
        key="chat_input",
        on_submit=_on_chat_submit,
        args=(engine, gateway, settings, state.interview_id),
    )
    refused = st.session_state.pop(CHAT_WARNING, None)
    if refused:
        st.warning(plain(refused))


def _reply_timeout_s(settings: Settings) -> float:
    """The longest a reply can take: every attempt timing out, plus the back-off between."""
    return settings.mge_llm_timeout_s * (settings.mge_llm_max_retries + 1) + 30


def _on_chat_submit(engine: Engine, gateway: Any, settings: Settings, interview_id: int) -> None:
    """Runs as soon as a message is sent, before the page is drawn again: store the message
    and start the interviewer's reply, so the request is on its way while the page draws the
    transcript (the page then shows the reply as it streams in)."""
    earlier = st.session_state.get(LAST_REPLY)
    if earlier is not None:  # sent while the last reply was still coming: let it finish first
        earlier.wait(_reply_timeout_s(settings))
    try:
        interview.record_input(
            engine,
            interview_id=interview_id,
            text=st.session_state.get("chat_input"),
            max_chars=settings.mge_max_message_chars,
        )
    except (interview.InputError, interview.InterviewError) as exc:
        st.session_state[CHAT_WARNING] = str(exc)
        return
    except Exception:  # a callback's error would bypass the page's handler: same message
        log.exception("could not store a chat message")
        st.session_state[CHAT_WARNING] = GENERIC_ERROR
        return
    reply = interview.reply(
        engine, gateway, interview_id=interview_id, turn_budget=settings.mge_turn_budget
    ).start()
    st.session_state[PENDING_REPLY] = st.session_state[LAST_REPLY] = reply


def render_form(engine: Engine, settings: Settings, state: interview.InterviewState) -> None:
    """The guided card form: the interviewer's questions as prompts, with live checks."""
    st.info(
        "No AI is assisting you right now. This is a short guided form with the same questions "
        "an interviewer would ask; your answers are saved as you go.",
        icon=":material/edit_note:",
    )
    for m in state.messages:
        _render_message(m)
    stage = state.form_stage
    if stage in interview.FORM_PROMPTS:
        with st.chat_message("guide", avatar=":material/assignment:"):
            st.markdown(plain(interview.FORM_PROMPTS[stage]))
        answer = st.text_area("Your answer", key=f"form_{stage}", height=160)
        if st.button("Next", key=f"form_{stage}_next", type="primary"):
            try:
                interview.answer_form(
                    engine,
                    interview_id=state.interview_id,
                    stage=stage,
                    text=answer,
                    max_chars=settings.mge_max_message_chars,
                )
            except (interview.InputError, interview.InterviewError) as exc:
                st.warning(plain(str(exc)))
                return
            st.rerun()
        return
    render_card_editor(engine, state)


# --- peers ----------------------------------------------------------------------------------


def render_peers(engine: Engine, participant_id: int) -> None:
    draw = journey.peer_draw(engine, participant_id=participant_id)
    st.subheader("Other people's values")
    if not draw.values:
        st.info("No one else has shared a value for this question yet. You are one of the first!")
        if st.button("Next", key="peers_submit", type="primary"):
            flash(
                journey.submit_peer_votes(
                    engine, participant_id=participant_id, draw_id=None, value_ids=[]
                ).notice
            )
            st.rerun()
        return
    st.write(
        "Here is what other participants said a wise response would pay attention to. "
        "Tick each one you find wise."
    )
    chosen = []
    for v in draw.values:
        render_value(v)
        if st.checkbox("I find this wise", key=f"peer_{v.id}", value=v.id in draw.chosen):
            chosen.append(v.id)
    none_wise = st.checkbox("None of these seem wise to me", key="peer_none")
    if st.button("Next", key="peers_submit", type="primary"):
        try:
            moved = journey.submit_peer_votes(
                engine,
                participant_id=participant_id,
                draw_id=draw.draw_id,
                value_ids=chosen,
                none_wise=none_wise,
            )
        except journey.JourneyError as exc:
            st.warning(plain(str(exc)))
            return
        flash(moved.notice)
        st.rerun()


# --- wiser-than -----------------------------------------------------------------------------


def render_wiser(engine: Engine, participant_id: int) -> None:
    progress = journey.wiser_progress(engine, participant_id=participant_id)
    item = progress.item
    if item is None:
        flash(journey.leave_wiser(engine, participant_id=participant_id).notice)
        st.rerun()
        return
    st.subheader(f"Story {progress.done + 1} of {progress.target}")
    st.write(
        "Below is a short story from a person who changed what they pay attention to. "
        "You are judging the person in the story, not an AI."
    )
    with st.container(border=True):
        st.caption("Situation")
        st.markdown(f"**{plain(item.context)}**")
        st.markdown(plain(item.story))
    left, right = st.columns(2)  # side by side on wide screens, stacked on phones
    with left:
        render_value(item.from_value, label="What they paid attention to before")
    with right:
        render_value(item.to_value, label="What they pay attention to now")
    with st.form("wiser_form", clear_on_submit=True):
        st.radio(
            "Did this person become wiser?",
            options=list(journey.CHOICE_LABELS),
            format_func=journey.CHOICE_LABELS.__getitem__,
            index=None,
            key="wiser_choice",
        )
        st.text_area("Why? (optional)", key="wiser_comment", height=80)
        # The callback is bound to the story shown now: if another tab judged it meanwhile,
        # this judgement must not land on whichever story comes next.
        st.form_submit_button(
            "Submit",
            key="wiser_submit",
            type="primary",
            on_click=_submit_wiser,
            args=(engine, participant_id, item.hypothesis_id),
        )


def _submit_wiser(engine: Engine, participant_id: int, hypothesis_id: int) -> None:
    choice = st.session_state.get("wiser_choice")
    if choice is None:
        flash("Please choose one of the answers.")
        return
    try:
        journey.record_wiser_vote(
            engine,
            participant_id=participant_id,
            hypothesis_id=hypothesis_id,
            choice=choice,
            comment=st.session_state.get("wiser_comment") or "",
        )
    except journey.JourneyError as exc:  # AlreadyVoted included
        flash(str(exc))


# --- where my value landed ------------------------------------------------------------------


def _neighbour_lines(items: Iterable[journey.Neighbour]) -> str:
    lines = []
    for n in items:
        people = "person" if n.marked_wiser == 1 else "people"
        lines.append(f"- **{plain(n.value.title)}** ({n.marked_wiser} {people})")
    return "\n".join(lines)


def render_landed(engine: Engine, participant_id: int) -> None:
    view = journey.landed(engine, participant_id=participant_id, embedder=embedder())
    st.subheader("Where your value landed")
    if view.value is None:
        st.info(
            "Your card is saved. It is still being added to the shared graph; "
            "the organisers will include it."
        )
    else:
        render_value(view.value, label="Your value, as it appears in the graph")
        others = view.contributors - 1
        if others > 0:
            st.write(
                f"{others} other {'person' if others == 1 else 'people'} expressed this value too."
            )
        else:
            st.write("So far you are the only one who expressed this value.")
        if view.peer_impressions:
            st.write(
                f"{view.peer_votes} of the {view.peer_impressions} people who saw it found it wise."
            )
        if view.came_from:
            st.markdown("People who moved **to your value** from:")
            st.markdown(_neighbour_lines(view.came_from))
        if view.leads_to:
            st.markdown("People found these values **wiser than yours**:")
            st.markdown(_neighbour_lines(view.leads_to))
        if not view.came_from and not view.leads_to:
            st.write(
                "Nobody has judged stories about your value yet. As more people take part, "
                "it will find its place in the graph."
            )
        dot = journey.landed_dot(view)
        if dot:
            st.graphviz_chart(dot)
    if st.button("Next", key="landed_next", type="primary"):
        journey.leave_landed(engine, participant_id=participant_id)
        st.rerun()


# --- survey and finish ----------------------------------------------------------------------

SCALE = {
    1: "1 · Strongly disagree",
    2: "2",
    3: "3",
    4: "4",
    5: "5 · Strongly agree",
}


def render_survey(engine: Engine, participant_id: int) -> None:
    st.subheader("Four last questions")
    st.write(
        "How much do you agree with each statement? (1 = strongly disagree, 5 = strongly agree)"
    )
    with st.form("survey_form"):
        scores: dict[str, int | None] = {}
        for item, label in journey.SURVEY_ITEMS:
            scores[item] = st.radio(
                label,
                options=list(SCALE),
                format_func=SCALE.__getitem__,
                index=None,
                horizontal=True,
                key=f"survey_{item}",
            )
        comment = st.text_area(
            "Anything else you would like to tell us? (optional)", key="survey_comment"
        )
        submitted = st.form_submit_button("Finish", key="survey_submit", type="primary")
    if submitted:
        try:
            journey.save_survey(
                engine, participant_id=participant_id, scores=scores, comment=comment
            )
        except journey.JourneyError as exc:
            st.warning(plain(str(exc)))
            return
        st.rerun()


def render_finish(engine: Engine, participant_id: int) -> None:
    view = journey.finish(engine, participant_id=participant_id)
    st.subheader("Thank you!")
    lines = [f"Your card is saved, and you are one of {view.participants} participants."]
    if view.your_peer_votes:
        lines.append(f"You found {view.your_peer_votes} of your peers' values wise.")
    if view.your_wiser_votes:
        stories = "story" if view.your_wiser_votes == 1 else "stories"
        lines.append(f"You judged {view.your_wiser_votes} {stories}.")
    lines.append(f"The graph now holds {view.values} values.")
    st.write(" ".join(lines))
    if view.completion_url:
        st.write("To complete the study, follow this link:")
        st.link_button(
            "Complete the study", view.completion_url, type="primary", key="finish_complete"
        )
        st.code(view.completion_url, language=None)
    else:
        st.write("You can close this page now.")
