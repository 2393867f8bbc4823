"""Job control: an attempt's deadline and heartbeats, its end when either lapses, retries, and
cancellation. Every ending goes through `orchestration.complete_job` (one row lock, one
outcome), so a timeout, a cancellation and a completion that race settle exactly once."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pie import metrics
from pie.db import database
from pie.errors import BadRequest, Conflict, NotFound, PieError
from pie.rows import lock_by, update_row
from pie.services import jobs, policy
from pie.tables import Job, utcnow

if TYPE_CHECKING:
    from pie.runtime import Runtime

log = logging.getLogger(__name__)

# Errors of the endings PIE itself decides; the job's handler can no longer complete it.
TIMEOUTS = ("Timeout", "HeartbeatTimeout")
PIE_ENDINGS = ("Cancelled", *TIMEOUTS)
EXPIRY_BATCH = 100


def timestamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="microseconds") + "Z"


def start_fields(job: Job, config: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The columns that start an attempt's clocks: its deadline, and when it expires."""
    return clock_fields(job.policy, config, now)


def clock_fields(
    stored: Mapping[str, Any] | None, config: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """`start_fields` for a job whose stored policy is `stored` (a row not yet written)."""
    rules = policy.for_job(stored, config)
    deadline = now + timedelta(seconds=rules.timeout_seconds)
    return {"deadline_at": deadline, "expires_at": rules.expires_at(deadline, now)}


def ended_message(job: Job) -> str:
    error = job.error if isinstance(job.error, dict) else {}
    why = f" ({error['type']})" if isinstance(error.get("type"), str) else ""
    return f"job '{job.job_id}' has ended: {job.status}{why}"


def ended_by_pie(job: Job) -> bool:
    return (
        job.status == "failure"
        and isinstance(job.error, dict)
        and job.error.get("type") in PIE_ENDINGS
    )


def check_attempt(job: Job, attempt: int | None) -> None:
    """409 for a callback of an attempt that is over (`attempt` None: a token of no attempt,
    an operator's, or one minted before attempts existed)."""
    if attempt is not None and attempt != job.attempt:
        raise Conflict(
            f"this callback token belongs to attempt {attempt} of job '{job.job_id}', "
            f"which is on attempt {job.attempt}"
        )


MAX_MESSAGE = 1000


def check_progress(progress: Any, message: Any) -> None:
    """What the heartbeat route's schema checks, for in-process heartbeats too: a finite
    number from 0 to 1, a text of at most 1,000 characters without NUL."""
    if progress is not None and (
        type(progress) not in (int, float) or not 0.0 <= progress <= 1.0  # NaN fails too
    ):
        raise BadRequest(f"progress must be a number from 0.0 to 1.0, not {progress!r:.40}")
    if message is not None and (
        not isinstance(message, str) or len(message) > MAX_MESSAGE or "\x00" in message
    ):
        raise BadRequest(f"message must be a text of at most {MAX_MESSAGE} characters without NUL")


def heartbeat(
    config: Mapping[str, Any],
    job_id: str,
    attempt: int | None,
    progress: float | None = None,
    message: str | None = None,
    model_id: str | None = None,
    model_version: str | None = None,
) -> dict[str, Any]:
    """Record a heartbeat (and progress) of a running job's attempt; a heartbeat timeout
    then counts from now. 409 once the job has ended: how a long-running handler learns to
    stop."""
    check_progress(progress, message)
    with database.atomic():
        job = lock_by(Job, job_id=job_id)
        if job is None or (
            model_id is not None and (job.model_id, job.model_version) != (model_id, model_version)
        ):
            raise NotFound(f"job '{job_id}' not found for that model version")
        if job.status in jobs.TERMINAL:
            raise Conflict(ended_message(job))
        check_attempt(job, attempt)
        now = utcnow()
        fields: dict[str, Any] = {"heartbeat_at": now}
        if progress is not None:
            fields["progress"] = progress
        if message is not None:
            fields["progress_message"] = message
        if job.status == "started" and job.deadline_at is not None:
            rules = policy.for_job(job.policy, config)
            fields["expires_at"] = rules.expires_at(job.deadline_at, now)
        update_row(Job, fields, job_id=job_id)
    return {
        "job_id": job.job_id,
        "status": job.status,
        "attempt": job.attempt,
        "deadline_at": job.deadline_at,
        "heartbeat_at": now,
    }


def repeats_last_failure(job: Job, status: str, error: Any) -> bool:
    """A failure sent again, by a token of no attempt, for a job already waiting for its
    next attempt because of that very failure (a response lost, the request resent)."""
    return (
        status == "failure"
        and job.status == "pending"
        and bool(job.attempts)
        and jobs.same_json(job.attempts[-1].get("error"), error)
    )


def retries(job: Job, error: Any, retryable: bool | None, config: Mapping[str, Any]) -> bool:
    """Whether a failed attempt is tried again: PIE's own failures (dispatch, timeouts, a
    dead process) and errors that say `"retryable": true`, while attempts remain."""
    if retryable is None:
        retryable = isinstance(error, dict) and error.get("retryable") is True
    return retryable and job.attempt < policy.for_job(job.policy, config).max_attempts


def retry(job: Job, error: Any, config: Mapping[str, Any]) -> float:
    """Put the job back to pending for its next attempt (in the caller's transaction, which
    holds the row); returns the backoff in seconds. Its claim is the backoff: recovery
    dispatches it once that has passed."""
    delay = policy.for_job(job.policy, config).backoff(job.attempt)
    now = utcnow()
    past = {
        "attempt": job.attempt,
        "error": error,
        "started_at": timestamp(job.started_at),
        "ended_at": timestamp(now),
    }
    job.attempts = [*(job.attempts or []), past]
    job.attempt += 1
    job.status = "pending"
    fields = {
        "status": "pending",
        "attempt": job.attempt,
        "attempts": job.attempts,
        "claimed_until": now + timedelta(seconds=delay),  # not before: no one's claim
        "claimed_by": None,
        "dispatch_attempts": 0,
        "started_at": None,
        "external_id": None,
        "deadline_at": None,
        "expires_at": None,
        "heartbeat_at": None,
        "progress": None,
        "progress_message": None,
    }
    update_row(Job, fields, job_id=job.job_id)
    for name, value in fields.items():
        setattr(job, name, value)
    return delay


def expire_overdue(runtime: Runtime, limit: int = EXPIRY_BATCH) -> int:
    """End the started attempts past their deadline or heartbeat timeout (a retry while
    attempts remain), and tell their backends to stop; safe in many processes at once."""
    from pie.services.orchestration import complete_job

    now = utcnow()
    overdue = list(
        Job.select()
        .where((Job.status == "started") & (Job.expires_at < now))
        .order_by(Job.expires_at)
        .limit(limit)
    )
    ended = 0
    for job in overdue:
        rules = policy.for_job(job.policy, runtime.config)
        if job.deadline_at is not None and job.deadline_at <= now:
            kind = "Timeout"
            message = f"the attempt ran past its timeout of {rules.timeout_seconds:g} s"
        else:
            kind = "HeartbeatTimeout"
            message = f"no heartbeat for {rules.heartbeat_timeout_seconds or 0:g} s"

        def still_overdue(row: Job, attempt: int = job.attempt) -> bool:
            return (
                row.status == "started"
                and row.attempt == attempt
                and row.expires_at is not None
                and row.expires_at < utcnow()
            )

        try:
            result = complete_job(
                runtime,
                job.job_id,
                "failure",
                error={"type": kind, "message": message},
                retryable=True,
                when=still_overdue,
            )
        except PieError as exc:  # ended meanwhile
            log.info("job %s: %s", job.job_id, exc.message, extra={"job_id": job.job_id})
            continue
        except Exception:  # the next job, and the rest of the recovery pass, go on
            log.exception("job %s: could not end its overdue attempt", job.job_id)
            continue
        if result is None:
            continue
        ended += 1
        log.warning(
            "job %s attempt %d: %s (%s)%s",
            job.job_id,
            job.attempt,
            kind,
            message,
            "; retried" if result["status"] == "pending" else "",
            extra={"job_id": job.job_id, "attempt": job.attempt, "reason": kind},
        )
        metrics.attempt_ended(job.job_type, kind)
        stop_on_backend(runtime, job, job.external_id, kind)
    return ended


def cancel(runtime: Runtime, job_id: str) -> Job:
    """End a pending or started job as a failure with error type `Cancelled` (409 when it has
    ended); a pending one is never dispatched, a started one is stopped where its backend
    can. Fires no subscription."""
    from pie.services.orchestration import complete_job

    complete_job(
        runtime,
        job_id,
        "failure",
        error={"type": "Cancelled", "message": "cancelled through the API"},
        retryable=False,
        fresh=True,
    )
    job = jobs.get_job(job_id)
    log.info("job %s cancelled", job_id, extra={"job_id": job_id})
    metrics.attempt_ended(job.job_type, "Cancelled")
    stop_on_backend(runtime, job, job.external_id, "Cancelled")
    return job


def stop_on_backend(runtime: Runtime, job: Job, external_id: str | None, reason: str) -> None:
    """Ask the job's handler type to stop the attempt (ECS StopTask; an in-process job's
    cancellation flag); a backend that cannot stop work ignores it, and a failure to stop
    is logged, never raised: the job's outcome is already recorded."""
    handler_type = runtime.handler_types.get(job.handler_type)
    if handler_type is None:
        return
    try:
        handler_type.cancel(job.handler, job, external_id, reason)
    except Exception as exc:
        log.warning(
            "job %s: %s could not stop it: %s",
            job.job_id,
            job.handler_type,
            exc,
            extra={"job_id": job.job_id, "handler_type": job.handler_type},
        )
