from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType


class ResponseRow(Base):
    """A stored response. Responses with store=false are never written."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(256))
    background: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    completed_at: Mapped[int | None] = mapped_column(BigInteger)
    # RESTRICT: a parent is only ever hard-deleted once nothing points at it (see
    # app/responses/repository.py, delete); until then it stays as a tombstone.
    previous_response_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("responses.id", ondelete="RESTRICT")
    )
    instructions: Mapped[Any] = mapped_column(JSON, nullable=True)
    # This turn's input items, normalised, each with its id (input_items serves them).
    input: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # This turn's input and output as chat-completions messages: what a later turn replays.
    # Derived from input and output when the turn is stored, because replaying is the hot path:
    # at depth 200, decoding the full items and converting them again on every request cost
    # more than the rest of the request. Kept on the row (not in a table of items) so that a
    # thread is rebuilt by a walk of primary-key lookups; a join to an items table let
    # PostgreSQL's planner, which cannot estimate a recursive CTE, scan every item ever stored.
    # Plain `json` (stored as text), not jsonb: it is only ever read back whole, and reading jsonb
    # as text re-serialises it (a third of the thread query's time at depth 200).
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # The request parameters echoed back on the object (temperature, tools, text, ...).
    # Like every JSON column here but metadata: `json` (text as written), not jsonb, which
    # re-orders object keys (a JSON schema's properties, say) and is dearer to read whole.
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    output: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    incomplete_details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONType)
    # The service tier the upstream says it used (OpenAI's answers carry it), for the object.
    service_tier: Mapped[str | None] = mapped_column(String(16))
    # Which deployment of a catalog model (TETHER_MODELS) answered, or failed last: answered
    # as the `x-tether-deployment` header, never a field of the object (not OpenAI's).
    deployment: Mapped[str | None] = mapped_column(String(128))
    # Set when deleted while later turns still chain through it (a tombstone): invisible to the
    # API, but its items keep feeding the descendants' context.
    deleted_at: Mapped[int | None] = mapped_column(BigInteger)

    # Background jobs (app/background). `attempts` counts claims; a worker's final write names
    # the attempt it claimed, so a worker presumed dead can never overwrite a re-run.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A running job's worker pushes this forward; past it, the sweeper presumes the worker dead.
    lease_expires_at: Mapped[float | None] = mapped_column(Float)
    # When its current attempt began (a worker's claim; a synchronous turn: its request), for
    # the dashboard's timings; NULL while queued.
    started_at: Mapped[float | None] = mapped_column(Float)
    # When the job was last handed to the queue; a queued row older than that was lost.
    enqueued_at: Mapped[float | None] = mapped_column(Float)
    # Idempotency-Key of the create, and a hash of its body (the same key with another body
    # is a 400). Unique per project.
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_responses_project_id_id", "project_id", "id"),
        Index("ix_responses_previous_response_id", "previous_response_id"),
        Index(
            "ix_responses_project_id_idempotency_key",
            "project_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
            sqlite_where=text("idempotency_key IS NOT NULL"),
        ),
        # Listing by model or status in creation (= id) order (GET /v1/responses).
        Index("ix_responses_project_id_model_id", "project_id", "model", "id"),
        Index("ix_responses_project_id_status_id", "project_id", "status", "id"),
        # The retention purge, by age (app/ops/retention.py).
        Index("ix_responses_created_at", "created_at"),
        # The sweeper's scans: only unfinished rows are in it, so it stays small.
        Index(
            "ix_responses_unfinished",
            "status",
            postgresql_where=text("status IN ('queued', 'in_progress')"),
            sqlite_where=text("status IN ('queued', 'in_progress')"),
        ),
    )
    # The GIN index on (project_id, metadata) exists on PostgreSQL only; migration 0011 makes it.
