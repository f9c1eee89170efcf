"""Reasoning sealed for the client to hold: `encrypted_content` only this deployment can open.

A client that keeps its own thread (`store=false`, as Codex does, or OpenAI's zero-retention
mode) asks for `include=["reasoning.encrypted_content"]` and sends its reasoning items back
next turn; Tether opens them into the history the model is sent. The point is that a client
cannot hand the model reasoning it did not produce here: tokens are authenticated.

- AES-256-GCM (`cryptography`'s AESGCM), a random 96-bit nonce per token, the reasoning text
  as plaintext and the project id as associated data: a token of another project, of another
  deployment (another key), or with one bit changed does not open (400
  `invalid_encrypted_content`, as OpenAI answers).
- A token is `tether1.` + urlsafe base64 of key id (4 bytes), nonce (12), ciphertext and tag.
  The key id picks the key, so a rotated-out key is told apart from a tampered token.
- Keys: ENCRYPTION_KEY, comma-separated, each at least 32 characters (`openssl rand -base64
  32`), stretched to 256 bits with HKDF-SHA256. The first seals; every one opens. To rotate,
  put a new key first and drop the old one once the clients' threads have moved on.
- ENCRYPTION_KEY unset: the first process that needs a key makes a random one and keeps it
  in the database (`deployment_secrets`), where every replica and worker of the deployment
  finds it. Whoever can read the database can then open tokens; they can read the stored
  responses themselves already. A client cannot make or change one, which is what the tokens
  protect (the plain reasoning is the client's to read: it is in the item's `content` too).
"""

import asyncio
import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.errors import InvalidRequest
from app.kit.ids import now_seconds
from app.models.deployment_secret import DeploymentSecretRow

PREFIX = "tether1."
KEY_ID_BYTES = 4
NONCE_BYTES = 12
# The database row of the key made when ENCRYPTION_KEY is unset.
GENERATED_KEY = "reasoning_key"
_INFO = b"tether reasoning encrypted_content v1"


def _derive(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO)
    return hkdf.derive(secret.encode())


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"tether key id\x00" + key).digest()[:KEY_ID_BYTES]


def _associated(project_id: str) -> bytes:
    return b"tether reasoning\x00" + project_id.encode()


def _shown(token: str) -> str:
    """A token as an error names it: its ends only (OpenAI writes `gAAA...DQ==`)."""
    return f"{token[:4]}...{token[-4:]}" if len(token) > 12 else token


@dataclass(frozen=True, slots=True)
class Sealer:
    """The keys, derived: the first seals, every one opens."""

    keys: tuple[tuple[bytes, AESGCM], ...]  # (key id, cipher), the sealing one first

    @classmethod
    def of(cls, secrets_: list[str]) -> "Sealer":
        derived = [_derive(secret) for secret in secrets_]
        return cls(tuple((_key_id(key), AESGCM(key)) for key in derived))

    def seal(self, project_id: str, text: str) -> str:
        key_id, cipher = self.keys[0]
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = cipher.encrypt(nonce, text.encode(), _associated(project_id))
        return PREFIX + base64.urlsafe_b64encode(key_id + nonce + sealed).decode()

    def open(self, project_id: str, token: str, param: str) -> str:
        """The text sealed in `token` for this project; a 400 naming `param` otherwise."""
        try:
            raw = base64.urlsafe_b64decode(token.removeprefix(PREFIX).encode())
        except (binascii.Error, ValueError):
            raw = b""
        if not token.startswith(PREFIX) or len(raw) <= KEY_ID_BYTES + NONCE_BYTES:
            raise _unverified(token, param, "it was not made by this server")
        key_id, nonce = raw[:KEY_ID_BYTES], raw[KEY_ID_BYTES : KEY_ID_BYTES + NONCE_BYTES]
        cipher = next((c for kid, c in self.keys if kid == key_id), None)
        if cipher is None:
            raise _unverified(
                token, param, "it was sealed with a key this server does not have (ENCRYPTION_KEY)"
            )
        try:
            text = cipher.decrypt(nonce, raw[KEY_ID_BYTES + NONCE_BYTES :], _associated(project_id))
        except InvalidTag:
            raise _unverified(token, param, "it was changed, or made for another project") from None
        return text.decode()


def _unverified(token: str, param: str, reason: str) -> InvalidRequest:
    return InvalidRequest(
        f"The encrypted content {_shown(token)} could not be verified: {reason}.",
        param=param,
        code="invalid_encrypted_content",
    )


class Keyring:
    """A process's Sealer, made on first use: from ENCRYPTION_KEY, or from the key kept in the
    database (made there by whichever process needed one first)."""

    def __init__(self, engine: AsyncEngine, keys: list[str]) -> None:
        self.engine = engine
        self._sealer = Sealer.of(keys) if keys else None
        self._lock = asyncio.Lock()

    async def sealer(self) -> Sealer:
        if self._sealer is not None:
            return self._sealer
        async with self._lock:
            if self._sealer is None:
                async with self.engine.begin() as conn:
                    secret = await _generated_key(conn)
                self._sealer = Sealer.of([secret])
        return self._sealer


async def _generated_key(conn: AsyncConnection) -> str:
    """The deployment's generated key: inserted unless present (processes starting together
    race here; the insert that loses does nothing), then read, so every process uses the one
    that won."""
    row = {
        "name": GENERATED_KEY,
        "value": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "created_at": now_seconds(),
    }
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    await conn.execute(insert(DeploymentSecretRow).values(row).on_conflict_do_nothing())
    value = await conn.scalar(
        select(DeploymentSecretRow.value).where(DeploymentSecretRow.name == GENERATED_KEY)
    )
    assert value is not None
    return str(value)
