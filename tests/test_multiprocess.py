"""Many processes, one database: two `pie serve` instances (two workers each) and two
`pie worker` processes share the suite's database. Racing status transitions, completion
callbacks, version creation and recovery loops: every subscription fires once, every job is
dispatched once, no update is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from pie.db import database, open_database
from pie.ids import uuid7
from pie.tables import Job, utcnow
from tests.helpers import SECRET, model_body, wait_for
from tests.server import ServerProcess

SUBSCRIPTIONS = 10
VERSIONS = 8
CALLBACK_JOBS = 30
ORPHANS = 120
OVERDUE = 60
HANDLER = {"type": "in_process", "value": "echo"}


@pytest.fixture
def cluster(database_url, tmp_path):
    env = {
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PIE_DISPATCH_GRACE_SECONDS": "1",
        "PIE_RECOVERY_INTERVAL_SECONDS": "0.2",
    }
    servers = [
        ServerProcess(env, workers=2, log_path=str(tmp_path / f"serve{n}.log")) for n in range(2)
    ]
    for server in servers:
        server.start()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "pie", "worker"],
            env={**os.environ, **env},
            stdout=open(tmp_path / f"worker{n}.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for n in range(2)
    ]
    yield servers
    for worker in workers:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
    for server in servers:
        server.stop()


def jobs_of(server: ServerProcess, model_id: str, version: str = "1") -> list[dict]:
    r = server.request("GET", f"/v2/models/{model_id}/versions/{version}/jobs?page_size=1000")
    assert r.status_code == 200
    return r.json()


def race(calls: list) -> list:
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_many_processes_share_one_database_safely(cluster, database_url):
    a, b = cluster
    for model_id in ("src", "tgt", "cb", "cbt", "orph"):
        assert a.request("POST", "/v2/models", json=model_body(model_id)).status_code == 201
    for model_id in ("tgt", "cb", "cbt", "orph"):
        a.request("POST", f"/v2/models/{model_id}/versions/1/new_status", json={"status": "active"})
    sub = {
        "target_model_id": "tgt",
        "target_action": "inference",
        "input_source": "stored",
        "input": {},
    }
    for _ in range(SUBSCRIPTIONS):
        b.request(
            "POST",
            "/v2/models/src/event-subscriptions",
            json={**sub, "trigger_event": "training_complete"},
        )
    b.request(
        "POST",
        "/v2/models/cb/event-subscriptions",
        json={**sub, "target_model_id": "cbt", "trigger_event": "inference_complete"},
    )

    # 1. No lost update: versions created concurrently through both servers.
    created = race(
        [
            lambda s=s: s.request("POST", "/v2/models/src/new_version", json={})
            for s in (a, b) * VERSIONS
        ]
    )
    assert [r.status_code for r in created] == [201] * 2 * VERSIONS
    numbers = sorted(int(r.json()["version"]["version"]) for r in created)
    assert numbers == list(range(2, 2 * VERSIONS + 2))
    assert a.request("GET", "/v2/models/src").json()["latest_version"] == str(2 * VERSIONS + 1)

    # 2. Racing transitions: each training → active fires its subscriptions exactly once.
    versions = [str(n) for n in range(2, VERSIONS + 2)]
    for version in versions:
        a.request(
            "POST", f"/v2/models/src/versions/{version}/new_status", json={"status": "training"}
        )
    answers = race(
        [
            lambda s=s, v=v: s.request(
                "POST", f"/v2/models/src/versions/{v}/new_status", json={"status": "active"}
            )
            for v in versions
            for s in (a, b, a, b)
        ]
    )
    assert {r.status_code for r in answers} == {200}
    fired = [e for r in answers for e in r.json()["triggered_events"]]
    assert len(fired) == VERSIONS * SUBSCRIPTIONS

    # 3. Racing completion callbacks: each completes once and fires once.
    database.initialize(open_database(database_url))
    with database.connection_context():
        callback_jobs = [uuid7() for _ in range(CALLBACK_JOBS)]
        Job.insert_many(
            [
                {
                    "job_id": job_id,
                    "job_type": "inference",
                    "model_id": "cb",
                    "model_version": "1",
                    "status": "started",
                    "input": {"n": n},
                    "warnings": [],
                    "handler_type": "lambda",
                    "handler": {
                        "type": "lambda",
                        "arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
                    },
                    "created_at": utcnow(),
                }
                for n, job_id in enumerate(callback_jobs)
            ]
        ).execute()
    done = race(
        [
            lambda s=s, j=j: s.request(
                "POST",
                f"/v2/models/cb/versions/1/jobs/{j}/complete",
                json={"status": "success", "output": {"ok": True}},
            )
            for j in callback_jobs
            for s in (a, b)
        ]
    )
    assert {r.status_code for r in done} == {200}
    assert (
        len({tuple(e["job_id"] for e in r.json()["triggered_events"]) for r in done})
        == CALLBACK_JOBS
    )  # both answers for one job name the same triggered job

    # 4. Racing recovery loops (4 server workers + 2 `pie worker`s) over orphaned jobs.
    with database.connection_context():
        orphans = [uuid7() for _ in range(ORPHANS)]
        Job.insert_many(
            [
                {
                    "job_id": job_id,
                    "job_type": "inference",
                    "model_id": "orph",
                    "model_version": "1",
                    "status": "pending",
                    "input": {"n": n},
                    "warnings": [],
                    "handler_type": "in_process",
                    "handler": HANDLER,
                    "created_at": utcnow() - timedelta(seconds=30),
                }
                for n, job_id in enumerate(orphans)
            ]
        ).execute()

    def all_done() -> bool:
        with database.connection_context():
            pending = Job.select().where(Job.status.not_in(("success", "failure"))).count()
        return pending == 0

    wait_for(all_done, timeout=90, interval=0.5)
    with database.connection_context():
        tgt = list(Job.select().where(Job.model_id == "tgt"))
        cbt = list(Job.select().where(Job.model_id == "cbt"))
        orph = list(Job.select().where(Job.model_id == "orph"))
    database.close_all()
    assert len(tgt) == VERSIONS * SUBSCRIPTIONS
    assert {j.status for j in tgt} == {"success"}
    assert len({(j.trigger["subscription_id"], j.job_id) for j in tgt}) == len(tgt)
    assert len(cbt) == CALLBACK_JOBS
    assert {j.status for j in orph} == {"success"}
    # Dispatched once each: one claim per job, whichever process made it.
    assert {j.dispatch_attempts for j in tgt + cbt + orph} == {1}

    # 5. Racing recovery loops over started jobs past their deadline: each attempt is ended
    # once. Each job may be retried, after a day, so an attempt ended twice would show as
    # attempt 3.
    database.initialize(open_database(database_url))
    past = utcnow() - timedelta(seconds=5)
    with database.connection_context():
        overdue = [uuid7() for _ in range(OVERDUE)]
        Job.insert_many(
            [
                {
                    "job_id": job_id,
                    "job_type": "inference",
                    "model_id": "cb",
                    "model_version": "1",
                    "status": "started",
                    "input": {"n": n},
                    "warnings": [],
                    "handler_type": "lambda",
                    "handler": {
                        "type": "lambda",
                        "arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
                    },
                    "policy": {"max_attempts": 5, "retry_backoff_seconds": 86400},
                    "created_at": past,
                    "started_at": past,
                    "deadline_at": past,
                    "expires_at": past,
                }
                for n, job_id in enumerate(overdue)
            ]
        ).execute()

    def all_ended() -> bool:
        with database.connection_context():
            return (
                not Job.select().where(Job.job_id.in_(overdue) & (Job.status == "started")).exists()
            )

    wait_for(all_ended, timeout=60, interval=0.5)
    with database.connection_context():
        ended = list(Job.select().where(Job.job_id.in_(overdue)))
    database.close_all()
    assert {(j.status, j.attempt, len(j.attempts)) for j in ended} == {("pending", 2, 1)}
    assert {j.attempts[0]["error"]["type"] for j in ended} == {"Timeout"}
