"""SIGTERM on real `pie serve` and `pie worker` processes: the running in-process job finishes
within PIE_SHUTDOWN_GRACE_SECONDS, a job queued behind it stays pending (not failed) and runs
after a restart; a job longer than the grace period is cut off and recovered.

The slow implementation is tests/slow_plugin.py, copied into a PIE_PLUGINS_PATH folder: the
subprocesses load it the way an operator loads a third-party plugin, with no test hooks in
PIE itself."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from pie.db import connection
from pie.services import jobs, lifecycle
from tests import slow_plugin
from tests.helpers import SECRET, Client, activate, model_body, wait_for, wait_for_job
from tests.server import ServerProcess, free_port

SLOW = {"type": "in_process", "value": "slow"}


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    shutil.copy(slow_plugin.__file__, plugins / "slow_plugin.py")
    return {
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PIE_PLUGINS_PATH": str(plugins),
        "PIE_IN_PROCESS_WORKERS": "1",  # a second job waits in the queue behind the first
        "PIE_SHUTDOWN_GRACE_SECONDS": "10",
        "PIE_DISPATCH_GRACE_SECONDS": "1",
        "PIE_RECOVERY_INTERVAL_SECONDS": "0.2",
        "PIE_IN_PROCESS_LEASE_SECONDS": "2",
        "PIE_DISPATCH_LEASE_SECONDS": "2",
        "PIE_LOG_FORMAT": "json",
    }


@pytest.fixture
def reader(make_app: Any) -> Client:
    """An app in this process on the same database, to read jobs while no server runs."""
    return Client(make_app(plugins=[slow_plugin]).test_client())


def job_status(reader: Client, job_id: str) -> str:
    return reader.get(f"/v2/jobs/{job_id}").get_json()["status"]


def start_job(server: ServerProcess, seconds: float) -> str:
    r = server.request(
        "POST", "/v2/models/slow/versions/1/inference", json={"input": {"seconds": seconds}}
    )
    assert r.status_code == 202, r.text
    return r.json()["inference_job_id"]


def create_slow_model(server: ServerProcess) -> None:
    r = server.request(
        "POST",
        "/v2/models",
        json=model_body("slow", handlers={"training": SLOW, "inference": SLOW}),
    )
    assert r.status_code == 201, r.text
    r = server.request("POST", "/v2/models/slow/versions/1/new_status", json={"status": "active"})
    assert r.status_code == 200, r.text


def timed_stop(server: ServerProcess) -> float:
    started = time.monotonic()
    server.stop()
    return time.monotonic() - started


def test_serve_sigterm_finishes_the_running_job_and_leaves_the_queue(env, reader, tmp_path):
    log_path = tmp_path / "server.log"
    server = ServerProcess(env, log_path=str(log_path))
    server.start()
    try:
        create_slow_model(server)
        running = start_job(server, 2)
        wait_for(lambda: job_status(reader, running) == "started")
        queued = start_job(server, 0.1)
        time.sleep(0.3)  # dispatched into this worker's queue, behind `running`
        assert job_status(reader, queued) == "pending"
        elapsed = timed_stop(server)
        assert server.proc.returncode == 0
        assert elapsed < 10, f"took {elapsed:.1f}s, more than PIE_SHUTDOWN_GRACE_SECONDS"
        assert job_status(reader, running) == "success"  # finished during the grace period
        assert job_status(reader, queued) == "pending"  # not failed: left for recovery

        server.start()
        assert wait_for_job(reader, queued, timeout=20)["status"] == "success"
    finally:
        server.stop()
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    completed = [r for r in records if r["message"] == f"job {running} completed: success"]
    assert completed and completed[0]["job_id"] == running
    access = [r for r in records if r["logger"] == "pie.access" and r["method"] == "POST"]
    assert access and all(len(r["request_id"]) == 32 for r in access)
    assert any(r["logger"] == "gunicorn.error" for r in records)  # gunicorn's lines are JSON too


def test_serve_cuts_off_a_job_longer_than_the_grace_period(env, reader):
    server = ServerProcess({**env, "PIE_SHUTDOWN_GRACE_SECONDS": "1"})
    server.start()
    try:
        create_slow_model(server)
        long_job = start_job(server, 5)
        wait_for(lambda: job_status(reader, long_job) == "started")
        elapsed = timed_stop(server)
        assert elapsed < 4, f"took {elapsed:.1f}s: the grace period did not bound the shutdown"
        assert job_status(reader, long_job) == "started"  # its process was killed under it

        server.start()  # the lease runs out; recovery re-runs the job (same job_id)
        assert wait_for_job(reader, long_job, timeout=30)["status"] == "success"
    finally:
        server.stop()


@pytest.fixture
def app_with_slow(make_app: Any) -> tuple[Client, Any]:
    """The slow model, created in this process; jobs on it are then inserted without being
    dispatched, as a crash or a shutdown leaves them, for `pie worker` to recover."""
    app = make_app(plugins=[slow_plugin])
    client = Client(app.test_client())
    body = model_body("slow", handlers={"training": SLOW, "inference": SLOW})
    assert client.post("/v2/models", json=body).status_code == 201
    activate(client, "slow")
    return client, app


@pytest.fixture
def worker(env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Starts `pie worker` processes (env overrides as keywords); kills leftovers after."""
    procs: list[subprocess.Popen] = []
    log = open(tmp_path / "worker.log", "ab")  # noqa: SIM115

    def start(*args: str, **overrides: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pie", "worker", *args],
            env={**os.environ, **env, "PIE_DISPATCH_GRACE_SECONDS": "0", **overrides},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    log.close()


def test_worker_sigterm_finishes_the_running_job_and_leaves_the_queue(app_with_slow, worker):
    reader, app = app_with_slow
    with app.app_context(), connection():
        version = lifecycle.get_version("slow", "1")
        running = jobs.new_job(version, "inference", {"seconds": 2}).job_id
        queued = jobs.new_job(version, "inference", {"seconds": 0.1}).job_id
    port = free_port()
    proc = worker("--metrics-port", str(port))
    wait_for(lambda: job_status(reader, running) == "started", timeout=30)
    assert job_status(reader, queued) == "pending"
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'pie_recovery_passes_total{result="ok"}' in metrics
    assert "pie_jobs_open{" in metrics
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    assert proc.returncode == 0
    assert time.monotonic() - started < 10
    assert job_status(reader, running) == "success"
    assert job_status(reader, queued) == "pending"

    worker()
    assert wait_for_job(reader, queued, timeout=20)["status"] == "success"


def test_worker_leaves_a_job_longer_than_the_grace_period_to_recovery(app_with_slow, worker):
    reader, app = app_with_slow
    with app.app_context(), connection():
        version = lifecycle.get_version("slow", "1")
        long_job = jobs.new_job(version, "inference", {"seconds": 4}).job_id
    proc = worker(PIE_SHUTDOWN_GRACE_SECONDS="1")
    wait_for(lambda: job_status(reader, long_job) == "started", timeout=30)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    assert time.monotonic() - started < 3, "the grace period did not bound the shutdown"
    assert proc.returncode == 0
    assert job_status(reader, long_job) == "started"

    worker()  # its lease runs out; the new worker re-runs it (same job_id)
    assert wait_for_job(reader, long_job, timeout=30)["status"] == "success"


def test_a_second_quit_signal_during_the_first_is_ignored():
    """The handler ran again, from a second signal, inside the first run's thread-pool
    shutdown: that deadlocked on the pool's lock. It now runs once."""
    from pie.server import PieWorker

    worker = PieWorker.__new__(PieWorker)  # only what handle_quit touches
    calls = []

    class Pool:
        def shutdown(self, wait: bool = True) -> None:
            calls.append("shutdown")
            worker.handle_quit(signal.SIGQUIT, None)  # the master's SIGQUIT arrives here

    class Config:
        def worker_int(self, worker: object) -> None:
            calls.append("worker_int")

    worker.tpool, worker.cfg = Pool(), Config()
    with pytest.raises(SystemExit):
        worker.handle_quit(signal.SIGINT, None)
    assert calls == ["shutdown", "worker_int"]


def test_ctrl_c_stops_pie_serve_at_once(env):
    """Ctrl+C at a terminal: SIGINT to the whole process group, with keep-alive connections
    open as a browser leaves them. Each stop takes seconds, not the 30 s of a SIGKILL."""
    for _ in range(3):
        server = ServerProcess(env, workers=2)
        server.start()
        sessions = [requests.Session() for _ in range(6)]
        for session in sessions:
            assert session.get(f"{server.url}/v2/health", timeout=10).status_code == 200
        started = time.monotonic()
        os.killpg(server.proc.pid, signal.SIGINT)
        try:
            server.proc.wait(timeout=20)
        finally:
            server.kill()
            for session in sessions:
                session.close()
        assert time.monotonic() - started < 10


# `pie serve` with one worker that pauses just after its fork (gunicorn's post_fork hook,
# an operator setting), before it has signal handlers of its own: the window where a stop
# signal used to be lost.
FORK_WINDOW_SERVER = """
import sys, time
from pathlib import Path
from pie import create_app
from pie.db import close_all
from pie.server import PieServer, metrics_directory, options

def paused(server, worker):
    Path(sys.argv[2]).touch()
    time.sleep(2)

with metrics_directory():
    create_app({"PIE_AUTO_MIGRATE": True})
    close_all()
    settings = options(f"127.0.0.1:{sys.argv[1]}", workers=1, threads=2, grace_seconds=30)
    PieServer({**settings, "post_fork": paused}).run()
"""


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_during_a_workers_fork_is_not_lost(env, tmp_path, stop):
    """Ctrl+C (or SIGTERM) that reaches a worker between its fork and its own handlers: the
    master's handlers it inherited only queued it, as did the master's SIGQUIT or SIGTERM
    after it, and the worker then served until the master killed it when the 30 s grace
    period ran out. Now the signal waits, blocked, and the worker stops as soon as it can."""
    script, forked = tmp_path / "serve.py", tmp_path / "forked"
    script.write_text(FORK_WINDOW_SERVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(free_port()), str(forked)],
        env={**os.environ, **env},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(forked.exists, timeout=30)
        started = time.monotonic()
        os.killpg(proc.pid, stop)  # at a terminal, Ctrl+C reaches every process of the group
        proc.wait(timeout=40)
        assert time.monotonic() - started < 10
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
