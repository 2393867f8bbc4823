"""Batched dispatch (HandlerType.dispatches_in_batches): the jobs of a batching type that
queue up while one dispatch is out go to the type together, in one `dispatch_many`, with one
claim write and one start write for them all; each job's outcome is still its own.

The type here holds its first (single) dispatch until the test lets it go, so what queues
meanwhile is known exactly."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import marshmallow as ma
import pytest

from pie import HandlerType, hookimpl
from pie.db import connection
from pie.services import claims, jobs, processes
from pie.tables import utcnow
from tests.helpers import Client, register_active, wait_for


class Gate:
    singles: list[str] = []
    batches: list[list[str]] = []
    cancels: list[tuple[str, str | None]] = []
    hold = threading.Event()
    entered = threading.Event()
    failing: dict[str, Exception] = {}
    batch_error: Exception | None = None
    during: Callable[[], None] | None = None

    @classmethod
    def reset(cls) -> None:
        cls.singles, cls.batches, cls.cancels = [], [], []
        cls.hold, cls.entered = threading.Event(), threading.Event()
        cls.failing, cls.batch_error, cls.during = {}, None, None


class EmptySchema(ma.Schema):
    pass


class BatchingType(HandlerType):
    name = "batching"
    schema = EmptySchema
    dispatches_in_batches = True

    def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> str:
        Gate.singles.append(job.job_id)
        Gate.entered.set()
        assert Gate.hold.wait(10)
        return f"one-{job.job_id}"

    def dispatch_many(self, items: list[tuple[dict, Any, dict]]) -> list[str | None | Exception]:
        ids = [job.job_id for _, job, _ in items]
        assert all(payload["job_id"] == job.job_id for _, job, payload in items)
        Gate.batches.append(ids)
        if Gate.during is not None:
            Gate.during()
        if Gate.batch_error is not None:
            raise Gate.batch_error
        return [Gate.failing.get(job_id) or f"ext-{job_id}" for job_id in ids]

    def cancel(self, handler: dict, job: Any, external_id: str | None, reason: str) -> None:
        Gate.cancels.append((job.job_id, external_id))


class BatchingPlugin:
    name = "batching-plugin"

    @hookimpl
    def pie_register_handler_types(self, app: Any) -> list[type[HandlerType]]:
        return [BatchingType]


@pytest.fixture
def world(make_app):
    Gate.reset()
    app = make_app({"PIE_DISPATCH_GRACE_SECONDS": 60}, plugins=[BatchingPlugin()])
    client = Client(app.test_client())
    register_active(client, "bat", {"type": "batching"})
    runtime = app.extensions["pie"]
    runtime.registration.ensure()  # jobs are inserted with this process's claim from now on
    yield client, runtime
    Gate.hold.set()


def start(client: Client) -> str:
    response = client.post("/v2/models/bat/versions/1/inference", json={"input": {}})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["inference_job_id"]


def job(client: Client, job_id: str) -> dict[str, Any]:
    return client.get(f"/v2/jobs/{job_id}").get_json()


def queued_behind_a_held_dispatch(client: Client, count: int) -> tuple[str, list[str]]:
    """One job whose dispatch is held, then `count` more that queue behind it."""
    first = start(client)
    assert Gate.entered.wait(10)
    return first, [start(client) for _ in range(count)]


def test_jobs_that_queue_while_a_dispatch_is_out_go_in_one_batch(world) -> None:
    client, _ = world
    first, rest = queued_behind_a_held_dispatch(client, 5)
    assert [job(client, job_id)["status"] for job_id in rest] == ["pending"] * 5
    Gate.hold.set()
    wait_for(lambda: all(job(client, j)["status"] == "started" for j in rest))
    assert Gate.singles == [first]  # a job alone goes through `dispatch`
    assert Gate.batches == [rest]
    assert job(client, first)["external_id"] == f"one-{first}"
    for job_id in rest:
        stored = job(client, job_id)
        assert stored["external_id"] == f"ext-{job_id}"
        assert stored["started_at"] is not None
    with connection():
        assert all(jobs.get_job(j).claimed_by is None for j in rest)  # runs elsewhere now


def test_a_job_the_batch_could_not_take_fails_alone(world) -> None:
    client, _ = world
    _, rest = queued_behind_a_held_dispatch(client, 3)
    Gate.failing[rest[1]] = RuntimeError("queue full")
    Gate.hold.set()
    wait_for(lambda: job(client, rest[1])["status"] == "failure")
    failed = job(client, rest[1])
    assert failed["error"]["type"] == "DispatchError"
    assert "RuntimeError: queue full" in failed["error"]["message"]
    assert [job(client, j)["status"] for j in (rest[0], rest[2])] == ["started", "started"]


def test_a_batch_that_raises_is_dispatched_one_by_one(world) -> None:
    client, _ = world
    first, rest = queued_behind_a_held_dispatch(client, 3)
    Gate.batch_error = ConnectionError("pipeline broke")
    Gate.hold.set()
    wait_for(lambda: all(job(client, j)["status"] == "started" for j in rest))
    assert Gate.batches == [rest]
    assert Gate.singles[0] == first and sorted(Gate.singles[1:]) == sorted(rest)
    assert [job(client, j)["external_id"] for j in rest] == [f"one-{j}" for j in rest]


def test_a_job_cancelled_while_its_batch_is_out_is_stopped_on_the_backend(world) -> None:
    client, _ = world
    _, rest = queued_behind_a_held_dispatch(client, 3)

    def cancel_one() -> None:
        assert client.post(f"/v2/jobs/{rest[0]}/cancel").status_code == 200

    Gate.during = cancel_one
    Gate.hold.set()
    wait_for(lambda: job(client, rest[2])["status"] == "started")
    # the cancel itself tells the backend (no id yet); the batch's start then finds the job
    # ended and tells it again, with the id the backend gave
    wait_for(lambda: (rest[0], f"ext-{rest[0]}") in Gate.cancels)
    assert [job_id for job_id, _ in Gate.cancels] == [rest[0], rest[0]]
    cancelled = job(client, rest[0])
    assert cancelled["status"] == "failure" and cancelled["error"]["type"] == "Cancelled"
    assert job(client, rest[1])["status"] == "started"


def test_queued_jobs_whose_claims_were_voided_or_taken_again_are_not_sent(world) -> None:
    """This process was taken for dead while jobs waited for the batch: another process took
    one of them, this process's own recovery (registered again) another, and the third waits
    for recovery. Whoever holds a claim now dispatches that job: the batch sends none."""
    client, runtime = world
    _, rest = queued_behind_a_held_dispatch(client, 3)
    owner = runtime.registration.id
    with connection():
        voided = processes.void(owner, utcnow() + timedelta(seconds=1))
        assert voided is not None and set(rest) <= set(voided.pending)
        assert claims.claim(rest[0], 60, "0190a000-0b0b-7000-8000-000000000000")
        processes.register(owner, "app")  # registers again under its id
        assert claims.claim(rest[1], 60, owner)  # its recovery's claim, a second attempt
    Gate.hold.set()
    wait_for(lambda: not runtime.dispatcher._draining)
    assert Gate.batches == [] and Gate.singles[1:] == []
    assert [job(client, j)["status"] for j in rest] == ["pending"] * 3
