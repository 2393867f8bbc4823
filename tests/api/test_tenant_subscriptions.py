"""`subscribe: true` through an assignment (5.4, 7.4): the stored replay belongs to the tenant
that asked for it. Another tenant's tokens cannot list, read, change or delete it; its
replay runs in its tenant's context whoever's retraining fires it; and no response another
tenant receives carries the replay's ids, input or output."""

from __future__ import annotations

import json

import pytest

from tests.helpers import (
    Implementations,
    activate,
    add_tenant,
    assert_envelope,
    make_token,
    model_body,
    scoped,
    wait_for,
    wait_for_job,
)

ACME, OTHER = "acme", "other"
SECRET_INPUT = {"customer": "acme-secret-4711"}
SUBS = "/v2/models/m/event-subscriptions"
TENANT = ("read_domains", "run_inference", "run_training", "read_models")


@pytest.fixture
def impls() -> Implementations:
    return Implementations()


@pytest.fixture
def app(make_app, impls):
    app = make_app({"PIE_IN_PROCESS_WORKERS": 8}, plugins=[impls])
    yield app
    impls.release.set()


def machine(client_id, *extra):
    return scoped(*TENANT, *extra, client_id=client_id)


def human(client_id):
    return make_token(groups=[f"client:{client_id}"])


OUTSIDERS = {
    "other-machine": machine(OTHER, "manage_models"),
    "other-human": human(OTHER),
    "global-manage": scoped("read_models", "manage_models"),
}


@pytest.fixture
def replay(client):
    """Model m (active, echo) assigned as `default` in both tenants' domain d; acme runs an
    inference through it with `subscribe: true`. Returns acme's job id."""
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    activate(client, "m")
    for tenant in (ACME, OTHER):
        add_tenant(client, tenant, "d", default="m")
    r = client.post(
        f"/v2/clients/{ACME}/domains/d/assignments/default/jobs",
        json={"input": SECRET_INPUT, "subscribe": True},
        token=machine(ACME),
    )
    assert r.status_code == 202, r.get_json()
    return wait_for_job(client, r.get_json()["job_id"])["job_id"]


def acme_subscription(client):
    [sub] = [s for s in client.get(SUBS).get_json() if s["label"] == "subscribe"]
    return sub


def test_the_replay_belongs_to_the_tenant_and_shows_it_to_that_tenant(client, replay):
    sub = acme_subscription(client)  # the admin sees it, with its owner
    assert (sub["input"], sub["client_id"], sub["domain_id"]) == (SECRET_INPUT, ACME, "d")
    assert "service_id" not in sub  # domain scope: no service
    for token in (machine(ACME), human(ACME)):
        r = client.get(SUBS, token=token)
        assert r.status_code == 200, r.get_json()
        assert [s["id"] for s in r.get_json()] == [sub["id"]]
        assert json.loads(r.headers["X-Pagination"])["total"] == 1
        r = client.get(f"{SUBS}/{sub['id']}", token=token)
        assert r.status_code == 200 and r.get_json()["input"] == SECRET_INPUT


@pytest.mark.parametrize("who", list(OUTSIDERS))
def test_another_tenant_can_neither_see_nor_touch_the_replay(client, replay, who):
    token = OUTSIDERS[who]
    sub = acme_subscription(client)
    r = client.get(SUBS, token=token)
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == []
    assert json.loads(r.headers["X-Pagination"])["total"] == 0
    path = f"{SUBS}/{sub['id']}"
    assert_envelope(client.get(path, token=token), 403)
    assert_envelope(client.put(path, json={"status": "paused"}, token=token), 403)
    assert_envelope(client.put(path, json={"bogus": 1}, token=token), 403)  # before validation
    assert_envelope(client.delete(path, token=token), 403)
    assert acme_subscription(client) == sub  # unchanged, still there


def test_the_owner_can_change_and_delete_its_replay(client, replay):
    sub = acme_subscription(client)
    owner = machine(ACME, "manage_models")
    path = f"{SUBS}/{sub['id']}"
    r = client.put(path, json={"status": "paused"}, token=owner)
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["status"], r.get_json()["client_id"]) == ("paused", ACME)
    assert client.delete(path, token=owner).status_code == 204
    assert client.get(SUBS).get_json() == []


def retrain_as_other(client):
    """Tenant `other` trains m through its own assignment (version 2); its training job
    succeeds. Returns other's training job id."""
    r = client.post(
        f"/v2/clients/{OTHER}/domains/d/assignments/default/jobs",
        json={"job_type": "training", "input": {"other": "training data"}},
        token=machine(OTHER),
    )
    assert r.status_code == 202, r.get_json()
    job = wait_for_job(client, r.get_json()["job_id"])
    assert (job["client_id"], job["model_version"]) == (OTHER, "2")
    return job["job_id"]


def test_a_replay_fired_by_another_tenant_runs_as_its_owner(client, replay):
    sub = acme_subscription(client)
    other_training = retrain_as_other(client)
    r = client.post(
        "/v2/models/m/versions/2/new_status",
        json={"status": "active"},
        token=machine(OTHER, "manage_models"),
    )
    assert r.status_code == 200, r.get_json()
    # other's answer names nothing of acme's: not the subscription, not the replay job.
    assert r.get_json()["triggered_events"] == []

    def replayed():
        jobs = client.get("/v2/models/m/versions/2/jobs?job_type=inference").get_json()
        return jobs[0] if jobs else None

    job = wait_for_job(client, wait_for(replayed)["job_id"])
    assert (job["input"], job["output"]) == (SECRET_INPUT, SECRET_INPUT)
    assert (job["client_id"], job["domain_id"], job["service_id"]) == (ACME, "d", None)
    assert job["trigger"]["subscription_id"] == sub["id"]
    # The parent is another tenant's job: acme is not told its id.
    assert job["trigger"]["parent_job_id"] is None
    assert other_training not in json.dumps(client.get(f"/v2/jobs/{job['job_id']}").get_json())
    for token in OUTSIDERS.values():
        assert_envelope(client.get(f"/v2/jobs/{job['job_id']}", token=token), 403)
        listed = client.get("/v2/models/m/versions/2/jobs", token=token).get_json()
        assert "acme-secret" not in json.dumps(listed)
    for token in (machine(ACME), human(ACME)):
        r = client.get(f"/v2/jobs/{job['job_id']}", token=token)
        assert r.status_code == 200 and r.get_json()["output"] == SECRET_INPUT


def test_the_admin_sees_every_triggered_event_of_a_transition(client, replay):
    sub = acme_subscription(client)
    retrain_as_other(client)
    r = client.post("/v2/models/m/versions/2/new_status", json={"status": "active"})
    assert r.status_code == 200, r.get_json()
    [event] = r.get_json()["triggered_events"]
    assert set(event) == {"subscription_id", "job_id"} and event["subscription_id"] == sub["id"]
    assert wait_for_job(client, event["job_id"])["client_id"] == ACME


def test_a_replay_of_a_service_scoped_job_keeps_the_service(client, replay):
    base = f"/v2/clients/{ACME}/domains/d"
    r = client.post(f"{base}/service/init", json={"service_id": "s1"})
    assert r.status_code == 202, r.get_json()
    wait_for_job(client, r.get_json()["job_id"])
    r = client.put(
        f"{base}/service/s1/assignments/default", json={"model_id": "m", "model_version": "1"}
    )
    assert r.status_code == 201, r.get_json()
    r = client.post(
        f"{base}/service/s1/assignments/default/jobs",
        json={"input": {"svc": 1}, "subscribe": True},
        token=machine(ACME),
    )
    assert r.status_code == 202, r.get_json()
    [sub] = [s for s in client.get(SUBS).get_json() if s["input"] == {"svc": 1}]
    assert (sub["client_id"], sub["domain_id"], sub["service_id"]) == (ACME, "d", "s1")
    assert client.post("/v2/models/m/new_version", json={}).status_code == 201
    for status in ("training", "active"):
        r = client.post("/v2/models/m/versions/2/new_status", json={"status": status})
        assert r.status_code == 200, r.get_json()
    events = {e["subscription_id"]: e for e in r.get_json()["triggered_events"]}
    job = wait_for_job(client, events[sub["id"]]["job_id"])
    assert (job["client_id"], job["domain_id"], job["service_id"]) == (ACME, "d", "s1")


def test_direct_subscribe_stays_global(client, replay):
    r = client.post(
        "/v2/models/m/versions/1/inference", json={"input": {"g": 1}, "subscribe": True}
    )
    assert r.status_code == 202, r.get_json()
    listed = client.get(SUBS, token=OUTSIDERS["global-manage"]).get_json()
    assert [s["input"] for s in listed] == [{"g": 1}]
    assert not {"client_id", "domain_id", "service_id"} & set(listed[0])
