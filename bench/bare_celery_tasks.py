"""Bare Celery's echo task (`celery -A bench.bare_celery_tasks worker`), the peer of PIE's
in-process echo jobs in bench/throughput.py: broker PIE_BENCH_CELERY_BROKER, results kept in
PIE_BENCH_CELERY_BACKEND."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

app = Celery(
    "pie-bench-bare",
    broker=os.environ.get("PIE_BENCH_CELERY_BROKER", "memory://"),
    backend=os.environ.get("PIE_BENCH_CELERY_BACKEND") or None,
)


@app.task(name="bench.bare_echo")
def echo(job_input: dict[str, Any]) -> dict[str, Any]:
    return job_input
