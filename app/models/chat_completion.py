from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType


class ChatCompletionRow(Base):
    """A chat completion created with store=true: the request's messages and the completion as
    returned (our id in place of the upstream's), listable and filterable by metadata."""

    __tablename__ = "chat_completions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256))
    created: Mapped[int] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONType)
    # The request's messages, each given an id (`<completion id>-<n>`) for the messages list.
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # The request's other parameters (tools, response_format, ...), kept as sent.
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    completion: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_chat_completions_project_id_id", "project_id", "id"),
        Index("ix_chat_completions_project_id_model_id", "project_id", "model", "id"),
        Index("ix_chat_completions_created", "created"),  # retention, by age
    )
    # The GIN index on (project_id, metadata) exists on PostgreSQL only; migration 0011 makes it.
