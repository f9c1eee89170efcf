"""Standard Webhooks signatures, as `client.webhooks.unwrap` checks them: HMAC-SHA256 over
`{webhook-id}.{webhook-timestamp}.{body}` with the secret's bytes (the base64 after `whsec_`),
sent as `v1,<base64>`; several, space-separated, while a rotated-out secret is still honoured."""

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def hint(secret: str) -> str:
    """Enough to tell secrets apart, not to use one: `whsec_...` and the last four characters
    before the base64 padding (which is the same for every secret)."""
    return f"{PREFIX}...{secret.rstrip('=')[-4:]}"


def signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secrets_: list[str], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, webhook_id, timestamp, body) for s in secrets_),
        "content-type": "application/json",
    }
