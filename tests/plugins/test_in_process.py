"""The `in_process` handler type: named implementations from plugins run inside PIE and
complete their jobs through the same path as an HTTP callback (contract 6.4)."""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

import pytest

from pie import hookimpl
from pie.db import connection
from pie.plugin_manager import PluginError
from pie.tables import Job
from tests.helpers import (
    Client,
    activate,
    assert_envelope,
    model_body,
    peewee_statements,
    wait_for,
    wait_for_job,
)


def in_process(name: str) -> dict[str, dict[str, str]]:
    handler = {"type": "in_process", "value": name}
    return {"training": handler, "inference": handler}


def create_model(client: Client, implementation: str, model_id: str = "m1") -> None:
    r = client.post("/v2/models", json=model_body(model_id, handlers=in_process(implementation)))
    assert r.status_code == 201, r.get_json()
    activate(client, model_id)


def run_inference(client: Client, job_input: dict[str, Any], model_id: str = "m1") -> dict:
    r = client.post(f"/v2/models/{model_id}/versions/1/inference", json={"input": job_input})
    assert r.status_code == 202, r.get_json()
    return wait_for_job(client, r.get_json()["inference_job_id"])


class Implementations:
    """A third-party plugin offering in-process implementations; it records the app it got."""

    name = "test-implementations"

    def __init__(self, **implementations: Any) -> None:
        self.implementations = implementations
        self.apps: list[Any] = []

    @hookimpl
    def pie_register_in_process_handlers(self, app: Any) -> dict[str, Any]:
        self.apps.append(app)
        return self.implementations


def test_echo_returns_its_input_as_the_output(client):
    create_model(client, "echo")
    job_input = {"text": "naïve ☃", "numbers": [1, 2.5, None], "nested": {"ok": True}}

    job = run_inference(client, job_input)

    assert job["status"] == "success", job
    assert job["output"] == job_input
    assert job["error"] is None and job["external_id"] is None
    assert job["handler_type"] == "in_process"
    assert job["started_at"] is not None and job["completed_at"] is not None
    assert job["started_at"] <= job["completed_at"]


def test_a_training_job_runs_in_process_and_leaves_the_version_status_alone(client):
    r = client.post("/v2/models", json=model_body("m1", handlers=in_process("echo")))
    assert r.status_code == 201, r.get_json()

    r = client.post("/v2/models/m1/versions/1/training", json={"input": {"epochs": 3}})
    assert r.status_code == 202, r.get_json()
    job = wait_for_job(client, r.get_json()["training_job_id"])

    assert job["status"] == "success" and job["job_type"] == "training"
    assert job["output"] == {"epochs": 3}
    assert client.get("/v2/models/m1/versions/1").get_json()["status"] == "training"


def test_a_job_is_started_while_its_implementation_runs(make_app):
    release = threading.Event()

    def slow(job_input: dict[str, Any]) -> dict[str, Any]:
        assert release.wait(10), "the test never released the implementation"
        return {"done": True}

    client = Client(make_app(plugins=[Implementations(slow=slow)]).test_client())
    create_model(client, "slow")
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {}})
    job_id = r.get_json()["inference_job_id"]

    started = wait_for_job(client, job_id, ("started", "success", "failure"))
    release.set()
    done = wait_for_job(client, job_id)

    assert started["status"] == "started" and started["output"] is None
    assert done["status"] == "success" and done["output"] == {"done": True}


def test_a_run_that_finishes_after_its_job_was_completed_elsewhere_is_a_warning(make_app, caplog):
    """A second run of a job (its lease lapsed, another process ran it and recorded a result
    first) cannot record a different result: 409, logged as a warning, not an error."""
    release = threading.Event()

    def slow(job_input: dict[str, Any]) -> dict[str, Any]:
        assert release.wait(10), "the test never released the implementation"
        return {"from": "this run"}

    client = Client(make_app(plugins=[Implementations(slow=slow)]).test_client())
    create_model(client, "slow")
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {}})
    job_id = r.get_json()["inference_job_id"]
    wait_for_job(client, job_id, ("started",))
    first = {"status": "success", "output": {"from": "the other run"}}
    done = client.post(f"/v2/models/m1/versions/1/jobs/{job_id}/complete", json=first)
    assert done.status_code == 200, done.get_json()

    with caplog.at_level("WARNING", logger="pie.plugins.in_process"):
        release.set()
        wait_for(lambda: any(job_id in r.getMessage() for r in caplog.records))
    (record,) = [r for r in caplog.records if job_id in r.getMessage()]
    assert record.levelname == "WARNING" and record.exc_info is None
    assert "different output" in record.getMessage()
    assert client.get(f"/v2/jobs/{job_id}").get_json()["output"] == {"from": "the other run"}


def test_an_implementation_that_raises_fails_its_job_with_type_and_message(make_app):
    def fragile(job_input: dict[str, Any]) -> dict[str, Any]:
        raise ValueError(f"cannot score {job_input['x']!r}")

    client = Client(make_app(plugins=[Implementations(fragile=fragile)]).test_client())
    create_model(client, "fragile")

    job = run_inference(client, {"x": "abc"})

    assert job["status"] == "failure", job
    assert job["error"] == {"type": "ValueError", "message": "cannot score 'abc'"}
    assert job["output"] is None


@pytest.mark.parametrize(
    "result",
    [[1, 2], "done", None, 42, {"when": datetime.datetime(2024, 1, 1)}],
    ids=["list", "str", "none", "int", "not-json"],
)
def test_an_implementation_must_return_a_json_object(make_app, result):
    client = Client(make_app(plugins=[Implementations(odd=lambda job_input: result)]).test_client())
    create_model(client, "odd")

    job = run_inference(client, {"a": 1})

    assert job["status"] == "failure", job
    assert set(job["error"]) == {"type", "message"} and job["error"]["message"]
    assert job["output"] is None


def test_a_third_party_plugin_adds_implementations(make_app):
    plugin = Implementations(double=lambda job_input: {"y": job_input["x"] * 2})

    class NoAppArgument:
        """A hook implementation may take fewer arguments than the spec."""

        @hookimpl
        def pie_register_in_process_handlers(self) -> dict[str, Any]:
            return {"negate": lambda job_input: {"y": -job_input["x"]}}

    app = make_app(plugins=[plugin, NoAppArgument()])
    client = Client(app.test_client())
    create_model(client, "double", "doubler")
    create_model(client, "negate", "negator")

    assert run_inference(client, {"x": 21}, "doubler")["output"] == {"y": 42}
    assert run_inference(client, {"x": 5}, "negator")["output"] == {"y": -5}
    assert plugin.apps == [app]
    assert create_model_response(make_app, "double").status_code == 400


def create_model_response(make_app: Any, implementation: str) -> Any:
    """Creating a model on an app without the plugin."""
    client = Client(make_app().test_client())
    return client.post("/v2/models", json=model_body("x", handlers=in_process(implementation)))


def test_an_unknown_implementation_is_400_at_model_creation(client):
    r = client.post("/v2/models", json=model_body(handlers=in_process("no-such-thing")))

    body = assert_envelope(r, 400)
    assert "json.handlers.inference.value" in body["message"]
    assert "no-such-thing" in body["message"] and "echo" in body["message"]
    assert_envelope(client.get("/v2/models/m1"), 404)


def test_successful_in_process_inference_fires_subscriptions(client):
    create_model(client, "echo", "source")
    create_model(client, "echo", "target")
    subscription = {
        "trigger_event": "inference_complete",
        "target_model_id": "target",
        "target_action": "inference",
        "input_source": "trigger_output",
    }
    r = client.post("/v2/models/source/event-subscriptions", json=subscription)
    assert r.status_code == 201, r.get_json()

    parent = run_inference(client, {"k": "v"}, "source")
    assert parent["status"] == "success"

    def target_jobs() -> list[dict[str, Any]]:
        jobs = client.get("/v2/models/target/versions/1/jobs").get_json()
        return [j for j in jobs if j["status"] == "success"]

    (child,) = wait_for(target_jobs)
    assert child["input"] == {"k": "v"} and child["output"] == {"k": "v"}
    assert child["trigger"]["parent_job_id"] == parent["job_id"]


@pytest.mark.parametrize(
    "implementations",
    [{"echo": lambda job_input: job_input}, {"broken": "not callable"}],
    ids=["duplicate-name", "not-callable"],
)
def test_bad_implementations_stop_start_up(make_app, implementations):
    with pytest.raises(PluginError):
        make_app(plugins=[Implementations(**implementations)])


class Sent(logging.Handler):
    """Every statement sent to the database, on any thread, with its parameters."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[tuple[str, list]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, tuple):  # peewee's (sql, params)
            self.statements.append((record.msg[0], list(record.msg[1] or ())))


@pytest.fixture
def sent():
    handler = Sent()
    with peewee_statements(handler):
        yield handler.statements


def start_writes(sent: list[tuple[str, list]], job_id: str) -> list[str]:
    """The statements that started the job after its insert (runtime.mark_started)."""
    return [
        sql
        for sql, params in sent
        if sql.startswith('UPDATE "jobs"') and "started" in params and job_id in params
    ]


def held_app(make_app: Any, workers: int = 4) -> tuple[Any, Client, threading.Event]:
    """An app whose model m1 runs `slow` (held until the event is set), with this process
    registered (its first dispatch, of an echo job of model e, registers it)."""
    release = threading.Event()

    def slow(job_input: dict[str, Any]) -> dict[str, Any]:
        assert release.wait(10), "the test never released the implementation"
        return {"done": True}

    app = make_app({"PIE_IN_PROCESS_WORKERS": workers}, plugins=[Implementations(slow=slow)])
    client = Client(app.test_client())
    create_model(client, "slow")
    create_model(client, "echo", model_id="e")
    run_inference(client, {}, model_id="e")
    return app, client, release


def test_a_job_a_free_worker_runs_at_once_is_started_by_its_insert(make_app, sent):
    """One write where there were two: the insert starts the job (its attempt's deadline
    from then), and the worker runs it without a start of its own."""
    app, client, release = held_app(make_app)
    timeout = datetime.timedelta(seconds=app.config["PIE_JOB_TIMEOUT_SECONDS"])
    sent.clear()
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {}})
    job_id = r.get_json()["inference_job_id"]
    with connection():
        row = Job.get_by_id(job_id)
    assert row.status == "started"
    assert row.started_at == row.created_at
    assert row.deadline_at - row.started_at == timeout
    release.set()
    assert wait_for_job(client, job_id)["output"] == {"done": True}
    assert start_writes(sent, job_id) == []


def test_a_job_that_waits_for_a_worker_is_pending_until_one_starts_it(make_app, sent):
    """With every worker busy, a new job waits pending (no clock of its attempt running),
    and the worker that takes it starts it."""
    _, client, release = held_app(make_app, workers=1)
    first = client.post("/v2/models/m1/versions/1/inference", json={"input": {}}).get_json()
    sent.clear()
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {"n": 2}})
    second = r.get_json()["inference_job_id"]
    with connection():
        row = Job.get_by_id(second)
    assert (row.status, row.started_at, row.deadline_at) == ("pending", None, None)
    release.set()
    done = wait_for_job(client, second)
    assert done["status"] == "success"
    assert wait_for_job(client, first["inference_job_id"])["status"] == "success"
    assert len(start_writes(sent, second)) == 1


class Recorded:
    """`hold` (held until `release`) and `nap` (1.5 s), each recording the inputs it ran."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.ran: list[dict[str, Any]] = []

    def hold(self, job_input: dict[str, Any]) -> dict[str, Any]:
        self.ran.append(job_input)
        self.release.wait(20)
        return dict(job_input)

    def nap(self, job_input: dict[str, Any]) -> dict[str, Any]:
        self.ran.append(job_input)
        time.sleep(1.5)
        return dict(job_input)

    @hookimpl
    def pie_register_in_process_handlers(self, app: Any) -> dict[str, Any]:
        return {"hold": self.hold, "nap": self.nap}


def services_on(make_app: Any, implementation: str, config: dict[str, Any]) -> tuple:
    """Four services of domain d1 initialised on model m1 (echo); then its assignment moved
    to model h (`implementation`), so that re-initialising them starts four jobs of h in one
    transaction."""
    from tests.api.test_services import FEATURES, C, D

    recorded = Recorded()
    app = make_app(config, plugins=[recorded])
    client = Client(app.test_client())
    assert client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"}).status_code == 201
    r = client.post(f"{C}/domains", json={"domain_id": "d1", "features": FEATURES})
    assert r.status_code == 201
    create_model(client, "echo")
    create_model(client, implementation, model_id="h")
    r = client.put(f"{D}/assignments/default", json={"model_id": "m1", "model_version": "1"})
    assert r.status_code in (200, 201)
    for n in range(1, 5):
        body = {"service_id": f"s{n}", "static_features": {"max_batch": n}}
        r = client.post(f"{D}/service/init", json=body)
        assert r.status_code == 202, r.get_json()
        wait_for_job(client, r.get_json()["job_id"])
    r = client.put(f"{D}/assignments/default", json={"model_id": "h", "model_version": "1"})
    assert r.status_code in (200, 201)
    assert client.post(f"{D}/services/init").status_code == 202
    return app, client, recorded


def test_jobs_a_transaction_inserts_together_are_not_started_by_their_inserts(make_app):
    """Re-initialising a domain's services inserts its jobs in one transaction and
    dispatches them at its commit: with one worker, one runs and the others wait pending, and
    one cancelled while it waits never runs (a free worker counted once per insert started
    all four, and ran the cancelled one)."""
    app, client, recorded = services_on(make_app, "hold", {"PIE_IN_PROCESS_WORKERS": 1})
    try:
        wait_for(lambda: len(recorded.ran) == 1)
        # read once the one worker runs its job: before, that job may still be pending
        jobs = client.get("/v2/models/h/versions/1/jobs").get_json()
        statuses = sorted(job["status"] for job in jobs)
        assert statuses == ["pending", "pending", "pending", "started"]
        victim = next(job for job in jobs if job["input"] != recorded.ran[0])
        assert client.post(f"/v2/jobs/{victim['job_id']}/cancel", json={}).status_code == 200
    finally:
        recorded.release.set()
    for job in jobs:
        if job["job_id"] != victim["job_id"]:
            assert wait_for_job(client, job["job_id"])["status"] == "success"
    assert victim["input"] not in recorded.ran


def test_time_waiting_for_a_worker_does_not_count_against_the_timeout(make_app):
    config = {"PIE_IN_PROCESS_WORKERS": 1, "PIE_JOB_TIMEOUT_SECONDS": 2}
    app, client, recorded = services_on(make_app, "nap", config)
    runtime = app.extensions["pie"]

    def ended() -> bool:
        with connection():
            runtime.dispatcher.recover_once()  # ends attempts past their deadline
        jobs = client.get("/v2/models/h/versions/1/jobs").get_json()
        return all(job["status"] in ("success", "failure") for job in jobs)

    wait_for(ended, timeout=20)
    jobs = client.get("/v2/models/h/versions/1/jobs").get_json()
    assert [job["status"] for job in jobs] == ["success"] * 4, jobs
    assert len(recorded.ran) == 4


def test_a_job_its_insert_started_that_waits_after_all_starts_again_when_it_runs(make_app):
    """Two requests that both took the last free worker (here: a type that always says a
    worker is free): the second job, started by its insert, waits; the worker that takes it
    starts its clocks again, and does not run it once it was cancelled meanwhile."""
    recorded = Recorded()
    app = make_app({"PIE_IN_PROCESS_WORKERS": 1}, plugins=[recorded])
    in_process = app.extensions["pie"].handler_types["in_process"]
    client = Client(app.test_client())
    create_model(client, "hold")
    create_model(client, "echo", model_id="e")
    run_inference(client, {}, model_id="e")  # registers this process
    in_process.start_lease = lambda: in_process.lease  # a lapsed reservation, as it were
    start = "/v2/models/m1/versions/1/inference"
    first = client.post(start, json={"input": {"n": 1}}).get_json()["inference_job_id"]
    waits = client.post(start, json={"input": {"n": 2}}).get_json()["inference_job_id"]
    cancelled = client.post(start, json={"input": {"n": 3}}).get_json()["inference_job_id"]
    with connection():
        inserted = Job.get_by_id(waits)
    assert (inserted.status, inserted.started_at) == ("started", inserted.created_at)
    assert client.post(f"/v2/jobs/{cancelled}/cancel", json={}).status_code == 200
    wait_for(lambda: len(recorded.ran) == 1)
    recorded.release.set()
    assert wait_for_job(client, first)["status"] == "success"
    assert wait_for_job(client, waits)["status"] == "success"
    with connection():
        ran = Job.get_by_id(waits)
    assert ran.started_at > inserted.started_at
    assert ran.deadline_at > inserted.deadline_at
    assert [job_input["n"] for job_input in recorded.ran] == [1, 2]
    assert client.get(f"/v2/jobs/{cancelled}").get_json()["error"]["type"] == "Cancelled"
