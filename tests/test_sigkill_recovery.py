"""SIGKILL a real `pie serve` while its worker process holds claims: one in-process job running
under its lease, two queued behind it (PIE_IN_PROCESS_WORKERS=1) under their dispatch claims,
every lease still 20 s and more from running out. A `pie worker` beside it, on the default
settings, takes the dead process's claims over within the documented bound
(`pie.config.recovery_bound`: max(PIE_PROCESS_TIMEOUT_SECONDS, PIE_DISPATCH_GRACE_SECONDS)
+ PIE_RECOVERY_INTERVAL_SECONDS, 12 s by default) and dispatches each job exactly once more.

The slow implementation is tests/slow_plugin.py, loaded through PIE_PLUGINS_PATH; it notes
which process ran which job."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from pie import config
from pie.db import connection
from pie.tables import Job, Process, utcnow
from tests import slow_plugin
from tests.helpers import SECRET, model_body, wait_for
from tests.server import ServerProcess

SLOW = {"type": "in_process", "value": "slow"}
JOBS = 3
SLACK_SECONDS = 2.0  # the recovery pass itself, and this test's polling, on a busy machine


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(slow_plugin.__file__, plugins / "slow_plugin.py")
    return {  # the recovery settings are all left at their defaults
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PIE_PLUGINS_PATH": str(plugins),
        "PIE_LOG_FORMAT": "text",
        "SLOW_PLUGIN_RUNS": str(tmp_path / "runs.txt"),
    }


def jobs(ids: list[str]) -> dict[str, Job]:
    with connection():
        return {job.job_id: job for job in Job.select().where(Job.job_id.in_(ids))}


def processes(kind: str) -> list[Process]:
    with connection():
        return list(Process.select().where(Process.kind == kind))


def test_a_killed_server_claims_are_dispatched_again_within_the_bound(env, make_app, tmp_path):
    make_app()  # this process reads the database (it dispatches nothing, so never registers)
    worker_log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "pie", "worker"],
        env={**os.environ, **env, "SLOW_PLUGIN_SECONDS": "0.2"},  # re-runs end quickly
        stdout=open(worker_log, "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = ServerProcess(
        {**env, "PIE_IN_PROCESS_WORKERS": "1"}, log_path=str(tmp_path / "server.log")
    )
    try:
        server.start()
        body = model_body("slow", handlers={"training": SLOW, "inference": SLOW})
        assert server.request("POST", "/v2/models", json=body).status_code == 201
        r = server.request(
            "POST", "/v2/models/slow/versions/1/new_status", json={"status": "active"}
        )
        assert r.status_code == 200, r.text
        ids = []
        for n in range(JOBS):
            r = server.request(
                "POST",
                "/v2/models/slow/versions/1/inference",
                json={"input": {"seconds": 600, "n": n}},
            )
            assert r.status_code == 202, r.text
            ids.append(r.json()["inference_job_id"])
        (worker_row,) = wait_for(lambda: processes("worker"), timeout=30)
        (serve_row,) = wait_for(lambda: processes("serve"), timeout=30)
        assert worker_row.pid == worker.pid
        assert serve_row.pid != server.proc.pid  # the gunicorn worker registered, not the master

        def held() -> dict[str, Job] | None:
            found = jobs(ids)
            statuses = sorted(job.status for job in found.values())
            owners = {job.claimed_by for job in found.values()}
            if statuses == ["pending", "pending", "started"] and owners == {serve_row.id}:
                return found
            return None

        before = wait_for(held, timeout=30)
        # Neither the dispatch claims nor the lease would run out within the bound.
        soonest = min(job.claimed_until for job in before.values())
        assert soonest - utcnow() > timedelta(seconds=15)

        server.kill()
        killed = time.monotonic()

        def taken_over() -> bool:  # claimed again: by the worker, as its log says below
            return all(job.dispatch_attempts == 2 for job in jobs(ids).values())

        wait_for(taken_over, timeout=60, interval=0.05)
        elapsed = time.monotonic() - killed

        def ended() -> bool:
            return all(job.status == "success" for job in jobs(ids).values())

        wait_for(ended, timeout=30, interval=0.1)
    finally:
        server.kill()
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)

    bound = config.recovery_bound(config.load({}))
    print(f"claims taken over {elapsed:.2f}s after SIGKILL (bound {bound:g}s)")
    assert elapsed <= bound + SLACK_SECONDS <= 15, f"took {elapsed:.1f}s (bound {bound:g}s)"
    after = jobs(ids)
    assert {job.dispatch_attempts for job in after.values()} == {2}  # the server's, the worker's
    assert {job.output["n"] for job in after.values()} == set(range(JOBS))
    runs = [line.split() for line in (tmp_path / "runs.txt").read_text().splitlines()]
    by_worker = sorted(int(n) for pid, n in runs if int(pid) == worker.pid)
    assert by_worker == list(range(JOBS))  # each job once in the worker
    by_server = [int(n) for pid, n in runs if int(pid) == serve_row.pid]
    assert len(by_server) == 1  # the one that was running when the server was killed
    assert before[ids[by_server[0]]].status == "started"
    log = worker_log.read_text()
    assert f"process {serve_row.id} (serve pid {serve_row.pid}" in log
    assert "voided its claims on 2 pending and 1 started job(s)" in log
    assert not processes("serve")  # the dead process's row is gone
