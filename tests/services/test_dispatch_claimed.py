"""Jobs inserted with their dispatch claim (Dispatcher.claim_columns): dispatched as inserted,
once, with no claim write; taken over by recovery when their process is gone; claimed again
when the claim ran low; dispatched on the committing thread when their type only queues
them. And SQLite writes outside a transaction queue on the writer locks."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from pie.db import connection, database, is_postgres
from pie.services import claims, dispatch, jobs, lifecycle, processes
from pie.tables import Job, utcnow
from tests.helpers import Client, model_body, wait_for_job
from tests.services.conftest import Recorded


def start(app, model: str = "rec") -> str:
    client = Client(app.test_client())
    response = client.post(f"/v2/models/{model}/versions/1/inference", json={"input": {}})
    assert response.status_code == 202, response.get_json()
    return response.get_json()["inference_job_id"]


def claimed_by_another(version, owner: str) -> Job:
    """A pending job inserted with another process's claim, a minute of it left."""
    claim = {"claimed_by": owner, "claimed_until": utcnow() + timedelta(seconds=60)}
    return jobs.new_job(version, "inference", {}, {**claim, "dispatch_attempts": 1})


def row(job_id: str) -> Job:
    with connection():
        return jobs.get_job(job_id)


def test_a_new_job_is_inserted_claimed_and_dispatched_without_a_claim_write(
    recorder_app, monkeypatch
):
    runtime = recorder_app.extensions["pie"]
    first = start(recorder_app)  # the process registers at its first dispatch
    wait_for(lambda: first in Recorded.calls)
    claimed: list[str] = []
    claim = claims.claim
    monkeypatch.setattr(  # the name the dispatcher calls
        dispatch, "claim", lambda job_id, *a, **k: claimed.append(job_id) or claim(job_id, *a, **k)
    )

    job_id = start(recorder_app)
    wait_for(lambda: job_id in Recorded.calls)
    stored = row(job_id)
    assert claimed == []  # dispatched as inserted
    assert Recorded.calls.count(job_id) == 1
    assert stored.status == "started" and stored.external_id == f"ext-{job_id}"
    assert stored.dispatch_attempts == 1
    assert runtime.registration.id is not None


def test_a_claimed_job_whose_process_is_gone_is_dispatched_by_recovery(recorder_app):
    """Inserted with the claim of a process that died before dispatching it (no
    registration row): recovery voids the claim and dispatches it at once."""
    runtime = recorder_app.extensions["pie"]
    with connection():
        version = lifecycle.get_version("rec", "1")
        orphan = claimed_by_another(version, "0190a000-dead-7000-8000-000000000000").job_id
    assert runtime.dispatcher.recover_once() == 1
    assert Recorded.calls == [orphan]
    assert row(orphan).dispatch_attempts == 2


def test_a_row_whose_claim_ran_out_or_low_is_retaken(recorder_app):
    """This process's own claim, run out or nearly: confirmed and renewed with one
    conditional write (no attempt counted), then dispatched."""
    runtime = recorder_app.extensions["pie"]
    owner = runtime.registration.ensure()
    with connection():
        version = lifecycle.get_version("rec", "1")
        held = {"claimed_by": owner, "dispatch_attempts": 1}
        expired = jobs.new_job(
            version, "inference", {}, {**held, "claimed_until": utcnow() - timedelta(seconds=1)}
        )
        running_low = jobs.new_job(
            version, "inference", {}, {**held, "claimed_until": utcnow() + timedelta(seconds=2)}
        )
        assert not claims.holds(expired, owner) and not claims.holds(running_low, owner)
        assert runtime.dispatcher.dispatch(expired) is True
        assert runtime.dispatcher.dispatch(running_low) is True
    assert Recorded.calls == [expired.job_id, running_low.job_id]
    assert row(expired.job_id).dispatch_attempts == 1


def test_a_queued_row_whose_claim_was_voided_is_not_sent_again(recorder_app):
    """This process was taken for dead while the row waited in its dispatch queue: another
    process voided the claim and took the job. The row as inserted still names this
    process, but the backend is not handed the job a second time (an attacker-minded
    review found this)."""
    runtime = recorder_app.extensions["pie"]
    owner = runtime.registration.ensure()
    with connection():
        version = lifecycle.get_version("rec", "1")
        taken = jobs.new_job(version, "inference", {}, runtime.dispatcher.claim_columns())
        started = jobs.new_job(version, "inference", {}, runtime.dispatcher.claim_columns())
        voided = processes.void(owner, utcnow() + timedelta(seconds=1))
        assert voided is not None and sorted(voided.pending) == sorted(
            [taken.job_id, started.job_id]
        )
        other = "0190a000-0b0b-7000-8000-000000000000"
        assert claims.claim(taken.job_id, 60, other)  # another process's, its dispatch on
        processes.register(owner, "app")  # this process registers again under its id
        assert runtime.dispatcher.dispatch(started.job_id) is True  # recovered here, by id
        assert runtime.dispatcher.dispatch(taken) is False
        assert runtime.dispatcher.dispatch(started) is False
    assert Recorded.calls == [started.job_id]


def test_a_row_claimed_by_another_process_is_not_dispatched_as_inserted(recorder_app):
    runtime = recorder_app.extensions["pie"]
    runtime.registration.ensure()
    with connection():
        version = lifecycle.get_version("rec", "1")
        other = claimed_by_another(version, "0190a000-0the-7000-8000-000000000000")
        assert runtime.dispatcher.dispatch(other) is False
    assert Recorded.calls == []


def test_in_process_jobs_are_handed_over_on_the_committing_thread(make_app):
    app = make_app()
    client = Client(app.test_client())
    echo = {"type": "in_process", "value": "echo"}
    body = model_body("m", handlers={"training": echo, "inference": echo})
    assert client.post("/v2/models", json=body).status_code == 201
    client.post("/v2/models/m/versions/1/new_status", json={"status": "active"})
    runtime = app.extensions["pie"]
    for n in range(3):
        job_id = start(app, "m")
        assert wait_for_job(client, job_id)["status"] == "success"
        stored = row(job_id)
        if n:  # registered by then: claimed at insert, dispatched without a dispatch thread
            assert stored.dispatch_attempts == 1
    assert runtime.dispatcher._pool is not None  # the first job (before registering) only
    threads = [t.name for t in threading.enumerate()]
    assert sum(name.startswith("pie-dispatch") for name in threads) == runtime.dispatcher.workers


def test_in_process_payloads_carry_no_callback_token(make_app):
    app = make_app()
    runtime = app.extensions["pie"]
    assert runtime.handler_types["in_process"].needs_callback_token is False
    job = Job(
        job_id="j1", job_type="inference", model_id="m", model_version="1", input={}, attempt=1
    )
    without = jobs.payload(runtime, job, token=False)
    assert "token" not in without["callback"] and without["callback"]["url"].endswith("/complete")
    assert runtime.verifier.verify(jobs.payload(runtime, job)["callback"]["token"])


def test_sqlite_writes_outside_a_transaction_wait_for_the_writer_lock(make_app):
    """With SQLite's own busy handler off, an autocommit UPDATE issued while another thread
    holds a write transaction waits for it on PIE's lock instead of failing as locked."""
    app = make_app()
    if is_postgres():
        pytest.skip("SQLite's single writer")
    client = Client(app.test_client())
    client.post("/v2/models", json=model_body("m"))
    holding, done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        with connection(), database.atomic():
            Job.select().count()
            database.execute_sql("UPDATE models SET description = 'held'")
            holding.set()
            time.sleep(0.3)

    def write() -> None:
        try:
            with connection():
                database.execute_sql("PRAGMA busy_timeout = 0")
                holding.wait(5)
                database.execute_sql("UPDATE models SET description = 'after'")
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
        finally:
            done.set()

    threads = [threading.Thread(target=hold), threading.Thread(target=write)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert client.get("/v2/models/m").get_json()["description"] == "after"


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_a_queued_row_that_this_processs_recovery_claimed_again_is_not_sent_twice(recorder_app):
    """Taken for dead and registered again under its id, this process's recovery claims a
    queued row anew (a second dispatch attempt) and dispatches it by id: the row as inserted,
    still waiting in the dispatch queue, is not sent as well."""
    runtime = recorder_app.extensions["pie"]
    owner = runtime.registration.ensure()
    with connection():
        version = lifecycle.get_version("rec", "1")
        queued = jobs.new_job(version, "inference", {}, runtime.dispatcher.claim_columns())
        assert processes.void(owner, utcnow() + timedelta(seconds=1)) is not None
        processes.register(owner, "app")
        assert claims.claim(queued.job_id, 60, owner)  # recovery's claim, attempt 2
        assert runtime.dispatcher.dispatch(queued) is False  # the queued row
    assert Recorded.calls == []
