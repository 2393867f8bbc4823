"""Job control at its edges, from a review that played the attacker and the demanding user
(issue 15): a timed-out attempt that keeps running, human tenant users, in-process heartbeat
values, implementations with optional parameters, unusable settings, handler types that start
jobs themselves, late dispatches of an earlier attempt, resent failures."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from pie import hookimpl
from tests.api.test_job_control import V, infer, model, recover
from tests.helpers import (
    Client,
    activate,
    add_tenant,
    assert_envelope,
    make_token,
    model_body,
    wait_for,
    wait_for_job,
)


class Work:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[Any] = []
        self.contexts: list[Any] = []

    def stubborn(self, job_input: dict[str, Any]) -> dict[str, Any]:
        """An implementation that takes no context (so cannot see cancellation) and runs
        long: a hung model call."""
        self.calls.append(job_input)
        self.release.wait(30)
        return {}

    def nan_progress(self, job_input: dict[str, Any], job: Any) -> dict[str, Any]:
        job.heartbeat(progress=float(job_input.get("p", "nan")), message=job_input.get("m"))
        self.release.wait(30)
        return {}

    def optional_second(self, job_input: dict[str, Any], threshold: float = 0.5) -> dict[str, Any]:
        """A pre-existing implementation with an optional second parameter."""
        return {"threshold": threshold}

    @hookimpl
    def pie_register_in_process_handlers(self, app: Any) -> dict[str, Any]:
        return {
            "stubborn": self.stubborn,
            "nan_progress": self.nan_progress,
            "optional_second": self.optional_second,
        }


@pytest.fixture
def work() -> Any:
    work = Work()
    yield work
    work.release.set()


@pytest.fixture
def app(make_app: Any, work: Work) -> Any:
    return make_app({"PIE_IN_PROCESS_WORKERS": 2}, plugins=[work])


# --- a timed-out in-process attempt that does not stop blocks its own retry forever ---


def test_a_retry_after_a_timeout_is_dispatched_while_the_old_attempt_still_runs(make_app, work):
    """The old attempt's context stays in the in-process type's `_running` until its
    implementation returns; the lease thread keeps renewing `claimed_until` of that job id,
    pending or started — the retry's claim (its backoff) is pushed back forever."""
    app = make_app(
        {"PIE_IN_PROCESS_WORKERS": 2, "PIE_IN_PROCESS_LEASE_SECONDS": 0.9}, plugins=[work]
    )
    client = Client(app.test_client())
    policy = {"inference": {"timeout_seconds": 1, "max_attempts": 2, "retry_backoff_seconds": 1}}
    model(client, "stubborn", policy)
    job_id = infer(client)
    wait_for_job(client, job_id, ("started",))
    time.sleep(1.2)
    recover(app)
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert (job["status"], job["attempt"]) == ("pending", 2)

    def second_attempt_started() -> Any:
        recover(app)
        job = client.get(f"/v2/jobs/{job_id}").get_json()
        # Started is recorded just before the implementation is called: wait for both.
        return job if job["status"] == "started" and len(work.calls) == 2 else None

    # Expected: attempt 2 is dispatched after its backoff (at most 1 s), on the free worker.
    # Actual: it stays pending as long as attempt 1's implementation runs.
    job = wait_for(second_attempt_started, timeout=5, interval=0.2)
    assert job["attempt"] == 2 and len(work.calls) == 2


# --- a human tenant user cannot cancel the job they started -------------------------


def test_a_human_tenant_user_cancels_a_job_of_their_tenant(client, work):
    model(client, "stubborn")
    add_tenant(client, "acme", "d1", k="m1")
    human = make_token(groups=["client:acme"])
    r = client.post(
        "/v2/clients/acme/domains/d1/assignments/k/jobs",
        json={"job_type": "inference", "input": {}},
        token=human,
    )
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["job_id"]
    # The human may read it (read_models) …
    assert client.get(f"/v2/jobs/{job_id}", token=human).status_code == 200
    # … and started it (run_inference on acme), so may cancel it. Actual: 403.
    r = client.post(f"/v2/jobs/{job_id}/cancel", token=human)
    assert r.status_code == 200, r.get_json()
    # Another tenant's human may not.
    other = make_token(groups=["client:beta"])
    assert_envelope(client.post(f"/v2/jobs/{job_id}/cancel", token=other), 403)


# --- an in-process heartbeat stores NaN / out-of-range progress ----------------------


@pytest.mark.parametrize("progress", ["nan", "inf", "7"])
def test_an_in_process_heartbeat_is_checked_like_the_http_one(client, work, progress):
    """The implementation's heartbeat is refused like the route's 400 (it raised into the
    implementation, which let it fail the job); nothing unreadable is stored."""
    model(client, "nan_progress")
    job_id = infer(client, {"p": progress})
    job = wait_for_job(client, job_id)
    assert job["status"] == "failure" and job["progress"] is None
    assert "progress must be a number from 0.0 to 1.0" in job["error"]["message"]
    r = client.get(f"{V}/jobs")
    assert r.status_code == 200, r.get_data(as_text=True)


# --- an implementation with an optional second parameter now gets a JobContext ---------


def test_an_implementation_with_an_optional_second_parameter_keeps_working(client, work):
    model(client, "optional_second")
    job = wait_for_job(client, infer(client))
    assert job["status"] == "success", job["error"]
    assert job["output"] == {"threshold": 0.5}


# --- PIE_JOB_* settings PIE cannot use stop start-up ------------------------------------


@pytest.mark.parametrize(
    "name, value",
    [
        ("PIE_JOB_RETRY_BACKOFF_SECONDS", "nan"),
        ("PIE_JOB_RETRY_BACKOFF_SECONDS", "-5"),
        ("PIE_JOB_TIMEOUT_SECONDS", "1e12"),  # past datetime.max from now
        ("PIE_JOB_MAX_ATTEMPTS", "0"),
        ("PIE_JOB_MAX_ATTEMPTS", "100000"),  # 2 ** (n - 1) overflows a float past 1025
    ],
)
def test_an_unusable_job_setting_is_a_configuration_error(name, value):
    from pie.config import ConfigurationError, load

    with pytest.raises(ConfigurationError):
        load({name: value})


# --- a handler type that starts itself, as the README documents, gets no deadline -------


class SelfStarting:
    """A third-party handler type with `starts_itself = True` that marks its jobs started
    the way the README documents: `runtime.mark_started(job_id, lease_seconds=…)`."""

    name = "self-starting-plugin"

    @hookimpl
    def pie_register_handler_types(self, app: Any) -> list[Any]:
        import marshmallow as ma

        from pie import HandlerType

        class SelfStartingType(HandlerType):
            name = "selfstart"
            schema = ma.Schema
            starts_itself = True

            def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> None:
                self.runtime.mark_started(job.job_id, lease_seconds=30)
                return None

        return [SelfStartingType]


def test_a_job_a_handler_type_starts_itself_has_a_deadline(make_app):
    app = make_app(plugins=[SelfStarting()])
    client = Client(app.test_client())
    handler = {"type": "selfstart"}
    body = model_body("m1", handlers={"training": handler, "inference": handler})
    body["job_policy"] = {"inference": {"timeout_seconds": 1}}
    assert client.post("/v2/models", json=body).status_code == 201, "model"
    activate(client, "m1")
    job_id = infer(client)
    job = wait_for_job(client, job_id, ("started",))
    # README: "Every started attempt has a deadline_at". Actual: None, and it never times out.
    assert job["deadline_at"] is not None
    time.sleep(1.1)
    recover(app)
    assert client.get(f"/v2/jobs/{job_id}").get_json()["status"] == "failure"


# --- heartbeat values round-trip -----------------------------------------------------


@pytest.mark.parametrize("progress", [0.1, 0.123456789012345, 1e-300, 5e-324])
def test_heartbeat_progress_reads_back_as_sent(app, client, work, progress):
    model(client, "stubborn")
    job_id = infer(client)
    wait_for_job(client, job_id, ("started",))
    token = app.extensions["pie"].callback_token(job_id, 1)
    r = client.post(f"{V}/jobs/{job_id}/heartbeat", json={"progress": progress}, token=token)
    # On Postgres `progress` is REAL (float4, peewee's FloatField): 1e-300 is a 500
    # ("value out of range: underflow") and 0.123456789012345 reads back as 0.12345679.
    assert r.status_code == 200, r.get_json()
    assert client.get(f"/v2/jobs/{job_id}").get_json()["progress"] == progress


@pytest.mark.parametrize("message", ["a\x00b", "\ud800", "x" * 1000])
def test_odd_heartbeat_messages_are_a_clean_answer(app, client, work, message):
    import json

    model(client, "stubborn")
    job_id = infer(client)
    wait_for_job(client, job_id, ("started",))
    token = app.extensions["pie"].callback_token(job_id, 1)
    body = json.dumps({"message": message}).encode()
    r = client.post(
        f"{V}/jobs/{job_id}/heartbeat",
        data=body,
        token=token,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code in (200, 400), r.get_data(as_text=True)
    assert r.get_json() is not None
    got = client.get(f"/v2/jobs/{job_id}")
    assert got.status_code == 200, got.get_data(as_text=True)


# --- dispatch in flight while the job is cancelled or retried -------------------------


class Gate:
    """A handler type whose first dispatch blocks until `go` is set (a slow RunTask); each
    dispatch returns `ext-<n>`, and `cancel` records what it was asked to stop."""

    name = "gate-plugin"

    def __init__(self) -> None:
        self.go = threading.Event()
        self.entered = threading.Event()
        self.payloads: list[dict[str, Any]] = []
        self.stopped: list[Any] = []

    @hookimpl
    def pie_register_handler_types(self, app: Any) -> list[Any]:
        import marshmallow as ma

        from pie import HandlerType

        gate = self

        class GateType(HandlerType):
            name = "gate"
            schema = ma.Schema

            def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> str:
                gate.payloads.append(payload)
                n = len(gate.payloads)
                if n == 1:
                    gate.entered.set()
                    gate.go.wait(20)
                return f"ext-{n}"

            def cancel(
                self, handler: dict[str, Any], job: Any, external_id: Any, reason: str
            ) -> None:
                gate.stopped.append(external_id)

        return [GateType]


def gate_model(client: Client, policy: dict[str, Any] | None = None) -> None:
    handler = {"type": "gate"}
    body = model_body("m1", handlers={"training": handler, "inference": handler})
    if policy:
        body["job_policy"] = policy
    assert client.post("/v2/models", json=body).status_code == 201
    activate(client, "m1")


def test_a_job_cancelled_while_its_dispatch_is_in_flight_is_stopped(make_app):
    gate = Gate()
    app = make_app(plugins=[gate])
    client = Client(app.test_client())
    gate_model(client)
    job_id = infer(client)
    assert gate.entered.wait(5)
    assert client.post(f"/v2/jobs/{job_id}/cancel").status_code == 200
    gate.go.set()
    wait_for(lambda: gate.stopped == [None, "ext-1"] or gate.stopped == ["ext-1"], timeout=5)
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert job["status"] == "failure" and job["error"]["type"] == "Cancelled"


def test_a_late_dispatch_of_an_earlier_attempt_does_not_overwrite_the_current_external_id(
    make_app,
):
    """Attempt 1's dispatch is slow; its handler reports a retryable failure meanwhile (a
    fast Lambda), attempt 2 is dispatched and started as `ext-2`; then attempt 1's dispatch
    returns `ext-1`. mark_started writes external_id unconditionally: the row now names
    attempt 1's task, and a cancel of attempt 2 stops the wrong one."""
    gate = Gate()
    app = make_app(plugins=[gate])
    client = Client(app.test_client())
    gate_model(client, {"inference": {"max_attempts": 2, "retry_backoff_seconds": 0}})
    job_id = infer(client)
    assert gate.entered.wait(5)
    token = gate.payloads[0]["callback"]["token"]
    r = client.post(
        f"{V}/jobs/{job_id}/complete",
        json={"status": "failure", "error": {"type": "Flaky", "retryable": True}},
        token=token,
    )
    assert r.status_code == 200 and r.get_json()["status"] == "pending"
    recover(app)
    job = wait_for_job(client, job_id, ("started",))
    assert (job["attempt"], job["external_id"]) == (2, "ext-2")
    gate.go.set()
    time.sleep(0.5)
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert job["external_id"] == "ext-2"
    assert client.post(f"/v2/jobs/{job_id}/cancel").status_code == 200
    assert "ext-2" in gate.stopped and "ext-1" not in gate.stopped


# --- small inconsistencies ------------------------------------------------------------


def test_an_empty_policy_reads_the_same_whether_created_or_replaced(client, work):
    """POST /v2/models with `job_policy: {}` stores and shows `{}`; PUT …/job_policy `{}`
    shows null. Both mean "the settings' defaults"."""
    body = model_body("m1", job_policy={})
    assert client.post("/v2/models", json=body).get_json()["job_policy"] is None


def test_cancel_checks_the_permission_before_telling_whether_the_job_exists(app, client, work):
    """With a callable permission, requires_job reads the job first: a token without
    run_inference/run_training (here: a callback token, or read_models only) learns which
    job ids exist (404 vs 403). Every other job route answers such a token 403 either way."""
    from tests.helpers import scoped

    model(client, "stubborn")
    job_id = infer(client)
    reader = scoped("read_models")
    assert_envelope(client.post(f"/v2/jobs/{job_id}/cancel", token=reader), 403)
    missing = "01a00000-0000-7000-8000-00000000dead"
    assert_envelope(client.post(f"/v2/jobs/{missing}/cancel", token=reader), 403)


# --- a repeated retryable failure without an attempt claim burns a second attempt -----


def test_a_repeated_retryable_failure_of_a_token_without_attempt_is_not_applied_twice(
    app, client, work
):
    """A callback token minted before this version carries no attempt and "is taken for the
    current one"; so does an operator's token. Sending the same retryable failure twice (an
    HTTP client's retry after a lost response) retries the job twice: attempt 2 is skipped
    before it ever ran, and attempt 3 is used up."""
    import jwt

    from tests.helpers import SECRET

    model(client, "stubborn", {"inference": {"max_attempts": 3, "retry_backoff_seconds": 60}})
    job_id = infer(client)
    wait_for_job(client, job_id, ("started",))
    old = jwt.encode(
        {
            "sub": f"job:{job_id}",
            "pie:job_id": job_id,
            "scope": "streamline/complete_jobs",
            "iat": int(time.time()),
            "exp": int(time.time()) + 600,
        },
        SECRET,
        algorithm="HS256",
    )
    failure = {"status": "failure", "error": {"type": "Flaky", "retryable": True}}
    first = client.post(f"{V}/jobs/{job_id}/complete", json=failure, token=old)
    assert first.status_code == 200 and first.get_json()["status"] == "pending"
    client.post(f"{V}/jobs/{job_id}/complete", json=failure, token=old)
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert job["attempt"] == 2, job["attempts"]
