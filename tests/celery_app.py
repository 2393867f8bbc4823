"""The Celery app the tests' worker processes run (`celery -A tests.celery_app worker`): tasks
made with pie.celery.pie_task, on the broker in PIE_TEST_CELERY_BROKER."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery

from pie.celery import Retryable, pie_task

app = Celery("pie-tests", broker=os.environ.get("PIE_TEST_CELERY_BROKER", "memory://"))
app.conf.update(worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)


def mark(job_input: dict[str, Any], state: str) -> None:
    """Write `<pid> <state>` to the input's marker file, for the test to watch."""
    if job_input.get("marker"):
        Path(job_input["marker"]).write_text(f"{os.getpid()} {state}")


@pie_task(app, name="tests.echo")
def echo(job_input: dict[str, Any]) -> dict[str, Any]:
    return {"echo": job_input}


@pie_task(app, name="tests.fail")
def fail(job_input: dict[str, Any]) -> dict[str, Any]:
    raise ValueError(f"bad input {job_input.get('x')}")


@pie_task(app, name="tests.flaky")
def flaky(job_input: dict[str, Any], job: Any) -> dict[str, Any]:
    if job.attempt == 1:
        raise Retryable("first attempts never work")
    return {"attempt": job.attempt}


@pie_task(app, name="tests.sleep", heartbeat_seconds=None)
def sleep(job_input: dict[str, Any]) -> dict[str, Any]:
    """No heartbeats: only a revoke can stop it early."""
    mark(job_input, "started")
    time.sleep(job_input["seconds"])
    mark(job_input, "finished")
    return {"slept": job_input["seconds"]}


@pie_task(app, name="tests.slow_first", heartbeat_seconds=0.3)
def slow_first(job_input: dict[str, Any], job: Any) -> dict[str, Any]:
    """Attempt 1 hangs (its worker is killed under it); later attempts answer at once."""
    if job.attempt == 1:
        mark(job_input, "started")
        time.sleep(60)
    return {"attempt": job.attempt}


@pie_task(app, name="tests.progress")
def progress(job_input: dict[str, Any], job: Any) -> dict[str, Any]:
    steps = job_input["steps"]
    for step in range(1, steps + 1):
        assert job.heartbeat(step / steps, f"step {step} of {steps}")
    return {"steps": steps}
