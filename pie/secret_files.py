"""Secrets kept in files of the instance folder (the HS256 token secret, the webhook and
`http` signing keys): read, or created once, atomically, readable by the owner only."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable


def read_secret(path: str) -> str | None:
    """The persisted HS256 secret, or None when there is none yet."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except FileNotFoundError:
        return None


def load_or_create_secret(path: str, generate: Callable[[], str] | None = None) -> str:
    """The persisted secret (by default the HS256 one); created once with `generate`,
    readable by the owner only."""
    secret = read_secret(path)
    if secret:
        return secret
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    secret = generate() if generate is not None else secrets.token_urlsafe(48)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret)
    try:
        os.link(tmp, path)  # atomic and exclusive: a racing process keeps the first secret
    except FileExistsError:
        with open(path, encoding="utf-8") as fh:
            secret = fh.read().strip()
    finally:
        os.unlink(tmp)
    return secret
