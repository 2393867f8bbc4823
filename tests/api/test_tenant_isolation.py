"""Tenant isolation (section 2 and 6.2): every route under /v2/clients/{client_id} in the served
OpenAPI document refuses another tenant's tokens with 403 before validating anything, and a
tenant's jobs are readable by that tenant only."""

from __future__ import annotations

import json
import re

import pytest

from tests.helpers import activate, assert_envelope, make_token, model_body, scoped, wait_for_job

A, B = "tenant-a", "tenant-b"
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
TENANT_SCOPES = ("read_domains", "manage_domains", "init_services", "run_inference", "run_training")
# Real ids of tenant A's resources; tenant B owns resources with the same ids, so a route that
# ignored the client id would answer with B's data instead of 403.
IDS = {"client_id": A, "domain_id": "d1", "service_id": "s1", "assignment_key": "default"}
TARGET = {"model_id": "m1", "model_version": "1"}
_D = "/v2/clients/{client_id}/domains/{domain_id}"
_S = _D + "/service/{service_id}"
VALID_BODIES = {
    ("put", "/v2/clients/{client_id}"): {"name": "taken over"},
    ("post", "/v2/clients/{client_id}/domains"): {"domain_id": "planted"},
    ("put", _D): {"status": "inactive"},
    ("put", _D + "/features"): {"features": []},
    ("post", _D + "/service/init"): {"service_id": "planted"},
    ("put", _S): {"static_features": {"region": "us"}},
    **{
        item: body
        for scope in (_D, _S)
        for item, body in {
            ("post", scope + "/assignments"): {"assignment_key": "planted", **TARGET},
            ("put", scope + "/assignments/{assignment_key}"): {**TARGET, "role": "planted"},
            ("post", scope + "/assignments/{assignment_key}/jobs"): {"input": {"x": 1}},
        }.items()
    },
}
INVALID_BODY = {"bogus": True, "status": 12, "features": "none"}
INVALID_QUERY = "?page=0&page_size=-1&include_archived=maybe"
FEATURES = [
    {
        "name": "region",
        "mandatory": True,
        "json_schema": {"type": "string", "enum": ["eu", "us"], "default": "eu"},
    }
]


def machine(client_id, *extra):
    return scoped(*TENANT_SCOPES, *extra, client_id=client_id)


def human(client_id):
    return make_token(groups=[f"client:{client_id}"])


def setup_tenant(client, client_id):
    """A client with domain d1, service s1 (initialised through the default assignment) and a
    `default` assignment in both scopes; returns the init job id."""
    r = client.post("/v2/clients", json={"client_id": client_id, "name": client_id})
    assert r.status_code == 201, r.get_json()
    base = f"/v2/clients/{client_id}/domains/d1"
    domain = {"domain_id": "d1", "features": FEATURES}
    assert client.post(f"/v2/clients/{client_id}/domains", json=domain).status_code == 201
    assert client.put(f"{base}/assignments/default", json=TARGET).status_code == 201
    r = client.post(f"{base}/service/init", json={"service_id": "s1"})
    assert r.status_code == 202, r.get_json()
    assert client.put(f"{base}/service/s1/assignments/default", json=TARGET).status_code == 201
    return r.get_json()["job_id"]


@pytest.fixture
def tenants(client):
    """Tenants A and B with identical ids; returns A's init job id once it has finished."""
    assert client.post("/v2/models", json=model_body("m1")).status_code == 201
    activate(client, "m1")
    job_id = setup_tenant(client, A)
    setup_tenant(client, B)
    wait_for_job(client, job_id)
    return job_id


def client_operations(client):
    """(method, path template, operation) for every route with {client_id} in /openapi.json."""
    spec = client.get("/openapi.json").get_json()
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        if "{client_id}" in path
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def concrete(path):
    filled = re.sub(r"\{(\w+)\}", lambda m: IDS[m.group(1)], path)
    assert "{" not in filled, path
    return filled


def snapshot(client, operations):
    """Everything tenant A's own token reads, plus the jobs of the assigned model version."""
    token = machine(A)
    seen = {}
    for method, path, _ in operations:
        if method == "get":
            r = client.get(concrete(path), token=token)
            assert r.status_code == 200, (path, r.get_json())
            seen[path] = r.get_json()
    seen["jobs"] = client.get("/v2/models/m1/versions/1/jobs").get_json()
    return seen


@pytest.mark.parametrize("body_kind", ["valid", "invalid"])
@pytest.mark.parametrize("token_kind", ["machine", "human"])
def test_every_client_route_refuses_another_tenant(client, tenants, token_kind, body_kind):
    operations = client_operations(client)
    assert len(operations) >= 26  # the contract's client operations; more may come
    token = machine(B) if token_kind == "machine" else human(B)
    # The token is not simply powerless: it works on its own tenant.
    assert client.get(f"/v2/clients/{B}/domains/d1/services", token=token).status_code == 200
    before = snapshot(client, operations)
    wrong = []
    for method, path, operation in operations:
        url, body = concrete(path), None
        if body_kind == "invalid":
            url, body = url + INVALID_QUERY, INVALID_BODY
        elif "requestBody" in operation:
            assert (method, path) in VALID_BODIES, f"no valid body for {method.upper()} {path}"
            body = VALID_BODIES[(method, path)]
        r = client.request(method.upper(), url, json=body, token=token)
        payload = r.get_json(silent=True) or {}
        if (
            r.status_code != 403
            or payload.get("success") is not False
            or not payload.get("message")
        ):
            wrong.append((method.upper(), path, r.status_code, payload))
    assert wrong == []
    assert snapshot(client, operations) == before


@pytest.mark.parametrize(
    "token, status",
    [
        (machine(B, "read_models"), 403),
        (human(B), 403),
        (make_token(groups=[f"client:{B}"], client_id=B, scope="streamline/read_models"), 403),
        (machine(A, "read_models"), 200),
        (human(A), 200),
        (scoped("admin"), 200),
    ],
    ids=["b-machine", "b-human", "b-both", "a-machine", "a-human", "admin"],
)
def test_a_tenants_jobs_are_readable_by_that_tenant_only(client, tenants, token, status):
    r = client.post(
        f"/v2/clients/{A}/domains/d1/service/s1/assignments/default/jobs", json={"input": {}}
    )
    assert r.status_code == 202, r.get_json()
    for job_id in (tenants, r.get_json()["job_id"]):
        r = client.get(f"/v2/jobs/{job_id}", token=token)
        if status == 403:  # without naming the tenant: the caller sent only a job id
            message = assert_envelope(r, 403)["message"]
            assert job_id in message and A not in message, message
        else:
            assert r.status_code == 200, r.get_json()
            assert (r.get_json()["job_id"], r.get_json()["client_id"]) == (job_id, A)


def test_jobs_without_a_client_stay_readable_with_read_models(client, tenants):
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {}})
    job_id = r.get_json()["inference_job_id"]
    assert client.get(f"/v2/jobs/{job_id}", token=human(B)).status_code == 200


@pytest.mark.parametrize("token", [machine(B, "read_models"), human(B)], ids=["machine", "human"])
def test_listing_a_versions_jobs_shows_only_accessible_tenants_jobs(client, tenants, token):
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {}})
    untenanted = r.get_json()["inference_job_id"]
    everything = client.get("/v2/models/m1/versions/1/jobs").get_json()
    owners = {j["job_id"]: j["client_id"] for j in everything}
    assert sorted(owners.values(), key=str) == [None, A, B]
    r = client.get("/v2/models/m1/versions/1/jobs", token=token)
    assert r.status_code == 200, r.get_json()
    visible = {j["job_id"] for j in r.get_json()}
    assert visible == {job_id for job_id, owner in owners.items() if owner != A}
    assert untenanted in visible
    assert json.loads(r.headers["X-Pagination"])["total"] == len(visible)
    r = client.get("/v2/models/m1/versions/1/jobs", token=human(A))
    assert {j["client_id"] for j in r.get_json()} == {A, None}
