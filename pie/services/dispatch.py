"""Durable dispatch: claim a pending job, hand it to its handler type, record what happened;
and the recovery loop that re-dispatches jobs a crash left pending. The claims themselves
(who may dispatch or run a job, and their conditional writes) are pie/services/claims.py."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pie import counts, db, metrics
from pie.daemon_pool import DaemonPool
from pie.db import database
from pie.errors import PieError
from pie.handler_types import DispatchDeferred
from pie.services import control, jobs, policy, processes
from pie.services.batched_dispatch import BatchedDispatch
from pie.services.claims import (
    LEASE_SECONDS,
    claim,
    holds,
    mark_started,
    recoverable,
    release,
    requeue,
    retake,
    stalled,
)
from pie.tables import Job, ModelVersion, utcnow

if TYPE_CHECKING:
    from pie.runtime import Runtime

log = logging.getLogger(__name__)

# A job whose process dies while running it is dispatched at most this many times in all.
MAX_ATTEMPTS = 3


class Dispatcher(BatchedDispatch):
    """Dispatches jobs on a small thread pool after their rows commit."""

    def __init__(self, runtime: Runtime, workers: int = 4) -> None:
        self.runtime = runtime
        self.workers = workers
        self._pool: DaemonPool | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._recovery: threading.Thread | None = None
        self._batches: dict[str, list[Job]] = {}  # batching type -> its jobs waiting
        self._draining: set[str] = set()  # batching types with a thread sending their jobs

    def claim_columns(
        self, version: ModelVersion | None = None, job_type: str | None = None
    ) -> dict[str, Any]:
        """The claim a new job's row takes at its insert when this process dispatches it after
        commit: the dispatch then needs neither a claim write nor a read of the row (see
        `submit`). None before this process registered (its first dispatch registers it) or
        once it is stopping; then the job is claimed when dispatched, as any other.

        With the job's `version` and `job_type`, a job whose type would run it at once here
        (`HandlerType.start_lease`) is also started by its insert: one write where the
        type's own start was a second, each waiting for the one writer lock. Only an insert
        that commits by itself: a transaction may insert many jobs (a domain's services
        re-initialised) and dispatches them only when it commits, later."""
        owner = self.runtime.registration.id
        if owner is None or self._stop.is_set():
            return {}
        now = utcnow()
        lease = self.runtime.config.get("PIE_DISPATCH_LEASE_SECONDS", LEASE_SECONDS)
        columns = {
            "claimed_by": owner,
            "claimed_until": now + timedelta(seconds=lease),
            "dispatch_attempts": 1,
        }
        if version is not None and job_type is not None and not database.in_transaction():
            handler_type = self.runtime.handler_types.get(version.handlers[job_type]["type"])
            run_lease = handler_type.start_lease() if handler_type is not None else None
            if run_lease and handler_type is not None and handler_type.starts_itself:
                stored = policy.of_type(version.job_policy, job_type)
                columns.update(
                    status="started",
                    started_at=now,
                    claimed_until=now + timedelta(seconds=run_lease),
                    **control.clock_fields(stored, self.runtime.config, now),
                )
        return columns

    def submit(self, jobs: list[str] | list[Job]) -> None:
        """Dispatch these jobs (ids, or rows as inserted) once the current transaction
        commits (at once outside one); nothing is dispatched if it rolls back."""
        if jobs:
            database.after_commit(lambda: self._submit_now(jobs))

    def _submit_now(self, jobs: list[str] | list[Job]) -> None:
        owner = self.runtime.registration.id
        inline: list[str | Job] = []
        queued: list[str | Job] = []
        batched: list[Job] = []
        for job in jobs:
            if self._inline(job, owner):
                inline.append(job)
            elif self._batched(job, owner):
                batched.append(job)  # type: ignore[arg-type]
            else:
                queued.append(job)
        with self._lock:
            if self._stop.is_set():  # shutting down: the rows are durable, recovery sends them
                log.info("shutting down; %d job(s) left pending for recovery", len(jobs))
                return
            if (queued or batched) and self._pool is None:
                self._pool = DaemonPool(self.workers, "pie-dispatch")
            for job in queued:
                self._pool.submit(self._dispatch_logged, job)
            for job in batched:
                self._batches.setdefault(job.handler_type, []).append(job)
            for name in {job.handler_type for job in batched} - self._draining:
                self._draining.add(name)
                self._pool.submit(self._drain, name)
        for job in inline:  # no I/O: on this thread, right after the commit
            self._dispatch_logged(job)

    def _inline(self, job: str | Job, owner: str | None) -> bool:
        """Whether to dispatch on this thread: a row inserted with this process's claim,
        of a type whose dispatch only queues it here."""
        if isinstance(job, str) or not holds(job, owner):
            return False
        handler_type = self.runtime.handler_types.get(job.handler_type)
        return handler_type is not None and handler_type.dispatches_inline

    def _dispatch_logged(self, job: str | Job) -> None:
        try:
            with db.connection():
                self.dispatch(job)
        except Exception:  # a background thread must never die silently
            job_id = job if isinstance(job, str) else job.job_id
            log.exception(
                "dispatch of job %s failed unexpectedly", job_id, extra={"job_id": job_id}
            )

    def dispatch(self, job: str | Job) -> bool:
        """Dispatch one job if this caller wins its claim; returns whether it did.

        A row inserted with this process's claim (`claim_columns`) needs no re-read. Its
        claim may have been voided meanwhile (this process taken for dead, the job given to
        another), so before a backend is handed it the claim is confirmed, conditionally,
        as still this process's (`retake`, which also renews it). Only a type that starts
        its jobs itself goes without that write while the claim has time left: its start
        (`mark_started`) is conditional on the claim, so a voided one never runs."""
        owner = self.runtime.registration.ensure()
        lease = self.runtime.config.get("PIE_DISPATCH_LEASE_SECONDS", LEASE_SECONDS)
        if isinstance(job, str) or owner is None or job.claimed_by != owner:
            job_id = job if isinstance(job, str) else job.job_id
            if not claim(job_id, lease, owner):
                return False
            job = jobs.get_job(job_id)
        else:
            known = self.runtime.handler_types.get(job.handler_type)
            starts_itself = known is not None and known.starts_itself
            ours = holds(job, owner) or job.status == "started"  # started by its insert
            if not (starts_itself and ours) and not retake(job, lease, owner):
                return False  # voided and another's now, or no longer pending
        handler_type = self.runtime.handler_types.get(job.handler_type)
        try:
            if handler_type is None:
                raise LookupError(f"handler type '{job.handler_type}' is not loaded")
            payload = jobs.payload(self.runtime, job, handler_type.needs_callback_token)
            external_id = handler_type.dispatch(job.handler, job, payload)
        except Exception as exc:
            return self._not_handed(job, exc, owner)
        if not handler_type.starts_itself and not mark_started(
            job.job_id, external_id, job=job, config=self.runtime.config
        ):
            self._not_started(job, external_id)
        self._handed(job, external_id)
        return True

    def _not_handed(self, job: Job, exc: Exception, owner: str | None) -> bool:
        """A dispatch that raised: deferred (the job stays pending, its claim given back),
        or failed (the attempt fails retryably). Returns whether the job was dealt with."""
        if isinstance(exc, DispatchDeferred):
            log.info(
                "job %s: dispatch deferred (%s); left pending for recovery",
                job.job_id,
                exc,
                extra={"job_id": job.job_id, "handler_type": job.handler_type},
            )
            metrics.dispatched(job.job_type, job.handler_type, "deferred")
            release(job.job_id, owner)
            return False
        log.warning(
            "job %s: dispatch to %s failed: %s",
            job.job_id,
            job.handler_type,
            exc,
            extra={"job_id": job.job_id, "handler_type": job.handler_type},
        )
        metrics.dispatched(job.job_type, job.handler_type, "failed")
        self.fail(job, exc)
        return True

    def _not_started(self, job: Job, external_id: str | None) -> None:
        """The backend has a job that was not pending any more when it was to be marked
        started: if PIE ended it meanwhile (cancelled), the backend is told to stop it."""
        now = jobs.get_job(job.job_id)
        if control.ended_by_pie(now):
            control.stop_on_backend(self.runtime, now, external_id, now.error["type"])

    def _handed(self, job: Job, external_id: str | None, batch: int = 1) -> None:
        log.info(
            "job %s dispatched to %s (external id %s)",
            job.job_id,
            job.handler_type,
            external_id,
            extra={
                "job_id": job.job_id,
                "handler_type": job.handler_type,
                "external_id": external_id,
                "batch": batch,  # how many jobs went to the backend together
            },
        )
        metrics.dispatched(job.job_type, job.handler_type, "dispatched")

    def fail(self, job: Job, exc: Exception) -> None:
        self._fail(
            job,
            "DispatchError",
            f"dispatch to '{job.handler_type}' failed: "
            + (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__),
        )

    def _fail(self, job: Job, error_type: str, message: str) -> None:
        """End the job's attempt with an error of PIE's own: a retry while attempts remain."""
        try:
            self.runtime.complete_job(
                job.job_id,
                "failure",
                error={"type": error_type, "message": message},
                attempt=job.attempt,
                retryable=True,
            )
        except PieError as conflict:  # it was completed meanwhile; nothing to record
            log.info("job %s: %s", job.job_id, conflict.message, extra={"job_id": job.job_id})

    def recover_stalled(self) -> int:
        """Jobs whose process died while running them: re-run them (same job_id) until
        MAX_ATTEMPTS dispatches, then fail them with a clear error."""
        done = 0
        for job in stalled():
            if job.dispatch_attempts >= MAX_ATTEMPTS:
                self.fail_interrupted(job)
            elif requeue(job):
                done += self.dispatch(job.job_id)
        return done

    def fail_interrupted(self, job: Job) -> None:
        self._fail(
            job,
            "Interrupted",
            f"the PIE process running this job stopped before it finished, "
            f"{job.dispatch_attempts} time(s)",
        )

    def recover_once(self) -> int:
        """Re-dispatch jobs a crash left pending or stalled; safe in many processes at once.
        The claims of processes taken for dead are voided first: their pending jobs are
        dispatched again at once, without the grace period, their running ones are stalled."""
        grace = self.runtime.config["PIE_DISPATCH_GRACE_SECONDS"]
        with db.connection():
            voided = processes.void_dead(self.runtime.config["PIE_PROCESS_TIMEOUT_SECONDS"])
            done = self.recover_stalled()
            done += control.expire_overdue(self.runtime)
            done += sum(self.dispatch(job_id) for v in voided for job_id in v.pending)
            done += sum(self.dispatch(job_id) for job_id in recoverable(grace))
            try:
                counts.fold(db.database.obj)
            except Exception:  # list totals stay right without it, only slower to sum
                log.warning("could not fold ended connections' row counters", exc_info=True)
        if done:
            log.info("recovery loop re-dispatched %d job(s)", done, extra={"redispatched": done})
        metrics.recovery_pass(done)
        return done

    def run_recovery(self, interval: float | None = None) -> None:
        interval = interval or self.runtime.config["PIE_RECOVERY_INTERVAL_SECONDS"]
        while not self._stop.is_set():
            try:
                self.runtime.registration.ensure()  # this process claims from now on
                self.recover_once()
            except Exception:
                log.exception("recovery loop iteration failed; retrying")
                metrics.recovery_pass(0, ok=False)
            self._stop.wait(interval)

    def stop(self) -> None:
        """Ask the recovery loop to end after its current pass."""
        self._stop.set()

    def start_recovery(self) -> None:
        if self._recovery is None:
            self._recovery = threading.Thread(
                target=self.run_recovery, name="pie-recovery", daemon=True
            )
            self._recovery.start()

    def close(self) -> None:
        with self._lock:
            self._stop.set()
        if self._recovery is not None:
            self._recovery.join(timeout=10)
        if self._pool is not None:
            grace = self.runtime.config.get("PIE_SHUTDOWN_GRACE_SECONDS", 30)
            busy = self._pool.shutdown(timeout=grace)
            if busy:
                log.warning(
                    "%d dispatch(es) still running %gs after shutdown began (a handler "
                    "type's dispatch is blocked); their jobs are left to the recovery loop",
                    busy,
                    grace,
                )
