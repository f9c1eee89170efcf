"""Log lines: text or JSON, structured fields, and nothing secret or unprintable in them."""

import logging

import orjson
import pytest

from app.config import Settings
from app.kit.logs import JsonFormatter, Scrubber, TextFormatter, secrets_of

SETTINGS = Settings(
    database_url="postgresql://tether:db-pass-123@127.0.0.1:5432/x",
    upstream_api_key="upstream-secret-456",
    admin_api_key="admin-secret-789",
)


def line(formatter: logging.Formatter, message: str, *args: object, **extra: object) -> str:
    record = logging.LogRecord("tether.test", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    assert Scrubber(secrets_of(SETTINGS)).filter(record)
    return formatter.format(record)


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_secrets_and_nul_never_reach_a_line(formatter: logging.Formatter) -> None:
    out = line(
        formatter,
        "upstream %s failed for key %s with %s",
        "upstream-secret-456",
        "sk-tether-AbCdEfGhIjKlMnOp",
        "a\x00b",
        url="postgresql://tether:db-pass-123@db/x",
        admin="admin-secret-789",
    )
    for secret in ("db-pass-123", "upstream-secret-456", "admin-secret-789", "AbCdEfGhIjKlMnOp"):
        assert secret not in out
    assert "\x00" not in out
    assert "x00b" in out  # escaped, not dropped


def test_json_lines_carry_the_structured_fields() -> None:
    out = line(JsonFormatter(), "POST %s %d", "/v1/responses", 200, request_id="req_1", status=200)
    entry = orjson.loads(out)
    assert entry["message"] == "POST /v1/responses 200"
    assert (entry["request_id"], entry["status"], entry["level"]) == ("req_1", 200, "info")


def test_text_lines_append_the_fields() -> None:
    out = line(TextFormatter(), "response %s queued", "resp_1", response_id="resp_1")
    assert out.endswith("tether.test: response resp_1 queued  response_id=resp_1")
