"""All settings in one place, read from the environment (see the README's configuration table)."""

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PROJECT_ID = "proj_default"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Written the way users write it; app.db picks the async driver.
    database_url: str = "sqlite:///./tether.db"
    # Sized for the concurrency one process serves: connections opened past the pool size are
    # closed again on return, and reconnecting on every request cost half the throughput.
    db_pool_size: int = Field(default=32, ge=1)
    db_max_overflow: int = Field(default=32, ge=0)
    # How long a SQLite writer waits for the lock before the error surfaces.
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    # Unset: embedded mode (no broker server).
    redis_url: str | None = None

    # Unset: the built-in `echo` model answers.
    upstream_base_url: str | None = None
    upstream_api_key: str | None = None
    upstream_timeout: float = Field(default=600.0, gt=0, description="seconds for a whole call")
    upstream_connect_timeout: float = Field(default=5.0, gt=0)
    upstream_max_connections: int = Field(default=256, ge=1)
    # `max_tokens` is what vLLM, Ollama, llama.cpp and SGLang all accept; OpenAI's reasoning
    # models want `max_completion_tokens`.
    upstream_max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"

    # One project until API keys arrive; every stored row carries it.
    default_project_id: str = DEFAULT_PROJECT_ID

    log_level: str = "info"

    @field_validator("upstream_base_url", "upstream_api_key", "redis_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker compose passes `${VAR:-}` through as an empty string.
        return value or None


@lru_cache
def get_settings() -> Settings:
    return Settings()
