"""`tether serve`: the one command that runs Tether on the embedded default.

It migrates the database named by DATABASE_URL (a SQLite file unless told otherwise), then serves
the API with uvicorn. Configuration comes from the environment (README, "Configuration").
"""

import argparse
import os

import uvicorn

from app import migrate
from app.config import get_settings


def serve(host: str, port: int) -> None:
    settings = get_settings()
    migrate.upgrade(settings.database_url)
    upstream = settings.upstream_base_url or "none: the built-in 'echo' model answers"
    print(
        f"Tether on http://{host}:{port}/v1  database: {settings.database_url}  "
        f"upstream: {upstream}",
        flush=True,
    )
    uvicorn.run("app.main:app", host=host, port=port, log_level=settings.log_level)


def main() -> None:
    parser = argparse.ArgumentParser(prog="tether")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="migrate the database, then serve the API")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    sub.add_parser("migrate", help="alembic upgrade head on DATABASE_URL")
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.host, args.port)
    else:
        migrate.upgrade(get_settings().database_url)


if __name__ == "__main__":
    main()
