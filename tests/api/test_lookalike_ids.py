"""Look-alike ids: a pattern's `$` also matches before a trailing newline, so "m-shared\\n" once
passed for an id. Ids are matched whole, in bodies and in every path parameter."""

from __future__ import annotations

import re

import pytest

from pie.services import lifecycle
from tests.helpers import activate, assert_envelope, model_body

C = "/v2/clients/acme"
D = f"{C}/domains/d1"
V1 = {"model_id": "m1", "model_version": "1"}
LOOKALIKES = ["m-shared\n", "m-shared\r\n", "m-shared\u2028", " m-shared", "m-shared "]


@pytest.fixture
def tenant(client):
    """Client acme, domain d1, service s1, and model m1 version 1 active."""
    assert client.post("/v2/clients", json={"client_id": "acme", "name": "A"}).status_code == 201
    assert client.post(f"{C}/domains", json={"domain_id": "d1"}).status_code == 201
    assert client.post(f"{D}/service/init", json={"service_id": "s1"}).status_code == 202
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    activate(client, "m1")
    return client


@pytest.mark.parametrize("model_id", LOOKALIKES)
def test_a_model_id_with_a_trailing_newline_is_400(client, model_id):
    r = client.post("/v2/models", json=model_body(model_id))
    assert "json.id: must match" in assert_envelope(r, 400)["message"]
    assert client.get("/v2/models").get_json() == []


def test_a_version_with_a_trailing_newline_is_400(client):
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    r = client.post("/v2/models/m1/new_version", json={"version": "7\n"})
    assert "json.version: must match" in assert_envelope(r, 400)["message"]
    assert [v["version"] for v in client.get("/v2/models/m1/versions").get_json()] == ["1"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v2/clients", {"client_id": "acme\n", "name": "A"}, "client_id"),
        (f"{C}/domains", {"domain_id": "d2\n"}, "domain_id"),
        (f"{D}/service/init", {"service_id": "s2\n"}, "service_id"),
        (f"{D}/assignments", {"assignment_key": "default\n", **V1}, "assignment_key"),
    ],
)
def test_tenant_ids_with_a_trailing_newline_are_400(tenant, path, body, field):
    r = tenant.post(path, json=body)
    assert f"json.{field}: must match" in assert_envelope(r, 400)["message"]


@pytest.mark.parametrize("scope", ["", "/service/s1"])
def test_an_assignment_key_with_a_newline_in_the_path_creates_nothing(tenant, scope):
    """PUT …/assignments/{key} creates the key it names: "default%0A" must not."""
    r = tenant.put(f"{D}{scope}/assignments/default%0A", json=V1)
    assert "assignment_key" in assert_envelope(r, 404)["message"]
    assert tenant.get(f"{D}{scope}/assignments?include_archived=true").get_json() == []


@pytest.mark.parametrize(
    ("handler", "field"),
    [
        (
            {"type": "lambda", "arn": "arn:aws:lambda:us-east-1:123456789012:function:f\n"},
            "arn",
        ),
        (
            {
                "type": "lambda",
                "arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
                "version": "live\n",
            },
            "version",
        ),
        ({"type": "ecs_task", "value": "cluster/family:3\n"}, "value"),
    ],
)
def test_handler_values_with_a_trailing_newline_are_400(client, handler, field):
    body = model_body("m1")
    body["handlers"]["inference"] = handler
    r = client.post("/v2/models", json=body)
    assert f"json.handlers.inference.{field}" in assert_envelope(r, 400)["message"]


def test_every_path_parameter_of_every_route_refuses_a_lookalike(app, tenant):
    """Generated from the route table, so a route added later is covered: each /v2 path
    parameter in turn gets a look-alike of a value that exists; every method answers 404."""
    hook = {"url": "https://hooks.example.com/x", "events": ["*"]}
    webhook_id = tenant.post("/v2/webhooks", json=hook).get_json()["webhook_id"]
    assert tenant.post("/v2/models", json=model_body("m2")).status_code == 201  # a delivery
    job_id = tenant.post("/v2/models/m1/versions/1/inference", json={"input": {}}).get_json()[
        "inference_job_id"
    ]
    sub = tenant.post(
        "/v2/models/m1/event-subscriptions",
        json={
            "trigger_event": "training_complete",
            "target_model_id": "m1",
            "target_action": "inference",
            "input_source": "trigger_output",
        },
    )
    assert sub.status_code == 201, sub.get_json()
    for scope in ("", "/service/s1"):
        assert tenant.put(f"{D}{scope}/assignments/default", json=V1).status_code == 201
    existing = {
        "model_id": "m1",
        "model_version": "1",
        "job_id": job_id,
        "subscription_id": sub.get_json()["id"],
        "client_id": "acme",
        "domain_id": "d1",
        "service_id": "s1",
        "assignment_key": "default",
        "webhook_id": webhook_id,
        "delivery_id": tenant.get(f"/v2/webhooks/{webhook_id}/deliveries").get_json()[0][
            "delivery_id"
        ],
    }
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v2/") or not rule.arguments:
            continue
        if "GET" in rule.methods:  # the control: the values themselves are found
            real = re.sub(r"<(\w+)>", lambda m: existing[m.group(1)], rule.rule)
            assert tenant.get(real).status_code == 200, real
        for name in sorted(rule.arguments):
            values = {**existing, name: existing[name] + "%0A"}  # "\n", percent-encoded
            path = re.sub(r"<(\w+)>", lambda m, v=values: v[m.group(1)], rule.rule)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                r = tenant.request(method, path, json={} if method in ("POST", "PUT") else None)
                assert r.status_code == 404, (method, path, r.get_json())
                assert name in r.get_json()["message"]
                checked += 1
    assert checked > 60


def test_a_version_that_only_looks_like_an_integer_does_not_number_the_next(app, client):
    """Below the API too: "7\\n" is not an integer version, so the next auto-numbered
    version of the model is "2", not "8"."""
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    with app.app_context():
        lifecycle.create_version("m1", {"version": "7\n"})
    r = client.post("/v2/models/m1/new_version", json={})
    assert r.get_json()["version"]["version"] == "2"
