from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[int] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONType)
    # The next item's sequence number. Appending bumps it with UPDATE ... RETURNING, which locks
    # the row: concurrent responses append in turn, each one's items contiguous.
    next_seq: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_conversations_project_id_id", "project_id", "id"),)


class ConversationItemRow(Base):
    """An item of a conversation, in the order given by its per-conversation sequence."""

    __tablename__ = "conversation_items"

    conversation_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[str] = mapped_column(String(64))
    item: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_conversation_items_conversation_id_item_id", "conversation_id", "item_id"),
        # An item_reference names an item by id alone (app/items/).
        Index("ix_conversation_items_item_id", "item_id"),
    )
