from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class ResponseEventRow(Base):
    """A background response's stream events, kept for resumption. Embedded mode only: with
    REDIS_URL they live in a Redis stream per response (app/kit/eventlog.py)."""

    __tablename__ = "response_events"

    response_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("responses.id", ondelete="CASCADE"), primary_key=True
    )
    sequence_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_response_events_created_at", "created_at"),)
