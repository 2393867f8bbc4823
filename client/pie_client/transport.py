"""The one object that talks HTTP: base URL and token, JSON in and out, request ids, errors
as exceptions, and retries with backoff for safe methods."""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from pie_client.errors import ConfigurationError, PieConnectionError, error_for

REQUEST_ID_HEADER = "X-Request-ID"  # PIE echoes it (pie/logs.py) and logs it on every line
SAFE_METHODS = frozenset({"GET", "HEAD"})
# A kept-alive connection idle longer than this may have been closed by the server (gunicorn
# closes idle ones after 2 s): a fresh one is opened rather than risk sending into a closed one.
IDLE_SECONDS = 1.0
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    data: Any


class Transport:
    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(f"not an http(s) URL: {url!r}")
        self.url = url.rstrip("/")
        self.prefix = parts.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._parts = parts
        self._connection: http.client.HTTPConnection | None = None
        self._last_used = 0.0

    def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None
    ) -> Response:
        """Send one request; a safe method is tried again on 503 and on connection errors."""
        target = self.prefix + path + query_string(params)
        attempts = 1 + (self.retries if method in SAFE_METHODS else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._send(method, target, body)
            except CONNECTION_ERRORS as exc:
                self.close()
                if last:
                    raise PieConnectionError(f"{method} {self.url}{path}: {exc}") from exc
            else:
                if response.status != 503 or last:
                    return self._checked(response)
            time.sleep(self.delay(attempt))
        raise AssertionError("unreachable")

    def delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of backoff x 2^attempt."""
        return float(self.backoff * (2**attempt) * random.uniform(0.5, 1.0))

    def _checked(self, response: Response) -> Response:
        if response.status >= 400:
            raise error_for(
                response.status, response.data, response.headers.get(REQUEST_ID_HEADER.lower())
            )
        return response

    def _send(self, method: str, target: str, body: Any) -> Response:
        headers = {"Accept": "application/json", REQUEST_ID_HEADER: os.urandom(16).hex()}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        payload = None
        if body is not None:
            payload = json.dumps(body, allow_nan=False).encode()
            headers["Content-Type"] = "application/json"
        connection = self._connect()
        connection.request(method, target, body=payload, headers=headers)
        raw = connection.getresponse()
        data = raw.read()
        self._last_used = time.monotonic()
        found = {name.lower(): value for name, value in raw.getheaders()}
        found.setdefault(REQUEST_ID_HEADER.lower(), headers[REQUEST_ID_HEADER])
        if raw.will_close:
            self.close()
        return Response(raw.status, found, decode(data))

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection and time.monotonic() - self._last_used > IDLE_SECONDS:
            self.close()
        if self._connection is None:
            cls = (
                http.client.HTTPSConnection
                if self._parts.scheme == "https"
                else http.client.HTTPConnection
            )
            host = self._parts.hostname or ""
            self._connection = cls(host, self._parts.port, timeout=self.timeout)
            self._connection.connect()
            if self._connection.sock is not None:
                self._connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def query_string(params: dict[str, Any] | None) -> str:
    """`?a=1&b=x` from the parameters that are set; booleans as `true` / `false`."""
    if not params:
        return ""
    pairs = [
        (name, str(value).lower() if isinstance(value, bool) else str(value))
        for name, value in params.items()
        if value is not None
    ]
    return "?" + urlencode(pairs) if pairs else ""


def decode(data: bytes) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")
