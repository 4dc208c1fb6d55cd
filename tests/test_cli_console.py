"""`mge participant export|delete`: exit codes, output, and the rows written."""

from __future__ import annotations

import json
import subprocess
import sys

from sqlmodel import Session, func, select
from typer.testing import CliRunner

from db.engine import make_engine
from db.models import LLMCall, Message, Participant, WiserVote
from elicit.cli import app
from tests import factories
from tests.console_seed import contributor, hypothesis_and_vote

runner = CliRunner()


def _seed(db_url: str):
    engine = make_engine(db_url)
    with Session(engine, expire_on_commit=False) as s:
        d = factories.deliberation(s, slug="cli-study")
        q = factories.question(s, d)
        ctx = factories.context(s, d, q)
        a = contributor(s, d, q, panel_pid="PID-1", words="Words only A said")
        b = contributor(s, d, q, panel_pid="PID-2")
        hypothesis_and_vote(s, d, ctx, a.participant, a.value, b.value)
        hypothesis_and_vote(s, d, ctx, b.participant, a.value, b.value)
    return engine, a, b


def _count(engine, model, *where) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def test_help_lists_participant_commands():
    result = runner.invoke(app, ["participant", "--help"])
    assert result.exit_code == 0
    assert "export" in result.output and "delete" in result.output


def test_export_by_token_prints_json(db_url):
    engine, a, _ = _seed(db_url)
    result = runner.invoke(
        app,
        [
            "participant",
            "export",
            "--deliberation",
            "cli-study",
            "--token",
            a.token,
            "--database-url",
            db_url,
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["participant"]["id"] == a.participant.id
    assert doc["interviews"][0]["messages"][1]["content"] == "Words only A said"
    assert _count(engine, Participant) == 2  # export changes nothing


def test_export_by_panel_id_to_a_file(sqlite_url, tmp_path):
    _, _, b = _seed(sqlite_url)
    out = tmp_path / "b.json"
    result = runner.invoke(
        app,
        [
            "participant",
            "export",
            "-d",
            "cli-study",
            "--panel-id",
            "PID-2",
            "-o",
            str(out),
            "--database-url",
            sqlite_url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["participant"]["panel_pid"] == "PID-2"


def test_export_errors_are_one_line_and_exit_1(sqlite_url):
    _seed(sqlite_url)
    cases = [
        (["-d", "cli-study"], "either --token or --panel-id"),
        (["-d", "cli-study", "--token", "t", "--panel-id", "p"], "either --token or --panel-id"),
        (["-d", "cli-study", "--panel-id", "nobody"], "no participant with that panel id"),
        (["-d", "no-such-study", "--panel-id", "PID-1"], "no deliberation"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["participant", "export", *args, "--database-url", sqlite_url])
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output
        assert "Traceback" not in result.output


def test_delete_with_yes_removes_the_participant(db_url):
    engine, a, b = _seed(db_url)
    result = runner.invoke(
        app,
        [
            "participant",
            "delete",
            "--deliberation",
            "cli-study",
            "--panel-id",
            "PID-1",
            "--yes",
            "--database-url",
            db_url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"participant {a.participant.id} deleted" in result.output
    assert "messages 3" in result.output and "canonical_values 1" in result.output
    assert _count(engine, Participant) == 1
    assert _count(engine, Message, Message.interview_id == a.interview.id) == 0
    assert _count(engine, WiserVote, WiserVote.participant_id == a.participant.id) == 0
    # A's value went, and with it B's vote on the A -> B hypothesis
    assert _count(engine, WiserVote) == 0
    assert _count(engine, LLMCall, LLMCall.participant_id.is_(None)) == 2
    assert _count(engine, Message, Message.interview_id == b.interview.id) == 3


def test_delete_asks_first_and_no_keeps_everything(sqlite_url):
    engine, a, _ = _seed(sqlite_url)
    args = [
        "participant",
        "delete",
        "-d",
        "cli-study",
        "--token",
        a.token,
        "--database-url",
        sqlite_url,
    ]
    result = runner.invoke(app, args, input="n\n")
    assert result.exit_code == 1
    assert "Delete participant" in result.output
    assert _count(engine, Participant) == 2
    result = runner.invoke(app, args, input="y\n")
    assert result.exit_code == 0, result.output
    assert _count(engine, Participant) == 1
    again = runner.invoke(app, [*args, "--yes"])
    assert again.exit_code == 1 and "no participant with that resume token" in again.output


def test_participant_commands_work_under_python_dash_m(sqlite_url):
    _seed(sqlite_url)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "elicit.cli",
            "participant",
            "export",
            "-d",
            "cli-study",
            "--panel-id",
            "PID-2",
            "--database-url",
            sqlite_url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["participant"]["panel_pid"] == "PID-2"
