"""Alembic environment: the engine comes from the caller (db.migrate), metadata from db.models."""

from __future__ import annotations

from alembic import context

from db import models

config = context.config
target_metadata = models.metadata


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from db.engine import make_engine

        url = config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no engine given to the migrations")
        engine = make_engine(url)
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        context.run_migrations()


run_migrations()
