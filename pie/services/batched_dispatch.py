"""Batched dispatch, the part of the Dispatcher (pie/services/dispatch.py) for handler types
with `dispatches_in_batches`: the jobs this process inserted with its claim queue per type,
one dispatch thread drains them, and the jobs that queued up while a dispatch was out go to
the type together, with one claim write and one start write for the batch."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pie import db
from pie.daemon_pool import DaemonPool
from pie.services import jobs
from pie.services.claims import LEASE_SECONDS, holds, mark_started, retake
from pie.tables import Job
from pie.writer_lock import admitted

if TYPE_CHECKING:
    from pie.runtime import Runtime

log = logging.getLogger("pie.services.dispatch")

# The most jobs one `dispatch_many` call is handed (HandlerType.dispatches_in_batches).
BATCH_LIMIT = 100


class BatchedDispatch:
    """Mixed into the Dispatcher, whose state and single-job steps it uses."""

    runtime: Runtime
    _lock: threading.Lock
    _stop: threading.Event
    _pool: DaemonPool | None
    _batches: dict[str, list[Job]]
    _draining: set[str]
    _dispatch_logged: Callable[[str | Job], None]
    _not_handed: Callable[[Job, Exception, str | None], bool]
    _not_started: Callable[[Job, str | None], None]
    _handed: Callable[..., None]

    def _batched(self, job: str | Job, owner: str | None) -> bool:
        """Whether to dispatch in a batch: a row inserted with this process's claim, of a
        type that sends batches (and does not start its jobs itself)."""
        if isinstance(job, str) or not holds(job, owner):
            return False
        handler_type = self.runtime.handler_types.get(job.handler_type)
        return (
            handler_type is not None
            and handler_type.dispatches_in_batches
            and not handler_type.starts_itself
        )

    def _drain(self, name: str) -> None:
        """One dispatch thread sends a batching type's queued jobs, a batch at a time: what
        queued up while a batch was out goes in the next one."""
        try:
            while True:
                with self._lock:
                    queued = self._batches.get(name, [])
                    batch, self._batches[name] = queued[:BATCH_LIMIT], queued[BATCH_LIMIT:]
                    if not batch:
                        return
                try:
                    with db.connection():
                        self.dispatch_batch(batch)
                except Exception:  # a background thread must never die silently
                    log.exception(
                        "dispatch of %d %s job(s) failed unexpectedly; left to the recovery loop",
                        len(batch),
                        name,
                        extra={"handler_type": name, "job_ids": [job.job_id for job in batch]},
                    )
        finally:  # however it ends, the next submit starts a drain again
            with self._lock:
                self._draining.discard(name)

    def dispatch_batch(self, batch: list[Job]) -> None:
        """Dispatch rows of one batching type (`HandlerType.dispatches_in_batches`) that this
        process inserted with its claim. As `dispatch` does for each, with one conditional
        claim write for the batch before the backend is handed it, one `dispatch_many`, and
        one start write for those it took. A row whose claim is no longer this process's,
        or a batch whose claim write or `dispatch_many` fails, goes job by job (`dispatch`
        confirms or takes each claim again)."""
        owner = self.runtime.registration.ensure()
        handler_type = self.runtime.handler_types.get(batch[0].handler_type)
        mine = sorted(
            (job for job in batch if owner is not None and job.claimed_by == owner),
            key=lambda job: job.job_id,  # rows locked in one order by every batch
        )
        self._one_by_one([job for job in batch if owner is None or job.claimed_by != owner])
        if len(mine) < 2 or handler_type is None or owner is None:
            for job in mine:  # alone: at once, on this thread (what queues meanwhile waits)
                self._dispatch_logged(job)
            return
        lease = self.runtime.config.get("PIE_DISPATCH_LEASE_SECONDS", LEASE_SECONDS)
        try:
            with db.transaction():  # the claims, confirmed in one turn of the writer
                taken = [job for job in mine if retake(job, lease, owner)]
        except Exception:
            log.warning("batch claim failed; dispatching one by one", exc_info=True)
            self._one_by_one(mine)
            return
        items, ready = [], []
        for job in taken:
            try:
                payload = jobs.payload(self.runtime, job, handler_type.needs_callback_token)
            except Exception as exc:
                self._guarded(job, self._not_handed, job, exc, owner)
                continue
            items.append((job.handler, job, payload))
            ready.append(job)
        if not items:
            return
        try:
            outcomes = handler_type.dispatch_many(items)
            if len(outcomes) != len(items):
                raise TypeError(f"{len(outcomes)} outcomes for {len(items)} jobs")
        except Exception:
            log.warning(
                "batch dispatch of %d job(s) to %s failed; dispatching them one by one",
                len(items),
                handler_type.name,
                exc_info=True,
                extra={"handler_type": handler_type.name},
            )
            self._one_by_one(ready)
            return
        handed = [
            (job, outcome)
            for job, outcome in zip(ready, outcomes, strict=True)
            if not isinstance(outcome, Exception)
        ]
        # What the backend has is marked started first; then each job's own aftermath, one
        # job's trouble not another's.
        not_started = self._start_all(handed)
        for job, outcome in zip(ready, outcomes, strict=True):
            if isinstance(outcome, Exception):
                self._guarded(job, self._not_handed, job, outcome, owner)
        for job, external_id in not_started:
            self._guarded(job, self._not_started, job, external_id)
        for job, external_id in handed:
            self._guarded(job, self._handed, job, external_id, len(items))

    def _one_by_one(self, batch: list[Job]) -> None:
        """Each job dispatched alone, on the dispatch threads side by side as unbatched jobs
        go (here, once shutting down: the pool takes nothing more)."""
        with self._lock:
            pool = None if self._stop.is_set() else self._pool
            for job in batch if pool is not None else ():
                pool.submit(self._dispatch_logged, job)
        for job in batch if pool is None else ():
            self._dispatch_logged(job)

    def _guarded(self, job: Job, step: Callable[..., Any], *args: Any) -> None:
        """One job's step of a batch: if it raises, it is logged and the others go on."""
        try:
            step(*args)
        except Exception:
            log.exception(
                "job %s: recording its dispatch failed", job.job_id, extra={"job_id": job.job_id}
            )

    def _start_all(self, handed: list[tuple[Job, str | None]]) -> list[tuple[Job, str | None]]:
        """Mark the handed jobs started in one transaction (each conditionally, as
        `dispatch` does; one failing statement, a deadlock victim, say, makes it one by
        one); returns those that were not moved from pending."""
        config = self.runtime.config

        def not_started(job: Job, external_id: str | None) -> bool:
            return not mark_started(job.job_id, external_id, job=job, config=config)

        if not handed:
            return []
        try:
            with admitted(), db.transaction():
                return [(job, external) for job, external in handed if not_started(job, external)]
        except Exception:
            log.warning("batch start failed; starting one by one", exc_info=True)
        left = []
        for job, external_id in handed:
            try:
                if not_started(job, external_id):
                    left.append((job, external_id))
            except Exception:  # left pending with its claim: recovery's, once it lapses
                log.exception(
                    "job %s: could not be marked started", job.job_id, extra={"job_id": job.job_id}
                )
        return left
