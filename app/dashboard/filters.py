"""The filters of the responses table, read from the address so that it can be bookmarked:
`status`, `model`, `metadata=key=value` (repeatable), `from` and `to` (dates, UTC, both
inclusive). What cannot be read is said on the page, never a 500."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from app.kit.metadata import validate_metadata
from app.responses.domain import ResponseStatus


@dataclass(slots=True)
class ResponseFilter:
    status: ResponseStatus | None = None
    model: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    date_from: str = ""  # as written (YYYY-MM-DD), for the form
    date_to: str = ""
    since: int | None = None  # created_at >= since
    until: int | None = None  # created_at < until
    problems: list[str] = field(default_factory=list)

    def query(self, **extra: str) -> str:
        """The address's query string for this filter (and `extra`), for links."""
        pairs: list[tuple[str, str]] = []
        if self.status is not None:
            pairs.append(("status", str(self.status)))
        if self.model:
            pairs.append(("model", self.model))
        pairs += [("metadata", f"{k}={v}") for k, v in self.metadata.items()]
        if self.date_from:
            pairs.append(("from", self.date_from))
        if self.date_to:
            pairs.append(("to", self.date_to))
        pairs += list(extra.items())
        return urlencode(pairs)


def _day(value: str) -> datetime:
    return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)


def read_filter(params: QueryParams) -> ResponseFilter:
    found = ResponseFilter()
    status = params.get("status") or ""
    if status:
        try:
            found.status = ResponseStatus(status)
        except ValueError:
            found.problems.append(f"Unknown status '{status}'.")
    found.model = (params.get("model") or "").strip() or None
    pairs: dict[str, str] = {}
    for written in params.getlist("metadata"):
        if not written.strip():
            continue
        key, sep, value = written.partition("=")
        if not sep or not key.strip():
            found.problems.append(f"Metadata filter '{written}' is not key=value.")
            continue
        pairs[key.strip()] = value.strip()
    try:
        found.metadata = validate_metadata(pairs) or {}
    except ValueError as exc:
        found.problems.append(f"Metadata filter: {exc}.")
    for name in ("from", "to"):
        written = (params.get(name) or "").strip()
        if not written:
            continue
        try:
            day = _day(written)
        except ValueError:
            found.problems.append(f"'{written}' is not a date (YYYY-MM-DD).")
            continue
        if name == "from":
            found.date_from, found.since = written, int(day.timestamp())
        else:
            found.date_to, found.until = written, int((day + timedelta(days=1)).timestamp())
    return found
