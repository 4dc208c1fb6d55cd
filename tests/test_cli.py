"""The `mge` command: help, schema, accounts, demo, clear one-line errors."""

from __future__ import annotations

import subprocess
import sys

from sqlmodel import Session
from typer.testing import CliRunner

from db import queries
from db.engine import make_engine
from elicit.auth import verify_password
from elicit.cli import app

runner = CliRunner()


def test_help_lists_every_command_group():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("db", "admin", "demo", "logs"):
        assert name in result.output


def test_db_upgrade_twice_succeeds_on_empty_database(db_url):
    for _ in range(2):
        result = runner.invoke(app, ["db", "upgrade", "--database-url", db_url])
        assert result.exit_code == 0, result.output
        assert "0001_initial" in result.output


def test_admin_create_reads_password_from_stdin_and_stores_hash(db_url):
    result = runner.invoke(
        app,
        ["admin", "create", "alice", "--password-stdin", "--database-url", db_url],
        input="a long secret\n",
    )
    assert result.exit_code == 0, result.output
    with Session(make_engine(db_url)) as s:
        fac = queries.get_facilitator(s, username="alice")
        assert fac is not None
        assert "a long secret" not in fac.password_hash
        assert verify_password("a long secret", fac.password_hash)


def test_admin_create_twice_is_one_clear_error(sqlite_url):
    args = ["admin", "create", "bob", "--password-stdin", "--database-url", sqlite_url]
    assert runner.invoke(app, args, input="password123\n").exit_code == 0
    result = runner.invoke(app, args, input="password123\n")
    assert result.exit_code == 1
    assert "already exists" in result.output


def test_admin_create_with_short_password_is_refused(sqlite_url):
    result = runner.invoke(
        app, ["admin", "create", "c", "--password-stdin", "--database-url", sqlite_url], input="x\n"
    )
    assert result.exit_code == 1
    assert "at least 8 characters" in result.output


def test_demo_creates_questions_and_contexts_once(db_url):
    for expected in ("created", "already exists"):
        result = runner.invoke(app, ["demo", "--database-url", db_url])
        assert result.exit_code == 0, result.output
        assert expected in result.output
    with Session(make_engine(db_url)) as s:
        d = queries.get_deliberation(s, slug="demo")
        qs = queries.list_questions(s, deliberation_id=d.id)
        assert len(qs) == 3
        assert all(queries.list_contexts(s, deliberation_id=d.id, question_id=q.id) for q in qs)
        assert queries.count_participants(s, deliberation_id=d.id) == 0


def test_wrong_database_url_is_one_line_and_exit_1():
    for url in ("mysql://x@y/z", "not a url", "postgresql://nobody@127.0.0.1:1/none"):
        proc = subprocess.run(
            [sys.executable, "-m", "elicit.cli", "db", "upgrade", "--database-url", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 1, (url, proc.stderr)
        assert proc.stderr.startswith("error: "), proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr


def test_logs_on_empty_ledger_prints_nothing(sqlite_url):
    result = runner.invoke(app, ["logs", "--json", "--database-url", sqlite_url])
    assert result.exit_code == 0
    assert result.output == ""
