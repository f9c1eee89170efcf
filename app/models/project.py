from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class ProjectRow(Base):
    """A tenant: API keys belong to one, and every object to the project of the key that made
    it. Created on first use (`tether keys create --project NAME`)."""

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    # Limits of its own (`tether projects set`); NULL: the settings' defaults.
    rpm: Mapped[int | None] = mapped_column(Integer)
    max_background: Mapped[int | None] = mapped_column(Integer)


class ApiKeyRow(Base):
    """An API key. Only its keyed hash is kept (app/keys/service.py says why that hash); the
    key itself is shown once, when it is made."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("projects.id", ondelete="CASCADE")
    )
    name: Mapped[str | None] = mapped_column(String(128))
    # The key's first characters, so a person can tell keys apart in `tether keys list`.
    prefix: Mapped[str] = mapped_column(String(32))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_api_keys_project_id", "project_id"),)
