"""ORM tables, one per module, re-exported so Alembic and relationships see them all."""

from app.models.response import ResponseRow
from app.models.response_item import ResponseItemRow

__all__ = ["ResponseItemRow", "ResponseRow"]
