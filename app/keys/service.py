"""Projects and API keys: made, listed and revoked (by the CLI), and checked (app/auth.py).

Keys are 192 random bits (`sk-tether-` and 32 URL-safe characters), shown once, and kept only
as HMAC-SHA256(API_KEY_PEPPER, key). A slow password hash (bcrypt, argon2) exists to make
guessing low-entropy passwords expensive; nobody can guess 192 random bits, so it would only
make every request slower. The hash is keyed so that a copy of the table alone (a leaked
backup) is not enough to check a candidate key offline: the pepper lives in the settings, not
in the database.
"""

import hmac
import secrets
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import NotFound
from app.keys.repository import KeysRepository
from app.kit.ids import new_id, now_seconds

KEY_PREFIX = "sk-tether-"
SHOWN_PREFIX = len(KEY_PREFIX) + 6  # what `keys list` shows of a key


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)  # 24 bytes: 192 bits


def key_hash(key: str, pepper: str) -> str:
    return hmac.digest(pepper.encode(), key.encode(), "sha256").hex()  # one-shot: in C


async def project_for(engine: AsyncEngine, name: str, default_project_id: str) -> dict[str, Any]:
    """The project of this name, made on first use. The one named `default` is the project
    keyless requests used (DEFAULT_PROJECT_ID), so what was stored before keys keeps its
    owner."""
    async with engine.begin() as conn:
        repo = KeysRepository(conn)
        found = await repo.project_by_name(name)
        if found is None:
            project_id = default_project_id if name == "default" else new_id("proj")
            found = await repo.create_project(project_id, name)
    return found


async def create_key(
    engine: AsyncEngine,
    project: str,
    label: str | None,
    *,
    pepper: str,
    default_project_id: str,
) -> tuple[dict[str, Any], str]:
    """A new key for the project named `project`: its row (no secret) and the key itself."""
    owner = await project_for(engine, project, default_project_id)
    key = new_key()
    row = {
        "id": new_id("key"),
        "project_id": owner["id"],
        "name": label,
        "prefix": key[:SHOWN_PREFIX],
        "hash": key_hash(key, pepper),
        "created_at": now_seconds(),
    }
    async with engine.begin() as conn:
        await KeysRepository(conn).create_key(row)
    return {k: v for k, v in row.items() if k != "hash"} | {"project": project}, key


async def list_keys(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        return await KeysRepository(conn).keys()


async def revoke_key(engine: AsyncEngine, key_id: str) -> None:
    async with engine.begin() as conn:
        if not await KeysRepository(conn).revoke(key_id):
            raise NotFound(f"No active key with id '{key_id}'.")


async def set_limits(
    engine: AsyncEngine,
    name: str,
    limits: dict[str, int | None],
    default_project_id: str,
) -> dict[str, Any]:
    """A project's own limits (`tether projects set`); the project is made on first use."""
    owner = await project_for(engine, name, default_project_id)
    async with engine.begin() as conn:
        await KeysRepository(conn).set_limits(owner["id"], limits)
    return {**owner, **limits}
