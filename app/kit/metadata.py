"""Metadata as OpenAI limits it: at most 16 string pairs, keys <= 64 and values <= 512 chars.

Kept in the key order PostgreSQL's jsonb gives back (shorter keys first, then by bytes), on
every database: an object renders the same bytes whichever one stored it.
"""

from typing import Annotated, Any

from pydantic import AfterValidator

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


# Responses' `client_metadata` (Codex sends its turn, session and window ids there): string
# pairs too. OpenAI documents no limits for it and accepts Codex's, whose turn metadata is a
# JSON string of some 750 characters; these bound what a row and a log line keep.
MAX_CLIENT_METADATA_PAIRS = 32
MAX_CLIENT_METADATA_VALUE = 8192


def validate_metadata(value: dict[str, Any] | None) -> dict[str, str] | None:
    return _string_pairs(value, "metadata", MAX_METADATA_PAIRS, MAX_METADATA_VALUE)


def validate_client_metadata(value: dict[str, Any] | None) -> dict[str, str] | None:
    return _string_pairs(
        value, "client_metadata", MAX_CLIENT_METADATA_PAIRS, MAX_CLIENT_METADATA_VALUE
    )


def _string_pairs(
    value: dict[str, Any] | None, name: str, max_pairs: int, max_value: int
) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > max_pairs:
        raise ValueError(
            f"too many properties. Expected an object with at most {max_pairs} "
            f"properties, but got an object with {len(value)} properties instead"
        )
    for key, val in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise ValueError(
                f"{name} key '{key[:20]}…' is {len(key)} characters long; "
                f"at most {MAX_METADATA_KEY} are allowed"
            )
        if not isinstance(val, str):
            raise ValueError(f"{name} value for '{key}' must be a string")
        if len(val) > max_value:
            raise ValueError(
                f"{name} value for '{key}' is {len(val)} characters long; "
                f"at most {max_value} are allowed"
            )
    return dict(sorted(value.items(), key=_jsonb_order))


def _jsonb_order(pair: tuple[str, Any]) -> tuple[int, bytes]:
    key = pair[0].encode()
    return len(key), key


# A request field holding metadata: validated as above, an OpenAI-shaped 400 otherwise.
Metadata = Annotated[dict[str, Any] | None, AfterValidator(validate_metadata)]
ClientMetadata = Annotated[dict[str, Any] | None, AfterValidator(validate_client_metadata)]
