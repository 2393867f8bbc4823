"""Dispatch claims and the recovery loop: no job is dispatched twice, none is lost."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

from pie import hookimpl
from pie.db import connection
from pie.services import claims, dispatch, jobs, lifecycle
from pie.tables import Job, utcnow
from tests.helpers import Client, model_body, wait_for_job
from tests.services.conftest import Recorded


def orphan_jobs(count: int, age_seconds: int = 60) -> list[str]:
    """Pending jobs as a crash leaves them: committed, never dispatched."""
    with connection():
        version = lifecycle.get_version("rec", "1")
        ids = [jobs.new_job(version, "inference", {"n": n}).job_id for n in range(count)]
        Job.update(created_at=utcnow() - timedelta(seconds=age_seconds)).where(
            Job.job_id.in_(ids)
        ).execute()
    return ids


def test_recovery_dispatches_orphans_once(recorder_app):
    ids = orphan_jobs(5)
    runtime = recorder_app.extensions["pie"]
    assert runtime.dispatcher.recover_once() == 5
    assert sorted(Recorded.calls) == sorted(ids)
    assert runtime.dispatcher.recover_once() == 0
    with connection():
        rows = list(Job.select().where(Job.job_id.in_(ids)))
    assert {r.status for r in rows} == {"started"}
    assert all(r.external_id == f"ext-{r.job_id}" for r in rows)


def test_recovery_waits_for_grace_period(recorder_app):
    orphan_jobs(3, age_seconds=0)
    assert recorder_app.extensions["pie"].dispatcher.recover_once() == 0
    assert Recorded.calls == []


def test_racing_recovery_workers_never_double_dispatch(recorder_app):
    ids = orphan_jobs(150)
    runtime = recorder_app.extensions["pie"]
    workers = [dispatch.Dispatcher(runtime) for _ in range(4)]
    counts: list[int] = []
    barrier = threading.Barrier(len(workers))

    def run(worker: dispatch.Dispatcher) -> None:
        barrier.wait()
        total = 0
        while True:
            done = worker.recover_once()
            total += done
            if not done:
                break
        counts.append(total)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(counts) == 150
    assert sorted(Recorded.calls) == sorted(ids)  # each exactly once


def test_expired_claim_is_dispatched_again_with_same_id(recorder_app):
    (job_id,) = orphan_jobs(1)
    with connection():
        assert claims.claim(job_id)  # a worker claimed it, then died before dispatching
        assert not claims.claim(job_id)  # the claim holds while its lease runs
        assert recorder_app.extensions["pie"].dispatcher.recover_once() == 0
        Job.update(claimed_until=utcnow() - timedelta(seconds=1)).where(
            Job.job_id == job_id
        ).execute()
    assert recorder_app.extensions["pie"].dispatcher.recover_once() == 1
    assert Recorded.calls == [job_id]


def test_backend_error_fails_job_readably(recorder_app):
    Recorded.fail_with = ConnectionError("backend unreachable")
    (job_id,) = orphan_jobs(1)
    assert recorder_app.extensions["pie"].dispatcher.recover_once() == 1
    job = Client(recorder_app.test_client()).get(f"/v2/jobs/{job_id}").get_json()
    assert job["status"] == "failure"
    assert "backend unreachable" in job["error"]["message"]
    assert job["completed_at"] is not None


def test_stalled_in_process_job_is_rerun_with_same_id(make_app):
    app = make_app()
    client = Client(app.test_client())
    assert client.post("/v2/models", json=model_body("echo")).status_code == 201
    client.post("/v2/models/echo/versions/1/new_status", json={"status": "active"})
    with connection():
        version = lifecycle.get_version("echo", "1")
        job = jobs.new_job(version, "inference", {"x": 1})
        # As a killed server leaves it: started, its lease run out, dispatched once.
        Job.update(
            status="started", dispatch_attempts=1, claimed_until=utcnow() - timedelta(seconds=1)
        ).where(Job.job_id == job.job_id).execute()
    assert app.extensions["pie"].dispatcher.recover_once() == 1
    done = wait_for_job(client, job.job_id)
    assert done["status"] == "success" and done["output"] == {"x": 1}


def test_stalled_job_past_max_attempts_fails_clearly(make_app):
    app = make_app()
    client = Client(app.test_client())
    assert client.post("/v2/models", json=model_body("echo")).status_code == 201
    client.post("/v2/models/echo/versions/1/new_status", json={"status": "active"})
    with connection():
        version = lifecycle.get_version("echo", "1")
        job = jobs.new_job(version, "inference", {"x": 1})
        Job.update(
            status="started",
            dispatch_attempts=dispatch.MAX_ATTEMPTS,
            claimed_until=utcnow() - timedelta(seconds=1),
        ).where(Job.job_id == job.job_id).execute()
    app.extensions["pie"].dispatcher.recover_once()
    done = client.get(f"/v2/jobs/{job.job_id}").get_json()
    assert done["status"] == "failure"
    assert done["error"]["type"] == "Interrupted"
    assert "stopped before it finished" in done["error"]["message"]


def test_running_in_process_job_keeps_its_lease(make_app):
    release = threading.Event()

    class Slow:
        @hookimpl
        def pie_register_in_process_handlers(self, app: Any) -> dict[str, Any]:
            return {"slow": lambda job_input: (release.wait(10), job_input)[1]}

    app = make_app({"PIE_IN_PROCESS_LEASE_SECONDS": 0.3}, plugins=[Slow()])
    client = Client(app.test_client())
    handler = {"type": "in_process", "value": "slow"}
    client.post(
        "/v2/models", json=model_body("slow", handlers={"training": handler, "inference": handler})
    )
    client.post("/v2/models/slow/versions/1/new_status", json={"status": "active"})
    job_id = client.post("/v2/models/slow/versions/1/inference", json={"input": {}}).get_json()[
        "inference_job_id"
    ]
    wait_for_job(client, job_id, statuses=("started",))
    time.sleep(1.0)  # several lease periods: the heartbeat must keep it alive
    assert app.extensions["pie"].dispatcher.recover_once() == 0
    release.set()
    assert wait_for_job(client, job_id)["status"] == "success"
