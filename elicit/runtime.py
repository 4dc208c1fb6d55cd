"""Start-up shared by the app and the CLI: the engine, migrations, the first facilitator."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from db.engine import DatabaseURLError, make_engine
from db.migrate import upgrade
from elicit.auth import ensure_env_admin
from elicit.config import Settings


class StartupError(RuntimeError):
    """The app cannot start; the message is one line saying what to fix."""


def open_database(settings: Settings, *, migrate: bool = True) -> Engine:
    """An engine for settings.database_url with the schema at head (migrations applied)."""
    try:
        engine = make_engine(settings.database_url)
        if migrate:
            upgrade(engine)
        else:
            with engine.connect():  # fail here, as one clear line, not later mid-command
                pass
    except DatabaseURLError as exc:
        raise StartupError(str(exc)) from None
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StartupError(f"cannot open the database at DATABASE_URL: {reason}") from None
    except SQLAlchemyError as exc:
        raise StartupError(f"database error: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    ensure_env_admin(engine, username=settings.mge_admin_user, password=settings.mge_admin_password)
    return engine
