"""The process registry: a process whose heartbeat lapsed is taken for dead and its claims are
voided by the next recovery pass — its pending jobs dispatched again at once, its running
in-process jobs re-run (or Interrupted) — each exactly once however many recovery loops race;
a live process's claims are left alone, and a process that was only slow does not start the
jobs it had queued once they were voided."""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta
from typing import Any

import pytest

from pie import config, hookimpl, metrics, migrations
from pie import db as pie_db
from pie.db import connection, database
from pie.ids import uuid7
from pie.services import claims, dispatch, jobs, lifecycle, processes
from pie.tables import Job, Process, utcnow
from tests.helpers import Client, model_body, wait_for, wait_for_job
from tests.services.conftest import Recorded, RecorderPlugin
from tests.services.test_dispatch import orphan_jobs

GATED = {"type": "in_process", "value": "gated"}


def make_recorder_app(make_app: Any, **settings: Any) -> Any:
    app = make_app({"PIE_DISPATCH_GRACE_SECONDS": 60, **settings}, plugins=[RecorderPlugin()])
    client = Client(app.test_client())
    handler = {"type": "recorder"}
    body = model_body("rec", handlers={"training": handler, "inference": handler})
    if client.get("/v2/models/rec").status_code == 404:
        assert client.post("/v2/models", json=body).status_code == 201
        r = client.post("/v2/models/rec/versions/1/new_status", json={"status": "active"})
        assert r.status_code == 200
    return app


@pytest.fixture
def recorder_app(make_app):
    Recorded.calls = []
    Recorded.fail_with = None
    return make_recorder_app(make_app)


def a_process(heartbeat_age: float, kind: str = "serve") -> str:
    """A registered process whose last heartbeat was `heartbeat_age` seconds ago."""
    process_id = uuid7()
    with connection():
        Process.insert(
            id=process_id,
            hostname="elsewhere",
            pid=4242,
            kind=kind,
            started_at=utcnow() - timedelta(seconds=heartbeat_age + 60),
            heartbeat_at=utcnow() - timedelta(seconds=heartbeat_age),
        ).execute()
    return process_id


def claim_for(owner: str, job_ids: list[str], status: str = "pending", seconds: float = 60) -> None:
    """As `owner` left them: claimed (pending) or running under a lease (started), once."""
    with connection():
        Job.update(
            status=status,
            claimed_by=owner,
            claimed_until=utcnow() + timedelta(seconds=seconds),
            dispatch_attempts=1,
        ).where(Job.job_id.in_(job_ids)).execute()


def rows(job_ids: list[str]) -> dict[str, Job]:
    with connection():
        return {job.job_id: job for job in Job.select().where(Job.job_id.in_(job_ids))}


def registered() -> dict[str, Process]:
    with connection():
        return {row.id: row for row in Process.select()}


def sample(name: str, **labels: str) -> float:
    return metrics.LOCAL.get_sample_value(name, labels) or 0.0


def test_a_process_registers_at_its_first_claim_and_leaves_on_close(recorder_app):
    runtime = recorder_app.extensions["pie"]
    assert registered() == {}  # building the app registers nothing
    (job_id,) = orphan_jobs(1)
    assert runtime.dispatcher.recover_once() == 1
    (row,) = registered().values()
    assert (row.id, row.kind, row.pid) == (runtime.registration.id, "app", os.getpid())
    assert row.hostname and row.heartbeat_at is not None
    job = rows([job_id])[job_id]
    assert (job.status, job.claimed_by) == ("started", None)  # an external job is no one's
    runtime.close()
    assert registered() == {}


def test_the_heartbeat_renews_the_row(make_app):
    app = make_app({"PIE_PROCESS_HEARTBEAT_SECONDS": 0.1, "PIE_PROCESS_TIMEOUT_SECONDS": 1})
    process_id = app.extensions["pie"].registration.ensure()
    first = registered()[process_id].heartbeat_at
    wait_for(lambda: registered()[process_id].heartbeat_at > first, timeout=5)


def test_a_dead_process_pending_claims_are_dispatched_at_once(recorder_app, caplog):
    ids = orphan_jobs(3, age_seconds=0)  # younger than the grace period (60 s here)
    dead = a_process(heartbeat_age=30)
    claim_for(dead, ids)
    pending_before = sample("pie_voided_claims_total", status="pending")
    dead_before = sample("pie_dead_processes_total")
    with caplog.at_level(logging.INFO, logger="pie.services.processes"):
        assert recorder_app.extensions["pie"].dispatcher.recover_once() == 3
    assert sorted(Recorded.calls) == sorted(ids)
    assert {(j.status, j.dispatch_attempts) for j in rows(ids).values()} == {("started", 2)}
    assert dead not in registered()
    (line,) = [r for r in caplog.records if "taken for dead" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert dead in line.getMessage() and "serve pid 4242 on elsewhere" in line.getMessage()
    assert "3 pending and 0 started" in line.getMessage()
    assert sample("pie_voided_claims_total", status="pending") == pending_before + 3
    assert sample("pie_dead_processes_total") == dead_before + 1


def test_a_dead_process_running_in_process_job_is_run_again(make_app):
    app = make_app({"PIE_DISPATCH_GRACE_SECONDS": 60})
    client = Client(app.test_client())
    assert client.post("/v2/models", json=model_body("echo")).status_code == 201
    client.post("/v2/models/echo/versions/1/new_status", json={"status": "active"})
    with connection():
        version = lifecycle.get_version("echo", "1")
        rerun = jobs.new_job(version, "inference", {"x": 1}).job_id
        spent = jobs.new_job(version, "inference", {"x": 2}).job_id
    dead = a_process(heartbeat_age=30)
    claim_for(dead, [rerun, spent], status="started", seconds=30)  # leases still running
    with connection():
        Job.update(dispatch_attempts=dispatch.MAX_ATTEMPTS).where(Job.job_id == spent).execute()
    assert app.extensions["pie"].dispatcher.recover_once() == 1
    done = wait_for_job(client, rerun)
    assert (done["status"], done["output"]) == ("success", {"x": 1})
    assert rows([rerun])[rerun].dispatch_attempts == 2
    failed = client.get(f"/v2/jobs/{spent}").get_json()
    assert (failed["status"], failed["error"]["type"]) == ("failure", "Interrupted")


def test_a_live_process_claims_are_left_alone(recorder_app):
    pending = orphan_jobs(2, age_seconds=120)  # past the grace period: only the claim holds
    running = orphan_jobs(1)
    live = a_process(heartbeat_age=1)
    claim_for(live, pending)
    claim_for(live, running, status="started", seconds=30)
    before = rows(pending + running)
    assert recorder_app.extensions["pie"].dispatcher.recover_once() == 0
    assert Recorded.calls == []
    assert live in registered()
    after = rows(pending + running)
    assert {j: (r.status, r.claimed_by, r.claimed_until) for j, r in after.items()} == {
        j: (r.status, r.claimed_by, r.claimed_until) for j, r in before.items()
    }


def test_claims_whose_owner_has_no_row_are_voided(recorder_app):
    (job_id,) = orphan_jobs(1, age_seconds=0)
    claim_for(uuid7(), [job_id])  # its process stopped, or was removed, after claiming
    assert recorder_app.extensions["pie"].dispatcher.recover_once() == 1
    assert Recorded.calls == [job_id]


@pytest.mark.parametrize("round_no", range(3))
def test_racing_recovery_loops_settle_each_job_once(make_app, caplog, round_no):
    Recorded.calls = []
    Recorded.fail_with = None
    apps = [make_recorder_app(make_app) for _ in range(2)]
    pending = orphan_jobs(40, age_seconds=0)
    running = orphan_jobs(10, age_seconds=0)
    dead = a_process(heartbeat_age=30)
    claim_for(dead, pending)
    claim_for(dead, running, status="started", seconds=30)
    # Two processes (each its own registration) and two loops in each, all at once.
    loops = [dispatch.Dispatcher(app.extensions["pie"]) for app in apps for _ in range(2)]
    barrier = threading.Barrier(len(loops))
    done: list[int] = []

    def run(loop: dispatch.Dispatcher) -> None:
        barrier.wait()
        done.append(loop.recover_once())

    threads = [threading.Thread(target=run, args=(loop,)) for loop in loops]
    with caplog.at_level(logging.INFO, logger="pie.services.processes"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sum(done) == 50
    assert sorted(Recorded.calls) == sorted(pending + running)  # each exactly once
    assert {j.dispatch_attempts for j in rows(pending + running).values()} == {2}
    assert len([r for r in caplog.records if "taken for dead" in r.getMessage()]) == 1
    assert dead not in registered()


def gated_app(make_app: Any, gate: threading.Event, runs: list[int], **settings: Any) -> Any:
    class Gated:
        @hookimpl
        def pie_register_in_process_handlers(self, app: Any) -> dict[str, Any]:
            def gated(job_input: dict[str, Any]) -> dict[str, Any]:
                runs.append(job_input["n"])
                gate.wait(20)
                return job_input

            return {"gated": gated}

    return make_app(
        {
            "PIE_IN_PROCESS_WORKERS": 1,  # the second job waits in the queue behind the first
            "PIE_DISPATCH_GRACE_SECONDS": 60,
            "PIE_PROCESS_HEARTBEAT_SECONDS": 30,
            "PIE_PROCESS_TIMEOUT_SECONDS": 60,
            **settings,
        },
        plugins=[Gated()],
    )


def start_gated_jobs(app: Any) -> list[str]:
    client = Client(app.test_client())
    body = model_body("gated", handlers={"training": GATED, "inference": GATED})
    assert client.post("/v2/models", json=body).status_code == 201
    client.post("/v2/models/gated/versions/1/new_status", json={"status": "active"})
    ids = []
    for n in (1, 2):  # the first runs, the second waits in the queue, claimed
        r = client.post("/v2/models/gated/versions/1/inference", json={"input": {"n": n}})
        ids.append(r.get_json()["inference_job_id"])
        if n == 1:
            wait_for_job(client, ids[0], statuses=("started",))
    wait_for(lambda: rows(ids[1:])[ids[1]].claimed_by is not None)
    return ids


def test_a_process_taken_for_dead_does_not_start_what_it_had_queued(make_app):
    gate, runs = threading.Event(), []
    slow = gated_app(make_app, gate, runs)
    running, queued = start_gated_jobs(slow)
    owner = slow.extensions["pie"].registration.id
    assert {j.claimed_by for j in rows([running, queued]).values()} == {owner}
    # Its heartbeat stalls (a long pause, a stalled database) past the timeout; another
    # process's recovery pass takes it for dead.
    with connection():
        Process.update(heartbeat_at=utcnow() - timedelta(seconds=120)).where(
            Process.id == owner
        ).execute()
    other = gated_app(make_app, gate, runs, PIE_IN_PROCESS_WORKERS=2)
    assert other.extensions["pie"].dispatcher.recover_once() == 2
    wait_for(lambda: 2 in runs)  # the queued job now runs in the other process
    # The slow process comes back: it cannot renew, start or give back what was voided.
    runtime = slow.extensions["pie"]
    runtime.renew_leases({running: 1, queued: 1}, 300)
    assert not runtime.mark_started(queued, lease_seconds=30)
    claims.release(queued, owner)
    gate.set()
    client = Client(slow.test_client())
    assert {wait_for_job(client, j)["status"] for j in (running, queued)} == {"success"}
    slow.extensions["pie"].close()  # its pool has taken up the queued job and let it be
    assert runs.count(2) == 1
    # The running job ran on in the slow process and again in the other (the documented
    # cost of taking a live process for dead); one result was recorded.
    assert runs.count(1) in (1, 2)


def test_a_process_taken_for_dead_registers_again(make_app, caplog):
    app = make_app({"PIE_PROCESS_HEARTBEAT_SECONDS": 0.1, "PIE_PROCESS_TIMEOUT_SECONDS": 5})
    process_id = app.extensions["pie"].registration.ensure()
    with caplog.at_level(logging.WARNING, logger="pie.heartbeat"), connection():
        assert processes.void(process_id, utcnow() + timedelta(seconds=1)) is not None
        assert process_id not in registered()
        wait_for(lambda: process_id in registered(), timeout=5)
    assert any("was taken for dead" in r.getMessage() for r in caplog.records)


def test_a_clean_stop_gives_back_the_jobs_it_had_queued(make_app):
    gate, runs = threading.Event(), []
    app = gated_app(make_app, gate, runs)
    running, queued = start_gated_jobs(app)
    owner = app.extensions["pie"].registration.id
    runtime = app.extensions["pie"]
    closer = threading.Thread(target=runtime.close)
    closer.start()
    wait_for(lambda: runtime.handler_types["in_process"]._closed)
    gate.set()  # the running job finishes within the shutdown; the queued one is not started
    closer.join(30)
    assert owner not in registered()
    job = rows([queued])[queued]
    assert (job.status, job.claimed_by, job.claimed_until) == ("pending", None, None)
    assert runs == [1]


def test_a_forked_child_does_not_inherit_the_registration(make_app):
    runtime = make_app().extensions["pie"]
    parent_id = runtime.registration.ensure()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: look, touch nothing else, leave at once
        os.write(write, repr((runtime.registration.id, runtime.registration._thread)).encode())
        os._exit(0)
    os.close(write)
    seen = os.read(read, 1000).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert seen == "(None, None)"
    assert runtime.registration.id == parent_id


def test_heartbeat_must_be_shorter_than_the_timeout(make_app):
    env = {"PIE_PROCESS_HEARTBEAT_SECONDS": "10", "PIE_PROCESS_TIMEOUT_SECONDS": "10"}
    with pytest.raises(config.ConfigurationError) as raised:
        config.load(env)
    message = raised.value.message
    assert message.startswith("PIE_PROCESS_HEARTBEAT_SECONDS (10) must be less than")
    assert "\n" not in message
    with pytest.raises(config.ConfigurationError):
        make_app({"PIE_PROCESS_HEARTBEAT_SECONDS": 20.0})
    with pytest.raises(config.ConfigurationError):
        config.load({"PIE_PROCESS_TIMEOUT_SECONDS": "0"})


def test_the_default_bound_is_within_15_seconds():
    defaults = config.load({})
    assert defaults["PIE_PROCESS_HEARTBEAT_SECONDS"] == 3
    assert defaults["PIE_PROCESS_TIMEOUT_SECONDS"] == 10
    assert defaults["PIE_RECOVERY_INTERVAL_SECONDS"] == 2
    assert defaults["PIE_DISPATCH_GRACE_SECONDS"] == 10
    # max(timeout, grace) + recovery interval, well short of the 60 s dispatch lease
    assert config.recovery_bound(defaults) == 12 <= 15
    assert defaults["PIE_PROCESS_TIMEOUT_SECONDS"] >= 3 * defaults["PIE_PROCESS_HEARTBEAT_SECONDS"]


def test_migration_11_adds_the_registry_to_an_existing_database(make_app, monkeypatch):
    number = pie_db.MIGRATIONS.index(migrations.register_processes) + 1
    monkeypatch.setattr(pie_db, "MIGRATIONS", pie_db.MIGRATIONS[: number - 1])
    app = make_app()
    with connection():
        # Migration 2 now creates jobs with the column; a database made before it has none.
        database.execute_sql('DROP INDEX IF EXISTS "jobs_claimed_by"')
        database.execute_sql('ALTER TABLE "jobs" DROP COLUMN "claimed_by"')
        assert not database.table_exists("pie_processes")
        p = database.obj.param
        database.execute_sql(
            'INSERT INTO "jobs" ("job_id", "job_type", "model_id", "model_version", "status", '
            '"input", "warnings", "handler_type", "handler", "dispatch_attempts", "created_at") '
            f"VALUES ({p}, 'inference', 'm', '1', 'pending', '{{}}', '[]', 'recorder', "
            f"'{{}}', 0, {p})",
            ["01a00000-0000-7000-8000-000000000001", utcnow()],
        )
    monkeypatch.undo()
    assert pie_db.upgrade()[0] == number
    with connection():
        assert "claimed_by" in {c.name for c in database.get_columns("jobs")}
        assert "jobs_claimed_by" in {i.name for i in database.get_indexes("jobs")}
        assert database.table_exists("pie_processes")
        assert Job.get_by_id("01a00000-0000-7000-8000-000000000001").claimed_by is None
    app.extensions["pie"].close()
