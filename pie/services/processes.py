"""The process registry: each PIE process that claims jobs has a row in `pie_processes` whose
`heartbeat_at` it renews, and each claim names its owner (`jobs.claimed_by`). A process whose
heartbeat is older than PIE_PROCESS_TIMEOUT_SECONDS is taken for dead: the recovery loop
voids its claims at once instead of waiting for their leases to run out.

Every write is conditional, so recovery loops racing over one dead process settle each job
once, and a process that was only slow (a long pause, a stalled database) finds its claims
gone: its own later writes are conditional on `claimed_by` still naming it."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pie import db, metrics
from pie.tables import Job, Process, utcnow

log = logging.getLogger(__name__)


def register(process_id: str, kind: str) -> None:
    now = utcnow()
    Process.insert(
        id=process_id,
        hostname=socket.gethostname()[:255],
        pid=os.getpid(),
        kind=kind,
        started_at=now,
        heartbeat_at=now,
    ).execute()


def registered(limit: int) -> list[Process]:
    """The registered processes, oldest first."""
    return list(Process.select().order_by(Process.started_at, Process.id).limit(limit))


def heartbeat(process_id: str) -> bool:
    """Renew the row; False when it is gone (another process took this one for dead)."""
    return Process.update(heartbeat_at=utcnow()).where(Process.id == process_id).execute() == 1


def unregister(process_id: str) -> int:
    """A clean stop: delete the row and give back the pending jobs still claimed (queued here,
    never started), which any recovery loop then dispatches once they are past the grace
    period, not after their lease; how many. The row goes first, in the order in which
    `void` takes the same locks."""
    with db.transaction():
        Process.delete().where(Process.id == process_id).execute()
        return (
            Job.update(claimed_until=None, claimed_by=None)
            .where((Job.claimed_by == process_id) & (Job.status == "pending"))
            .execute()
        )


@dataclass
class Voided:
    """The claims of one dead process, voided."""

    owner: str
    row: Process | None  # its registration, when this call removed it
    pending: list[str] = field(default_factory=list)  # to dispatch again at once
    started: int = 0  # in-process runs, now stalled: re-run or Interrupted


def unregistered() -> Any:
    """The condition that a job's owner has no row (it stopped, or was taken for dead)."""
    return Job.claimed_by.not_in(Process.select(Process.id))


def orphan_owners() -> Any:
    """The owners of claims that have no row. Only open jobs have an owner (completion and
    requeueing clear it), so this reads the few rows of the partial index `jobs_claimed_by`."""
    return (
        Job.select(Job.claimed_by).distinct().where(Job.claimed_by.is_null(False) & unregistered())
    )


def claims_of(owner: str, status: str) -> Any:
    """The condition that a job of this status is claimed by an owner without a row."""
    return (Job.claimed_by == owner) & unregistered() & (Job.status == status)


def dead_owners(timeout: float) -> tuple[datetime, dict[str, Process | None]]:
    """The cutoff, and the processes taken for dead: those whose heartbeat is older than it,
    and owners of claims that have no row at all (removed by a clean stop or by another
    recovery loop after they claimed: a process registers before its first claim)."""
    cutoff = utcnow() - timedelta(seconds=timeout)
    dead: dict[str, Process | None] = {
        row.id: row for row in Process.select().where(Process.heartbeat_at < cutoff)
    }
    for job in orphan_owners():
        dead.setdefault(job.claimed_by, None)
    return cutoff, dead


def void(owner: str, cutoff: datetime, row: Process | None = None) -> Voided | None:
    """Void the claims of a dead process in one transaction: its row is deleted if its
    heartbeat is still older than `cutoff`, then its pending jobs lose their claim (dispatchable
    at once) and its started ones their lease (stalled: see dispatch.recover_stalled). Each
    job update requires that no row of the owner exists, so a process that renewed its
    heartbeat meanwhile keeps everything; None when there was nothing to void."""
    with db.transaction():
        deleted = (
            Process.delete()
            .where((Process.id == owner) & (Process.heartbeat_at < cutoff))
            .execute()
        )
        pending = [job.job_id for job in Job.select(Job.job_id).where(claims_of(owner, "pending"))]
        if pending:
            Job.update(claimed_until=None, claimed_by=None).where(
                claims_of(owner, "pending")
            ).execute()
        started = (
            Job.update(claimed_until=cutoff, claimed_by=None)
            .where(claims_of(owner, "started"))
            .execute()
        )
    if not (pending or started or deleted):
        return None
    return Voided(owner, row if deleted else None, pending, started)


def void_dead(timeout: float) -> list[Voided]:
    """Void the claims of every process taken for dead; log and count each one."""
    cutoff, dead = dead_owners(timeout)
    voided = []
    for owner, row in dead.items():
        result = void(owner, cutoff, row)
        if result is None:
            continue
        voided.append(result)
        row = result.row
        who = (
            f"{row.kind} pid {row.pid} on {row.hostname}, last heartbeat "
            f"{row.heartbeat_at.isoformat(timespec='seconds')}Z"
            if row
            else "no longer registered"
        )
        log.warning(
            "process %s (%s) is taken for dead: voided its claims on %d pending and %d started "
            "job(s)",
            owner,
            who,
            len(result.pending),
            result.started,
            extra={
                "dead_process": owner,
                "voided_pending": len(result.pending),
                "voided_started": result.started,
            },
        )
        metrics.voided(len(result.pending), result.started, dead=row is not None)
    return voided
