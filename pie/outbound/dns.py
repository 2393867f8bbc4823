"""Host name lookups bounded in time, for the requests the destination guard checks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any


class LookupFailed(Exception):
    """The host name cannot be resolved now (no such name, a DNS failure, a lookup that took
    too long): unlike a refusal, it may succeed later."""


Lookup = Callable[..., list[tuple[Any, ...]]]


class Resolver:
    """getaddrinfo bounded in time: each lookup runs on a daemon thread the caller waits for
        at most `timeout` seconds (the C resolver cannot be interrupted, so a hung lookup's
        thread lingers until it returns). At most `limit` lookups run at once, lingering ones
        included: a caller waits for a free slot within the same timeout, so lookups that hang
    never hold more than `limit` threads."""

    def __init__(self, timeout: float, limit: int = 8, lookup: Lookup | None = None) -> None:
        self.timeout = timeout
        self.limit = limit
        self.lookup = lookup  # None: socket.getaddrinfo, read at each call
        self._slots = threading.BoundedSemaphore(limit)

    def __call__(self, host: str, port: int) -> list[tuple[Any, ...]]:
        """getaddrinfo's answer for a TCP connection to host:port; LookupFailed when there is
        none within the timeout."""
        timed_out = LookupFailed(f"DNS lookup of {host} timed out after {self.timeout:g} s")
        deadline = time.monotonic() + self.timeout
        if not self._slots.acquire(timeout=self.timeout):  # `limit` lookups hang already
            raise timed_out
        outcome: dict[str, Any] = {}
        done = threading.Event()
        lookup = self.lookup or socket.getaddrinfo

        def run() -> None:
            try:
                outcome["found"] = lookup(
                    host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                )
            except BaseException as exc:  # handed to the caller
                outcome["error"] = exc
            finally:
                self._slots.release()
                done.set()

        threading.Thread(target=run, name="pie-dns", daemon=True).start()
        if not done.wait(max(0.0, deadline - time.monotonic())):
            raise timed_out
        error = outcome.get("error")
        if isinstance(error, OSError | UnicodeError):
            raise LookupFailed(f"cannot resolve {host}: {error}") from None
        if error is not None:
            raise error
        return outcome["found"]
