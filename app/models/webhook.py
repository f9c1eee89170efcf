from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class WebhookEndpointRow(Base):
    """Where a project's events are delivered (app/webhooks/)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(256))
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    # The signing secret (`whsec_…`), kept as written: it must be used, not only checked, so a
    # hash would not do. A rotation that keeps the old one active signs with both until then.
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    # Set when the receiver answered 410 Gone: nothing more is sent until the endpoint is
    # updated.
    disabled_at: Mapped[int | None] = mapped_column(BigInteger)
    disabled_reason: Mapped[str | None] = mapped_column(String(256))

    __table_args__ = (Index("ix_webhook_endpoints_project_id_id", "project_id", "id"),)


class WebhookDeliveryRow(Base):
    """The outbox: one event for one endpoint, written in the transaction that gave a response
    its terminal status, and sent from here until the receiver takes it or the retry window
    closes. Its id is the `webhook-id` header, the same on every attempt."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    endpoint_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    project_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    # The body as first built, so that every attempt sends the same bytes.
    payload: Mapped[str] = mapped_column(Text)
    # pending -> delivered | failed (the window closed, or the endpoint went away)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    # When it is due; while an attempt runs, the end of that attempt's lease.
    next_attempt_at: Mapped[float | None] = mapped_column(Float)
    last_attempt_at: Mapped[float | None] = mapped_column(Float)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(512))
    delivered_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_webhook_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )
