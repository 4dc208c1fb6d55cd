"""Settings: defaults, offline mode, per-purpose models, the example file documents every field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from elicit.config import Settings

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_sqlite_and_offline():
    s = Settings(_env_file=None)
    assert s.database_url == "sqlite:///./mge.db"
    assert not s.llm_enabled
    assert "no LLM" in s.describe() and "sqlite" in s.describe()


def test_base_url_alone_enables_llm_for_local_servers(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    s = Settings(_env_file=None)
    assert s.llm_enabled
    assert "127.0.0.1:11434" in s.describe()


def test_model_for_uses_override_then_default(monkeypatch):
    monkeypatch.setenv("MGE_MODEL", "base-model")
    monkeypatch.setenv("MGE_MODEL_DEDUPE", "small-model")
    s = Settings(_env_file=None)
    assert s.model_for("dedupe") == "small-model"
    assert s.model_for("interview") == "base-model"


def test_production_refuses_placeholder_admin_password(monkeypatch):
    monkeypatch.setenv("MGE_ENV", "production")
    monkeypatch.setenv("MGE_ADMIN_PASSWORD", "changeme")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_prices_json_overrides_defaults(monkeypatch):
    monkeypatch.setenv("MGE_PRICES", '{"local-llama": [0, 0, 0], "gpt-4o": [1, 0.5, 2]}')
    table = Settings(_env_file=None).prices()
    assert table["local-llama"] == (0.0, 0.0, 0.0)
    assert table["gpt-4o"] == (1.0, 0.5, 2.0)


def test_env_example_documents_every_setting():
    text = (REPO / ".env.example").read_text()
    documented = {
        line.split("=", 1)[0]
        for line in text.splitlines()
        if "=" in line and not line.startswith("#")
    }
    fields = {name.upper() for name in Settings.model_fields}
    assert fields == documented
