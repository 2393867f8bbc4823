"""One POST to a checked destination: connected to the addresses the guard checked (the
caller resolved the host name once, with `guard.resolve`), TLS verified against the host
name, no redirects followed, the whole exchange bounded in time and the response body in
size."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

from pie.outbound import guard


class SendError(Exception):
    """The request could not be made or answered in time; the message says why."""


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    truncated: bool  # the body was longer than the limit; `body` holds its first bytes


def _pinned(
    connection: http.client.HTTPConnection, addresses: list[str], connect_timeout: float
) -> None:
    """Make `connection` connect to the first of `addresses` that answers, whatever its host
    name says (the host name stays the Host header and, for https, the name TLS checks)."""

    def create_connection(where: tuple[str, int], timeout: Any = None, source: Any = None) -> Any:
        error: OSError | None = None
        for address in addresses:
            try:
                sock = socket.create_connection((address, where[1]), connect_timeout, source)
            except OSError as exc:
                error = exc
                continue
            sock.settimeout(timeout)
            return sock
        assert error is not None
        raise error

    connection._create_connection = create_connection  # type: ignore[attr-defined]


def post(
    destination: guard.Destination,
    addresses: list[guard.IPAddress],
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    connect_timeout: float,
    max_bytes: int,
) -> Response:
    """POST `body` to `destination` at one of `addresses` (what `guard.resolve` returned for
    it); SendError when it cannot be done. The whole exchange ends within `timeout` seconds."""
    address = ", ".join(str(a) for a in addresses)
    if destination.url.scheme == "https":
        context = ssl.create_default_context()
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            destination.host, destination.port, timeout=timeout, context=context
        )
    else:
        connection = http.client.HTTPConnection(destination.host, destination.port, timeout=timeout)
    _pinned(connection, [str(a) for a in addresses], min(connect_timeout, timeout))
    expired = threading.Event()

    def expire() -> None:  # a server that drips bytes cannot hold the request past the limit
        expired.set()
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    started = time.monotonic()
    timer.start()
    try:
        connection.request(
            "POST",
            destination.target,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": "PIE", **headers},
        )
        answer = connection.getresponse()
        data = answer.read(max_bytes + 1)
        if expired.is_set():
            raise TimeoutError
        return Response(
            status=answer.status,
            reason=answer.reason,
            headers={k.lower(): v for k, v in answer.getheaders()},
            body=data[:max_bytes],
            truncated=len(data) > max_bytes,
        )
    except TimeoutError as exc:
        raise SendError(f"no answer from {destination.host} within {timeout:g} s") from exc
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        if expired.is_set():
            raise SendError(f"no answer from {destination.host} within {timeout:g} s") from exc
        elapsed = time.monotonic() - started
        raise SendError(
            f"request to {destination.host} ({address}) failed after {elapsed:.1f} s: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    finally:
        timer.cancel()
        connection.close()
