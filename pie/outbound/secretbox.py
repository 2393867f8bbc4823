"""Webhook endpoints' signing secrets encrypted at rest: AES-256-GCM with a key from
PIE_WEBHOOK_SECRET_KEY, else one generated beside the database (like the other generated
secrets). Each value is bound to its endpoint (the endpoint id is the associated data), so a
ciphertext copied onto another endpoint's row does not decrypt."""

from __future__ import annotations

import base64
import binascii
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12


def generate_key() -> str:
    """A new key: the URL-safe base64 of 32 random bytes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def parse_key(value: str) -> bytes:
    """The key bytes of a base64 (standard or URL-safe) 32-byte key; ValueError saying what
    is wrong, never quoting it."""
    text = value.strip()
    try:
        key = base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "==")
    except (binascii.Error, ValueError):
        raise ValueError("must be the base64 of 32 bytes") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"must be the base64 of 32 bytes; it holds {len(key)}")
    return key


class SecretBox:
    """Encrypts and decrypts one endpoint's secrets with the deployment's key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, bound_to: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), bound_to.encode("utf-8"))
        return f"{VERSION}:" + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, value: str, bound_to: str) -> str:
        """The plaintext; ValueError when the value was not sealed with this key for this
        endpoint (another deployment's key, a value copied from another row)."""
        version, _, data = value.partition(":")
        if version != VERSION:
            raise ValueError(f"unknown secret format {version[:8]!r}")
        try:
            raw = base64.b64decode(data, validate=True)
            opened = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound_to.encode())
        except (binascii.Error, ValueError, InvalidTag):
            raise ValueError(
                "the secret does not decrypt with this key (PIE_WEBHOOK_SECRET_KEY, or the "
                "generated key file): was the key changed?"
            ) from None
        return opened.decode("utf-8")
