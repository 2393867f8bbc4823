"""The benchmark's Celery app (`celery -A bench.celery_tasks worker`): an echo task made with
pie.celery.pie_task, on the broker in PIE_BENCH_CELERY_BROKER."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from pie.celery import pie_task

app = Celery("pie-bench", broker=os.environ.get("PIE_BENCH_CELERY_BROKER", "memory://"))


@pie_task(app, name="bench.echo", heartbeat_seconds=None)
def echo(job_input: dict[str, Any]) -> dict[str, Any]:
    return {"echo": job_input}
