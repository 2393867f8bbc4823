"""The error hierarchy services raise (no Flask here) and the one envelope they render to."""

from __future__ import annotations

from typing import Any


class PieError(Exception):
    """A domain error with the HTTP status it maps to."""

    status = 500

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class BadRequest(PieError):
    status = 400


class Unauthorized(PieError):
    status = 401


class Forbidden(PieError):
    status = 403


class NotFound(PieError):
    status = 404


class Conflict(PieError):
    status = 409


class PayloadTooLarge(PieError):
    status = 413


class Unprocessable(PieError):
    status = 422


class Unavailable(PieError):
    status = 503


def envelope(message: str, **extra: Any) -> dict[str, Any]:
    """The contract's error body: `success` false and a non-empty `message`."""
    return {"success": False, "message": message or "Error", **extra}


def flatten_messages(messages: Any, prefix: str = "") -> list[str]:
    """Turn marshmallow/webargs nested messages into `path.to.field: text` strings."""
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            key = str(key)
            path = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else key)
            out.extend(flatten_messages(value, path))
        return out
    if isinstance(messages, list | tuple):
        if all(isinstance(item, str) for item in messages):
            return [f"{prefix}: {item}" if prefix else item for item in messages]
        out = []
        for item in messages:
            out.extend(flatten_messages(item, prefix))
        return out
    return [f"{prefix}: {messages}" if prefix else str(messages)]
