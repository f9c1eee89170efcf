"""Logging for every Tether process: readable text by default, JSON lines with LOG_FORMAT=json.

Structured fields travel as `extra={...}` (request_id, project, route, status, duration_ms,
response_id, attempt, ...): the text format appends them as key=value, the JSON format makes
them keys. Every line is scrubbed on its way out: the secrets the settings hold (upstream and
admin keys, the database password) and anything shaped like an API key become `***`, and NUL
characters are escaped, so no log line can leak a credential or break a log shipper.
"""

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from app.config import Settings

# LogRecord's own attributes: everything else on a record came in through `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_KEYS = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,})")


class Scrubber(logging.Filter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _KEYS.sub("***", text).replace("\x00", "\\x00")

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.clean(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.clean(record.exc_text)
        for key, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, key, self.clean(value))
        return True


# uvicorn's own extra (its message again, with terminal colours).
_NOT_FIELDS = {"color_message"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v
        for k, v in vars(record).items()
        if k not in _STANDARD and k not in _NOT_FIELDS and not k.startswith("_") and v is not None
    }


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += "  " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_text:
            entry["exception"] = record.exc_text
        return orjson.dumps(entry, default=str).decode()


def secrets_of(settings: Settings) -> list[str]:
    from sqlalchemy.engine import make_url

    found = [settings.upstream_api_key or "", settings.admin_api_key or ""]
    found += settings.encryption_keys
    for url in (settings.database_url, settings.redis_url or ""):
        try:
            found.append(make_url(url).password or "") if url else None
        except Exception:  # an unparsable URL is reported elsewhere, as a config error
            continue
    return [s for s in found if s]


def configure_logging(settings: Settings) -> None:
    """One handler on the root logger for this process (uvicorn's own loggers included)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(Scrubber(secrets_of(settings)))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # Our request line (app/kit/request_id.py) has what uvicorn's access line has, and more;
    # alembic narrates every migration check (/readyz asks for the head).
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
