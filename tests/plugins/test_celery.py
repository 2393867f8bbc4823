"""The `celery` handler type end to end, on Redis and on RabbitMQ: a real `pie serve` process
sends tasks to the broker, a real `celery worker` process (tests/celery_app.py, tasks made with
pie.celery.pie_task) runs them and calls back over HTTP. Success, failure, a retryable failure
retried per policy, a cancellation that revokes the running task, and a worker SIGKILLed
mid-task (heartbeat timeout, then the retry runs on a new worker).

Needs Redis on 127.0.0.1:6379 and RabbitMQ on 127.0.0.1:5672 (guest/guest); .ci/run starts
them. A broker that is not reachable skips its half (fails it with PIE_REQUIRE_BROKERS=1, as
.ci/run sets)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

from tests.conftest import POSTGRES_URL, reset_postgres  # noqa: E402
from tests.helpers import SECRET, model_body, wait_for  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BROKERS = {
    "redis": ("redis://127.0.0.1:6379/15", 6379),
    "rabbitmq": ("amqp://guest:guest@127.0.0.1:5672//", 5672),
}


def reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class Worker:
    """A `celery worker` process on one queue (prefork, one child: revoke can terminate)."""

    def __init__(self, broker: str, queue: str, log: Path) -> None:
        self.broker, self.queue, self.log = broker, queue, log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "-Q", self.queue]
            + "-P prefork -c 1 --loglevel INFO --without-gossip --without-mingle".split()
            + ["--without-heartbeat", "-n", f"{self.queue}@%h"],
            cwd=ROOT,
            env={**os.environ, "PIE_TEST_CELERY_BROKER": self.broker, "PYTHONPATH": str(ROOT)},
            stdout=open(self.log, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited: {self.log.read_text()[-2000:]}")
            return " ready." in self.log.read_bytes()[offset:].decode(errors="replace")

        wait_for(ready, timeout, 0.1)

    def kill(self) -> None:
        """SIGKILL the worker and its pool children: no chance to clean up or report."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class World:
    def __init__(self, broker: str, server: ServerProcess, worker: Worker, tmp: Path) -> None:
        self.broker, self.server, self.worker, self.tmp = broker, server, worker, tmp

    def model(self, task: str, **policy: Any) -> str:
        """A new active model whose inference runs `task` on the worker's queue."""
        model_id = f"m-{uuid.uuid4().hex[:8]}"
        handler = {"type": "celery", "task": task, "queue": self.worker.queue}
        body = model_body(model_id, handlers={"training": handler, "inference": handler})
        if policy:
            body["job_policy"] = {"inference": policy}
        r = self.server.request("POST", "/v2/models", json=body)
        assert r.status_code == 201, r.text
        r = self.server.request(
            "POST", f"/v2/models/{model_id}/versions/1/new_status", json={"status": "active"}
        )
        assert r.status_code == 200, r.text
        return model_id

    def run(self, model_id: str, job_input: dict[str, Any]) -> str:
        r = self.server.request(
            "POST", f"/v2/models/{model_id}/versions/1/inference", json={"input": job_input}
        )
        assert r.status_code == 202, r.text
        return r.json()["inference_job_id"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.server.request("GET", f"/v2/jobs/{job_id}").json()

    def wait(self, job_id: str, *statuses: str, timeout: float = 15) -> dict[str, Any]:
        statuses = statuses or ("success", "failure")

        def done() -> Any:
            job = self.job(job_id)
            return job if job["status"] in statuses else None

        return wait_for(done, timeout, 0.05)


@pytest.fixture(scope="module", params=sorted(BROKERS))
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    broker, port = BROKERS[request.param]
    if not reachable(port):
        problem = f"{request.param} is not running on 127.0.0.1:{port}"
        if os.environ.get("PIE_REQUIRE_BROKERS") == "1":  # .ci/run starts both
            pytest.fail(problem)
        pytest.skip(problem)
    tmp = tmp_path_factory.mktemp(f"celery-{request.param}")
    database_url = reset_postgres(POSTGRES_URL) if POSTGRES_URL else f"sqlite:///{tmp}/pie.sqlite"
    server = ServerProcess(
        {
            "PIE_DATABASE_URL": database_url,
            "PIE_JWT_SECRET": SECRET,
            "PIE_INSTANCE_PATH": str(tmp / "instance"),
            "PIE_CELERY_BROKER_URL": broker,
            "PIE_DISPATCH_GRACE_SECONDS": "1",
            "PIE_RECOVERY_INTERVAL_SECONDS": "0.2",
            "PIE_LOG_FORMAT": "json",
        },
        log_path=str(tmp / "server.log"),
    )
    server.env["PIE_PUBLIC_URL"] = server.url  # the worker calls back over HTTP
    worker = Worker(broker, f"pie-test-{uuid.uuid4().hex[:8]}", tmp / "worker.log")
    server.start()
    try:
        worker.start()
        yield World(request.param, server, worker, tmp)
    finally:
        worker.stop()
        server.stop()
        delete_queue(broker, worker.queue)


def delete_queue(broker: str, queue: str) -> None:
    """Leave no test queue behind on the broker (RabbitMQ keeps declared queues)."""
    from kombu import Connection

    with Connection(broker, connect_timeout=3) as connection:
        connection.default_channel.queue_delete(queue)


def marker_state(path: Path) -> tuple[int, str] | None:
    try:
        pid, state = path.read_text().split()
    except (FileNotFoundError, ValueError):
        return None
    return int(pid), state


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_job_succeeds_with_its_output(world: World) -> None:
    job_id = world.run(world.model("tests.echo"), {"x": 1})
    job = world.wait(job_id)
    assert job["status"] == "success", job
    assert job["output"] == {"echo": {"x": 1}}
    assert job["handler_type"] == "celery"
    assert uuid.UUID(job["external_id"])  # the Celery task id


def test_a_failing_job_fails_with_its_error(world: World) -> None:
    job_id = world.run(world.model("tests.fail"), {"x": 7})
    job = world.wait(job_id)
    assert job["status"] == "failure", job
    assert job["error"]["type"] == "ValueError"
    assert job["error"]["message"] == "bad input 7"
    assert job["attempt"] == 1


def test_a_retryable_failure_is_retried_per_policy(world: World) -> None:
    model_id = world.model("tests.flaky", max_attempts=2, retry_backoff_seconds=0)
    job_id = world.run(model_id, {})
    job = world.wait(job_id)
    assert job["status"] == "success", job
    assert job["output"] == {"attempt": 2}
    assert job["attempt"] == 2
    (first,) = job["attempts"]
    assert first["error"]["type"] == "Retryable"
    assert first["error"]["retryable"] is True


def test_a_cancelled_job_is_revoked_and_its_worker_child_stopped(world: World) -> None:
    marker = world.tmp / f"cancel-{uuid.uuid4().hex[:6]}"
    job_id = world.run(world.model("tests.sleep"), {"seconds": 20, "marker": str(marker)})
    pid, state = wait_for(lambda: marker_state(marker), 15, 0.05)
    assert state == "started"
    r = world.server.request("POST", f"/v2/jobs/{job_id}/cancel")
    assert r.status_code == 200, r.text
    # The task has no heartbeats: only the revoke (SIGTERM to the pool child) stops it.
    wait_for(lambda: not alive(pid), 10, 0.05)
    time.sleep(0.5)
    job = world.job(job_id)
    assert job["status"] == "failure"
    assert job["error"]["type"] == "Cancelled"
    assert marker_state(marker) == (pid, "started")  # never finished
    # The worker lives on (a new pool child) and takes the next job.
    assert world.wait(world.run(world.model("tests.echo"), {"y": 2}))["status"] == "success"


def test_progress_from_the_task_is_recorded(world: World) -> None:
    job_id = world.run(world.model("tests.progress"), {"steps": 3})
    job = world.wait(job_id)
    assert job["status"] == "success", job
    assert job["output"] == {"steps": 3}
    assert (job["progress"], job["progress_message"]) == (1.0, "step 3 of 3")


def test_a_worker_killed_mid_task_times_out_on_heartbeats_and_is_retried(world: World) -> None:
    model_id = world.model(
        "tests.slow_first",
        heartbeat_timeout_seconds=2,
        max_attempts=2,
        retry_backoff_seconds=0,
    )
    marker = world.tmp / f"kill-{uuid.uuid4().hex[:6]}"
    job_id = world.run(model_id, {"marker": str(marker)})
    wait_for(lambda: marker_state(marker), 15, 0.05)
    assert wait_for(lambda: world.job(job_id)["heartbeat_at"], 5, 0.05)  # it beats
    world.worker.kill()
    # A new worker takes attempt 2 from the queue. (PIE counts a celery job started once the
    # broker has it, so attempt 2's heartbeat clock runs while it waits for a worker.)
    world.worker.start()
    job = world.wait(job_id, timeout=20)
    assert job["status"] == "success", job
    assert job["output"] == {"attempt": 2}
    (first,) = job["attempts"]
    assert first["error"]["type"] == "HeartbeatTimeout"


def test_a_worker_killed_mid_task_fails_the_job_when_no_attempt_remains(world: World) -> None:
    model_id = world.model("tests.slow_first", heartbeat_timeout_seconds=2, max_attempts=1)
    marker = world.tmp / f"kill-{uuid.uuid4().hex[:6]}"
    job_id = world.run(model_id, {"marker": str(marker)})
    wait_for(lambda: marker_state(marker), 15, 0.05)
    world.worker.kill()
    try:
        job = world.wait(job_id, timeout=15)
        assert (job["status"], job["attempt"], job["attempts"]) == ("failure", 1, None)
        assert job["error"]["type"] == "HeartbeatTimeout"
    finally:
        world.worker.start()  # for the tests after this one


def test_the_task_message_shows_the_job_not_its_payload(world: World) -> None:
    """Celery's events, `celery inspect` and Flower show a message's argsrepr: it names the
    job; the callback token and the input travel only in the body, to the worker."""
    from kombu import Connection

    queue = f"pie-test-raw-{uuid.uuid4().hex[:8]}"  # no worker takes it
    model_id = f"m-{uuid.uuid4().hex[:8]}"
    handler = {"type": "celery", "task": "tests.echo", "queue": queue}
    body = model_body(model_id, handlers={"training": handler, "inference": handler})
    assert world.server.request("POST", "/v2/models", json=body).status_code == 201
    world.server.request(
        "POST", f"/v2/models/{model_id}/versions/1/new_status", json={"status": "active"}
    )
    try:
        job_id = world.run(model_id, {"secret": "tenant-input-7731"})
        world.wait(job_id, "started")
        with Connection(world.worker.broker, connect_timeout=3) as connection:
            channel = connection.default_channel
            raw = wait_for(lambda: channel.basic_get(queue, no_ack=True), 10, 0.05)
            message = raw if hasattr(raw, "decode") else channel.message_to_python(raw)
        headers = message.headers
        assert headers["id"] == world.job(job_id)["external_id"]
        assert headers["argsrepr"] == f"(<PIE job {job_id}, attempt 1>,)"
        assert headers["kwargsrepr"] == "{}"
        args, kwargs, _ = message.decode()
        (payload,) = args
        token = payload["callback"]["token"]
        assert len(token) > 20 and payload["input"] == {"secret": "tenant-input-7731"}
        for shown in (headers["argsrepr"], headers["kwargsrepr"], json.dumps(headers)):
            assert token not in shown and "tenant-input-7731" not in shown
    finally:
        delete_queue(world.worker.broker, queue)


def test_a_burst_of_jobs_is_each_sent_once_and_succeeds(world: World) -> None:
    """Jobs started side by side, so that some queue while a dispatch is out and go to the
    broker in one batch: each is sent once and succeeds with its own output."""
    from concurrent.futures import ThreadPoolExecutor

    model_id = world.model("tests.echo")
    with ThreadPoolExecutor(8) as pool:
        job_ids = list(pool.map(lambda n: world.run(model_id, {"n": n}), range(40)))
    for n, job_id in enumerate(job_ids):
        job = world.wait(job_id, timeout=60)
        assert job["status"] == "success" and job["output"] == {"echo": {"n": n}}, job
    sent = [
        line
        for line in map(json.loads, (world.tmp / "server.log").read_text().splitlines())
        if line.get("job_id") in job_ids and line.get("external_id")
    ]
    assert sorted(line["job_id"] for line in sent) == sorted(job_ids)  # one "dispatched" each


def test_a_batch_of_tasks_reaches_the_broker_as_its_celery_messages(world: World) -> None:
    """The type's dispatch_many against the real broker: one message per job, in order, each
    with the task id it returned and the job's payload as its argument."""
    from types import SimpleNamespace

    from kombu import Connection

    from plugins.celery_handler import CeleryHandlerType

    queue = f"pie-test-batch-{uuid.uuid4().hex[:8]}"  # no worker takes it
    handler_type = CeleryHandlerType(
        SimpleNamespace(config={"PIE_CELERY_BROKER_URL": world.worker.broker})
    )
    handler = {"type": "celery", "task": "tests.echo", "queue": queue}
    jobs = [SimpleNamespace(job_id=f"job-{n}", attempt=1) for n in range(5)]
    items = [
        (handler, job, {"job_id": job.job_id, "input": {"n": n}}) for n, job in enumerate(jobs)
    ]
    try:
        task_ids = handler_type.dispatch_many(items)
        assert len(task_ids) == 5 and all(isinstance(t, str) for t in task_ids)
        with Connection(world.worker.broker, connect_timeout=3) as connection:
            channel = connection.default_channel
            messages = []
            for _ in jobs:
                raw = wait_for(lambda: channel.basic_get(queue, no_ack=True), 10, 0.05)
                messages.append(raw if hasattr(raw, "decode") else channel.message_to_python(raw))
        assert [m.headers["id"] for m in messages] == task_ids
        assert [m.headers["task"] for m in messages] == ["tests.echo"] * 5
        assert [m.decode()[0][0] for m in messages] == [payload for _, _, payload in items]
    finally:
        handler_type.close()
        delete_queue(world.worker.broker, queue)
