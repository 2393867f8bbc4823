"""Every webhook event type, delivered to a real receiver on loopback and verified with the
`standardwebhooks` library; tenant scoping (a tenant's endpoint never receives another
client's events, nor the global models' and versions'); events are written in the
transaction of their change (a change that rolls back leaves none)."""

from __future__ import annotations

import pytest

from pie.db import connection
from pie.services import orchestration
from pie.tables import WebhookDelivery
from tests.helpers import activate, model_body, scoped, wait_for_job
from tests.plugins.test_http_handler import ok, receiver  # noqa: F401  (the fixture)
from tests.webhooks import add_endpoint, deliver_all, hook_app, of_type, verified

TENANT = {"acme": scoped("manage_webhooks", "manage_domains", "init_services", client_id="acme")}
TENANT["beta"] = scoped("manage_webhooks", "manage_domains", "init_services", client_id="beta")


def test_every_event_type_reaches_a_global_endpoint_signed(make_app, receiver):  # noqa: F811
    app, client = hook_app(make_app)
    recv = receiver(ok)
    hook = add_endpoint(client, recv.url)
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    assert client.post("/v2/models", json=model_body("t")).status_code == 201
    activate(client, "t")
    activate(client, "m")
    sub = {
        "trigger_event": "inference_complete",
        "target_model_id": "t",
        "target_action": "inference",
        "input_source": "trigger_output",
    }
    r = client.post("/v2/models/m/event-subscriptions", json=sub)
    assert r.status_code == 201
    job_id = client.post("/v2/models/m/versions/1/inference", json={"input": {"x": 1}})
    job_id = job_id.get_json()["inference_job_id"]
    assert wait_for_job(client, job_id)["status"] == "success"
    # A changed output contract stales the subscription passing m's output on.
    contracts = {"inference": {"output_schema": {"type": "object"}}}
    r = client.put("/v2/models/m", json=model_body(None, handler_contracts=contracts))
    assert r.status_code == 200
    assert client.delete("/v2/models/m").status_code == 204
    deliver_all(app)

    events = verified(recv.received, hook["secret"])
    types = {event["type"] for event in events}
    assert types >= {
        "model.created",
        "model.updated",
        "model.deleted",
        "version.status_changed",
        "job.started",
        "job.succeeded",
        "subscription.fired",
        "subscription.stale",
    }, types
    (succeeded, *_) = of_type(events, "job.succeeded")
    assert succeeded["data"]["job_id"] == job_id and succeeded["data"]["output"] == {"x": 1}
    assert succeeded["data"] == client.get(f"/v2/jobs/{job_id}").get_json()
    changes = sorted(  # in the order they happened (deliveries may arrive in any order)
        (e["timestamp"], e["data"]["model_id"], e["data"]["previous_status"], e["data"]["status"])
        for e in of_type(events, "version.status_changed")
    )
    assert [change[1:] for change in changes] == [
        ("t", "pending", "training"),
        ("t", "training", "active"),
        ("m", "pending", "training"),
        ("m", "training", "active"),
    ]
    (fired,) = of_type(events, "subscription.fired")
    assert fired["data"]["event"] == "inference_complete" and fired["data"]["job_id"]
    (stale,) = of_type(events, "subscription.stale")
    assert stale["data"]["status"] == "stale" and stale["data"]["previous_status"] == "active"
    assert [e["data"]["id"] for e in of_type(events, "model.deleted")] == ["m"]
    # One webhook-id per delivery, the delivery's id; the envelope's fields.
    ids = [item.headers["webhook-id"] for item in recv.received]
    assert len(set(ids)) == len(ids)
    logged = {
        d["delivery_id"]
        for d in client.get(
            f"/v2/webhooks/{hook['webhook_id']}/deliveries?page_size=1000"
        ).get_json()
    }
    assert set(ids) == logged
    assert all(
        set(e) == {"type", "timestamp", "data"} and e["timestamp"].endswith("Z") for e in events
    )


def test_job_failed_covers_failures_and_cancellations(make_app, receiver):  # noqa: F811
    from tests.helpers import Implementations

    impls = Implementations()
    app = make_app({"PIE_OUTBOUND_ALLOWED_HOSTS": ["127.0.0.1"]}, plugins=[impls])
    from tests.helpers import Client

    client = Client(app.test_client())
    recv = receiver(ok)
    hook = add_endpoint(client, recv.url, ["job.failed"])
    handlers = {"type": "in_process", "value": "fail"}
    body = model_body("f", handlers={"training": handlers, "inference": handlers})
    assert client.post("/v2/models", json=body).status_code == 201
    activate(client, "f")
    failed = client.post("/v2/models/f/versions/1/inference", json={"input": {}})
    failed = wait_for_job(client, failed.get_json()["inference_job_id"])
    held = {"type": "in_process", "value": "hold"}
    body = model_body("h", handlers={"training": held, "inference": held})
    assert client.post("/v2/models", json=body).status_code == 201
    activate(client, "h")
    job = client.post("/v2/models/h/versions/1/inference", json={"input": {}}).get_json()
    wait_for_job(client, job["inference_job_id"], ("started",))
    assert client.post(f"/v2/jobs/{job['inference_job_id']}/cancel").status_code == 200
    impls.release.set()
    deliver_all(app)
    events = verified(recv.received, hook["secret"])
    assert {e["type"] for e in events} == {"job.failed"}  # the endpoint's filter
    errors = {e["data"]["job_id"]: e["data"]["error"]["type"] for e in events}
    assert errors[job["inference_job_id"]] == "Cancelled"
    assert errors[failed["job_id"]] != "Cancelled"


def tenant_service(client, name):
    """A tenant's domain with a default assignment to `m`, and a service whose init job runs."""
    token = TENANT[name]
    domain = f"/v2/clients/{name}/domains/d"
    assert (
        client.post(f"/v2/clients/{name}/domains", json={"domain_id": "d"}, token=token).status_code
        == 201
    )
    body = {"model_id": "m", "model_version": "1"}
    assert client.put(f"{domain}/assignments/default", json=body, token=token).status_code == 201
    r = client.post(f"{domain}/service/init", json={"service_id": "s"}, token=token)
    assert r.status_code == 202, r.get_json()
    return wait_for_job(client, r.get_json()["job_id"])


def test_a_tenants_endpoint_receives_only_its_clients_events(make_app, receiver):  # noqa: F811
    app, client = hook_app(make_app)
    receivers = {name: receiver(ok) for name in ("acme", "beta", "global")}
    for name in ("acme", "beta"):
        assert client.post("/v2/clients", json={"client_id": name, "name": name}).status_code == 201
    hooks = {
        name: add_endpoint(client, receivers[name].url, token=TENANT[name])
        for name in ("acme", "beta")
    }
    hooks["global"] = add_endpoint(client, receivers["global"].url)
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    activate(client, "m")
    jobs = {name: tenant_service(client, name)["job_id"] for name in ("acme", "beta")}
    deliver_all(app)

    seen = {name: verified(receivers[name].received, hooks[name]["secret"]) for name in receivers}
    for name in ("acme", "beta"):
        other = "beta" if name == "acme" else "acme"
        types = {e["type"] for e in seen[name]}
        assert types == {"job.started", "job.succeeded", "service.status_changed"}, types
        assert all(e["data"]["client_id"] == name for e in seen[name])
        assert jobs[other] not in str(seen[name])
        (service,) = of_type(seen[name], "service.status_changed")
        assert service["data"]["status"] == "available"
        assert service["data"]["previous_status"] == "initializing"
    everything = {e["type"] for e in seen["global"]}
    assert {"model.created", "version.status_changed", "service.status_changed"} <= everything
    clients = {e["data"].get("client_id") for e in of_type(seen["global"], "job.succeeded")}
    assert clients == {"acme", "beta"}


def test_an_event_commits_with_its_change_or_not_at_all(make_app, receiver, monkeypatch):  # noqa: F811
    app, client = hook_app(make_app)
    recv = receiver(ok)
    add_endpoint(client, recv.url, ["version.status_changed"])
    assert client.post("/v2/models", json=model_body("m")).status_code == 201

    def broken(*args, **kwargs):
        raise RuntimeError("the job row could not be written")

    # Training moves the version to `training` (an event) and then inserts the job, which
    # fails: the transaction rolls back, the move and its event with it.
    monkeypatch.setattr(orchestration.jobs, "new_job", broken)
    r = client.post("/v2/models/m/versions/1/training", json={"input": {}})
    assert r.status_code == 500
    # An illegal transition writes nothing either.
    r = client.post("/v2/models/m/versions/1/new_status", json={"status": "pending"})
    assert r.status_code == 200  # a no-op: already pending
    with connection():
        assert WebhookDelivery.select().count() == 0
    monkeypatch.undo()
    assert (
        client.post("/v2/models/m/versions/1/new_status", json={"status": "failed"}).status_code
        == 200
    )
    deliver_all(app)
    assert len(recv.received) == 1


@pytest.mark.parametrize("status", ["paused", "disabled"])
def test_paused_endpoints_keep_events_and_disabled_ones_get_none(make_app, receiver, status):  # noqa: F811
    app, client = hook_app(make_app)
    recv = receiver(ok)
    hook = add_endpoint(client, recv.url)
    url = f"/v2/webhooks/{hook['webhook_id']}"
    assert (
        client.put(url, json={"url": recv.url, "events": ["*"], "status": status}).status_code
        == 200
    )
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    deliver_all(app)
    assert recv.received == []
    assert (
        client.put(url, json={"url": recv.url, "events": ["*"], "status": "active"}).status_code
        == 200
    )
    deliver_all(app)
    assert len(recv.received) == (1 if status == "paused" else 0)


def test_a_refused_firing_is_announced_with_its_reason(make_app, receiver):  # noqa: F811
    app, client = hook_app(make_app, PIE_MAX_TRIGGER_DEPTH=0)
    recv = receiver(ok)
    hook = add_endpoint(client, recv.url, ["subscription.fired"])
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    activate(client, "m")
    sub = {
        "trigger_event": "inference_complete",
        "target_model_id": "m",
        "target_action": "inference",
        "input_source": "trigger_output",
    }
    sub_id = client.post("/v2/models/m/event-subscriptions", json=sub).get_json()["id"]
    r = client.post("/v2/models/m/versions/1/inference", json={"input": {}})
    wait_for_job(client, r.get_json()["inference_job_id"])
    deliver_all(app)
    (fired,) = verified(recv.received, hook["secret"])
    assert fired["data"]["id"] == sub_id and "job_id" not in fired["data"]
    assert "PIE_MAX_TRIGGER_DEPTH" in fired["data"]["error"]
