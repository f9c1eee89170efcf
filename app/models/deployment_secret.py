from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class DeploymentSecretRow(Base):
    """A secret this deployment made for itself, once, and shares through its database with
    every replica and worker: today the key of reasoning items' encrypted_content when
    ENCRYPTION_KEY is unset (app/kit/sealing.py)."""

    __tablename__ = "deployment_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
