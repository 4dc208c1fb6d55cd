"""The one Settings class: every knob of the app, read from the environment and `.env`.

Only entry points (the Streamlit router, the CLI, benchmarks) call `get_settings()`; the rest of
the code takes values as arguments so tests can pass their own.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changeme", "change-me", "password", "admin", "secret", ""}

# USD per million tokens: (input, cached input, output). Override with MGE_PRICES as JSON.
DEFAULT_PRICES: dict[str, tuple[float, float, float]] = {
    "gpt-4o": (2.50, 1.25, 10.00),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "text-embedding-3-small": (0.02, 0.02, 0.0),
}


class Settings(BaseSettings):
    """Configuration of a deployment. Every field is an environment variable (see `.env.example`)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Deployment
    mge_env: Literal["development", "production"] = "development"
    database_url: str = "sqlite:///./mge.db"
    mge_public_url: str = "http://localhost:8501"

    # LLM: any OpenAI-compatible endpoint. Neither set = offline mode (guided card form).
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    mge_model: str = "gpt-4o"
    mge_model_interview: str | None = None
    mge_model_articulate: str | None = None
    mge_model_dedupe: str | None = None
    mge_model_hypothesis: str | None = None
    mge_model_simulate: str | None = None
    mge_temperature: float = 0.4
    mge_max_output_tokens: int = 800
    # How the output cap is sent: OpenAI wants max_completion_tokens, most compatible servers
    # (vLLM, Ollama, LM Studio) know only max_tokens; "auto" picks by OPENAI_BASE_URL.
    mge_token_limit_param: Literal["auto", "max_tokens", "max_completion_tokens"] = "auto"
    mge_llm_timeout_s: float = 60.0
    mge_llm_max_retries: int = 2

    # Embeddings: "local" needs nothing; "openai" uses the endpoint above.
    mge_embedding_provider: Literal["local", "openai"] = "local"
    mge_embedding_model: str = "text-embedding-3-small"

    # Facilitators
    mge_admin_user: str | None = None
    mge_admin_password: str | None = None
    mge_session_hours: float = 12.0

    # Participants
    mge_max_message_chars: int = Field(default=4000, ge=200, le=100_000)
    mge_turn_budget: int = Field(default=8, ge=2, le=40)

    # Cost estimates on the dashboard: JSON {"model": [input, cached_input, output]} USD per 1M tokens
    mge_prices: str | None = None

    @field_validator("openai_api_key", "openai_base_url", "mge_admin_user", "mge_admin_password")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v.strip() or None if isinstance(v, str) else v

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Settings:
        if self.mge_env == "production" and self.mge_admin_password is not None:
            if (
                self.mge_admin_password.lower() in PLACEHOLDER_SECRETS
                or len(self.mge_admin_password) < 10
            ):
                raise ValueError(
                    "MGE_ADMIN_PASSWORD is a placeholder or shorter than 10 characters; "
                    "set a real one in production"
                )
        return self

    @property
    def llm_enabled(self) -> bool:
        """An LLM is configured when an endpoint or a key is given (local servers need no key)."""
        return bool(self.openai_api_key or self.openai_base_url)

    def model_for(self, purpose: str) -> str:
        """The model name for a purpose (interview, articulate, dedupe, hypothesis, simulate)."""
        override = getattr(self, f"mge_model_{purpose}", None)
        return override or self.mge_model

    def prices(self) -> dict[str, tuple[float, float, float]]:
        table = dict(DEFAULT_PRICES)
        if self.mge_prices:
            raw = json.loads(self.mge_prices)
            table.update({k: (float(v[0]), float(v[1]), float(v[2])) for k, v in raw.items()})
        return table

    def describe(self) -> str:
        """One status line: which LLM, embedding provider and database are in use."""
        if self.llm_enabled:
            where = self.openai_base_url or "api.openai.com"
            llm = f"LLM {self.mge_model} at {where}"
        else:
            llm = "no LLM (guided form)"
        emb = (
            f"embeddings {self.mge_embedding_model} (API)"
            if self.mge_embedding_provider == "openai" and self.llm_enabled
            else "embeddings local (offline)"
        )
        db = self.database_url.split("://", 1)[0].split("+", 1)[0]
        return f"{llm} · {emb} · database {db}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
