"""Job policy: how long a job's attempt may run, how long it may go without a heartbeat, how
many attempts it gets and how long to wait between them. A model's `job_policy` holds what it
sets per job type; each job keeps its type's part from when it was created, and the settings
(PIE_JOB_*) fill in the rest."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# The longest a backoff may grow to, however many attempts: a day.
MAX_BACKOFF_SECONDS = 86400.0


@dataclass(frozen=True)
class Policy:
    timeout_seconds: float
    heartbeat_timeout_seconds: float | None
    max_attempts: int
    retry_backoff_seconds: float

    def expires_at(self, deadline_at: datetime, beat_at: datetime) -> datetime:
        """When an attempt that last showed life at `beat_at` ends: its deadline, or sooner
        when it goes a heartbeat timeout without a heartbeat."""
        if self.heartbeat_timeout_seconds is None:
            return deadline_at
        return min(deadline_at, beat_at + timedelta(seconds=self.heartbeat_timeout_seconds))

    def backoff(self, attempt: int) -> float:
        """Seconds before attempt `attempt + 1`: the base doubled per attempt so far, with
        jitter (between half and all of it), so retries of many jobs do not arrive at once."""
        full = min(self.retry_backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
        return full * random.uniform(0.5, 1.0)


def for_job(stored: Mapping[str, Any] | None, config: Mapping[str, Any]) -> Policy:
    """A job's effective policy: what its model set (kept on the job), else the settings."""
    stored = stored or {}
    return Policy(
        timeout_seconds=float(stored.get("timeout_seconds") or config["PIE_JOB_TIMEOUT_SECONDS"]),
        heartbeat_timeout_seconds=stored.get("heartbeat_timeout_seconds"),
        max_attempts=int(stored.get("max_attempts") or config["PIE_JOB_MAX_ATTEMPTS"]),
        retry_backoff_seconds=float(
            stored.get("retry_backoff_seconds", config["PIE_JOB_RETRY_BACKOFF_SECONDS"])
        ),
    )


def of_type(job_policy: Mapping[str, Any] | None, job_type: str) -> dict[str, Any] | None:
    """The part of a model's (or version's) job_policy for one job type, kept on its jobs."""
    return (job_policy or {}).get(job_type) or None
