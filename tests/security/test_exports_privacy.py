"""Exports hold no personal data, in every format, from the CLI and from the console download.

A deliberation is filled the way the app fills it (panel, invite and anonymous entries,
interviews whose words hold e-mail addresses, cards, peer and wiser votes with comments,
survey comments), with participants who agreed to publish and participants who chose
"aggregate only". Then every format of `graph.FORMATS` is exported with `mge export` and as
the console's download (zips opened), and every byte is searched for:
panel PIDs and session ids, resume tokens and their stored hashes, e-mail addresses,
participants' interview words and survey comments, the facilitator's name, participant ids,
and the comments of participants who did not agree to publish.
Comments of those who agreed appear only in the native JSON.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from db import queries
from db.engine import make_engine, session_scope
from elicit import auth, graphs, interview, journey
from elicit.cli import app as mge_app
from elicit.embeddings import LocalEmbedder
from tests.e2e import seed

runner = CliRunner()
PUBLIC_COMMENT = "PUBLIC-REASON the second story goes further"
AGGREGATE_CARD = "Aggregate Only Secret Wording"
CARDS = {
    "Patient Listening": "Letting people finish their thoughts before advice.",
    "Practical Next Steps": "Turning a vague worry into a small concrete plan.",
    "Family Rituals": "Keeping ordinary family routines steady while deciding.",
    AGGREGATE_CARD: "Wording that only an aggregate-only participant wrote.",
}


@dataclass
class World:
    url: str
    engine: Engine
    slug: str
    deliberation_id: int
    secrets: list[str] = field(default_factory=list)
    participant_ids: list[int] = field(default_factory=list)
    private_card_words: list[str] = field(default_factory=list)


def _participant(
    engine: Engine,
    s: seed.Seeded,
    n: int,
    title: str,
    *,
    sharing: str,
    panel: journey.PanelIds | None,
    invite: str | None,
) -> tuple[int, str, list[str]]:
    """One participant through the app's functions; returns (id, token, their private words)."""
    email = f"person{n}.private@example.org"
    entry = journey.join(
        engine,
        slug=s.slug,
        consent=journey.Consent(sharing=sharing, training=n % 2 == 0),  # type: ignore[arg-type]
        panel=panel,
        invite_code=invite,
    )
    pid = entry.participant_id
    state = interview.load_state(engine, participant_id=pid, llm_available=False)
    story = f"My story number {n}: write to me at {email} about it."
    attention = f"Attention words {n} only I wrote, call 555-01{n:02d}."
    for stage, text in (("story", story), ("attention", attention)):
        interview.answer_form(
            engine, interview_id=state.interview_id, stage=stage, text=text, max_chars=4000
        )
    interview.confirm_card(
        engine,
        interview_id=state.interview_id,
        title=title,
        description=CARDS[title],
        policies=[
            f"MOMENTS when {title.lower()} matters",
            f"CHOICES that keep {title.lower()} alive",
            "SIGNS that the person feels heard",
        ],
        embedder=LocalEmbedder(),
    )
    return pid, entry.token, [email, story, attention]


@pytest.fixture
def world(sqlite_url: str) -> Iterator[World]:
    engine = make_engine(sqlite_url)
    s = seed.deliberation(
        engine,
        slug="private",
        title="Privacy check",
        questions=[("Q", "What should I do?", ["When the user is scared", "When money is tight"])],
        questions_per_participant=1,
        invite_code="INVITE-CODE-77",
    )
    w = World(sqlite_url, engine, s.slug, s.id)
    people: list[tuple[int, str]] = []  # (participant id, sharing)
    for n, title in enumerate([*CARDS, "Patient Listening", "Practical Next Steps"]):
        sharing = "aggregate" if title == AGGREGATE_CARD or n == 5 else "publish"
        panel = (
            journey.PanelIds(f"PANELPID{n:04d}secret", "STUDY-shared", f"SESSIONID{n:04d}secret")
            if n % 2 == 0
            else None
        )
        pid, token, words = _participant(
            engine, s, n, title, sharing=sharing, panel=panel, invite="INVITE-CODE-77"
        )
        people.append((pid, sharing))
        w.participant_ids.append(pid)
        w.secrets += [token, queries.hash_token(token), *words]
        if panel is not None:
            w.secrets += [panel.pid, panel.session_id or ""]
        journey.save_survey(
            engine,
            participant_id=pid,
            scores={"fair": 4},
            comment=f"Survey comment {n} from person{n}.private@example.org",
        )
        w.secrets.append(f"Survey comment {n}")
    with session_scope(engine) as ss:
        values = {v.title: v.id for v in queries.list_canonical_values(ss, deliberation_id=s.id)}
        contexts = sorted(queries.list_question_context_ids(ss, question_id=s.questions[0]))
    order = ["Patient Listening", "Practical Next Steps", "Family Rituals", AGGREGATE_CARD]
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            for ctx in contexts:
                h = seed.hypothesis(
                    engine,
                    s,
                    from_value=values[a],
                    to_value=values[b],
                    context_id=ctx,
                    story=f"I used to attend to {a}; now {b}.",
                )
                for pid, sharing in people:
                    comment = (
                        PUBLIC_COMMENT
                        if sharing == "publish"
                        else f"PRIVATE-REASON of participant {pid}, mail me: agg{pid}@example.org"
                    )
                    try:
                        journey.record_wiser_vote(
                            engine,
                            participant_id=pid,
                            hypothesis_id=h,
                            choice="upgrade",
                            comment=comment,
                        )
                    except journey.JourneyError:
                        continue  # a story about their own value
                    if sharing != "publish":
                        w.secrets.append(comment)
    auth.create_account(engine, username="facilitator.name@example.org", password="password-123")
    w.secrets.append("facilitator.name@example.org")
    w.private_card_words = [AGGREGATE_CARD, CARDS[AGGREGATE_CARD]]
    yield w
    engine.dispose()


def cli_exports(w: World, out: Path) -> dict[str, bytes]:
    """Every format through `mge export`: file name -> bytes."""
    files: dict[str, bytes] = {}
    for fmt in graphs.FORMATS:
        target = out / fmt / ("tables" if fmt == "csv" else f"export.{fmt}")
        target.parent.mkdir(parents=True, exist_ok=True)
        result = runner.invoke(
            mge_app,
            [
                "export",
                "-d",
                w.slug,
                "-f",
                fmt,
                "-o",
                str(target),
                "--bootstrap",
                "20",
                "--database-url",
                w.url,
            ],
        )
        assert result.exit_code == 0, (fmt, result.output)
        for line in result.output.splitlines():
            path = Path(line.removeprefix("wrote "))
            files[f"cli:{fmt}:{path.name}"] = path.read_bytes()
    return files


def download_exports(w: World) -> dict[str, bytes]:
    """Every format as the console's download (zips opened)."""
    files: dict[str, bytes] = {}
    for fmt in graphs.FORMATS:
        d = graphs.export_download(
            w.engine, deliberation_id=w.deliberation_id, fmt=fmt, n_bootstrap=20
        )
        if d.file_name.endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(d.data)) as z:
                for name in z.namelist():
                    files[f"download:{fmt}:{name}"] = z.read(name)
        else:
            files[f"download:{fmt}:{d.file_name}"] = d.data
    return files


def test_no_export_holds_personal_data(world: World, tmp_path: Path) -> None:
    files = {**cli_exports(world, tmp_path), **download_exports(world)}
    assert {name.split(":")[1] for name in files} == set(graphs.FORMATS)
    assert len(world.secrets) > 40
    leaks = []
    for name, data in files.items():
        text = data.decode("utf-8").lower()
        for secret in world.secrets:
            if secret and secret.lower() in text:
                leaks.append((name, secret[:40]))
        if "@example.org" in text:
            leaks.append((name, "an e-mail address"))
        for pid in world.participant_ids:
            for pattern in (
                f'"participant": "{pid}"',
                f'"participant_id": {pid}',
                f'"userid": {pid}',
            ):
                if pattern in text:
                    leaks.append((name, pattern))
    assert leaks == []
    # what may be published is there: the values, and agreed comments in the native JSON only
    native = json.loads(files["cli:json:export.json"])
    assert PUBLIC_COMMENT in {c["text"] for c in native["comments"]}
    for name, data in files.items():
        if ":json:" not in name:
            assert PUBLIC_COMMENT.encode() not in data, name
    assert all(b"Patient Listening" in files[n] for n in files if ":mge-summary:" in n)


def test_aggregate_only_card_text_is_not_exported(world: World) -> None:
    files = download_exports(world)
    found = [
        name
        for name, data in files.items()
        for words in world.private_card_words
        if words.lower() in data.decode("utf-8").lower()
    ]
    assert found == []
