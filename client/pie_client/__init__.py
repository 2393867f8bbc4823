"""A Python client for PIE: `Client(url, token)`, resources, typed results, errors."""

from __future__ import annotations

from pie_client.client import Client
from pie_client.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    JobTimeout,
    NotFoundError,
    PermissionDeniedError,
    PieConnectionError,
    PieError,
    ServerError,
    UnprocessableError,
)
from pie_client.pagination import Pager

__all__ = [
    "ApiError", "AuthenticationError", "BadRequestError", "Client", "ConflictError",
    "JobTimeout", "NotFoundError", "Pager", "PermissionDeniedError", "PieConnectionError",
    "PieError", "ServerError", "UnprocessableError",
]  # fmt: skip
