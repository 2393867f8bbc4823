"""The lock a process's threads queue on for SQLite's one writer, with work already admitted
first: a job's start and its completion go before a new job, a new version or any other
write that adds work, so that under load jobs finish instead of piling up behind new ones.

Without it (a plain lock, whichever waiter the scheduler wakes) a burst of requests kept
the in-process pool's starts and completions waiting: in bench.jobs on a 2-core machine a
job's created → completed p99 was 87–104 ms, and 53–64 ms with it, at the same rate. A
strict queue was worse (every hand-off waits for its new owner to be scheduled). Here the
first class goes ahead of waiting writers of the second, but only `streak` times in a row
while one of them waits: then a waiting second-class writer is next, so new work slows down
but never starves (a completion that records nothing, a 404 or a 409, goes first too: its
transaction takes the writer before it reads; the streak bounds what that costs others).

`admitted()` marks the current thread's writes as first-class for the duration."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_admitted = threading.local()


def is_admitted() -> bool:
    return getattr(_admitted, "on", False)


@contextmanager
def admitted() -> Iterator[None]:
    """Writes on this thread inside the block are work already admitted (first class)."""
    before = is_admitted()
    _admitted.on = True
    try:
        yield
    finally:
        _admitted.on = before


def admitted_work(fn: F) -> F:
    """Decorator: `fn`'s writes are work already admitted (see `admitted`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with admitted():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class WriterLock:
    """A mutual-exclusion lock with two classes of waiters (see the module's docstring).
    Not reentrant; `acquire` blocks without a timeout, as threading.Lock's does."""

    def __init__(self, streak: int = 4) -> None:
        mutex = threading.Lock()
        self._first = threading.Condition(mutex)  # admitted work waits here
        self._rest = threading.Condition(mutex)
        self._held = False
        self._first_waiting = 0
        self._rest_waiting = 0
        self._streak = 0  # first-class grants in a row while a second-class writer waited
        self.streak = streak

    def _first_may(self) -> bool:
        return not self._held and not (self._rest_waiting and self._streak >= self.streak)

    def _rest_may(self) -> bool:
        return not self._held and not (self._first_waiting and self._streak < self.streak)

    def acquire(self, first: bool | None = None) -> None:
        """Take the lock; `first` (default: whether the thread is in `admitted()`)."""
        if first is None:
            first = is_admitted()
        if first:
            with self._first:
                self._first_waiting += 1
                try:
                    while not self._first_may():
                        self._first.wait()
                except BaseException:
                    self._first_waiting -= 1
                    self._wake()  # pass on a notification this thread may have taken
                    raise
                self._first_waiting -= 1
                self._held = True
                self._streak = self._streak + 1 if self._rest_waiting else 0
        else:
            with self._rest:
                self._rest_waiting += 1
                try:
                    while not self._rest_may():
                        self._rest.wait()
                except BaseException:
                    self._rest_waiting -= 1
                    self._wake()  # pass on a notification this thread may have taken
                    raise
                self._rest_waiting -= 1
                self._held = True
                self._streak = 0

    def release(self) -> None:
        with self._first:
            if not self._held:
                raise RuntimeError("release of an unheld WriterLock")
            self._held = False
            self._wake()

    def _wake(self) -> None:
        # Wake one waiter that may take it now; a thread arriving meanwhile may take it
        # first, and its release wakes the next.
        if self._held:
            return
        if self._first_waiting and self._first_may():
            self._first.notify()
        elif self._rest_waiting:
            self._rest.notify()

    def locked(self) -> bool:
        return self._held
