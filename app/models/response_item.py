from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class ResponseItemRow(Base):
    """Where a stored response's input or output item lives, by its id: what an
    `item_reference` is resolved through (app/items/). The item itself stays on its response's
    row; this is only the index."""

    __tablename__ = "response_items"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    response_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("responses.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index("ix_response_items_response_id", "response_id"),)
