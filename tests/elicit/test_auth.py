"""Facilitator accounts: real KDF, same error for every failure, sessions expire."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from db.models import FacilitatorSession, utcnow
from elicit import auth


def test_hash_password_uses_scrypt_with_salt():
    a, b = auth.hash_password("correct horse"), auth.hash_password("correct horse")
    assert a.startswith("scrypt$") and a != b
    assert auth.verify_password("correct horse", a)
    assert not auth.verify_password("wrong horse", a)
    assert not auth.verify_password("x", "garbage")


def test_login_wrong_password_and_unknown_user_give_same_message(engine):
    auth.create_account(engine, username="fac", password="password123")
    with pytest.raises(auth.AuthError) as e1:
        auth.login(engine, username="fac", password="nope-nope", hours=1)
    with pytest.raises(auth.AuthError) as e2:
        auth.login(engine, username="ghost", password="nope-nope", hours=1)
    assert str(e1.value) == str(e2.value) == "wrong username or password"


def test_session_token_is_checked_in_database_and_expires(engine):
    auth.create_account(engine, username="fac", password="password123")
    result = auth.login(engine, username="fac", password="password123", hours=1)
    assert auth.current_facilitator(engine, result.token) == "fac"
    assert auth.current_facilitator(engine, result.token + "x") is None
    assert auth.current_facilitator(engine, None) is None
    with Session(engine) as s:
        row = s.exec(select(FacilitatorSession)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        s.add(row)
        s.commit()
    assert auth.current_facilitator(engine, result.token) is None


def test_logout_ends_session(sqlite_engine):
    auth.create_account(sqlite_engine, username="fac", password="password123")
    result = auth.login(sqlite_engine, username="fac", password="password123", hours=1)
    auth.logout(sqlite_engine, result.token)
    assert auth.current_facilitator(sqlite_engine, result.token) is None


def test_env_admin_is_created_once(sqlite_engine):
    assert auth.ensure_env_admin(sqlite_engine, username="root", password="password123")
    assert not auth.ensure_env_admin(sqlite_engine, username="root", password="password123")
    assert auth.login(sqlite_engine, username="root", password="password123", hours=1).token
