"""Standard Webhooks signatures (https://www.standardwebhooks.com) with the standard library.

A secret is `whsec_` and the base64 of 24 to 64 random bytes. Each request carries
`webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`: one
`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` per secret, space-separated, so a receiver
that knows any one of them verifies the request while secrets are rotated."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

PREFIX = "whsec_"
MIN_BYTES, MAX_BYTES = 24, 64


def generate_secret() -> str:
    """A new secret: `whsec_` and the base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret; ValueError saying what is wrong."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise ValueError("a signing secret must start with 'whsec_' (whsec_<base64>)")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a signing secret must be 'whsec_' followed by base64") from exc
    if not MIN_BYTES <= len(key) <= MAX_BYTES:
        raise ValueError(
            f"a signing secret must hold {MIN_BYTES} to {MAX_BYTES} bytes; one holds {len(key)}"
        )
    return key


def parse_secrets(values: Iterable[str]) -> list[str]:
    """Check each secret (ValueError naming its position, never its value); the list."""
    found = list(values)
    for position, secret in enumerate(found, 1):
        try:
            secret_key(secret)
        except ValueError as exc:
            raise ValueError(f"secret {position}: {exc}") from None
    return found


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "msg_id.timestamp.body">`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(
    signing_secrets: Iterable[str], msg_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, signed with every secret."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    found = list(signing_secrets)
    if not found:
        raise ValueError("no signing secret")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in found),
    }
