"""Migration 12 on a database whose jobs table is from before GET /v2/jobs (no
parent_job_id or subscription_id columns), upgraded from migration 6 so that migration 7's
repair runs on that table too: the columns are added and filled from each job's `trigger`
(as migration 7 left it), several batches of them, values no id can be read as none; the search
indexes exist; the list finds the jobs by them; the list totals still equal COUNT(*)."""

from __future__ import annotations

from pie import db as pie_db
from pie import migrations
from pie.db import connection, database
from pie.ids import uuid7
from pie.tables import TRIGGER_COLUMNS, Job, utcnow
from tests.helpers import Client, model_body
from tests.test_counts import assert_counts_match
from tests.test_ownership_migration import legacy_data, trigger

SUB = "01a00000-0000-7000-8000-00000000005b"
PARENTS = [uuid7() for _ in range(3)]
BULK = 2_500  # jobs in several of the migration's batches (1,000 each)


def old_job(job_trigger, **fields):
    return {
        "job_id": uuid7(),
        "job_type": "inference",
        "model_id": "n",
        "model_version": "1",
        "status": "success",
        "input": {},
        "warnings": [],
        "trigger": job_trigger,
        "handler_type": "in_process",
        "handler": {"type": "in_process", "value": "echo"},
        "created_at": utcnow(),
        **fields,
    }


def test_upgrade_fills_the_search_columns_from_the_triggers(make_app, monkeypatch):
    monkeypatch.setattr(pie_db, "MIGRATIONS", pie_db.MIGRATIONS[:6])
    app = make_app()
    admin = Client(app.test_client())
    for model_id in ("m", "n"):
        assert admin.post("/v2/models", json=model_body(model_id)).status_code == 201
    assert admin.post("/v2/models/m/new_version", json={}).status_code == 201
    with connection():
        assert pie_db.current_version() == 6
        for name in TRIGGER_COLUMNS:  # the jobs table as it was
            database.execute_sql(f'ALTER TABLE "jobs" DROP COLUMN "{name}"')
        ids = legacy_data()
        bulk = [old_job(trigger(SUB, PARENTS[n % 3], 1)) for n in range(BULK)]
        odd = {
            "not ids": old_job({"subscription_id": 5, "parent_job_id": "x" * 37, "depth": 1}),
            "none": old_job(None),
        }
        with database.atomic():
            for start in range(0, BULK, 500):
                Job.insert_many(bulk[start : start + 500]).execute()
            Job.insert_many(list(odd.values())).execute()
    monkeypatch.undo()

    applied = pie_db.upgrade()

    assert applied == list(range(7, len(pie_db.MIGRATIONS) + 1))
    assert pie_db.MIGRATIONS[11] is migrations.index_jobs_for_search  # number 12
    assert_counts_match()
    with connection():
        named = {
            job_id: (parent, sub)
            for job_id, parent, sub in Job.select(
                Job.job_id, Job.parent_job_id, Job.subscription_id
            ).tuples()
        }
        indexes = {index.name for index in database.get_indexes("jobs")}
    assert set(migrations.JOB_SEARCH_INDEXES) <= indexes
    # Migration 7 moved acme's replay to acme, and its trigger no longer names a parent of
    # another tenant: the column says what the trigger says.
    assert named[ids["replay"]] == (None, ids["acme_sub"])
    assert named[ids["child"]] == (ids["replay"], ids["global"])
    assert named[ids["direct_replay"]] == (ids["training"], ids["direct_sub"])
    assert named[ids["direct"]] == (None, None)
    assert all(named[job["job_id"]] == (PARENTS[n % 3], SUB) for n, job in enumerate(bulk))
    assert all(named[job["job_id"]] == (None, None) for job in odd.values())

    r = admin.get(f"/v2/jobs?parent_job_id={PARENTS[1]}&page_size=1000")
    assert r.status_code == 200, r.get_json()
    children = sorted((job["job_id"] for job in bulk[1::3]), reverse=True)
    assert [job["job_id"] for job in r.get_json()] == children
    r = admin.get(f"/v2/jobs?subscription_id={ids['global']}")
    assert {job["job_id"] for job in r.get_json()} == {ids["child"], ids["own_child"]}
    r = admin.get(f"/v2/jobs?subscription_id={SUB}&client_id=acme")
    assert r.status_code == 200 and r.get_json() == []
