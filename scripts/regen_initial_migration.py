"""Regenerate the single initial migration from db/models.py (allowed until the first release).

Run: .venv/bin/python scripts/regen_initial_migration.py
"""

from __future__ import annotations

import tempfile

from alembic import command

from db.engine import make_engine
from db.migrate import MIGRATIONS, alembic_config

REV = "0001_initial"


def main() -> None:
    versions = MIGRATIONS / "versions"
    for old in versions.glob(f"{REV}*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/empty.db")
        cfg = alembic_config(engine)
        command.revision(cfg, message="initial schema", autogenerate=True, rev_id=REV)
    (target,) = versions.glob(f"{REV}*.py")
    text = target.read_text()
    # Drop the create date so regenerating gives the same file.
    lines = [ln for ln in text.splitlines() if not ln.startswith("Create Date:")]
    target.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
