"""The operators' subcommands of `tether` (app/cli.py adds them to its parser):

  tether status                     mode, database, responses queued/in_progress/failed,
                                    live workers, the oldest queued job
  tether jobs list --status failed|queued|in_progress [--limit N]
                                    background responses, newest first (tab-separated)
  tether jobs requeue ID            a failed (or stuck) background response queued again
  tether purge [--older-than DAYS] [--dry-run]
                                    the retention rule, once (app/ops/retention.py)
  tether export --project NAME --kind chat|responses [--since DATE] [--metadata K=V ...]
                [--output FILE]     JSON Lines (app/ops/export.py)
  tether webhooks deliveries ENDPOINT_ID [--limit N]
                                    an endpoint's recent webhook deliveries, newest first

Output is plain: one record a line, lists tab-separated; progress goes to stderr.
"""

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import IO, Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings, get_settings
from app.db import create_engine
from app.errors import InvalidRequest, NotFound
from app.ops import export as exporting
from app.ops import jobs, retention
from app.responses.domain import ResponseStatus
from app.webhooks import service as webhooks

T = TypeVar("T")
COMMANDS = ("status", "jobs", "purge", "export", "webhooks")


def add_commands(sub: Any) -> None:
    """`sub`: the parser's subparsers."""
    sub.add_parser("status", help="mode, database, job counts, workers, oldest queued job")
    jobs_cmd = sub.add_parser("jobs", help="background jobs").add_subparsers(
        dest="action", required=True
    )
    listing = jobs_cmd.add_parser("list", help="background responses in one status")
    listing.add_argument(
        "--status", required=True, choices=[str(s) for s in jobs.WATCHED], dest="state"
    )
    listing.add_argument("--limit", type=int, default=50)
    again = jobs_cmd.add_parser("requeue", help="a failed or stuck job back to queued")
    again.add_argument("response_id")
    purge = sub.add_parser("purge", help="apply the retention rule once")
    purge.add_argument("--older-than", type=float, default=None, metavar="DAYS")
    purge.add_argument("--dry-run", action="store_true", help="print the counts only")
    out = sub.add_parser("export", help="a project's stored chats or responses as JSON Lines")
    out.add_argument("--project", required=True)
    out.add_argument("--kind", required=True, choices=["chat", "responses"])
    out.add_argument("--since", default=None, metavar="DATE", help="ISO date or time (UTC)")
    out.add_argument("--metadata", action="append", default=[], metavar="K=V")
    out.add_argument("--output", default=None, metavar="FILE", help="default: stdout")
    hooks = sub.add_parser("webhooks", help="webhook deliveries").add_subparsers(
        dest="action", required=True
    )
    sent = hooks.add_parser("deliveries", help="an endpoint's recent deliveries, newest first")
    sent.add_argument("endpoint_id")
    sent.add_argument("--limit", type=int, default=50)


def run(args: argparse.Namespace) -> None:
    if args.command == "status":
        status()
    elif args.command == "jobs" and args.action == "list":
        list_jobs(ResponseStatus(args.state), args.limit)
    elif args.command == "jobs":
        requeue(args.response_id)
    elif args.command == "purge":
        purge(args.older_than, args.dry_run)
    elif args.command == "webhooks":
        list_deliveries(args.endpoint_id, args.limit)
    else:
        export(args.project, args.kind, args.since, args.metadata, args.output)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def on_database(work: Callable[[AsyncEngine, Settings], Awaitable[T]]) -> T:
    """`work` on DATABASE_URL as it is (not migrated: these commands only look, or purge)."""
    settings = get_settings()

    async def go() -> T:
        engine = create_engine(settings)
        try:
            return await work(engine, settings)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def when(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def status() -> None:
    settings = get_settings()
    if settings.redis_url:
        _say(f"mode: celery (queue '{settings.celery_queue}')")
    else:
        _say("mode: embedded (the API process runs the jobs)")
    url = make_url(settings.database_url).render_as_string(hide_password=True)

    async def look(engine: AsyncEngine, s: Settings) -> jobs.Status | str:
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return await jobs.status(engine, s)

    found = on_database(look)
    if isinstance(found, str):
        _say(f"database: unreachable ({url}): {found}")
        raise SystemExit(1)
    _say(f"database: reachable ({url})")
    for state, count in found.counts.items():
        _say(f"responses {state}: {count}")
    if not settings.redis_url:
        _say("workers: the API process (embedded)")
    else:
        _say(f"workers: {'unknown' if found.workers is None else found.workers}")
    if found.oldest_queued is None:
        _say("oldest queued: -")
    else:
        response_id, age = found.oldest_queued
        _say(f"oldest queued: {response_id} ({age:.0f}s ago)")


def list_jobs(state: ResponseStatus, limit: int) -> None:
    rows = on_database(lambda engine, _: jobs.list_jobs(engine, state, limit))
    _say("ID\tPROJECT\tMODEL\tSTATUS\tCREATED\tATTEMPTS\tERROR")
    for row in rows:
        fields = [
            row.id,
            row.project_id,
            row.model,
            row.status,
            when(row.created_at),
            str(row.attempts),
            row.error_code or "-",
        ]
        _say("\t".join(fields))


def requeue(response_id: str) -> None:
    if not on_database(lambda engine, s: jobs.requeue(engine, s, response_id)):
        raise NotFound(
            f"No background response '{response_id}' that is failed, or in_progress with its "
            "lease run out."
        )
    settings = get_settings()
    if settings.redis_url:
        _say(f"requeued {response_id} (sent to queue '{settings.celery_queue}')")
    else:
        _say(
            f"requeued {response_id} (the server runs it within "
            f"JOB_REQUEUE_AFTER={settings.job_requeue_after:g}s)"
        )


def list_deliveries(endpoint_id: str, limit: int) -> None:
    found = on_database(lambda engine, _: webhooks.deliveries(engine, endpoint_id, limit))
    _say("ID\tEVENT\tSTATE\tATTEMPTS\tCREATED\tLAST STATUS\tNEXT ATTEMPT\tLAST ERROR")
    for row in found["data"]:
        next_at = row["next_attempt_at"]
        fields = [
            row["id"],
            row["event_type"],
            row["state"],
            str(row["attempts"]),
            when(int(row["created_at"])),
            str(row["last_status_code"] or "-"),
            when(int(next_at)) if next_at is not None else "-",
            row["last_error"] or "-",
        ]
        _say("\t".join(fields))


def purge(older_than: float | None, dry_run: bool) -> None:
    days = get_settings().retention_days if older_than is None else older_than
    if days <= 0:
        if older_than is not None:
            raise InvalidRequest("--older-than must be more than 0 days.")
        _say("retention is off (RETENTION_DAYS=0): nothing purged")
        return
    if dry_run:
        found = on_database(lambda engine, _: retention.preview(engine, days))
        verb = "would remove"
    else:
        found = on_database(lambda engine, _: retention.purge(engine, days))
        verb = "removed"
    _say(f"responses {verb}: {found.responses}")
    _say(f"responses {'would become' if dry_run else 'made'} tombstones: {found.tombstoned}")
    _say(f"chat completions {verb}: {found.chat_completions}")


def _since(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"--since: not an ISO date or time: {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def _metadata(pairs: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"--metadata: expected KEY=VALUE, got {pair!r}")
        found[key] = value
    return found


def export(
    project: str, kind: exporting.Kind, since: str | None, pairs: list[str], output: str | None
) -> None:
    since_ts, metadata = _since(since), _metadata(pairs)
    project_id = on_database(
        lambda engine, s: exporting.project_id(engine, project, s.default_project_id)
    )
    if project_id is None:
        raise NotFound(f"No project named '{project}'.")
    stream: IO[bytes] = open(output, "wb") if output else sys.stdout.buffer

    async def work(engine: AsyncEngine, _: Settings) -> int:
        return await exporting.export(
            engine,
            project_id,
            kind,
            stream.write,
            since=since_ts,
            metadata=metadata,
            progress=_progress(),
        )

    try:
        written = on_database(work)
    finally:
        stream.flush()
        if output:
            stream.close()
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    sys.stderr.write(f"exported {written} {kind} lines\n")


def _progress() -> Callable[[int], None]:
    """A counter on stderr, rewritten in place, when stderr is a terminal."""
    shown = [0.0]

    def show(count: int) -> None:
        if sys.stderr.isatty() and time.monotonic() - shown[0] > 0.1:
            shown[0] = time.monotonic()
            sys.stderr.write(f"\rexported {count}")
            sys.stderr.flush()

    return show
