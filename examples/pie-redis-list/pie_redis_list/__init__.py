"""pie-redis-list: a PIE handler type that queues jobs on Redis lists for your own workers.

A model with `{"type": "redis_list", "list": "scoring"}` has each job's dispatch payload pushed
(RPUSH, JSON) on the Redis list `pie:jobs:scoring` (`pie_redis_list.plugin`, loaded by PIE
through the `pie` entry point); `pie_redis_list.worker` pops and runs them and reports the
outcome to PIE's callback URL. Cancelling a job (or its timing out) leaves a marker the worker
checks before it runs a job. The Redis server is PIE_REDIS_LIST_URL (a setting of the app, else
of the environment; default redis://127.0.0.1:6379/0).

This module holds what both sides share and imports nothing of PIE's, so workers need only
redis."""

from __future__ import annotations

import os
from typing import Any

DEFAULT_URL = "redis://127.0.0.1:6379/0"
JOBS = "pie:jobs:"  # + list name: the queue of payloads
CANCELLED = "pie:cancelled:"  # + "<job_id>.<attempt>": the attempt was ended by PIE
CANCELLED_TTL_SECONDS = 7 * 86400
LIST_NAME = r"^[A-Za-z0-9_.:-]{1,100}$"


def attempt_key(job_id: str, attempt: int) -> str:
    return f"{CANCELLED}{job_id}.{attempt}"


def redis_url(config: Any = None) -> str:
    return (config or {}).get("PIE_REDIS_LIST_URL") or os.environ.get(
        "PIE_REDIS_LIST_URL", DEFAULT_URL
    )
