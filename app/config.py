"""All settings in one place, read from the environment (see the README's configuration table)."""

import sys
from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.catalog.spec import load_catalog

DEFAULT_PROJECT_ID = "proj_default"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Written the way users write it; app.db picks the async driver.
    database_url: str = "sqlite:///./tether.db"
    # Sized for the concurrency one process serves: connections opened past the pool size are
    # closed again on return, and reconnecting on every request cost half the throughput at
    # concurrency 16 with a pool of 10. Mind PostgreSQL's max_connections (100 by default)
    # across API replicas and workers.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    # How long a SQLite writer waits for the lock before the error surfaces.
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)

    # Unset: embedded mode (no broker server).
    redis_url: str | None = None
    # Every follower of a live background stream holds a connection while it waits.
    redis_max_connections: int = Field(default=10_000, ge=1)

    # Unset: the built-in `echo` model answers.
    upstream_base_url: str | None = None
    upstream_api_key: str | None = None
    upstream_timeout: float = Field(default=600.0, gt=0, description="seconds for a whole call")
    # Making a connection (the TCP and TLS handshakes); no call ever waits for a pooled one.
    upstream_connect_timeout: float = Field(default=5.0, gt=0)
    # Kept-alive connections per process, not a cap: a call past them gets a connection of its
    # own, closed after it (about 1 ms more on loopback), so streams held open by a long
    # generation or a client that stopped reading never make other calls wait (issue 14). The
    # model server's own concurrency limit is what queues calls.
    upstream_max_connections: int = Field(default=256, ge=1)
    # A model's context window in tokens, for truncation="auto", when its server does not
    # publish one (vLLM, SGLang, llama.cpp and LM Studio do, in /v1/models).
    context_window_tokens: int | None = Field(default=None, gt=0)
    # Strict chat templates (Mistral, Gemma) refuse several system messages or two messages
    # of one role in a row: merge them before the upstream sees them.
    upstream_merge_messages: bool = False
    # `max_tokens` is what vLLM, Ollama, llama.cpp and SGLang all accept; OpenAI's reasoning
    # models want `max_completion_tokens`.
    upstream_max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    # Built-in tools a chat upstream cannot run (web_search, file_search, code_interpreter,
    # MCP, ...): `omit` leaves them out of the model call and says so (a header, a log line, a
    # metric); `reject` answers 400. Agents such as Codex always send some (app/responses/params).
    hosted_tools: Literal["omit", "reject"] = "omit"
    # Keys of reasoning items' encrypted_content (app/kit/sealing.py): comma-separated, the first
    # encrypts, every one decrypts (rotation). Unset: a key made once and kept in the database.
    encryption_key: str | None = None
    # The model catalog: a TOML file naming the model servers behind each model name
    # (app/catalog/spec.py). UPSTREAM_BASE_URL, if set too, serves every other name.
    tether_models: str | None = None
    # How long a request waits for a place at a model whose deployments are all at their
    # max_concurrency before it is answered 429 (a background job waits as long as it may run).
    model_queue_seconds: float = Field(default=30.0, ge=0)
    # A catalog deployment that failed this many times in a row (refused, timed out, 5xx) is
    # skipped for circuit_open_seconds; then one request probes it (half-open).
    circuit_failures: int = Field(default=3, ge=1)
    circuit_open_seconds: float = Field(default=10.0, gt=0)

    # Background jobs (DESIGN §6). A worker renews its lease every lease/3 seconds; the sweeper
    # re-runs a job whose lease ran out (its worker is presumed dead) up to job_max_attempts.
    celery_queue: str = "tether"
    worker_concurrency: int = Field(default=500, ge=1, description="jobs in flight per process")
    job_lease_seconds: float = Field(default=15.0, gt=0)
    job_max_attempts: int = Field(default=3, ge=1)
    job_sweep_interval: float = Field(default=2.0, gt=0)
    # A queued row not picked up this long after it was handed to the queue is handed again.
    job_requeue_after: float = Field(default=10.0, gt=0)
    # How often a worker asks the database whether its running jobs were cancelled.
    job_cancel_poll: float = Field(default=0.5, gt=0)
    # Transient upstream failures (unreachable, timeout, 429, 5xx) retried this many times,
    # waiting job_retry_backoff * 2**n seconds before the nth retry.
    job_upstream_retries: int = Field(default=3, ge=0)
    job_retry_backoff: float = Field(default=0.5, ge=0)
    # The longest a background job may run, whatever it waits on; past it the job ends
    # `failed`. Unset: every upstream attempt's whole timeout, the backoffs between them, and
    # two minutes for the rest.
    job_time_limit: float | None = Field(default=None, gt=0)

    # How long one write of a stream may wait for its client to read; past it the client is
    # presumed stuck and the stream closed (app/kit/sse.py).
    stream_stall_seconds: float = Field(default=60.0, gt=0)
    # How long a background response's stream events are kept for resuming (then a stream of
    # a finished response is rebuilt from the stored response).
    stream_retention_seconds: float = Field(default=86_400.0, gt=0)
    # Bytes of one response's events logged as they come; past it, its deltas are logged
    # joined, one a second (app/kit/eventlog.py). Logged a delta each, a word costs some 250
    # bytes of the broker's memory: a 400 KB answer made an 18 MB stream.
    stream_max_bytes: int = Field(default=2 * 1024 * 1024, ge=0)
    # Stored responses and chat completions older than this many days are purged (as OpenAI
    # keeps them 30 days); 0: kept forever. Conversations are exempt (app/ops/retention.py).
    retention_days: float = Field(default=30, ge=0)
    # Seconds between purges, run by the job supervisor (every worker; one at a time).
    retention_interval: float = Field(default=3600.0, gt=0)

    # The project of keyless requests, and of the project named `default`.
    default_project_id: str = DEFAULT_PROJECT_ID

    # Who may ask (app/auth.py): unset = keyless for loopback clients until a key exists;
    # `required`; `none` (everyone, as the default project: only behind a gateway).
    auth: Literal["required", "none"] | None = None
    # Operators' key: admin routes, /metrics, the dashboard. Not a project key.
    admin_api_key: str | None = None
    # GET /metrics without the admin key (for a scraper on a private network).
    metrics_public: bool = False
    # The key of the keyed hash API keys are stored under. Changing it invalidates every key.
    api_key_pepper: str = "tether-api-keys-v1"
    # How long a key lookup is trusted: how long a revocation takes to reach every replica.
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    max_request_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # Per-project limits unless `tether projects set` gives a project its own; 0: none.
    default_project_rpm: int = Field(default=0, ge=0)
    default_project_max_background: int = Field(default=0, ge=0)

    # Webhooks (app/webhooks/). Deliveries go only to public https addresses unless these
    # open them up (for development and tests): every resolved address is checked when the
    # connection is made, so a name that resolves to a private one is refused too.
    webhook_allow_http: bool = False
    webhook_allow_private: bool = False
    # One delivery attempt, answer included: short, so a slow receiver holds up nothing.
    webhook_timeout: float = Field(default=5.0, gt=0)
    # The first retry after this many seconds, doubling (with jitter) up to an hour apart,
    # for webhook_retry_hours after the event (OpenAI: 72 hours); then the delivery fails.
    webhook_retry_base: float = Field(default=5.0, gt=0)
    webhook_retry_hours: float = Field(default=72.0, gt=0)

    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # `text` (readable, the default) or `json` (one object a line, for log shippers).
    log_format: Literal["text", "json"] = "text"

    # `tether serve`: where it listens, and how many uvicorn processes (each with its own job
    # runtime in embedded mode: claims and sweeps are compare-and-set, so they share safely).
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    web_concurrency: int = Field(default=1, ge=1)
    # A Celery worker told to stop (SIGTERM) takes no more jobs and lets those it runs finish
    # for this long; what is still running then is given back to the queue, unfinished, for
    # another worker (workers/celery_app.py). Keep it under the orchestrator's grace period.
    worker_drain_seconds: float = Field(default=30.0, ge=0)

    @property
    def job_time_limit_seconds(self) -> float:
        if self.job_time_limit is not None:
            return self.job_time_limit
        attempts = self.job_upstream_retries + 1
        backoffs = sum(self.job_retry_backoff * 2.0**n for n in range(self.job_upstream_retries))
        return float(self.upstream_timeout * attempts + backoffs + 120)

    @field_validator("hosted_tools", "log_level", "log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def encryption_keys(self) -> list[str]:
        """ENCRYPTION_KEY's keys, in order (the first seals): checked when read."""
        return split_keys(self.encryption_key) if self.encryption_key else []

    @field_validator("encryption_key")
    @classmethod
    def _strong_keys(cls, value: str | None) -> str | None:
        if value is not None:
            split_keys(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        # Checked here, so that every process refuses it at start with one line (settings_or_exit).
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            raise ValueError(
                "not a database URL; expected postgresql://user@host:5432/db or sqlite:///path.db"
            ) from None
        if backend not in ("postgresql", "postgres", "sqlite"):
            raise ValueError(f"must be postgresql://… or sqlite://…, not {backend}://")
        return value

    @field_validator("tether_models")
    @classmethod
    def _catalog_loads(cls, value: str | None) -> str | None:
        # Read here, so that every process refuses a bad catalog at start with one line naming
        # the bad key (settings_or_exit); the providers read it again to build their routes.
        if value is not None:
            load_catalog(value)
        return value

    @field_validator(
        "tether_models",
        "upstream_base_url",
        "upstream_api_key",
        "redis_url",
        "auth",
        "admin_api_key",
        "encryption_key",
        "context_window_tokens",
        "job_time_limit",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # docker compose passes `${VAR:-}` through as an empty string.
        return value or None


# ENCRYPTION_KEY's keys are stretched with HKDF, which adds no strength to a short one.
MIN_KEY_CHARS = 32


def split_keys(configured: str) -> list[str]:
    keys = [key.strip() for key in configured.split(",")]
    if not all(keys):
        raise ValueError("an empty key in the comma-separated list")
    for n, key in enumerate(keys, 1):
        if len(key) < MIN_KEY_CHARS:
            raise ValueError(
                f"key {n} is shorter than {MIN_KEY_CHARS} characters; make one with "
                "`openssl rand -base64 32`"
            )
    return keys


@lru_cache
def get_settings() -> Settings:
    return Settings()


# Never echoed back: a value of these may be a secret.
_SECRET_PARTS = ("key", "pepper", "url")


def describe_invalid(exc: ValidationError) -> str:
    """One line naming each bad variable and what it accepts (pydantic says, e.g. "Input should
    be 'critical', 'error', 'warning', 'info' or 'debug'"), without a secret's value."""
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        shown = "" if any(p in field for p in _SECRET_PARTS) else f"={error['input']!r}"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{field.upper()}{shown}: {message}")
    return "invalid configuration: " + "; ".join(problems)


def settings_or_exit(program: str = "tether") -> Settings:
    """The settings, or one line on stderr and exit status 2 (a configuration error, as
    argparse uses it), never a traceback: for the processes that start from the environment."""
    try:
        return get_settings()
    except ValidationError as exc:
        sys.stderr.write(f"{program}: {describe_invalid(exc)}\n")
        raise SystemExit(2) from None
