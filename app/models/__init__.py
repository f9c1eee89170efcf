"""ORM tables, one per module, re-exported so Alembic and relationships see them all."""

from app.models.response import ResponseRow
from app.models.response_event import ResponseEventRow

__all__ = ["ResponseEventRow", "ResponseRow"]
