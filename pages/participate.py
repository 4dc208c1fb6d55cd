"""The participant page (the app's landing page).

Without `?d=` it lists open deliberations. With `?d=SLUG` it recognises the participant (resume
token `r`, or panel ids PROLIFIC_PID/STUDY_ID/SESSION_ID, invite code `invite`) and renders their
current step; the step renderers live in `pages/participant_steps.py`. The resume token stays in
the URL, so a reload resumes at the same step with the whole transcript.
"""

from __future__ import annotations

import logging

import streamlit as st

from elicit import interview, journey
from elicit.llm import LLMError
from pages import common
from pages import participant_steps as steps

log = logging.getLogger(__name__)

RENDERERS = {
    "consent": lambda e, g, s, p: steps.render_question(e, p),  # imported participants
    "question": lambda e, g, s, p: steps.render_question(e, p),
    "interview": steps.render_interview,
    "peers": lambda e, g, s, p: steps.render_peers(e, p),
    "wiser": lambda e, g, s, p: steps.render_wiser(e, p),
    "landed": lambda e, g, s, p: steps.render_landed(e, p),
    "survey": lambda e, g, s, p: steps.render_survey(e, p),
    "finished": lambda e, g, s, p: steps.render_finish(e, p),
}


def _param(name: str) -> str | None:
    value = st.query_params.get(name)
    return value.strip() or None if isinstance(value, str) else None


def main() -> None:
    engine = common.engine()
    slug = _param("d")
    if slug is None:
        steps.render_landing(engine)
        return
    panel = journey.PanelIds.from_params(st.query_params.to_dict())
    invite = _param("invite")
    visit = journey.visit(
        engine, slug=slug, resume_token=_param("r"), panel=panel, invite_code=invite
    )
    participant_id, token = visit.participant_id, visit.token
    if participant_id is None:
        entry = steps.render_consent(engine, visit, panel=panel, invite_from_link=invite)
        if entry is None:
            return
        st.query_params["r"] = entry.token
        st.rerun()
    assert participant_id is not None and token is not None
    if _param("r") != token:
        st.query_params["r"] = token  # a returning panel PID got a fresh token
    settings = common.settings()
    view = journey.participant_view(engine, participant_id=participant_id)
    st.title(steps.plain(visit.deliberation.title))
    steps.render_resume_box(settings, slug=slug, token=token)
    steps.show_flash()
    RENDERERS[view.step](engine, steps.gateway(), settings, participant_id)


try:
    main()
except (journey.JourneyError, interview.InterviewError, interview.InputError) as exc:
    st.warning(steps.plain(str(exc)))
except LLMError as exc:
    st.warning(steps.plain(exc.user_message))
except Exception:  # a participant never sees a traceback; the log keeps it
    log.exception("participant page failed")
    st.error(steps.GENERIC_ERROR)
