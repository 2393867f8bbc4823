"""Migration 9 on a database whose chains were counted as one budget (`trigger_chains`):
each count becomes the global subscriptions' budget of its chain, so a chain in flight keeps
what it has spent, and the tenants' budgets start from nothing."""

from __future__ import annotations

from pie import db as pie_db
from pie import migrations  # noqa: F401  (registers them before a test slices the list)
from pie.db import connection, database
from pie.tables import Job, TriggerBudget, utcnow
from tests.helpers import Client, activate, model_body

CHAIN = "01a00000-0000-7000-8000-00000000c4a1"


def test_a_chain_in_flight_keeps_its_count(make_app, monkeypatch):
    monkeypatch.setattr(pie_db, "MIGRATIONS", pie_db.MIGRATIONS[:8])
    app = make_app({"PIE_MAX_TRIGGERED_JOBS": 5})
    admin = Client(app.test_client())
    for model_id in ("a", "b"):
        assert admin.post("/v2/models", json=model_body(model_id)).status_code == 201
        activate(admin, model_id)
    for _ in range(3):
        r = admin.post(
            "/v2/models/a/event-subscriptions",
            json={
                "trigger_event": "inference_complete",
                "target_model_id": "b",
                "target_action": "inference",
                "input_source": "trigger_output",
            },
        )
        assert r.status_code == 201, r.get_json()
    with connection():
        assert pie_db.current_version() == 8
        # What the old code wrote: the chain has started 4 jobs; one of them, two levels
        # down, is still running.
        p = database.obj.param
        database.execute_sql(
            f'INSERT INTO "trigger_chains" ("chain_id", "jobs", "created_at") VALUES ({p}, 4, {p})',
            [CHAIN, utcnow()],
        )
        Job.insert(
            job_id="01a00000-0000-7000-8000-0000000000j2",
            job_type="inference",
            model_id="a",
            model_version="1",
            status="started",
            input={},
            warnings=[],
            trigger={"subscription_id": "s", "parent_job_id": None, "depth": 2, "chain": CHAIN},
            handler_type="in_process",
            handler={"type": "in_process", "value": "echo"},
            created_at=utcnow(),
        ).execute()
    monkeypatch.undo()

    assert pie_db.upgrade()[0] == 9  # and the migrations after it

    with connection():
        [row] = TriggerBudget.select()
        assert (row.chain_id, row.owner, row.jobs, row.refused) == (CHAIN, "", 4, 0)
        assert not database.table_exists("trigger_chains")
    path = "/v2/models/a/versions/1/jobs/01a00000-0000-7000-8000-0000000000j2/complete"
    r = admin.post(path, json={"status": "success", "output": {}})
    assert r.status_code == 207, r.get_json()
    events = r.get_json()["triggered_events"]
    assert ["job_id" in e for e in events] == [True, False, False]
