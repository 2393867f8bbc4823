"""Clients (contract 7.1 and section 2): admin-only management, visibility by tenant access,
suspension, and unknown clients under a route."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.helpers import activate, assert_envelope, make_token, model_body, scoped

CLIENT_FIELDS = {"client_id", "client_uuid", "name", "status", "created_at", "updated_at"}
TENANT_SCOPES = ("read_domains", "manage_domains", "init_services", "run_inference", "run_training")


def machine(client_id, *names):
    """A machine token of one tenant, with the given scopes (all tenant scopes by default)."""
    return scoped(*(names or TENANT_SCOPES), client_id=client_id)


def human(*client_ids):
    return make_token(groups=[f"client:{c}" for c in client_ids])


def create_client(client, client_id, name=None, **fields):
    r = client.post(
        "/v2/clients", json={"client_id": client_id, "name": name or client_id, **fields}
    )
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def listed_ids(client, token="default"):
    r = client.get("/v2/clients", token=token)
    assert r.status_code == 200, r.get_json()
    return [c["client_id"] for c in r.get_json()]


# --- create ---------------------------------------------------------------------------------


def test_admin_creates_an_active_client_with_a_generated_uuid(client):
    r = client.post("/v2/clients", json={"client_id": "acme", "name": "Acme Corp"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert set(body) == CLIENT_FIELDS
    assert (body["client_id"], body["name"], body["status"]) == ("acme", "Acme Corp", "active")
    assert str(uuid.UUID(body["client_uuid"])) == body["client_uuid"]
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")
    assert client.get("/v2/clients/acme").get_json() == body


def test_each_client_gets_its_own_uuid(client):
    uuids = {create_client(client, cid)["client_uuid"] for cid in ("a", "b", "c")}
    assert len(uuids) == 3


def test_a_client_can_be_created_suspended(client):
    assert create_client(client, "acme", status="suspended")["status"] == "suspended"


def test_duplicate_client_id_is_409(client):
    create_client(client, "acme", "first")
    body = assert_envelope(client.post("/v2/clients", json={"client_id": "acme", "name": "x"}), 409)
    assert "acme" in body["message"]
    assert client.get("/v2/clients/acme").get_json()["name"] == "first"


@pytest.mark.parametrize(
    "token",
    [
        machine("acme"),
        scoped("manage_domains", "manage_models", "read_domains"),
        human("acme"),
        make_token(groups=["client:acme", "operators"]),
    ],
    ids=["tenant-machine", "machine-without-tenant", "human-group", "human-two-groups"],
)
@pytest.mark.parametrize("body", [{"client_id": "acme", "name": "Acme"}, {"bogus": 1}])
def test_only_admin_creates_clients_before_validating_the_body(client, token, body):
    assert_envelope(client.post("/v2/clients", json=body, token=token), 403)
    assert listed_ids(client) == []


@pytest.mark.parametrize("token", [make_token(groups=["admin"]), scoped("admin")])
def test_admin_group_and_admin_scope_both_create(client, token):
    r = client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"}, token=token)
    assert r.status_code == 201, r.get_json()


@pytest.mark.parametrize(
    "body",
    [
        {"name": "no id"},
        {"client_id": "acme"},
        {"client_id": "acme", "name": "x", "status": "deleted"},
        {"client_id": "acme", "name": "x", "extra": True},
        {"client_id": "-bad", "name": "x"},
        {"client_id": "acme", "name": 5},
    ],
)
def test_invalid_create_body_is_400(client, body):
    assert_envelope(client.post("/v2/clients", json=body), 400)
    assert listed_ids(client) == []


# --- list -------------------------------------------------------------------------------------


def test_admin_lists_every_client_in_creation_order(client):
    for cid in ("c3", "c1", "c2"):
        create_client(client, cid)
    assert listed_ids(client) == ["c3", "c1", "c2"]


def test_machine_token_lists_only_its_own_client(client):
    for cid in ("a", "b", "c"):
        create_client(client, cid)
    assert listed_ids(client, token=machine("b", "read_domains")) == ["b"]


def test_machine_token_of_an_unknown_client_lists_nothing(client):
    create_client(client, "a")
    assert listed_ids(client, token=machine("ghost", "read_domains")) == []


def test_human_group_token_lists_only_its_client(client):
    for cid in ("a", "b", "c"):
        create_client(client, cid)
    assert listed_ids(client, token=human("c")) == ["c"]
    assert listed_ids(client, token=human("a", "c")) == ["a", "c"]


def test_list_needs_read_domains(client):
    create_client(client, "a")
    assert_envelope(client.get("/v2/clients", token=machine("a", "read_models")), 403)


def test_list_is_paginated(client):
    for cid in ("c1", "c2", "c3"):
        create_client(client, cid)
    r = client.get("/v2/clients?page=2&page_size=2")
    assert r.status_code == 200
    assert [c["client_id"] for c in r.get_json()] == ["c3"]
    assert json.loads(r.headers["X-Pagination"])["total"] == 3


# --- read -------------------------------------------------------------------------------------


def test_tenant_tokens_read_their_own_client(client):
    created = create_client(client, "acme")
    for token in (machine("acme", "read_domains"), human("acme")):
        r = client.get("/v2/clients/acme", token=token)
        assert r.status_code == 200, r.get_json()
        assert r.get_json() == created


@pytest.mark.parametrize("token", [machine("other"), human("other")], ids=["machine", "human"])
def test_other_tenants_cannot_read_a_client(client, token):
    create_client(client, "acme")
    create_client(client, "other")
    assert_envelope(client.get("/v2/clients/acme", token=token), 403)


def test_unknown_client_is_404(client):
    assert "nope" in assert_envelope(client.get("/v2/clients/nope"), 404)["message"]


# --- update -----------------------------------------------------------------------------------


def test_admin_renames_a_client(client):
    created = create_client(client, "acme", "Old name")
    r = client.put("/v2/clients/acme", json={"name": "New name"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["name"], body["status"]) == ("New name", "active")
    assert (body["client_uuid"], body["created_at"]) == (
        created["client_uuid"],
        created["created_at"],
    )
    assert body["updated_at"] >= created["updated_at"]
    assert client.get("/v2/clients/acme").get_json()["name"] == "New name"


@pytest.mark.parametrize("token", [machine("acme"), human("acme")], ids=["machine", "human"])
def test_tenants_cannot_update_their_own_client(client, token):
    create_client(client, "acme", "Acme")
    for body in ({"name": "Mine now"}, {"status": "suspended"}, {"bogus": 1}):
        assert_envelope(client.put("/v2/clients/acme", json=body, token=token), 403)
    assert client.get("/v2/clients/acme").get_json()["name"] == "Acme"


@pytest.mark.parametrize(
    "body", [{"status": "deleted"}, {"client_id": "renamed"}, {"name": None}, {"x": 1}]
)
def test_invalid_update_body_is_400(client, body):
    create_client(client, "acme")
    assert_envelope(client.put("/v2/clients/acme", json=body), 400)


def test_updating_an_unknown_client_is_404(client):
    assert_envelope(client.put("/v2/clients/nope", json={"name": "x"}), 404)


# --- suspension -------------------------------------------------------------------------------


@pytest.fixture
def tenant(client):
    """Client `acme` with a domain `d1`, a service `s1`, and a `default` assignment in both
    scopes pointing at active model `m1` version 1."""
    create_client(client, "acme")
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    activate(client, "m1")
    base = "/v2/clients/acme/domains/d1"
    assert client.post("/v2/clients/acme/domains", json={"domain_id": "d1"}).status_code == 201
    assert client.post(f"{base}/service/init", json={"service_id": "s1"}).status_code == 202
    target = {"model_id": "m1", "model_version": "1"}
    for scope in (base, f"{base}/service/s1"):
        assert client.put(f"{scope}/assignments/default", json=target).status_code == 201
    return "acme"


D = "/v2/clients/acme/domains/d1"
TARGET = {"model_id": "m1", "model_version": "1"}
S = f"{D}/service/s1"
UNDER_CLIENT = [
    ("GET", "/v2/clients/acme/domains", None),
    ("POST", "/v2/clients/acme/domains", {"domain_id": "d2"}),
    ("GET", D, None),
    ("PUT", D, {"status": "inactive"}),
    ("GET", f"{D}/features", None),
    ("PUT", f"{D}/features", {"features": []}),
    ("POST", f"{D}/service/init", {"service_id": "s2"}),
    ("GET", f"{D}/services", None),
    ("POST", f"{D}/services/init", None),
    ("GET", S, None),
    ("PUT", S, {"static_features": {}}),
    ("DELETE", S, None),
    *[
        item
        for scope in (D, S)
        for item in (
            ("GET", f"{scope}/assignments", None),
            ("POST", f"{scope}/assignments", {"assignment_key": "k", **TARGET}),
            ("GET", f"{scope}/assignments/default", None),
            ("PUT", f"{scope}/assignments/default", TARGET),
            ("GET", f"{scope}/assignments/default/revisions", None),
            ("POST", f"{scope}/assignments/default/jobs", {"input": {}}),
        )
    ],
]


def test_suspended_client_answers_403_under_it_and_admin_reactivates_it(client, tenant):
    r = client.put("/v2/clients/acme", json={"status": "suspended"})
    assert r.status_code == 200 and r.get_json()["status"] == "suspended"
    for token in ("default", machine("acme"), human("acme")):
        for method, path, body in UNDER_CLIENT:
            r = client.request(method, path, json=body, token=token)
            assert_envelope(r, 403)
            assert "suspended" in r.get_json()["message"], (method, path)
    # The client resource itself stays reachable for admin, who re-activates it.
    assert client.get("/v2/clients/acme").get_json()["status"] == "suspended"
    assert "acme" in listed_ids(client)
    assert client.put("/v2/clients/acme", json={"status": "active"}).status_code == 200
    for token in ("default", machine("acme"), human("acme")):
        assert client.get(f"{S}/assignments/default", token=token).status_code == 200
        assert client.get(f"{D}/services", token=token).status_code == 200
    # Nothing the suspended calls asked for happened.
    assert [d["domain_id"] for d in client.get("/v2/clients/acme/domains").get_json()] == ["d1"]
    assert [s["service_id"] for s in client.get(f"{D}/services").get_json()] == ["s1"]
    assert client.get(D).get_json()["status"] == "active"


def test_suspension_is_403_before_body_validation(client, tenant):
    client.put("/v2/clients/acme", json={"status": "suspended"})
    for method, path in (("POST", "/v2/clients/acme/domains"), ("PUT", f"{D}/features")):
        assert_envelope(client.request(method, path, json={"bogus": 1}), 403)


def test_suspending_one_client_leaves_others_alone(client, tenant):
    create_client(client, "other")
    client.put("/v2/clients/acme", json={"status": "suspended"})
    r = client.post("/v2/clients/other/domains", json={"domain_id": "d1"})
    assert r.status_code == 201, r.get_json()


# --- unknown clients under a route ------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/v2/clients/nope/domains", None),
        ("POST", "/v2/clients/nope/domains", {"domain_id": "d1"}),
        ("POST", "/v2/clients/nope/domains", {"bogus": 1}),
        ("GET", "/v2/clients/nope/domains/d1", None),
        ("PUT", "/v2/clients/nope/domains/d1/features", {"features": "not a list"}),
        ("POST", "/v2/clients/nope/domains/d1/service/init", {"service_id": "s1"}),
        ("GET", "/v2/clients/nope/domains/d1/service/s1/assignments", None),
        ("POST", "/v2/clients/nope/domains/d1/assignments/default/jobs", {}),
    ],
)
def test_unknown_client_under_a_route_is_404_before_the_body(client, method, path, body):
    body = assert_envelope(client.request(method, path, json=body), 404)
    assert "nope" in body["message"]
