"""Facilitator accounts: scrypt password hashes, expiring console sessions, the env bootstrap."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from db import queries
from db.engine import session_scope

# scrypt parameters (RFC 7914): n=2**14, r=8, p=1 uses 16 MiB and ~50 ms per check.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
MIN_PASSWORD = 8


class AuthError(ValueError):
    """A login or account problem with a message fit to show."""


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def create_account(engine: Engine, *, username: str, password: str) -> int:
    username = username.strip()
    if not username or len(username) > 64:
        raise AuthError("the username must be 1 to 64 characters")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password must be at least {MIN_PASSWORD} characters")
    with session_scope(engine) as s:
        try:
            row = queries.create_facilitator(
                s, username=username, password_hash=hash_password(password)
            )
        except queries.Conflict as exc:
            raise AuthError(str(exc)) from None
        assert row.id is not None
        return row.id


def ensure_env_admin(engine: Engine, *, username: str | None, password: str | None) -> bool:
    """Create the first facilitator from MGE_ADMIN_USER/MGE_ADMIN_PASSWORD if it does not exist."""
    if not username or not password:
        return False
    with session_scope(engine) as s:
        if queries.get_facilitator(s, username=username) is not None:
            return False
    try:
        create_account(engine, username=username, password=password)
    except AuthError:
        return False  # created meanwhile by another process, or an unusable password
    return True


@dataclass(frozen=True)
class Login:
    facilitator_id: int
    username: str
    token: str


def login(engine: Engine, *, username: str, password: str, hours: float) -> Login:
    """Check the password and open a console session; the same message for every failure."""
    with session_scope(engine) as s:
        fac = queries.get_facilitator(s, username=username.strip())
        if fac is None or not verify_password(password, fac.password_hash):
            if fac is None:  # spend the same time so a wrong username is not faster
                verify_password(password, _DUMMY_HASH)
            raise AuthError("wrong username or password")
        token = secrets.token_urlsafe(32)
        assert fac.id is not None
        queries.create_facilitator_session(
            s, facilitator_id=fac.id, token=token, ttl=timedelta(hours=hours)
        )
        return Login(facilitator_id=fac.id, username=fac.username, token=token)


def current_facilitator(engine: Engine, token: str | None) -> str | None:
    """The username a console session token belongs to, or None (no token, unknown, expired)."""
    if not token:
        return None
    with session_scope(engine) as s:
        fac = queries.get_facilitator_for_session(s, token=token)
        return fac.username if fac else None


def logout(engine: Engine, token: str | None) -> None:
    if token:
        with session_scope(engine) as s:
            queries.delete_facilitator_session(s, token=token)


_DUMMY_HASH = hash_password(secrets.token_hex(8))
