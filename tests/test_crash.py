"""SIGKILL a real server in the middle of a large fan-out: after restart there are either no
triggered jobs (the transition did not commit) or exactly one per subscription, all run."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.helpers import SECRET, model_body, wait_for
from tests.server import ServerProcess

FAN_OUT = 1000
KILL_DELAYS = (0.0, 0.03, 0.08, 0.2, 0.6)


@pytest.fixture
def server(database_url, tmp_path):
    env = {
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PIE_DISPATCH_GRACE_SECONDS": "1",
        "PIE_RECOVERY_INTERVAL_SECONDS": "0.2",
        "PIE_IN_PROCESS_LEASE_SECONDS": "2",
        "PIE_DISPATCH_LEASE_SECONDS": "2",
    }
    proc = ServerProcess(env, log_path=str(tmp_path / "server.log"))
    proc.start()
    yield proc
    proc.stop()


def target_jobs(server: ServerProcess) -> list[dict]:
    """Every job of the target's version 1, newest first."""
    jobs: list[dict] = []
    page = 1
    while True:
        r = server.request("GET", f"/v2/models/target/versions/1/jobs?page_size=1000&page={page}")
        assert r.status_code == 200
        jobs += r.json()
        if len(r.json()) < 1000:
            return jobs
        page += 1


def test_sigkill_mid_fan_out_is_all_or_nothing(server):
    assert server.request("POST", "/v2/models", json=model_body("source")).status_code == 201
    assert server.request("POST", "/v2/models", json=model_body("target")).status_code == 201
    server.request("POST", "/v2/models/target/versions/1/new_status", json={"status": "active"})
    sub = {
        "trigger_event": "training_complete",
        "target_model_id": "target",
        "target_action": "inference",
        "input_source": "stored",
    }
    sub_ids = {
        server.request(
            "POST", "/v2/models/source/event-subscriptions", json={**sub, "input": {"n": n}}
        ).json()["id"]
        for n in range(FAN_OUT)
    }
    assert len(sub_ids) == FAN_OUT
    outcomes = []
    for round_no, delay in enumerate(KILL_DELAYS, start=2):
        version = str(round_no)
        r = server.request("POST", "/v2/models/source/new_version", json={"version": version})
        assert r.status_code == 201
        server.request(
            "POST", f"/v2/models/source/versions/{version}/new_status", json={"status": "training"}
        )
        before = len(target_jobs(server))

        def transition(v: str = version) -> None:
            try:
                server.request(
                    "POST", f"/v2/models/source/versions/{v}/new_status", json={"status": "active"}
                )
            except requests.RequestException:
                pass  # the server died under it, as intended

        caller = threading.Thread(target=transition)
        caller.start()
        time.sleep(delay)
        server.kill()
        caller.join(30)
        server.start()

        status = server.request("GET", f"/v2/models/source/versions/{version}").json()["status"]
        jobs = target_jobs(server)
        new = jobs[: len(jobs) - before]  # newest first
        if status == "training":
            assert new == [], f"round {version}: jobs exist though the transition did not commit"
            outcomes.append("rolled back")
            continue
        assert status == "active"
        assert len(new) == FAN_OUT, f"round {version}: {len(new)} jobs for {FAN_OUT} subscriptions"
        assert {j["trigger"]["subscription_id"] for j in new} == sub_ids
        outcomes.append("committed")

        def all_ran(count: int = len(jobs) - before) -> bool:
            return all(j["status"] == "success" for j in target_jobs(server)[:count])

        wait_for(all_ran, timeout=60, interval=0.25)
    print("outcomes:", outcomes)


def test_an_idle_restarted_server_recovers_jobs_without_any_request(server, database_url):
    """Jobs a crash left pending are dispatched by the embedded recovery loop of a restarted
    server that receives no request at all."""
    from datetime import timedelta

    from pie.db import database, open_database
    from pie.ids import uuid7
    from pie.tables import Job, utcnow

    assert server.request("POST", "/v2/models", json=model_body("m")).status_code == 201
    server.request("POST", "/v2/models/m/versions/1/new_status", json={"status": "active"})
    server.kill()
    database.initialize(open_database(database_url))
    with database.connection_context():
        ids = [uuid7() for _ in range(5)]
        Job.insert_many(
            [
                {
                    "job_id": job_id,
                    "job_type": "inference",
                    "model_id": "m",
                    "model_version": "1",
                    "status": "pending",
                    "input": {},
                    "warnings": [],
                    "handler_type": "in_process",
                    "handler": {"type": "in_process", "value": "echo"},
                    "created_at": utcnow() - timedelta(seconds=30),
                }
                for job_id in ids
            ]
        ).execute()
    server.start()  # only its health check is requested

    def recovered() -> bool:
        with database.connection_context():
            return Job.select().where(
                Job.job_id.in_(ids) & (Job.status == "success")
            ).count() == len(ids)

    wait_for(recovered, timeout=30, interval=0.2)
    database.close_all()
