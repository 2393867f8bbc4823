"""Migration 10 (`control_jobs`) on a database made before job control: the new columns of
jobs, models and versions are added, a job running during the upgrade gets a deadline of
PIE_JOB_TIMEOUT_SECONDS from the upgrade, and the old rows work through the API."""

from __future__ import annotations

from datetime import datetime, timedelta

from pie import db as pie_db
from pie import migrations
from pie.db import connection, database
from pie.tables import Job, utcnow
from tests.helpers import Client, activate, model_body

RUNNING = "01a00000-0000-7000-8000-0000000000c1"
LONG_RUNNING = "01a00000-0000-7000-8000-0000000000c2"
WEEK = 7 * 86400


def old_job(job_id: str, job_type: str, started: datetime) -> None:
    """The tables as the code before job control created them, holding one started job."""
    database.execute_sql('DROP INDEX IF EXISTS "jobs_status_expires_at"')
    for table, columns in migrations.JOB_CONTROL_COLUMNS.items():
        for name in columns:
            database.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{name}"')
    p = database.obj.param
    database.execute_sql(
        'INSERT INTO "jobs" ("job_id", "job_type", "model_id", "model_version", "status", '
        '"input", "warnings", "handler_type", "handler", "dispatch_attempts", '
        f'"created_at", "started_at") VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, '
        f"0, {p}, {p})",
        [
            job_id,
            job_type,
            "a",
            "1",
            "started",
            "{}",
            "[]",
            "lambda",
            '{"type": "lambda", "arn": "arn:aws:lambda:us-east-1:1:function:f"}',
            Job.created_at.db_value(started),
            Job.started_at.db_value(started),
        ],
    )


def test_old_rows_gain_job_control(make_app, monkeypatch):
    number = pie_db.MIGRATIONS.index(migrations.control_jobs) + 1
    monkeypatch.setattr(pie_db, "MIGRATIONS", pie_db.MIGRATIONS[: number - 1])
    app = make_app()
    admin = Client(app.test_client())
    assert admin.post("/v2/models", json=model_body("a")).status_code == 201
    activate(admin, "a")
    started = utcnow() - timedelta(hours=1)
    with connection():
        old_job(RUNNING, "inference", started)
    monkeypatch.undo()

    assert pie_db.upgrade()[0] == number

    job = admin.get(f"/v2/jobs/{RUNNING}").get_json()
    assert job["attempt"] == 1 and job["attempts"] is None
    assert job["deadline_at"] > (started + timedelta(days=1)).isoformat()  # from the upgrade
    model = admin.get("/v2/models/a").get_json()
    assert model["job_policy"] is None
    r = admin.put("/v2/models/a/job_policy", json={"inference": {"max_attempts": 2}})
    assert r.status_code == 200, r.get_json()
    path = f"/v2/models/a/versions/1/jobs/{RUNNING}/complete"
    assert admin.post(path, json={"status": "success", "output": {}}).status_code == 200


def test_the_upgrade_gives_running_jobs_the_configured_timeout(make_app, monkeypatch):
    """An operator who runs long ECS trainings sets PIE_JOB_TIMEOUT_SECONDS to a week before
    upgrading: a training started two days ago gets its deadline a week from the upgrade
    (not the built-in day from its start, which the first recovery pass would have ended
    with a Timeout and a StopTask)."""
    monkeypatch.setenv("PIE_JOB_TIMEOUT_SECONDS", str(WEEK))
    number = pie_db.MIGRATIONS.index(migrations.control_jobs) + 1
    monkeypatch.setattr(pie_db, "MIGRATIONS", pie_db.MIGRATIONS[: number - 1])
    app = make_app({"PIE_JOB_TIMEOUT_SECONDS": WEEK})
    admin = Client(app.test_client())
    assert admin.post("/v2/models", json=model_body("a")).status_code == 201
    activate(admin, "a")
    started = utcnow() - timedelta(days=2)
    with connection():
        old_job(LONG_RUNNING, "training", started)
    monkeypatch.undo()
    monkeypatch.setenv("PIE_JOB_TIMEOUT_SECONDS", str(WEEK))
    upgraded = utcnow()
    assert pie_db.upgrade()[0] == number

    app.extensions["pie"].dispatcher.recover_once()
    job = admin.get(f"/v2/jobs/{LONG_RUNNING}").get_json()
    assert job["deadline_at"].startswith((upgraded + timedelta(seconds=WEEK)).isoformat()[:16])
    assert job["status"] == "started"
