"""pie.services.triggers.fire: which tenant a triggered job runs for, what it may name of its
parent, and which events a caller is shown (the HTTP behaviour is in
tests/api/test_tenant_subscriptions.py)."""

from __future__ import annotations

import pytest

from pie.db import connection, database
from pie.ids import uuid7
from pie.services import jobs, lifecycle, subscriptions, triggers
from pie.tables import Job
from tests.helpers import activate, model_body

ACME = {"client_id": "acme", "domain_id": "d", "service_id": "s"}
OTHER = {"client_id": "other", "domain_id": "d", "service_id": None}
NONE = {"client_id": None, "domain_id": None, "service_id": None}


@pytest.fixture
def runtime(app, client):
    for model_id in ("src", "dst"):
        assert client.post("/v2/models", json=model_body(model_id)).status_code == 201
        activate(client, model_id)
    for client_id in ("acme", "other"):
        r = client.post("/v2/clients", json={"client_id": client_id, "name": client_id})
        assert r.status_code == 201, r.get_json()
    return app.extensions["pie"]


def parent_job(tenant):
    with database.atomic():
        job = jobs.new_job(lifecycle.get_version("src", "1"), "inference", {"in": 1}, **tenant)
    return Job.get_by_id(job.job_id)


def subscribe(tenant, source="stored"):
    body = {
        "trigger_event": "inference_complete",
        "target_model_id": "dst",
        "target_action": "inference",
        "input_source": source,
    }
    if source == "stored":
        body["input"] = {"stored": 1}
    return subscriptions.create("src", body, tenant if tenant["client_id"] else None)


def fire(runtime, parent):
    with database.atomic():
        events, fired = triggers.fire(runtime, "src", "inference_complete", {"out": 1}, parent)
    return events, {job_id: Job.get_by_id(job_id) for job_id in fired}


@pytest.mark.parametrize(
    ("owner", "source", "parent", "runs_for", "names_parent"),
    [
        # A global subscription passing the output on: the parent's tenant (its data).
        (NONE, "trigger_output", ACME, ACME, True),
        (NONE, "trigger_output", NONE, NONE, True),
        # A global subscription with a stored input: nobody's, whoever fired it.
        (NONE, "stored", ACME, NONE, False),
        (NONE, "stored", NONE, NONE, True),
        (ACME, "stored", ACME, ACME, True),  # the tenant's own: its tenant
        (ACME, "stored", NONE, ACME, True),
        (ACME, "stored", OTHER, ACME, False),  # fired by another tenant's job: not named
    ],
)
def test_a_triggered_job_runs_for_its_subscriptions_tenant(
    runtime, owner, source, parent, runs_for, names_parent
):
    with connection():
        sub = subscribe(owner, source)
        job = parent_job(parent)
        [event], fired = fire(runtime, job)
    child = fired[event["job_id"]]
    assert {name: getattr(child, name) for name in ACME} == runs_for
    assert event.get("client_id") == runs_for["client_id"]
    assert child.trigger["subscription_id"] == sub.id
    assert child.trigger["parent_job_id"] == (job.job_id if names_parent else None)
    assert child.input == ({"stored": 1} if source == "stored" else {"out": 1})


@pytest.mark.parametrize("parent", [OTHER, NONE], ids=["another-tenants", "no-clients"])
def test_only_a_tenants_own_output_becomes_its_input(runtime, parent):
    with connection():
        subscribe(ACME, source="trigger_output")
        [event], fired = fire(runtime, parent_job(parent))
        assert fired == {}
        assert "not its client's" in event["error"] and event["client_id"] == "acme"
        [event], fired = fire(runtime, parent_job(ACME))
        assert fired[event["job_id"]].input == {"out": 1}


def test_visible_events_shows_each_caller_its_own_and_the_untenanted():
    events = [
        {"subscription_id": "1", "job_id": uuid7()},
        {"subscription_id": "2", "job_id": uuid7(), "client_id": "acme"},
        {"subscription_id": "3", "error": "x", "client_id": "other"},
    ]
    assert triggers.visible_events(events, None) == events
    assert triggers.visible_events(events, frozenset()) == events[:1]
    assert triggers.visible_events(events, frozenset({"acme"})) == events[:2]
