"""Connections spread over `pie serve`'s worker processes.

Every worker polls the one listening socket, and whichever wakes first takes a connection.
A worker already awake (busy with requests) wins that race, so a handful of keep-alive
clients arriving together (a proxy's upstream pool, a load generator, a client's
connection pool) could all land on one process and stay there, its requests sharing one
interpreter lock while the other processes idle: with 8 connections on 2 workers,
bench.http measured 1,600-1,700 reads a second in that case against 4,100-4,200 when they
spread, and it happened in 3 of 8 tries.

The master maps a small table into shared memory before it forks (`Board`): each worker
writes, once per turn of its event loop, how many connections it holds, whether it takes
more (not while stopping, at its cap, or with every thread on a request), and when it last
wrote. A worker that holds more than one connection above a sibling that takes more stops
accepting for a moment (`should_defer`), so that the sibling takes the next one. One that
has held two more for a quarter of a second answers a request with `Connection: close`, at
most one per 50 ms and only where closing loses nothing (`closes_cleanly`), so that its
client connects again, to the sibling (`should_shed`); connections it closed in the last
two seconds count as the sibling's meanwhile. The worker with the fewest connections
always accepts, so new connections are never left waiting for every worker at once; a
sibling that has not written for STALE_SECONDS (hung, dead, or stopping) does not count.
With gunicorn's reuse_port (a socket per worker, the kernel choosing) no worker takes
part."""

from __future__ import annotations

import collections
import mmap
import struct
import time
from collections.abc import Iterable
from typing import Any

# open connections, accepting (0/1), last write (time.monotonic, the same clock in every
# process of the host)
RECORD = struct.Struct("qqd")
HEADER = struct.Struct("q")  # how many slots the master has given out so far
SLOTS = 256
# A worker's event loop turns at least once a second (gunicorn's poll timeout) however idle.
# Taking a live sibling for a silent one only skips the balancing for a moment; the other
# way round, a hung sibling would keep new connections waiting this long once.
STALE_SECONDS = 1.5
# A worker holding this many connections more than the least-loaded live sibling waits.
SLACK = 1
# While it waits, how often a worker looks again (instead of gunicorn's 1 s poll timeout).
RECHECK_SECONDS = 0.02
# A crowded worker closes at most one connection in this time: the counts it goes by (its
# own, its siblings') show a closed connection's client connecting again only after a turn
# of each event loop, and without the pause one crowd was shed twice over.
SHED_SECONDS = 0.05
# ... and only once it has been crowded this long: a burst of short connections (each a
# request with `Connection: close`) raises a count for a moment, which alone shed long-lived
# connections (66 closes in 10 s beside wrk's 8 connections, in review).
SHED_AFTER_SECONDS = 0.25
# Connections it closed this recently count as its siblings' already: a client may take its
# time to connect again, and meanwhile the counts alone would shed more (14 of 16
# connections, where 8 would do, with clients that waited 2 s).
SHED_MEMORY_SECONDS = 2.0


class Board:
    """The shared table: one record per slot, slots given out by the master (`free_slot`)."""

    def __init__(self, slots: int = SLOTS) -> None:
        self.slots = slots
        # Anonymous and shared: the workers forked after this see the same pages.
        self._map = mmap.mmap(-1, HEADER.size + RECORD.size * slots)

    def free_slot(self, taken: Iterable[int]) -> int | None:
        """The first slot no live worker holds, for a worker about to be forked (in the
        master); None when all are: that worker then takes no part and never waits."""
        used = set(taken)
        slot = next((slot for slot in range(self.slots) if slot not in used), None)
        if slot is not None:
            self.write(slot, 0, False, 0.0)  # nothing of the slot's last holder
            if slot >= HEADER.unpack_from(self._map, 0)[0]:
                HEADER.pack_into(self._map, 0, slot + 1)
        return slot

    def write(self, slot: int, connections: int, accepting: bool, now: float) -> None:
        RECORD.pack_into(self._map, HEADER.size + slot * RECORD.size, connections, accepting, now)

    def siblings(self, slot: int, now: float) -> list[int]:
        """Open connections of every other worker that accepts and wrote in the last
        STALE_SECONDS."""
        found = []
        for other in range(HEADER.unpack_from(self._map, 0)[0]):
            if other == slot:
                continue
            offset = HEADER.size + other * RECORD.size
            connections, accepting, stamp = RECORD.unpack_from(self._map, offset)
            if accepting and now - stamp < STALE_SECONDS:
                found.append(connections)
        return found

    def fewest(self, slot: int, now: float) -> int | None:
        """The fewest connections a sibling that takes more holds (None: no such sibling)."""
        return min(self.siblings(slot, now), default=None)

    def should_defer(self, slot: int, connections: int, now: float | None = None) -> bool:
        """Whether the worker in `slot`, holding `connections`, should let a sibling take
        the next connection."""
        now = time.monotonic() if now is None else now
        return defers(connections, self.fewest(slot, now))

    def should_shed(
        self, slot: int, connections: int, now: float | None = None, in_transit: int = 0
    ) -> bool:
        """Whether the worker in `slot` holds so many more connections than a sibling that
        it should close one after a response (its client then connects again, to the
        sibling, since this worker defers): one more than `should_defer`'s margin, so that
        a worker stops shedding before its siblings would start; `in_transit` connections
        it closed lately count as the sibling's."""
        now = time.monotonic() if now is None else now
        return sheds(connections, self.fewest(slot, now), in_transit)


def defers(connections: int, fewest: int | None) -> bool:
    """`Board.should_defer`'s rule, given the fewest connections of a sibling that takes more."""
    return fewest is not None and connections > fewest + SLACK


def sheds(connections: int, fewest: int | None, in_transit: int = 0) -> bool:
    """`Board.should_shed`'s rule, given the fewest connections of a sibling that takes more."""
    return fewest is not None and connections > fewest + SLACK + 1 + in_transit


class BalancedAccept:
    """Mixed into gunicorn's threaded worker (before it: `class W(BalancedAccept,
    ThreadWorker)`), whose event loop accepts while `nr_conns < worker_connections`, read
    once a turn. The class's `board` is set in the master before it forks, and each
    worker's `balance_slot` by `give_slot`; without them the worker accepts as gunicorn's."""

    board: Board | None = None
    balance_slot: int | None = None
    alive: bool
    cfg: Any
    nr_conns: int
    keepalived_conns: Any
    pending_conns: Any
    _connection_cap: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._deferring = False
        self._crowded_since: float | None = None  # on the event loop, while crowded
        self._may_shed = False  # crowded for SHED_AFTER_SECONDS: read by the request threads
        self._sheds: collections.deque[float] = collections.deque()  # when it closed one
        super().__init__(*args, **kwargs)

    @property
    def worker_connections(self) -> int:
        """The configured cap, or the connections held now (no accepting this turn) while
        a sibling with fewer should take the next one. Each read (once a turn of the event
        loop) also publishes this worker's count for its siblings, and whether it takes
        more: not while stopping, at its cap, or with every thread on a request (a
        connection sent its way would wait for one, behind a slow upload, say)."""
        board, slot = self.board, self.balance_slot
        if board is None or slot is None:
            return self._connection_cap
        now, held = time.monotonic(), self.nr_conns
        busy = held - len(self.keepalived_conns) - len(self.pending_conns)
        willing = self.alive and held < self._connection_cap and busy < self.cfg.threads
        board.write(slot, held, willing, now)
        fewest = board.fewest(slot, now) if held > SLACK else None  # one scan for both rules
        self._deferring = defers(held, fewest)
        while self._sheds and now - self._sheds[0] > SHED_MEMORY_SECONDS:
            self._sheds.popleft()
        if sheds(held, fewest, len(self._sheds)):
            self._crowded_since = self._crowded_since or now
        else:
            self._crowded_since = None
        since = self._crowded_since
        self._may_shed = since is not None and now - since >= SHED_AFTER_SECONDS
        return held if self._deferring else self._connection_cap

    @worker_connections.setter
    def worker_connections(self, value: int) -> None:
        self._connection_cap = value

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """While a sibling is to take the next connection, or this worker is crowded, look
        again soon, not after gunicorn's idle second."""
        if self._deferring or self._crowded_since is not None:
            timeout = min(timeout, RECHECK_SECONDS)
        super().wait_for_and_dispatch_events(timeout)  # type: ignore[misc]

    def handle_quit(self, sig: int, frame: Any) -> None:
        """SIGQUIT/SIGINT end the process from the signal handler, before the event loop
        stops accepting: siblings stop waiting for it now."""
        self.leave_board()
        super().handle_quit(sig, frame)  # type: ignore[misc]

    def set_accept_enabled(self, enabled: bool) -> None:
        """gunicorn stops accepting here when the worker stops gracefully, however it was
        told to (SIGTERM, its max_requests): siblings no longer wait for it."""
        super().set_accept_enabled(enabled)  # type: ignore[misc]
        if not enabled and not self.alive:
            self.leave_board()

    def crowded(self) -> bool:
        """Whether to close the connection after the current response (`close_when_crowded`):
        crowded for SHED_AFTER_SECONDS, and at most once per SHED_SECONDS."""
        if not self._may_shed:
            return False
        now = time.monotonic()
        if self._sheds and now - self._sheds[-1] < SHED_SECONDS:
            return False
        self._sheds.append(now)
        self._may_shed = False  # until the event loop has looked again
        return True

    def leave_board(self) -> None:
        """Stopping: siblings no longer wait for this worker to take connections."""
        if self.board is not None and self.balance_slot is not None:
            self.board.write(self.balance_slot, self.nr_conns, False, time.monotonic())


def close_when_crowded(worker: Any, req: Any) -> None:
    """gunicorn `pre_request` (on the thread that serves the request): a worker holding
    more than its share answers with `Connection: close`. Connections that arrived while a
    sibling was starting, stopped or replaced would otherwise stay where they landed for as
    long as their clients keep them (a proxy's pool: hours)."""
    if isinstance(worker, BalancedAccept) and worker._may_shed and closes_cleanly(req):
        if worker.crowded():
            req.must_close = True


def closes_cleanly(req: Any) -> bool:
    """Whether closing after this request's response loses nothing: not a request that
    closes anyway (it would use up a turn moving nothing), nor one with a body or an
    `Expect` (the client may still be sending it when the connection closes), nor one with
    bytes read past it (pipelined requests, which would go unanswered)."""
    if req.should_close() or req.unreader.buf.getvalue():
        return False
    for name, value in req.headers:
        if name == "EXPECT" or name == "TRANSFER-ENCODING":
            return False
        if name == "CONTENT-LENGTH" and value.strip() != "0":
            return False
    return True


def give_slot(arbiter: Any, worker: Any) -> None:
    """gunicorn `pre_fork` (in the master): the worker about to be forked gets a record of
    the shared table that no live worker holds."""
    board = getattr(type(worker), "board", None)
    # With reuse_port each worker has a socket of its own, and the kernel picks the socket:
    # a connection sent to one that waits for its siblings would wait there. No part then.
    if board is not None and not arbiter.cfg.reuse_port:
        taken = (getattr(other, "balance_slot", None) for other in arbiter.WORKERS.values())
        worker.balance_slot = board.free_slot(slot for slot in taken if slot is not None)
