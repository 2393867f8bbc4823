"""This process's registration in `pie_processes` (see pie/services/processes.py): made
lazily, at the first claim or when background work starts (never at import, so `pie --help`
and `pie token` create nothing), renewed from a daemon thread, removed on a clean stop.

A registration belongs to the process that made it: a child forked from a registered process
(a gunicorn worker from its master) inherits neither the id nor the thread, and registers
itself when it first needs to."""

from __future__ import annotations

import logging
import os
import threading
import weakref

from pie import db
from pie.ids import uuid7
from pie.services import processes

log = logging.getLogger(__name__)

_ALL: weakref.WeakSet[Registration] = weakref.WeakSet()


class Registration:
    def __init__(self, kind: str, interval: float) -> None:
        self.kind = kind
        self.interval = interval
        self._closed = False
        self._reset()
        _ALL.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()  # a fresh one in a child: another thread may hold it
        self._id: str | None = None
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def id(self) -> str | None:
        """This process's id, or None before it registered."""
        return self._id if self._pid == os.getpid() else None

    def ensure(self) -> str | None:
        """Register once and start the heartbeat; this process's id (None once closed: its
        claims then carry no owner and only their leases protect them)."""
        current = self.id
        if current is not None or self._closed:
            return current
        with self._lock:
            if self._closed or self.id is not None:
                return self.id
            process_id = uuid7()
            with db.connection():
                processes.register(process_id, self.kind)
            self._id, self._pid = process_id, os.getpid()
            self._thread = threading.Thread(
                target=self._beat,
                args=(process_id, self._stop),
                name="pie-process-heartbeat",
                daemon=True,
            )
            self._thread.start()
        log.info(
            "registered as process %s (%s, pid %d)",
            process_id,
            self.kind,
            os.getpid(),
            extra={"process_id": process_id},
        )
        return process_id

    def _beat(self, process_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                with db.connection():
                    if processes.heartbeat(process_id) or stop.is_set():
                        continue
                    # The row is gone: a recovery loop took this process for dead (its heartbeat
                    # lapsed) and voided its claims. Its later writes to those jobs fail; it goes
                    # on under the same id, so claims made since are covered again.
                    log.warning(
                        "this process (%s) was taken for dead, its heartbeat having lapsed; its "
                        "claimed jobs are dispatched again elsewhere; registering again",
                        process_id,
                        extra={"process_id": process_id},
                    )
                    processes.register(process_id, self.kind)
            except Exception:
                log.warning("could not renew this process's heartbeat; retrying", exc_info=True)

    def close(self) -> None:
        """Stop the heartbeat and remove the row (a clean stop); pending jobs still claimed
        here are given back at once."""
        with self._lock:
            self._closed = True
            process_id, thread = self.id, self._thread
            self._stop.set()
        if process_id is None:
            return
        if thread is not None:
            thread.join(timeout=5)
        try:
            with db.connection():
                released = processes.unregister(process_id)
        except Exception:
            log.warning(
                "could not remove this process's registration; it is taken for dead after "
                "PIE_PROCESS_TIMEOUT_SECONDS",
                exc_info=True,
            )
            return
        if released:
            log.info(
                "process %s stopped; %d queued job(s) given back for dispatch",
                process_id,
                released,
                extra={"process_id": process_id, "released": released},
            )


def _forget_after_fork() -> None:
    for registration in list(_ALL):
        registration._reset()


os.register_at_fork(after_in_child=_forget_after_fork)
