from typing import Any

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JSONType


class ResponseItemRow(Base):
    """One input item of a response, in the order it was given.

    Output items live in responses.output: a thread is rebuilt from both in one query.
    """

    __tablename__ = "response_items"

    response_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("responses.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Not unique: a client may send back an item it received before, with its id.
    item_id: Mapped[str] = mapped_column(String(64))
    item: Mapped[dict[str, Any]] = mapped_column(JSONType)
