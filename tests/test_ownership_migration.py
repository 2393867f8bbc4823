"""Migration 7 on a database written before subscriptions had owners: `subscribe: true`
replays made through an assignment go back to their tenant, the jobs they started (and what
those fired through global subscriptions) move into that tenant's context, nothing else
changes, and the trigger-kept list totals still equal COUNT(*)."""

from __future__ import annotations

import json
from datetime import timedelta

from pie import db as pie_db
from pie import migrations  # noqa: F401  (registers them before a test slices the list)
from pie.db import connection, database
from pie.ids import uuid7
from pie.tables import Job, Subscription, utcnow
from tests.helpers import Client, make_token, model_body
from tests.test_counts import assert_counts_match

T0 = utcnow() - timedelta(hours=1)
ACME_INPUT = {"customer": "acme-secret"}


def job(model_id, version, created, client_id=None, trigger=None, **fields):
    row = {
        "job_id": uuid7(),
        "job_type": "inference",
        "model_id": model_id,
        "model_version": version,
        "status": "success",
        "input": fields.pop("input", {}),
        "output": fields.pop("output", {}),
        "warnings": [],
        "client_id": client_id,
        "domain_id": "d" if client_id else None,
        "trigger": trigger,
        "handler_type": "in_process",
        "handler": {"type": "in_process", "value": "echo"},
        "created_at": created,
        **fields,
    }
    Job.insert(row).execute()
    return row["job_id"]


def sub(source, target, created, event="training_complete", **fields):
    sub_id = uuid7()
    Subscription.insert(
        id=sub_id,
        source_model_id=source,
        trigger_event=event,
        target_model_id=target,
        target_action="inference",
        input_source=fields.pop("input_source", "stored"),
        status="active",
        warnings=[],
        created_at=created,
        updated_at=created,
        **fields,
    ).execute()
    return sub_id


def trigger(sub_id, parent, depth):
    return {"subscription_id": sub_id, "parent_job_id": parent, "depth": depth}


def legacy_data():
    """What the old code wrote: acme's replay is global, its replay job and that job's child
    carry tenant `other`, whose retraining fired it."""
    ms = timedelta(milliseconds=1)
    ids = {
        "decoy": job("m", "1", T0 - ms, "other", input=ACME_INPUT),  # older: not the maker
        "maker": job("m", "1", T0, "acme", input=ACME_INPUT),
        "acme_sub": sub("m", "m", T0 + 2 * ms, input=ACME_INPUT, label="subscribe"),
        "late": job("m", "1", T0 + 3 * ms, "other", input=ACME_INPUT),  # after: not it
        "direct": job("m", "1", T0 + 10 * ms * 1000, input={"g": 1}),
        "direct_sub": sub("m", "m", T0 + 10 * ms * 1001, input={"g": 1}, label="subscribe"),
        "training": job("m", "2", T0 + timedelta(minutes=1), "other", job_type="training"),
        "global": sub("m", "n", T0, event="inference_complete", input_source="trigger_output"),
    }
    later = T0 + timedelta(minutes=2)
    ids["replay"] = job(
        "m",
        "2",
        later,
        "other",
        trigger(ids["acme_sub"], ids["training"], 1),
        input=ACME_INPUT,
        output=ACME_INPUT,
    )
    ids["child"] = job(
        "n", "1", later, "other", trigger(ids["global"], ids["replay"], 2), input=ACME_INPUT
    )
    ids["direct_replay"] = job(
        "m", "2", later, "other", trigger(ids["direct_sub"], ids["training"], 1), input={"g": 1}
    )
    ids["own"] = job("m", "2", later, "other", input={"o": 1})
    ids["own_child"] = job("n", "1", later, "other", trigger(ids["global"], ids["own"], 2))
    return ids


def test_upgrade_gives_replays_back_to_their_tenant(make_app, monkeypatch):
    monkeypatch.setattr(pie_db, "MIGRATIONS", pie_db.MIGRATIONS[:6])
    app = make_app()
    admin = Client(app.test_client())
    for model_id in ("m", "n"):
        assert admin.post("/v2/models", json=model_body(model_id)).status_code == 201
    assert admin.post("/v2/models/m/new_version", json={}).status_code == 201
    with connection():
        assert pie_db.current_version() == 6
        ids = legacy_data()
        for name in ("client_id", "domain_id", "service_id"):  # the columns migration 7 adds
            database.execute_sql(f'ALTER TABLE "event_subscriptions" DROP COLUMN "{name}"')
    monkeypatch.undo()

    applied = pie_db.upgrade()

    assert applied[0] == 7 and pie_db.current_version() == len(pie_db.MIGRATIONS)
    assert_counts_match()
    with connection():
        owners = {s.id: (s.client_id, s.domain_id, s.service_id) for s in Subscription.select()}
        jobs = {j.job_id: j for j in Job.select()}
    assert owners[ids["acme_sub"]] == ("acme", "d", None)
    assert owners[ids["direct_sub"]] == owners[ids["global"]] == (None, None, None)
    assert (jobs[ids["replay"]].client_id, jobs[ids["replay"]].domain_id) == ("acme", "d")
    assert jobs[ids["replay"]].trigger == trigger(ids["acme_sub"], None, 1)
    assert jobs[ids["child"]].client_id == "acme"
    assert jobs[ids["child"]].trigger == trigger(ids["global"], ids["replay"], 2)
    for name in ("decoy", "late", "training", "direct_replay", "own", "own_child"):
        assert jobs[ids[name]].client_id == "other", name
    assert jobs[ids["direct"]].client_id is None

    other = make_token(scope="streamline/read_models", client_id="other")
    acme = make_token(scope="streamline/read_models", client_id="acme")
    assert admin.get(f"/v2/jobs/{ids['replay']}", token=other).status_code == 403
    assert admin.get(f"/v2/jobs/{ids['replay']}", token=acme).status_code == 200
    for model_id, version, moved in (("m", "2", "replay"), ("n", "1", "child")):
        path = f"/v2/models/{model_id}/versions/{version}/jobs"
        r = admin.get(path, token=other)
        assert ids[moved] not in {j["job_id"] for j in r.get_json()}
        assert json.loads(r.headers["X-Pagination"])["total"] == len(r.get_json())
        r = admin.get(path, token=acme)
        assert ids[moved] in {j["job_id"] for j in r.get_json()}
    listed = admin.get("/v2/models/m/event-subscriptions", token=other).get_json()
    assert ids["acme_sub"] not in {s["id"] for s in listed}
