"""`tether`: the one command that runs Tether, and the operators' tools.

  tether serve                      migrate DATABASE_URL, then serve the API (`make run`)
  tether migrate                    alembic upgrade head on DATABASE_URL
  tether keys create --project NAME [--name LABEL]
                                    a new API key, printed alone on the last line (shown once)
  tether keys list                  every key: id, project, label, prefix, created, last used
  tether keys revoke KEY_ID         revoked within AUTH_CACHE_SECONDS on every replica
  tether projects set NAME [--rpm N] [--max-background N]
                                    a project's own limits (0: none; made on first use)

Configuration comes from the environment (README, "Configuration").
"""

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import uvicorn
from sqlalchemy.engine import make_url

from app import migrate
from app.config import Settings, get_settings
from app.db import create_engine
from app.errors import APIError
from app.keys import service as keys

T = TypeVar("T")


def safe_url(url: str) -> str:
    """A database URL fit to print: its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable DATABASE_URL)"


def serve(host: str, port: int) -> None:
    settings = get_settings()
    migrate.upgrade(settings.database_url)
    upstream = settings.upstream_base_url or "none: the built-in 'echo' model answers"
    print(
        f"Tether on http://{host}:{port}/v1  database: {safe_url(settings.database_url)}  "
        f"upstream: {upstream}",
        flush=True,
    )
    # Our request log line replaces uvicorn's access log (it has the request id and project).
    uvicorn.run(
        "app.main:app", host=host, port=port, log_level=settings.log_level, access_log=False
    )


def _run(work: Callable[[Any, Settings], Awaitable[T]]) -> T:
    """`work` on the database, migrated first (a first `keys create` may precede any serve)."""
    settings = get_settings()
    migrate.upgrade(settings.database_url)

    async def go() -> T:
        engine = create_engine(settings)
        try:
            return await work(engine, settings)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def keys_create(project: str, label: str | None) -> None:
    row, key = _run(
        lambda engine, s: keys.create_key(
            engine,
            project,
            label,
            pepper=s.api_key_pepper,
            default_project_id=s.default_project_id,
        )
    )
    print(f"created key {row['id']} for project '{project}'. It is shown only now; keep it:")
    print(key, flush=True)


def keys_list() -> None:
    rows = _run(lambda engine, _: keys.list_keys(engine))
    print("ID\tPROJECT\tNAME\tPREFIX\tCREATED\tLAST USED\tREVOKED")
    for row in rows:
        fields = [
            row["id"],
            row["project"],
            row["name"] or "-",
            row["prefix"] + "…",
            _when(row["created_at"]),
            _when(row["last_used_at"]),
            _when(row["revoked_at"]) if row["revoked_at"] else "-",
        ]
        print("\t".join(fields))


def keys_revoke(key_id: str) -> None:
    _run(lambda engine, _: keys.revoke_key(engine, key_id))
    print(f"revoked {key_id}")


def projects_set(name: str, rpm: int | None, max_background: int | None) -> None:
    given: dict[str, int | None] = {"rpm": rpm, "max_background": max_background}
    limits: dict[str, int | None] = {k: v for k, v in given.items() if v is not None}
    if not limits:
        raise SystemExit("tether projects set: give --rpm and/or --max-background")
    row = _run(lambda engine, s: keys.set_limits(engine, name, limits, s.default_project_id))
    print(f"project '{name}' ({row['id']}): " + ", ".join(f"{k}={v}" for k, v in limits.items()))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tether")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="migrate the database, then serve the API")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    sub.add_parser("migrate", help="alembic upgrade head on DATABASE_URL")
    keys_cmd = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    create = keys_cmd.add_parser("create", help="a new key (printed alone on the last line)")
    create.add_argument("--project", required=True)
    create.add_argument("--name", default=None)
    keys_cmd.add_parser("list", help="every key, without secrets")
    revoke = keys_cmd.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    projects = sub.add_parser("projects", help="projects and their limits")
    project_cmd = projects.add_subparsers(dest="action", required=True)
    limits = project_cmd.add_parser("set", help="a project's own limits")
    limits.add_argument("name")
    limits.add_argument("--rpm", type=int, default=None, help="requests per minute (0: none)")
    limits.add_argument("--max-background", type=int, default=None, help="jobs in flight (0: none)")
    return parser


def main() -> None:
    args = _parser().parse_args()
    try:
        if args.command == "serve":
            serve(args.host, args.port)
        elif args.command == "migrate":
            migrate.upgrade(get_settings().database_url)
        elif args.command == "keys" and args.action == "create":
            keys_create(args.project, args.name)
        elif args.command == "keys" and args.action == "list":
            keys_list()
        elif args.command == "keys":
            keys_revoke(args.key_id)
        else:
            projects_set(args.name, args.rpm, args.max_background)
    except APIError as exc:
        print(f"tether: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
