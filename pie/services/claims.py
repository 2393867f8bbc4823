"""Claims on jobs: who may dispatch a pending job, who runs a started one, and the
conditional writes that take, confirm, renew, give back and recover them (the Dispatcher,
pie/services/dispatch.py, drives them).

Each claim and in-process lease names its owner (`claimed_by`, this process's id in the
process registry, pie/services/processes.py). The owner's own later writes to the job are
conditional on still owning it, so a process whose claims were voided (taken for dead) does
not start, renew or give back a job that is now another's."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pie import db
from pie.rows import equal, update_row
from pie.services import control, jobs, outbox
from pie.tables import Job, utcnow
from pie.writer_lock import admitted_work

# How long a claim protects a dispatch in progress (PIE_DISPATCH_LEASE_SECONDS); after it,
# recovery may dispatch again. Backend calls time out well within it.
LEASE_SECONDS = 60
RECOVERY_BATCH = 100


def owned_by(owner: str | None) -> Any:
    """The condition that `owner` (None: no one) holds a job's claim."""
    return Job.claimed_by.is_null() if owner is None else Job.claimed_by == owner


def claim(job_id: str, lease_seconds: float = LEASE_SECONDS, owner: str | None = None) -> bool:
    """Take the right to dispatch a pending job. The conditional UPDATE is atomic on both
    backends, so of several racing workers exactly one sees a changed row."""
    now = utcnow()
    claimed = (
        Job.update(
            claimed_until=now + timedelta(seconds=lease_seconds),
            claimed_by=owner,
            dispatch_attempts=Job.dispatch_attempts + 1,
        )
        .where(
            (Job.job_id == job_id)
            & (Job.status == "pending")
            & (Job.claimed_until.is_null() | (Job.claimed_until < now))
        )
        .execute()
    )
    return claimed == 1


# A claim taken at insert is dispatched without a claim write only while this much of it is
# left; an older one (a queue that stalled) is claimed again, conditionally, as any other.
HELD_MARGIN = timedelta(seconds=5)


def holds(job: Job, owner: str | None) -> bool:
    """Whether this row, as inserted, carries `owner`'s claim with time left on it."""
    return (
        owner is not None
        and job.claimed_by == owner
        and job.claimed_until is not None
        and job.claimed_until > utcnow() + HELD_MARGIN
    )


def retake(job: Job, lease_seconds: float, owner: str) -> bool:
    """Confirm and renew `owner`'s claim on a pending job it inserted claimed (one
    conditional UPDATE); False when the claim was voided, or the job is no longer pending.
    The claim must be the one the row was inserted with: a claim taken since (recovery's,
    even this process's own once it registered again, counts one more dispatch attempt)
    belongs to whoever took it, and that one dispatches the job."""
    until = utcnow() + timedelta(seconds=lease_seconds)
    if update_row(
        Job,
        {"claimed_until": until},
        job_id=job.job_id,
        status="pending",
        claimed_by=owner,
        dispatch_attempts=job.dispatch_attempts,
    ):
        job.claimed_until = until
        return True
    return False


def release(job_id: str, owner: str | None = None) -> None:
    """Give a claim back so the recovery loop may dispatch the job again at once (if it is
    still this owner's)."""
    Job.update(claimed_until=None, claimed_by=None).where(
        (Job.job_id == job_id) & (Job.status == "pending") & owned_by(owner)
    ).execute()


@admitted_work
def mark_started(
    job_id: str,
    external_id: str | None = None,
    lease_seconds: float | None = None,
    owner: str | None = None,
    job: Job | None = None,
    config: Mapping[str, Any] | None = None,
    restart: bool = False,
) -> bool:
    """Record that the backend has the job; returns whether this call moved it from pending.
    With a lease (in-process jobs) this process runs it, only if it still owns the claim, and
    must keep renewing the lease; a lease that runs out, or an owner taken for dead, means
    the process died (see `stalled`). Without one the job runs elsewhere and is no one's.
    With the job row and the settings, the attempt gets its deadline (its policy's timeout
    from now), and only that attempt of the job is started. `restart`: a job its insert
    started (HandlerType.start_lease) that then had to wait for a worker: its clocks start
    again now, if it is still this attempt's, `started` and this owner's (not cancelled, not
    timed out, not taken over); its job.started event was written with its insert."""
    now = utcnow()
    if config is not None and job is None:  # a handler type that starts jobs itself
        job = Job.get_or_none(Job.job_id == job_id)
    fields: dict[str, Any] = {"status": "started", "started_at": now}
    if external_id is not None:
        fields["external_id"] = external_id
    where: dict[str, Any] = {"job_id": job_id, "status": "started" if restart else "pending"}
    if lease_seconds:
        fields["claimed_until"] = now + timedelta(seconds=lease_seconds)
    else:
        fields.update(claimed_until=None, claimed_by=None)
    if job is not None and config is not None:
        fields.update(control.start_fields(job, config, now))
        where["attempt"] = job.attempt
    watched = not restart and outbox.has_receivers("job.started")
    # One UPDATE is atomic by itself; with an endpoint for job.started, its event commits
    # with the change.
    with db.transaction() if watched else contextlib.nullcontext():
        if lease_seconds and owner is None:  # a closed registration: unowned claims only
            condition = equal(Job, where) & owned_by(None)
            started = Job.update(**fields).where(condition).execute() == 1
        else:
            if lease_seconds:
                where["claimed_by"] = owner
            started = update_row(Job, fields, **where) == 1
        if started and watched:
            outbox.emit("job.started", *outbox.job_event(jobs.get_job(job_id)))
    if external_id is not None and not started:
        # Not started here (cancelled meanwhile, or another's): the id is still the
        # attempt's own, for a cancel to stop; an earlier attempt's dispatch returning late
        # must not replace the id of the attempt that runs now.
        this_attempt = Job.job_id == job_id
        if job is not None:
            this_attempt &= Job.attempt == job.attempt
        Job.update(external_id=external_id).where(this_attempt).execute()
    return started


def renew_leases(attempts: dict[str, int], lease_seconds: float, owner: str | None = None) -> None:
    """Heartbeat of a process that holds these jobs (id: the attempt it holds, queued or
    running), for those it still owns, in that attempt: a later attempt of a job (a retry
    after a timeout, while the old run goes on) is not this process's to renew."""
    by_attempt: dict[int, list[str]] = {}
    for job_id, attempt in attempts.items():
        by_attempt.setdefault(attempt, []).append(job_id)
    until = utcnow() + timedelta(seconds=lease_seconds)
    for attempt, job_ids in by_attempt.items():
        Job.update(claimed_until=until).where(
            Job.job_id.in_(job_ids)
            & (Job.attempt == attempt)
            & Job.status.in_(("pending", "started"))
            & owned_by(owner)
        ).execute()


def ended_attempts(attempts: dict[str, int]) -> set[str]:
    """Of these jobs (id: the attempt running here), those whose attempt is over: the job
    ended (cancelled, timed out, completed elsewhere) or moved on to a later attempt."""
    if not attempts:
        return set()
    query = Job.select(Job.job_id, Job.status, Job.attempt).where(Job.job_id.in_(list(attempts)))
    return {
        row.job_id
        for row in query
        if row.status in jobs.TERMINAL or row.attempt != attempts[row.job_id]
    }


def stalled(limit: int = RECOVERY_BATCH) -> list[Job]:
    """Started jobs whose running process stopped renewing its lease (it died)."""
    return list(
        Job.select()
        .where(
            (Job.status == "started")
            & Job.claimed_until.is_null(False)
            & (Job.claimed_until < utcnow())
        )
        .order_by(Job.created_at)
        .limit(limit)
    )


def requeue(job: Job) -> bool:
    """Put a stalled job back to pending (conditionally: one recoverer wins)."""
    return (
        Job.update(
            status="pending", claimed_until=None, claimed_by=None, deadline_at=None, expires_at=None
        )
        .where(
            (Job.job_id == job.job_id) & (Job.status == "started") & (Job.claimed_until < utcnow())
        )
        .execute()
        == 1
    )


def recoverable(grace_seconds: int, limit: int = RECOVERY_BATCH) -> list[str]:
    """Pending jobs older than the grace period whose claim (if any) has expired; a retry's
    claim is its backoff, and it needs no grace (its first dispatch is long past)."""
    now = utcnow()
    query = (
        Job.select(Job.job_id)
        .where(
            (Job.status == "pending")
            & ((Job.created_at < now - timedelta(seconds=grace_seconds)) | (Job.attempt > 1))
            & (Job.claimed_until.is_null() | (Job.claimed_until < now))
        )
        .order_by(Job.created_at)
        .limit(limit)
    )
    return [row.job_id for row in query]
