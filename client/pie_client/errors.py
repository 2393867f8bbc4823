"""The exceptions the client raises: one per kind of failure, each carrying what the server said."""

from __future__ import annotations

from typing import Any


class PieError(Exception):
    """Any failure of a PIE call."""


class ConfigurationError(PieError, ValueError):
    """No usable server URL or token: nothing configured, a URL that is not http(s), a config
    file that is not one (a ValueError too, as it was)."""


class PieConnectionError(PieError):
    """The server could not be reached (refused, reset, timed out), after any retries."""


class JobTimeout(PieError):
    """`jobs.wait` gave up before the job ended."""

    def __init__(self, job_id: str, timeout: float) -> None:
        super().__init__(f"job {job_id} did not end within {timeout:g} s")
        self.job_id = job_id


class ApiError(PieError):
    """The server answered with an error: its status, the envelope's message, the request id."""

    def __init__(self, status: int, message: str, request_id: str | None, body: Any = None) -> None:
        suffix = f" (request {request_id})" if request_id else ""
        super().__init__(f"{status}: {message}{suffix}")
        self.status = status
        self.message = message
        self.request_id = request_id
        self.body = body


class BadRequestError(ApiError):
    """400 (and 413): the request is malformed or a field is wrong."""


class AuthenticationError(ApiError):
    """401: no token, or one the server does not accept."""


class PermissionDeniedError(ApiError):
    """403: the token lacks the permission, or access to the tenant."""


class NotFoundError(ApiError):
    """404: something named in the path does not exist."""


class ConflictError(ApiError):
    """409: it exists already, or the job has ended."""


class UnprocessableError(ApiError):
    """422: semantically invalid (a contract, a status transition, an inactive domain...)."""


class ServerError(ApiError):
    """5xx."""


BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: BadRequestError,
    422: UnprocessableError,
}


def error_for(status: int, body: Any, request_id: str | None) -> ApiError:
    """The exception for an error response; the message is the envelope's when there is one."""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        message = str(body)[:500] if body else f"HTTP {status}"
    cls = BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return cls(status, message, request_id, body)
