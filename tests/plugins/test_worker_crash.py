"""SIGKILL a `pie worker` in the middle of a dispatch (its Lambda call hangs on an endpoint
that never answers): the job is not lost; once the claim's lease runs out another worker
dispatches it again, with the same job_id, and moto receives it exactly once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import timedelta

import pytest

from pie.db import connection
from pie.ids import uuid7
from pie.tables import Job, utcnow
from tests.helpers import SECRET, activate, model_body, wait_for
from tests.plugins.test_aws_lambda import create_function


class SilentEndpoint:
    """Accepts connections and never answers: a backend call that hangs."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()


def start_worker(env: dict[str, str], log: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pie", "worker"],
        env={**os.environ, **env},
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,  # noqa: SIM115
        start_new_session=True,
    )


@pytest.fixture
def silent():
    endpoint = SilentEndpoint()
    yield endpoint
    endpoint.close()


def test_a_worker_killed_mid_dispatch_loses_nothing(
    aws, aws_client, database_url, moto, lambda_invocations, silent, tmp_path
):
    arn = create_function(aws)
    handler = {"type": "lambda", "arn": arn}
    body = model_body("m1", handlers={"training": handler, "inference": handler})
    assert aws_client.post("/v2/models", json=body).status_code == 201
    activate(aws_client, "m1")
    job_id = uuid7()
    with connection():  # a job a crashed server left behind
        Job.create(
            job_id=job_id,
            job_type="inference",
            model_id="m1",
            model_version="1",
            status="pending",
            input={"x": 1},
            warnings=[],
            handler_type="lambda",
            handler=handler,
            created_at=utcnow() - timedelta(seconds=30),
        )

    env = {
        "PIE_DATABASE_URL": database_url,
        "PIE_JWT_SECRET": SECRET,
        "PIE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PIE_AWS_REGION": "us-east-1",
        "PIE_DISPATCH_GRACE_SECONDS": "1",
        "PIE_RECOVERY_INTERVAL_SECONDS": "0.2",
        "PIE_DISPATCH_LEASE_SECONDS": "3",
    }
    first = start_worker({**env, "PIE_AWS_ENDPOINT_URL": silent.url}, str(tmp_path / "w1.log"))
    try:
        wait_for(lambda: silent.connections, timeout=30)  # the worker is inside its invoke
        with connection():
            job = Job.get(Job.job_id == job_id)
        assert (job.status, job.dispatch_attempts) == ("pending", 1)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)

    second = start_worker({**env, "PIE_AWS_ENDPOINT_URL": moto}, str(tmp_path / "w2.log"))
    try:

        def dispatched() -> Job | None:
            with connection():
                job = Job.get(Job.job_id == job_id)
            return job if job.status == "started" else None

        job = wait_for(dispatched, timeout=60, interval=0.2)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(30)
    assert job.dispatch_attempts == 2
    sent = [i for i in lambda_invocations if i.event["job_id"] == job_id]
    assert len(sent) == 1 and job.external_id == sent[0].request_id
