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
- writing one response may take PIE_CLIENT_TIMEOUT_SECONDS plus one second per
  MIN_WRITE_BYTES_PER_SECOND the client has taken so far, over all of the response's writes
  (a file goes out in many), and the client must acknowledge some bytes every three
  deadlines; a client that reads slower is cut off (its connection reset);
- closing a connection does not wait for the client: gunicorn's graceful close lingered up
  to 2 s for the client's FIN on the worker's event loop, where nothing else ran meanwhile;
  what the client already sent is drained, without waiting for more."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import termios
import time
from typing import Any

# A response write may take one more second per this many bytes: a 1 MiB page gets 10 s more.
MIN_WRITE_BYTES_PER_SECOND = 100_000
# How often a blocked response write looks at what the client has acknowledged.
PROGRESS_CHECK_SECONDS = 0.5
# A response write gives up when the client acknowledged nothing for this many times the
# deadline. Not once the deadline: a client's kernel that holds megabytes the application
# reads at 150 kB/s announces free space in steps of megabytes, ten and more seconds apart.
IDLE_FACTOR = 3


def unsent(sock: socket.socket) -> int:
    """Bytes still in the socket's send buffer, not yet acknowledged by the client (Linux
    SIOCOUTQ); 0 where the system cannot tell."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
    except (OSError, AttributeError):
        return 0


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
        self.writing_since: float | None = None  # the response's first write
        self.written = 0  # bytes of this response handed to the socket so far
        self.responded = False  # whether an earlier response on this connection wrote any
        self.backlog = 0  # of its bytes, those still in the send buffer at this one's first write
        self.blocking = sock.getblocking()
        self.asked: float | None = None  # a timeout the server itself set (a body drain)
        self.closing = False
        # The wrapped socket's own timeout, set only when a call needs it (see setblocking).
        self.applied: float | None = sock.gettimeout()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def begin_request(self) -> None:
        """A new request on this connection: its reads and its response get fresh deadlines."""
        self.deadline = self.writing_since = None
        self.responded = self.responded or self.written > 0
        self.written = 0

    def shutdown(self, how: int) -> None:
        """gunicorn's graceful close starts here: from now on a read takes only what is
        there already, so the close drains without waiting on the client."""
        self.closing = True
        self._sock.shutdown(how)

    # What the server sets is remembered and combined with the deadline at each read; the
    # wrapped socket's mode changes only when a call would wait (`_apply`). gunicorn switches
    # a connection's mode four to six times a request, each a system call, while reads and
    # writes of bytes that are there (MSG_DONTWAIT) do not depend on it.
    def setblocking(self, flag: bool) -> None:
        self.blocking, self.asked = flag, None

    def settimeout(self, value: float | None) -> None:
        self.blocking, self.asked = value != 0, value

    def gettimeout(self) -> float | None:
        return self.asked if self.blocking else 0.0

    def getblocking(self) -> bool:
        return self.blocking

    def _apply(self, timeout: float | None) -> None:
        if timeout != self.applied:
            self._sock.settimeout(timeout)
            self.applied = timeout

    def _untimed(self) -> None:
        """Ready for a call with MSG_DONTWAIT: Python polls a socket with a timeout before
        each call and waits out EAGAIN; a blocking or non-blocking one makes the one call."""
        if self.applied:
            self._apply(0.0)

    def _remaining(self) -> float:
        """Seconds left to read this request (its first read starts the clock); raises
        ClientTimeout once none are."""
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.seconds
        remaining = self.deadline - now
        if remaining <= 0:
            raise ClientTimeout(self._late())
        return remaining

    def _arm_read(self) -> None:
        if self.closing or not self.blocking:
            self._apply(0.0)
            return
        remaining = self._remaining()
        self._apply(remaining if self.asked is None else min(remaining, self.asked))

    def _late(self) -> str:
        return f"the client did not send its request within {self.seconds:g} s"

    def _read(self, call: Any, *args: Any) -> Any:
        if self.blocking and not self.closing:
            # What has arrived already is taken without a wait, so without a timeout to
            # arm (a request usually arrives whole): one system call, not a mode change, a
            # poll and the read. Within the deadline only, as every read.
            self._remaining()
            self._untimed()
            try:
                return call(*args[:-1], args[-1] | socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass  # nothing yet: wait for it, within the deadline
        self._arm_read()
        try:
            return call(*args)
        except TimeoutError as exc:
            raise ClientTimeout(self._late()) from exc

    def recv(self, size: int, flags: int = 0) -> bytes:
        return self._read(self._sock.recv, size, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        return self._read(self._sock.recv_into, buffer, nbytes, flags)

    def _abort(self) -> None:
        """The close that follows resets the connection: the megabytes the kernel still
        holds for this client are dropped, not trickled to it for minutes."""
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def sendall(self, data: Any, flags: int = 0) -> None:
        if not self.blocking:
            self._apply(0.0)
            self._sock.sendall(data, flags)
            return
        view = memoryview(data).cast("B")
        now = time.monotonic()
        if self.writing_since is None:
            self.writing_since = now
            # A pipelined request's response may start while the kernel still holds the
            # tail of the one before: what the client takes of that counts as its progress.
            self.backlog = unsent(self._sock) if self.responded else 0
        if now < self.writing_since + self.seconds:
            # Within the first deadline, what the send buffer takes at once goes without a
            # wait (a response of PIE's usually fits whole): one system call, none of the
            # timeouts and acknowledgement reads below, which only a wait needs.
            self._untimed()
            try:
                sent = self._sock.send(view, flags | socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            self.written += sent
            view = view[sent:]
            if not view:
                return
        # What the client has taken: what was handed to the kernel, less what still waits in
        # its send buffer (megabytes of a large page), not what was handed.
        delivered, progressed = self.backlog + self.written - unsent(self._sock), now
        while view:
            allowed = self.writing_since + self.seconds + delivered / MIN_WRITE_BYTES_PER_SECOND
            if now >= allowed:
                self._abort()
                raise ClientTimeout(
                    "the client did not take the response at "
                    f"{MIN_WRITE_BYTES_PER_SECOND // 1000} kB/s"
                )
            if now - progressed >= self.seconds * IDLE_FACTOR:
                self._abort()
                raise ClientTimeout(
                    "the client acknowledged nothing of the response for "
                    f"{self.seconds * IDLE_FACTOR:g} s"
                )
            # Short waits: with a buffer of megabytes the kernel lets a writer on only
            # once a third of it is free, which a client reading steadily at 150 kB/s
            # takes longer than the deadline to free. Progress is what it acknowledged.
            self._apply(min(PROGRESS_CHECK_SECONDS, allowed - now))
            try:
                sent = self._sock.send(view, flags)
            except TimeoutError:
                sent = 0
            self.written += sent
            view = view[sent:]
            now = time.monotonic()
            taken = self.backlog + self.written - unsent(self._sock)
            if sent or taken > delivered:
                progressed = now
            delivered = max(delivered, taken)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """socket.sendfile within the response's deadline: read and written with `sendall`
        (gunicorn calls it only with its sendfile setting on, which `pie serve` turns off:
        the kernel's sendfile on the descriptor would bypass the deadlines)."""
        file.seek(offset)
        total = 0
        while count is None or total < count:
            size = 1 << 16 if count is None else min(1 << 16, count - total)
            chunk = file.read(size)
            if not chunk:
                break
            self.sendall(chunk)
            total += len(chunk)
        return total

    def send(self, data: Any, flags: int = 0) -> int:
        """One send: gunicorn's interim `100 Continue`, which starts no response clock."""
        self._apply(self.seconds if self.blocking else 0.0)
        try:
            return self._sock.send(data, flags)
        except TimeoutError as exc:
            self._abort()
            raise ClientTimeout(f"the client took nothing for {self.seconds:g} s") from exc
