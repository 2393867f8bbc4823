"""A suspended client (7.1) answers 403 on every route under it — and its tokens get 403 on
every other route too, its subscriptions start nothing while it is suspended, and no job
starts in its name. A token of several clients keeps what its other clients give it.
Re-activating the client gives everything back."""

from __future__ import annotations

import pytest

from pie.db import connection
from pie.tables import Client as ClientRow
from tests.helpers import (
    Implementations,
    activate,
    add_tenant,
    assert_envelope,
    make_token,
    model_body,
    scoped,
    wait_for_job,
)

MALLORY, ACME = "mallory", "acme"
SCOPES = (
    "read_models",
    "run_inference",
    "run_training",
    "complete_jobs",
    "read_domains",
    "manage_domains",
    "init_services",
)
SUBS = "/v2/models/m/event-subscriptions"


def machine(client_id):
    return scoped(*SCOPES, client_id=client_id)


@pytest.fixture
def impls() -> Implementations:
    return Implementations()


@pytest.fixture
def app(make_app, impls):
    app = make_app({"PIE_IN_PROCESS_WORKERS": 8}, plugins=[impls])
    yield app
    impls.release.set()


@pytest.fixture
def world(client):
    """m (echo) and held (its inference waits for a callback), assigned in mallory's and
    acme's domain d; m's inferences flow on to m2 (a global subscription). Mallory has a
    `subscribe` replay, a finished job and a held job."""
    for model_id in ("m", "m2"):
        assert client.post("/v2/models", json=model_body(model_id)).status_code == 201
        activate(client, model_id)
    held = {"training": {"type": "in_process", "value": "echo"}}
    held["inference"] = {"type": "in_process", "value": "hold"}
    assert client.post("/v2/models", json=model_body("held", handlers=held)).status_code == 201
    activate(client, "held")
    for source in ("m", "held"):
        r = client.post(
            f"/v2/models/{source}/event-subscriptions",
            json={
                "trigger_event": "inference_complete",
                "target_model_id": "m2",
                "target_action": "inference",
                "input_source": "trigger_output",
            },
        )
        assert r.status_code == 201, r.get_json()
    for tenant in (MALLORY, ACME):
        add_tenant(client, tenant, "d", default="m", held="held")
    base = f"/v2/clients/{MALLORY}/domains/d/assignments"
    r = client.post(
        f"{base}/default/jobs", json={"input": {"m": 1}, "subscribe": True}, token=machine(MALLORY)
    )
    done = wait_for_job(client, r.get_json()["job_id"])
    r = client.post(f"{base}/held/jobs", json={"input": {"h": 1}}, token=machine(MALLORY))
    held_job = wait_for_job(client, r.get_json()["job_id"], ("started",))
    return {"done": done["job_id"], "held": held_job["job_id"]}


def suspend(client, status="suspended"):
    r = client.put(f"/v2/clients/{MALLORY}", json={"status": status})
    assert r.status_code == 200, r.get_json()


def routes(world):
    done, held = world["done"], world["held"]
    return [
        ("GET", f"/v2/jobs/{done}", None),
        ("GET", "/v2/models/m/versions/1/jobs", None),
        ("GET", SUBS, None),
        ("GET", "/v2/models", None),
        ("GET", "/v2/models/m", None),
        ("GET", "/v2/clients", None),
        ("GET", f"/v2/clients/{MALLORY}", None),
        ("GET", f"/v2/clients/{MALLORY}/domains", None),
        ("POST", "/v2/models/m/versions/1/inference", {"input": {"still": "here"}}),
        ("POST", "/v2/models/m/versions/1/inference", {"input": {}, "subscribe": True}),
        ("POST", f"/v2/models/held/versions/1/jobs/{held}/complete", {"status": "success"}),
        ("POST", "/v2/models/m/versions/1/jobs/x/complete", {"bogus": 1}),
    ]


@pytest.mark.parametrize("token", ["machine", "human"])
def test_a_suspended_clients_tokens_get_403_everywhere(client, world, token):
    token = machine(MALLORY) if token == "machine" else make_token(groups=[f"client:{MALLORY}"])
    before = client.get("/v2/models/m/versions/1/jobs").get_json()
    suspend(client)
    for method, path, body in routes(world):
        r = client.request(method, path, json=body, token=token)
        message = assert_envelope(r, 403)["message"]
        assert "suspended" in message, (method, path, message)
    assert client.get("/v2/models/m/versions/1/jobs").get_json() == before  # nothing started
    assert wait_for_job(client, world["held"], ("started",))["output"] is None
    suspend(client, "active")
    r = client.get(f"/v2/jobs/{world['done']}", token=machine(MALLORY))
    assert r.status_code == 200, r.get_json()


def test_admins_and_other_tenants_are_unaffected(client, world):
    suspend(client)
    for token in (None, machine(ACME)):
        kw = {} if token is None else {"token": token}
        assert client.get("/v2/models/m", **kw).status_code == 200
        r = client.post("/v2/models/m/versions/1/inference", json={"input": {}}, **kw)
        assert r.status_code == 202, r.get_json()
    assert client.get(f"/v2/clients/{MALLORY}").get_json()["status"] == "suspended"
    assert client.get(f"/v2/jobs/{world['done']}").status_code == 200


def test_a_suspended_clients_replay_does_not_fire(client, world):
    [replay] = [s for s in client.get(SUBS).get_json() if s.get("client_id") == MALLORY]
    suspend(client)
    # acme retrains m through its assignment and activates it.
    acme = scoped(*SCOPES, "manage_models", client_id=ACME)
    r = client.post(
        f"/v2/clients/{ACME}/domains/d/assignments/default/jobs",
        json={"job_type": "training", "input": {}},
        token=acme,
    )
    wait_for_job(client, r.get_json()["job_id"])
    r = client.post("/v2/models/m/versions/2/new_status", json={"status": "active"}, token=acme)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["triggered_events"] == []  # acme is told nothing of mallory's
    assert client.get("/v2/models/m/versions/2/jobs?job_type=inference").get_json() == []
    # The admin sees why; the reason does not name the client.
    suspend(client, "active")
    assert client.post("/v2/models/m/new_version", json={}).status_code == 201
    client.post("/v2/models/m/versions/3/new_status", json={"status": "training"})
    suspend(client)
    r = client.post("/v2/models/m/versions/3/new_status", json={"status": "active"})
    [event] = r.get_json()["triggered_events"]
    assert event["subscription_id"] == replay["id"] and "job_id" not in event
    assert "suspended" in event["error"] and MALLORY not in event["error"]
    # Re-activated, its replay runs again at the next retrain.
    suspend(client, "active")
    assert client.post("/v2/models/m/new_version", json={}).status_code == 201
    client.post("/v2/models/m/versions/4/new_status", json={"status": "training"})
    r = client.post("/v2/models/m/versions/4/new_status", json={"status": "active"})
    [event] = r.get_json()["triggered_events"]
    assert wait_for_job(client, event["job_id"])["client_id"] == MALLORY


def test_no_job_starts_in_a_suspended_clients_name(app, client, world):
    """Its held job, called back by its handler after the suspension, completes; the global
    subscription it fires would run in its name: refused."""
    chained = client.get("/v2/models/m2/versions/1/jobs").get_json()
    suspend(client)
    token = app.extensions["pie"].callback_token(world["held"])
    path = f"/v2/models/held/versions/1/jobs/{world['held']}/complete"
    r = client.post(path, json={"status": "success", "output": {"o": 1}}, token=token)
    assert r.status_code == 207, r.get_json()
    [event] = r.get_json()["triggered_events"]
    assert "suspended" in event["error"] and MALLORY not in event["error"]
    assert client.get("/v2/models/m2/versions/1/jobs").get_json() == chained


def test_a_token_of_several_clients_keeps_the_active_ones(client, world):
    token = make_token(
        scope="streamline/read_models", groups=[f"client:{MALLORY}", f"client:{ACME}"]
    )
    r = client.post(
        f"/v2/clients/{ACME}/domains/d/assignments/default/jobs", json={"input": {"a": 1}}
    )
    acme_job = wait_for_job(client, r.get_json()["job_id"])["job_id"]
    suspend(client)
    assert client.get(f"/v2/jobs/{acme_job}", token=token).status_code == 200
    assert_envelope(client.get(f"/v2/jobs/{world['done']}", token=token), 403)
    r = client.get(f"/v2/clients/{MALLORY}/domains", token=token)
    assert assert_envelope(r, 403)["message"] == f"client '{MALLORY}' is suspended"
    listed = client.get("/v2/models/m/versions/1/jobs", token=token).get_json()
    assert {j["client_id"] for j in listed} == {ACME}  # not mallory's
    assert [c["client_id"] for c in client.get("/v2/clients", token=token).get_json()] == [ACME]
    assert {s.get("client_id") for s in client.get(SUBS, token=token).get_json()} == {None}


def test_a_client_created_suspended_is_suspended_at_once(client):
    token = scoped("read_models", client_id="late")
    assert client.get("/v2/models", token=token).status_code == 200  # no such client yet
    r = client.post("/v2/clients", json={"client_id": "late", "name": "L", "status": "suspended"})
    assert r.status_code == 201, r.get_json()
    assert_envelope(client.get("/v2/models", token=token), 403)


def test_a_suspension_made_elsewhere_takes_effect_within_seconds(client, world, monkeypatch):
    """Another process's change (here, straight in the database) is seen once this process's
    short-lived record of the client's status expires."""
    from pie.services import tenants

    token = machine(MALLORY)
    assert client.get("/v2/models/m", token=token).status_code == 200
    with connection():
        ClientRow.update(status="suspended").where(ClientRow.client_id == MALLORY).execute()
    assert client.get("/v2/models/m", token=token).status_code == 200  # remembered
    later = tenants.time.monotonic() + tenants.CLIENT_STATUS_SECONDS + 0.1
    monkeypatch.setattr(tenants.time, "monotonic", lambda: later)
    assert_envelope(client.get("/v2/models/m", token=token), 403)
