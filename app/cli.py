"""`tether`: the one command that runs Tether, and the operators' tools.

  tether serve [--workers N]        migrate DATABASE_URL, then serve the API (`make run`)
  tether migrate                    alembic upgrade head on DATABASE_URL
  tether keys create --project NAME [--name LABEL]
                                    a new API key, printed alone on the last line (shown once)
  tether keys list                  every key: id, project, label, prefix, created, last used
  tether keys revoke KEY_ID         revoked within AUTH_CACHE_SECONDS on every replica
  tether projects set NAME [--rpm N] [--max-background N]
                                    a project's own limits (0: none; made on first use)
  tether status | jobs | purge | export
                                    the operators' tools (app/ops/cli.py)
  tether --version

Configuration comes from the environment (README, "Configuration"). A configuration that cannot
work (an invalid setting, a database that cannot be used) is one line on stderr and exit status 2.
"""

import argparse
import importlib.metadata
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from app import migrate
from app.catalog.spec import load_catalog
from app.config import Settings, get_settings, settings_or_exit
from app.errors import APIError
from app.keys import service as keys
from app.ops import cli as ops

T = TypeVar("T")


def safe_url(url: str) -> str:
    """A database URL fit to print: its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable DATABASE_URL)"


def serve(host: str | None, port: int | None, workers: int | None) -> None:
    settings = get_settings()
    host = host or settings.host
    port = settings.port if port is None else port
    workers = workers or settings.web_concurrency
    migrate.upgrade(settings.database_url)
    check_upstream(settings)
    upstream = (
        _safe_http(settings.upstream_base_url)
        if settings.upstream_base_url
        else "none: the built-in 'echo' model answers"
    )
    if settings.tether_models:
        models = load_catalog(settings.tether_models).models
        upstream += f"  catalog: {len(models)} models from {settings.tether_models}"
    print(
        f"Tether on http://{host}:{port}/v1  database: {safe_url(settings.database_url)}  "
        f"upstream: {upstream}" + (f"  processes: {workers}" if workers > 1 else ""),
        flush=True,
    )
    # Our request log line replaces uvicorn's access log (it has the request id and project).
    uvicorn.run(
        "app.main:app",
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
        # Below compose's stop grace period: open streams must not keep the process from its
        # shutdown, where embedded mode hands its running jobs back to the queue.
        timeout_graceful_shutdown=25,
    )


def check_upstream(settings: Settings, timeout: float = 3.0) -> None:
    """A base URL missing its `/v1` is the commonest mistake, and every model call would 404:
    refuse it now. An upstream that does not answer is only a warning (it may start later)."""
    base = (settings.upstream_base_url or "").rstrip("/")
    if not base:
        return
    request = urllib.request.Request(f"{base}/models")
    if settings.upstream_api_key:
        request.add_header("Authorization", f"Bearer {settings.upstream_api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:  # refused, unresolvable, timed out; a bad URL
        reason = getattr(exc, "reason", None) or exc
        print(
            f"tether: warning: the upstream at {_safe_http(base)} does not answer yet ({reason})",
            file=sys.stderr,
            flush=True,
        )
        return
    if status == 404:
        hint = (
            f"did you mean {_safe_http(base)}/v1?"
            if not base.endswith("/v1")
            else "is it an OpenAI-compatible server?"
        )
        raise ConfigError(f"UPSTREAM_BASE_URL: GET {_safe_http(base)}/models answered 404; {hint}")
    if status >= 400:
        print(
            f"tether: warning: GET {_safe_http(base)}/models answered {status}",
            file=sys.stderr,
            flush=True,
        )


def _safe_http(url: str) -> str:
    """An upstream URL fit to print: a password in it masked."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class ConfigError(Exception):
    """The configuration cannot work: one line, exit status 2."""


def _database_error(exc: BaseException) -> str:
    """Why the database could not be used, in one line (no traceback, no password)."""
    reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    return f"cannot use the database at {safe_url(get_settings().database_url)}: {text}"


def _run(work: Callable[[Any, Settings], Awaitable[T]]) -> T:
    """`work` on the database, migrated first (a first `keys create` may precede any serve)."""
    migrate.upgrade(get_settings().database_url)
    return ops.on_database(work)


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
            ops.when(row["created_at"]),
            ops.when(row["last_used_at"]),
            ops.when(row["revoked_at"]) if row["revoked_at"] else "-",
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
    version = importlib.metadata.version("tether")
    parser.add_argument("--version", action="version", version=f"tether {version}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="migrate the database, then serve the API")
    run.add_argument("--host", default=None, help="default: HOST (127.0.0.1)")
    run.add_argument("--port", type=int, default=None, help="default: PORT (8000)")
    run.add_argument(
        "--workers", type=int, default=None, help="uvicorn processes (default: WEB_CONCURRENCY, 1)"
    )
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
    ops.add_commands(sub)
    return parser


def main() -> None:
    args = _parser().parse_args()
    settings_or_exit()  # an invalid setting: one line, exit 2
    try:
        if args.command == "serve":
            serve(args.host, args.port, args.workers)
        elif args.command == "migrate":
            migrate.upgrade(get_settings().database_url)
        elif args.command == "keys" and args.action == "create":
            keys_create(args.project, args.name)
        elif args.command == "keys" and args.action == "list":
            keys_list()
        elif args.command == "keys":
            keys_revoke(args.key_id)
        elif args.command in ops.COMMANDS:
            ops.run(args)
        else:
            projects_set(args.name, args.rpm, args.max_background)
    except APIError as exc:
        print(f"tether: {exc.message}", file=sys.stderr)
        raise SystemExit(1) from exc
    except ConfigError as exc:
        print(f"tether: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (OSError, DBAPIError) as exc:  # unreachable, refused, no such database or role
        print(f"tether: {_database_error(exc)}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
