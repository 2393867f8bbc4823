"""Job control (issue 15, PIE extensions): a model's job_policy, deadlines and heartbeat
timeouts ended by the recovery loop, heartbeats with progress, cancellation, and retries —
through the HTTP API, with in-process implementations that heartbeat and observe
cancellation the way a plugin's would."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import pytest

from pie import hookimpl
from tests.helpers import (
    Client,
    activate,
    assert_envelope,
    model_body,
    scoped,
    wait_for,
    wait_for_job,
)

V = "/v2/models/m1/versions/1"


class Retryable(Exception):
    retryable = True


class Work:
    """Implementations: `patient` heartbeats until PIE ends the job; `quiet` waits without
    a heartbeat; `flaky` fails retryably until its third attempt; `broken` fails for good."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.saw_cancel = threading.Event()
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def patient(self, job_input: dict[str, Any], job: Any) -> dict[str, Any]:
        self.calls.append(job_input)
        while not self.release.is_set():
            if not job.heartbeat(progress=0.5, message="halfway") or job.cancelled.is_set():
                self.saw_cancel.set()
                return {"stopped": True}
            time.sleep(0.05)
        return {"done": True}

    def quiet(self, job_input: dict[str, Any], job: Any) -> dict[str, Any]:
        self.calls.append(job_input)
        while not self.release.is_set():
            if job.cancelled.wait(0.05):
                self.saw_cancel.set()
                break
        return {}

    def flaky(self, job_input: dict[str, Any], job: Any) -> dict[str, Any]:
        with self.lock:
            self.calls.append(job_input)
        if job.attempt < 3:
            raise Retryable(f"attempt {job.attempt} failed")
        return {"attempt": job.attempt}

    @staticmethod
    def broken(job_input: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("broken for good")

    @hookimpl
    def pie_register_in_process_handlers(self, app: Any) -> dict[str, Any]:
        return {
            "patient": self.patient,
            "quiet": self.quiet,
            "flaky": self.flaky,
            "broken": self.broken,
        }


@pytest.fixture
def work() -> Any:
    work = Work()
    yield work
    work.release.set()


@pytest.fixture
def app(make_app: Any, work: Work) -> Any:
    return make_app({"PIE_IN_PROCESS_WORKERS": 2}, plugins=[work])


def recover(app: Any) -> int:
    return app.extensions["pie"].dispatcher.recover_once()


def callback_token(app: Any, job_id: str, attempt: int = 1) -> str:
    return app.extensions["pie"].callback_token(job_id, attempt)


def model(client: Client, implementation: str, policy: dict[str, Any] | None = None) -> None:
    handler = {"type": "in_process", "value": implementation}
    body = model_body("m1", handlers={"training": handler, "inference": handler})
    if policy is not None:
        body["job_policy"] = policy
    r = client.post("/v2/models", json=body)
    assert r.status_code == 201, r.get_json()
    activate(client, "m1")


def infer(client: Client, job_input: dict[str, Any] | None = None) -> str:
    r = client.post(f"{V}/inference", json={"input": job_input or {}})
    assert r.status_code == 202, r.get_json()
    return r.get_json()["inference_job_id"]


def started(client: Client, job_id: str) -> dict[str, Any]:
    return wait_for_job(client, job_id, ("started",))


def seconds(a: str, b: str) -> float:
    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return (parse(b) - parse(a)).total_seconds()


# --- the policy -------------------------------------------------------------------------


def test_a_policy_is_part_of_the_model_and_changing_it_creates_no_version(client):
    policy = {"inference": {"timeout_seconds": 60, "max_attempts": 2}}
    model(client, "patient", policy)
    assert client.get("/v2/models/m1").get_json()["job_policy"] == policy
    sub = client.post(
        "/v2/models/m1/event-subscriptions",
        json={
            "trigger_event": "inference_complete",
            "target_model_id": "m1",
            "target_action": "training",
            "input_source": "trigger_output",
        },
    ).get_json()

    changed = {"inference": {"timeout_seconds": 5, "heartbeat_timeout_seconds": 2}}
    r = client.put("/v2/models/m1/job_policy", json=changed)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["job_policy"] == changed
    assert r.get_json()["latest_version"] == "1"
    assert [v["version"] for v in client.get("/v2/models/m1/versions").get_json()] == ["1"]
    sub_now = client.get(f"/v2/models/m1/event-subscriptions/{sub['id']}").get_json()
    assert sub_now["status"] == "active" and not sub_now.get("warnings")

    # A model replaced without the field keeps its policy.
    body = model_body("m1", handlers=client.get("/v2/models/m1").get_json()["handlers"])
    body.pop("id")
    assert client.put("/v2/models/m1", json=body).get_json()["job_policy"] == changed
    # `{}`: the settings' defaults again.
    assert client.put("/v2/models/m1/job_policy", json={}).get_json()["job_policy"] is None


def test_jobs_follow_the_policy_of_when_they_were_created(client, work):
    model(client, "patient", {"inference": {"timeout_seconds": 600}})
    first = started(client, infer(client))
    assert (
        client.put(
            "/v2/models/m1/job_policy", json={"inference": {"timeout_seconds": 30}}
        ).status_code
        == 200
    )
    second = started(client, infer(client))
    assert seconds(first["started_at"], first["deadline_at"]) == pytest.approx(600, abs=1)
    assert seconds(second["started_at"], second["deadline_at"]) == pytest.approx(30, abs=1)
    assert first["attempt"] == second["attempt"] == 1 and first["attempts"] is None


def test_every_started_job_has_a_deadline_by_default(client):
    model(client, "patient")
    job = started(client, infer(client))
    assert seconds(job["started_at"], job["deadline_at"]) == pytest.approx(86400, abs=1)


@pytest.mark.parametrize(
    "policy",
    [
        {"inference": {"timeout_seconds": 0}},
        {"inference": {"timeout_seconds": 1.5}},
        {"inference": {"max_attempts": 0}},
        {"inference": {"max_attempts": True}},
        {"inference": {"retry_backoff_seconds": -1}},
        {"inference": {"unknown": 1}},
        {"scoring": {}},
        [],
    ],
)
def test_a_bad_policy_is_a_400_in_the_envelope(client, policy):
    model(client, "patient")
    assert_envelope(client.put("/v2/models/m1/job_policy", json=policy), 400)
    body = model_body("m2", job_policy=policy)
    assert_envelope(client.post("/v2/models", json=body), 400)


# --- deadlines and heartbeats -----------------------------------------------------------


def test_a_job_past_its_deadline_times_out_and_its_implementation_is_told(app, client, work):
    model(client, "quiet", {"inference": {"timeout_seconds": 1}})
    job_id = infer(client)
    started(client, job_id)
    assert recover(app) == 0  # not yet
    time.sleep(1.1)
    recover(app)
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert job["status"] == "failure"
    assert job["error"]["type"] == "Timeout" and "1 s" in job["error"]["message"]
    assert work.saw_cancel.wait(5)  # the in-process run saw it, and its result is refused
    assert recover(app) == 0  # exactly once


def test_a_job_without_heartbeats_times_out(app, client, work):
    model(client, "quiet", {"inference": {"heartbeat_timeout_seconds": 1}})
    job_id = infer(client)
    started(client, job_id)
    time.sleep(1.1)
    recover(app)
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert job["status"] == "failure" and job["error"]["type"] == "HeartbeatTimeout"


def test_heartbeats_keep_a_job_alive_and_report_progress(app, client, work):
    model(client, "patient", {"inference": {"heartbeat_timeout_seconds": 1}})
    job_id = infer(client)
    started(client, job_id)
    for _ in range(3):
        time.sleep(0.5)
        recover(app)
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert job["status"] == "started"
    assert job["progress"] == 0.5 and job["progress_message"] == "halfway"
    assert job["heartbeat_at"] is not None
    work.release.set()
    assert wait_for_job(client, job_id)["status"] == "success"


def test_the_heartbeat_route(app, client, work):
    model(client, "quiet")
    job_id = infer(client)
    job = started(client, job_id)
    token = callback_token(app, job_id)
    r = client.post(
        f"{V}/jobs/{job_id}/heartbeat", json={"progress": 0.25, "message": "loading"}, token=token
    )
    assert r.status_code == 200, r.get_json()
    beat = r.get_json()
    assert beat["status"] == "started" and beat["attempt"] == 1
    assert beat["deadline_at"] == job["deadline_at"]
    shown = client.get(f"/v2/jobs/{job_id}").get_json()
    assert (shown["progress"], shown["progress_message"]) == (0.25, "loading")
    # An empty body is a heartbeat without progress; progress outside 0..1 is a 400.
    assert client.post(f"{V}/jobs/{job_id}/heartbeat", json={}, token=token).status_code == 200
    for bad in ({"progress": 1.5}, {"progress": "half"}, {"message": 3}):
        assert_envelope(client.post(f"{V}/jobs/{job_id}/heartbeat", json=bad, token=token), 400)
    # Another attempt's token, another job's token, a wrong version: refused.
    assert_envelope(
        client.post(f"{V}/jobs/{job_id}/heartbeat", json={}, token=callback_token(app, job_id, 2)),
        409,
    )
    other = callback_token(app, "01a00000-0000-7000-8000-000000000000")
    assert_envelope(client.post(f"{V}/jobs/{job_id}/heartbeat", json={}, token=other), 403)
    assert_envelope(client.post(f"/v2/models/m1/versions/2/jobs/{job_id}/heartbeat", json={}), 404)
    # Once the job has ended: 409, which is how a handler learns to stop.
    assert client.post(f"/v2/jobs/{job_id}/cancel").status_code == 200
    r = client.post(f"{V}/jobs/{job_id}/heartbeat", json={}, token=token)
    assert "Cancelled" in assert_envelope(r, 409)["message"]


# --- cancellation -----------------------------------------------------------------------


def test_cancelling_a_started_job(app, client, work):
    model(client, "patient")
    job_id = infer(client)
    started(client, job_id)
    r = client.post(f"/v2/jobs/{job_id}/cancel", token=scoped("run_inference"))
    assert r.status_code == 200, r.get_json()
    job = r.get_json()
    assert job["status"] == "failure" and job["error"]["type"] == "Cancelled"
    assert work.saw_cancel.wait(5)
    # It stays cancelled: a second cancel and the handler's late completion are 409s.
    assert_envelope(client.post(f"/v2/jobs/{job_id}/cancel"), 409)
    token = callback_token(app, job_id)
    late = client.post(f"{V}/jobs/{job_id}/complete", json={"status": "success"}, token=token)
    assert_envelope(late, 409)
    same = {"status": "failure", "error": job["error"]}
    assert_envelope(client.post(f"{V}/jobs/{job_id}/complete", json=same, token=token), 409)
    assert client.get(f"/v2/jobs/{job_id}").get_json() == job


def test_a_cancelled_pending_job_is_never_dispatched(make_app, work):
    app = make_app({"PIE_IN_PROCESS_WORKERS": 1}, plugins=[work])
    client = Client(app.test_client())
    model(client, "patient")
    first = infer(client, {"n": 1})
    started(client, first)
    queued = infer(client, {"n": 2})  # waits behind the first on the one worker
    assert client.get(f"/v2/jobs/{queued}").get_json()["status"] == "pending"
    assert client.post(f"/v2/jobs/{queued}/cancel").status_code == 200
    work.release.set()
    assert wait_for_job(client, first)["status"] == "success"
    time.sleep(0.2)
    recover(app)
    assert work.calls == [{"n": 1}]
    assert client.get(f"/v2/jobs/{queued}").get_json()["error"]["type"] == "Cancelled"


def test_cancelling_takes_the_permission_of_the_jobs_type(app, client, work):
    model(client, "patient")
    job_id = infer(client)
    for token in (scoped("run_training"), scoped("read_models"), callback_token(app, job_id)):
        assert_envelope(client.post(f"/v2/jobs/{job_id}/cancel", token=token), 403)
    assert_envelope(client.post("/v2/jobs/01a00000-0000-7000-8000-000000000000/cancel"), 404)
    r = client.post(f"/v2/jobs/{job_id}/cancel", token=scoped("run_inference"))
    assert r.status_code == 200


def test_cancelling_fires_no_subscription(app, client, work):
    model(client, "patient")
    r = client.post(
        "/v2/models/m1/event-subscriptions",
        json={
            "trigger_event": "inference_complete",
            "target_model_id": "m1",
            "target_action": "inference",
            "input_source": "stored",
            "input": {},
        },
    )
    assert r.status_code == 201
    job_id = infer(client)
    started(client, job_id)
    assert client.post(f"/v2/jobs/{job_id}/cancel").status_code == 200
    recover(app)
    jobs = client.get(f"{V}/jobs").get_json()
    assert [j["job_id"] for j in jobs] == [job_id]


# --- retries ----------------------------------------------------------------------------


def test_a_retryable_failure_is_tried_again_with_the_same_job_id(app, client, work):
    policy = {"inference": {"max_attempts": 3, "retry_backoff_seconds": 0}}
    model(client, "flaky", policy)
    r = client.post(
        "/v2/models/m1/event-subscriptions",
        json={
            "trigger_event": "inference_complete",
            "target_model_id": "m1",
            "target_action": "training",
            "input_source": "trigger_output",
        },
    )
    assert r.status_code == 201
    job_id = infer(client, {"x": 1})

    def finished() -> Any:
        recover(app)
        job = client.get(f"/v2/jobs/{job_id}").get_json()
        return job if job["status"] in ("success", "failure") else None

    job = wait_for(finished, timeout=20, interval=0.1)
    assert job["status"] == "success" and job["output"] == {"attempt": 3}
    assert job["attempt"] == 3
    assert [a["attempt"] for a in job["attempts"]] == [1, 2]
    assert [a["error"]["message"] for a in job["attempts"]] == [
        "attempt 1 failed",
        "attempt 2 failed",
    ]
    assert all(a["error"]["retryable"] is True for a in job["attempts"])
    assert work.calls.count({"x": 1}) == 3  # (the triggered training job runs flaky too)
    # Subscriptions fired once, on the final outcome.
    training = [
        j
        for v in client.get("/v2/models/m1/versions").get_json()
        for j in client.get(f"/v2/models/m1/versions/{v['version']}/jobs").get_json()
        if j["job_type"] == "training"
    ]
    assert len(training) == 1 and training[0]["trigger"]["parent_job_id"] == job_id
    # A late completion from an earlier attempt is a 409.
    late = client.post(
        f"{V}/jobs/{job_id}/complete",
        json={"status": "failure", "error": {"type": "Late"}},
        token=callback_token(app, job_id, 1),
    )
    assert_envelope(late, 409)


def test_a_failure_that_is_not_retryable_ends_the_job(app, client, work):
    model(client, "broken", {"inference": {"max_attempts": 3, "retry_backoff_seconds": 0}})
    job = wait_for_job(client, infer(client))
    assert job["status"] == "failure" and job["attempt"] == 1 and job["attempts"] is None


def test_attempts_run_out(app, client, work):
    model(client, "flaky", {"inference": {"max_attempts": 2, "retry_backoff_seconds": 0}})
    job_id = infer(client)

    def finished() -> Any:
        recover(app)
        job = client.get(f"/v2/jobs/{job_id}").get_json()
        return job if job["status"] == "failure" else None

    job = wait_for(finished, timeout=20, interval=0.1)
    assert job["attempt"] == 2 and job["error"]["message"] == "attempt 2 failed"
    assert len(job["attempts"]) == 1


def test_a_timed_out_attempt_is_retried_with_a_fresh_deadline(app, client, work):
    policy = {"inference": {"timeout_seconds": 1, "max_attempts": 2, "retry_backoff_seconds": 0}}
    model(client, "quiet", policy)
    job_id = infer(client)
    first = started(client, job_id)
    time.sleep(1.1)
    recover(app)
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert job["attempt"] == 2 and job["attempts"][0]["error"]["type"] == "Timeout"

    def second_attempt_started() -> Any:
        recover(app)
        job = client.get(f"/v2/jobs/{job_id}").get_json()
        return job if job["status"] == "started" else None

    again = wait_for(second_attempt_started, timeout=10, interval=0.1)
    assert again["attempt"] == 2 and again["deadline_at"] > first["deadline_at"]
    assert len(work.calls) == 2


# --- races ------------------------------------------------------------------------------


def race(*calls: Any) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_cancel_and_completion_racing_settle_once(app, client, work):
    model(client, "patient")  # stops at its next heartbeat once the job has ended
    for _ in range(5):
        job_id = infer(client)
        started(client, job_id)
        token = callback_token(app, job_id)
        cancel, complete = race(
            lambda job_id=job_id: client.post(f"/v2/jobs/{job_id}/cancel").status_code,
            lambda job_id=job_id, token=token: (
                client.post(
                    f"{V}/jobs/{job_id}/complete", json={"status": "success"}, token=token
                ).status_code
            ),
        )
        assert sorted([cancel, complete]) == [200, 409]
        job = client.get(f"/v2/jobs/{job_id}").get_json()
        assert job["status"] == ("failure" if cancel == 200 else "success")


def test_two_recovery_loops_end_an_overdue_job_once(app, client, work):
    model(client, "quiet", {"inference": {"timeout_seconds": 1}})
    job_id = infer(client)
    started(client, job_id)
    time.sleep(1.1)
    assert sorted(race(lambda: recover(app), lambda: recover(app))) == [0, 1]
    assert client.get(f"/v2/jobs/{job_id}").get_json()["error"]["type"] == "Timeout"


def test_a_timeout_and_a_completion_racing_settle_once(app, client, work):
    model(client, "patient", {"inference": {"timeout_seconds": 1}})
    for _ in range(4):
        job_id = infer(client)
        started(client, job_id)
        token = callback_token(app, job_id)
        time.sleep(1.05)
        ended, complete = race(
            lambda: recover(app),
            lambda job_id=job_id, token=token: (
                client.post(
                    f"{V}/jobs/{job_id}/complete", json={"status": "success"}, token=token
                ).status_code
            ),
        )
        job = client.get(f"/v2/jobs/{job_id}").get_json()
        # Either the completion came first (200, success, nothing ended) or the timeout did
        # (the job failed with Timeout and the completion got a 409).
        assert (ended, complete, job["status"]) in {(0, 200, "success"), (1, 409, "failure")}
