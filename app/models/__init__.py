"""ORM tables, one per module, re-exported so Alembic and relationships see them all."""

from app.models.response import ResponseRow

__all__ = ["ResponseRow"]
