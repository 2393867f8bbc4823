"""A Python client for PIE: `Client(url, token)`, resources, typed results, errors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pie_client.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    JobTimeout,
    NotFoundError,
    PermissionDeniedError,
    PieConnectionError,
    PieError,
    ServerError,
    UnprocessableError,
)

if TYPE_CHECKING:
    from pie_client.client import Client
    from pie_client.pagination import Pager


def __getattr__(name: str) -> Any:
    """Client and Pager load the HTTP machinery: imported when first used, so the command
    line's help and its errors start without it."""
    if name == "Client":
        from pie_client.client import Client

        return Client
    if name == "Pager":
        from pie_client.pagination import Pager

        return Pager
    raise AttributeError(f"module 'pie_client' has no attribute {name!r}")


__all__ = [
    "ApiError", "AuthenticationError", "BadRequestError", "Client", "ConfigurationError",
    "ConflictError",
    "JobTimeout", "NotFoundError", "Pager", "PermissionDeniedError", "PieConnectionError",
    "PieError", "ServerError", "UnprocessableError",
]  # fmt: skip
