"""The redis_list handler type and its worker, tested the way PIE runs them: PIE loads the
plugin through its entry point (nothing registers it by hand here), jobs go through a real
Redis server, and workers report over real HTTP to a served PIE app."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from pie_redis_list import JOBS, attempt_key, worker


def handler(list_name: str) -> dict[str, str]:
    return {"type": "redis_list", "list": list_name}


def popped(redis_connection: Any, list_name: str, timeout: float = 10) -> dict[str, Any]:
    item = redis_connection.blpop([JOBS + list_name], timeout=timeout)
    assert item is not None, f"nothing was queued on {list_name} within {timeout}s"
    return json.loads(item[1])


class Worker:
    """`pie_redis_list.worker.work` in a thread, stopped at the end of the test."""

    def __init__(self, list_name: str, function: Any, **options: Any) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=worker.work,
            args=(list_name, function),
            kwargs={"stop": self.stop, "poll_seconds": 0.2, **options},
            daemon=True,
        )
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def start_worker():
    workers: list[Worker] = []

    def start(list_name: str, function: Any, **options: Any) -> Worker:
        workers.append(Worker(list_name, function, **options))
        return workers[-1]

    yield start
    for each in workers:
        each.close()


def test_pie_loads_the_plugin_from_its_entry_point(pie_client):
    plugins = pie_client.app.extensions["pie"].handler_types
    assert "redis_list" in plugins

    spec = pie_client.get("/openapi.json").get_json()
    union = spec["components"]["schemas"]["Handler"]  # the oneOf over every handler type
    assert "redis_list" in union["discriminator"]["mapping"]


def test_a_bad_list_name_is_refused_at_registration(pie_client):
    bad = handler("a b")
    body = {
        "id": "m1",
        "name": "m1",
        "description": "",
        "handlers": {"training": bad, "inference": bad},
    }
    r = pie_client.post("/v2/models", json=body)

    assert r.status_code == 400
    assert r.get_json()["success"] is False
    assert "handlers.inference.list" in r.get_json()["message"]


def test_a_job_is_queued_on_redis_and_completed_by_callback(pie_jobs, redis_connection, list_name):
    pie_jobs.register_model(handler(list_name))
    job_id = pie_jobs.run_inference("m1", {"text": "hello"})

    payload = popped(redis_connection, list_name)
    assert (payload["job_id"], payload["attempt"]) == (job_id, 1)
    assert payload["input"] == {"text": "hello"}
    started = pie_jobs.wait(job_id, ["started"])
    assert started["external_id"] == f"{list_name}/{job_id}.1"

    assert pie_jobs.complete(payload, output={"label": "greeting"}).status_code == 200
    job = pie_jobs.wait(job_id)
    assert job["status"] == "success" and job["output"] == {"label": "greeting"}
    assert pie_jobs.complete(payload, output={"label": "other"}).status_code == 409


def test_workers_run_jobs_end_to_end_over_http(pie_live_app, pie_jobs, start_worker, list_name):
    jobs = pie_jobs
    jobs.register_model(handler(list_name))
    start_worker(list_name, lambda job_input: {"length": len(job_input["text"])})

    ids = [jobs.run_inference("m1", {"text": "x" * n}) for n in range(5)]

    for n, job_id in enumerate(ids):
        job = jobs.wait(job_id)
        assert job["status"] == "success" and job["output"] == {"length": n}, job


def test_a_failing_function_fails_the_job_and_a_retryable_one_is_retried(
    pie_live_app, pie_jobs, start_worker, list_name
):
    calls: list[Any] = []

    class Flaky(Exception):
        retryable = True

    def function(job_input: Any) -> Any:
        calls.append(job_input)
        if job_input.get("broken"):
            raise ValueError("bad input")
        if len(calls) < 3:
            raise Flaky("the store is busy")
        return {"ok": True}

    jobs = pie_jobs
    policy = {"inference": {"max_attempts": 3, "retry_backoff_seconds": 0}}
    jobs.register_model(handler(list_name), job_policy=policy)
    start_worker(list_name, function)

    job_id = jobs.run_inference("m1", {})
    # Retries are dispatched by the recovery loop, which pie serve runs every few seconds.
    job = jobs.wait(job_id, recover=True)
    assert job["status"] == "success" and job["attempt"] == 3, job
    assert [a["error"]["type"] for a in job["attempts"]] == ["Flaky", "Flaky"]

    broken = jobs.wait(jobs.run_inference("m1", {"broken": True}))
    assert broken["status"] == "failure"
    assert broken["error"] == {"type": "ValueError", "message": "bad input"}


def test_a_cancelled_job_is_never_run(pie_jobs, redis_connection, list_name):
    pie_jobs.register_model(handler(list_name))
    job_id = pie_jobs.run_inference("m1", {})
    payload = popped(redis_connection, list_name)

    cancelled = pie_jobs.cancel(job_id)
    assert cancelled["status"] == "failure" and cancelled["error"]["type"] == "Cancelled"
    assert redis_connection.get(attempt_key(job_id, 1)) == b"Cancelled"

    ran: list[Any] = []
    assert worker.run_one(redis_connection, payload, ran.append) is None
    assert ran == []


def test_an_unreachable_redis_fails_the_dispatch(pie_make_app, list_name):
    from pie.testing import Jobs, PieClient

    app = pie_make_app({"PIE_REDIS_LIST_URL": "redis://127.0.0.1:1/0"})
    jobs = Jobs(PieClient(app))
    jobs.register_model(handler(list_name))

    job = jobs.wait(jobs.run_inference("m1", {}))

    assert job["status"] == "failure" and job["error"]["type"] == "DispatchError", job
    assert "redis_list" in job["error"]["message"]


def test_an_output_pie_refuses_is_reported_as_a_failure(
    pie_live_app, pie_jobs, start_worker, list_name
):
    pie_jobs.register_model(handler(list_name))
    start_worker(list_name, lambda job_input: [1, 2])  # not a JSON object: PIE answers 400

    job = pie_jobs.wait(pie_jobs.run_inference("m1", {}))

    assert job["status"] == "failure" and job["error"]["type"] == "InvalidOutput", job


def test_the_worker_outlives_bad_items_and_an_unreachable_pie(
    pie_live_app, pie_jobs, start_worker, redis_connection, list_name
):
    lost = {
        "job_id": "x",
        "attempt": 1,
        "input": {},
        "callback": {"url": "http://127.0.0.1:1/complete", "token": "t"},
    }
    assert worker.report(lost, {"status": "success", "output": {}}, tries=2) == 0

    pie_jobs.register_model(handler(list_name))
    redis_connection.rpush(JOBS + list_name, "not json", json.dumps(lost))
    start_worker(list_name, lambda job_input: {"ok": True}, tries=2)

    job = pie_jobs.wait(pie_jobs.run_inference("m1", {}), timeout=30)
    assert job["status"] == "success", job
