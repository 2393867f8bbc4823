"""A fixed pool of daemon threads whose shutdown is bounded: a task that never returns (a
plugin's dispatch blocked on a dead backend) cannot hold up a process's exit, as it would in
concurrent.futures, whose threads are joined at interpreter exit whatever their state."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

_STOP = object()


class DaemonPool:
    def __init__(self, workers: int, name: str) -> None:
        self._tasks: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}_{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._tasks.put((fn, args))

    def _run(self) -> None:
        while True:
            task = self._tasks.get()
            if task is _STOP:
                return
            fn, args = task
            fn(*args)  # the caller's function logs its own failures

    def shutdown(self, timeout: float) -> int:
        """Finish the queued tasks within `timeout` seconds; return how many threads are
        still busy then (they are left running, as daemons)."""
        for _ in self._threads:
            self._tasks.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return sum(thread.is_alive() for thread in self._threads)
