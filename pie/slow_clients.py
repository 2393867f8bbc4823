"""Deadlines for the clients of `pie serve`: a request must arrive, and a response be taken,
in bounded time.

gunicorn's threaded worker hands a connection to a thread once its first byte arrives; the
thread then reads the rest of the request with a blocking socket and no timeout. A client
that sends one header byte a second (slowloris), a body that never ends, or never reads a
large response held that thread for ever, and a handful of them held every thread of the
server. `DeadlineSocket` wraps each client socket of the worker:

- reading one request (its headers and its body) must end within PIE_CLIENT_TIMEOUT_SECONDS
  of its first read, however the bytes trickle in; then `ClientTimeout` is raised: the
  connection closes, and a body the application was reading is answered 408;
- each write of a response may take PIE_CLIENT_TIMEOUT_SECONDS plus one second per
  MIN_WRITE_BYTES_PER_SECOND of its size; a client that takes no more is cut off."""

from __future__ import annotations

import socket
import time
from typing import Any

# A response write may take one more second per this many bytes: a 1 MiB page gets 10 s more.
MIN_WRITE_BYTES_PER_SECOND = 100_000


class ClientTimeout(TimeoutError):
    """The client did not send its request, or take its response, in time."""


class DeadlineSocket:
    """A client socket whose blocking reads share one deadline per request and whose writes
    each have their own. gunicorn sees a socket: what this class does not define is the
    wrapped socket's."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock
        self.seconds = seconds
        self.deadline: float | None = None  # set by the request's first read
        self.blocking = sock.getblocking()
        self.asked: float | None = None  # a timeout the server itself set (a body drain)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def begin_request(self) -> None:
        """A new request on this connection: its reads get a fresh deadline."""
        self.deadline = None

    # What the server sets is remembered and combined with the deadline at each read.
    def setblocking(self, flag: bool) -> None:
        self.blocking, self.asked = flag, None
        self._sock.setblocking(flag)

    def settimeout(self, value: float | None) -> None:
        self.blocking, self.asked = value != 0, value
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self.asked if self.blocking else 0.0

    def _arm_read(self) -> None:
        if not self.blocking:
            return
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.seconds
        remaining = self.deadline - now
        if remaining <= 0:
            raise ClientTimeout(self._late())
        self._sock.settimeout(remaining if self.asked is None else min(remaining, self.asked))

    def _late(self) -> str:
        return f"the client did not send its request within {self.seconds:g} s"

    def recv(self, size: int, flags: int = 0) -> bytes:
        self._arm_read()
        try:
            return self._sock.recv(size, flags)
        except TimeoutError as exc:
            raise ClientTimeout(self._late()) from exc

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._arm_read()
        try:
            return self._sock.recv_into(buffer, nbytes, flags)
        except TimeoutError as exc:
            raise ClientTimeout(self._late()) from exc

    def sendall(self, data: Any, flags: int = 0) -> None:
        if not self.blocking:
            self._sock.sendall(data, flags)
            return
        allowed = self.seconds + len(memoryview(data)) / MIN_WRITE_BYTES_PER_SECOND
        self._sock.settimeout(allowed)  # for the whole sendall (CPython 3.5+)
        try:
            self._sock.sendall(data, flags)
        except TimeoutError as exc:
            message = f"the client did not take the response within {allowed:g} s"
            raise ClientTimeout(message) from exc
        finally:
            self._sock.settimeout(self.asked)

    def send(self, data: Any, flags: int = 0) -> int:
        if not self.blocking:
            return self._sock.send(data, flags)
        self._sock.settimeout(self.seconds)
        try:
            return self._sock.send(data, flags)
        except TimeoutError as exc:
            raise ClientTimeout(f"the client took nothing for {self.seconds:g} s") from exc
        finally:
            self._sock.settimeout(self.asked)
