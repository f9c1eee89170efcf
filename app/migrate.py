"""Run Alembic from code (the CLI on start, and the tests), on the URL given."""

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str) -> Config:
    ini = ROOT / "alembic.ini"
    if not ini.exists():  # installed without the source tree: run from the repository root
        ini = Path.cwd() / "alembic.ini"
    config = Config(str(ini))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


@cache
def heads() -> frozenset[str]:
    """The head revision(s) of migrations/, read once per process (/readyz compares the
    database's with them)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())
