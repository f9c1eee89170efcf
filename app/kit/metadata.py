"""Metadata as OpenAI limits it: at most 16 string pairs, keys <= 64 and values <= 512 chars.

Kept in the key order PostgreSQL's jsonb gives back (shorter keys first, then by bytes), on
every database: an object renders the same bytes whichever one stored it.
"""

from typing import Annotated, Any

from pydantic import AfterValidator

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def validate_metadata(value: dict[str, Any] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_METADATA_PAIRS:
        raise ValueError(
            f"too many properties. Expected an object with at most {MAX_METADATA_PAIRS} "
            f"properties, but got an object with {len(value)} properties instead"
        )
    for key, val in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise ValueError(
                f"metadata key '{key[:20]}…' is {len(key)} characters long; "
                f"at most {MAX_METADATA_KEY} are allowed"
            )
        if not isinstance(val, str):
            raise ValueError(f"metadata value for '{key}' must be a string")
        if len(val) > MAX_METADATA_VALUE:
            raise ValueError(
                f"metadata value for '{key}' is {len(val)} characters long; "
                f"at most {MAX_METADATA_VALUE} are allowed"
            )
    return dict(sorted(value.items(), key=_jsonb_order))


def _jsonb_order(pair: tuple[str, Any]) -> tuple[int, bytes]:
    key = pair[0].encode()
    return len(key), key


# A request field holding metadata: validated as above, an OpenAI-shaped 400 otherwise.
Metadata = Annotated[dict[str, Any] | None, AfterValidator(validate_metadata)]
