"""Services (contract 7.3): init with resolved features and an init job through the domain's
`default` assignment, status following that job, read, list, update, delete, re-init all."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pie import hookimpl
from pie.services import service_instances
from tests.helpers import activate, assert_envelope, model_body, wait_for, wait_for_job

SERVICE_FIELDS = {
    "client_id",
    "domain_id",
    "service_id",
    "status",
    "departure_datetime",
    "provided_features",
    "resolved_features",
    "created_at",
    "updated_at",
}
FEATURES = [
    {
        "name": "region",
        "mandatory": True,
        "json_schema": {"type": "string", "enum": ["eu", "us"], "default": "eu"},
    },
    {
        "name": "max_batch",
        "mandatory": True,
        "json_schema": {"type": "integer", "minimum": 1},
    },
    {
        "name": "weights",
        "mandatory": False,
        "json_schema": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 2,
            "maxItems": 2,
            "default": [0.5, 0.5],
        },
    },
]
C = "/v2/clients/acme"
D = f"{C}/domains/d1"


class Implementations:
    """In-process implementations besides `echo`: one that waits, one that fails."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def hold(self, job_input: dict[str, Any]) -> dict[str, Any]:
        self.release.wait(30)
        return dict(job_input)

    @staticmethod
    def fail(job_input: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("the model refused these features")

    @hookimpl
    def pie_register_in_process_handlers(self, app: Any) -> dict[str, Any]:
        return {"hold": self.hold, "fail": self.fail}


@pytest.fixture
def impls():
    return Implementations()


@pytest.fixture
def app(make_app, impls):
    app = make_app({"PIE_IN_PROCESS_WORKERS": 8}, plugins=[impls])
    yield app
    impls.release.set()


def create_model(client, model_id, inference="echo", **fields):
    handler = {"type": "in_process", "value": inference}
    body = model_body(model_id, handlers={"training": handler, "inference": handler}, **fields)
    r = client.post("/v2/models", json=body)
    assert r.status_code == 201, r.get_json()
    activate(client, model_id)


def assign_default(client, model_id="m1", version="1"):
    r = client.put(
        f"{D}/assignments/default", json={"model_id": model_id, "model_version": version}
    )
    assert r.status_code in (200, 201), r.get_json()
    return r.get_json()


@pytest.fixture
def acme(client):
    """Client `acme`, domain `d1` with FEATURES, active model `m1` (echo) without assignments."""
    assert client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"}).status_code == 201
    r = client.post(f"{C}/domains", json={"domain_id": "d1", "features": FEATURES})
    assert r.status_code == 201, r.get_json()
    create_model(client, "m1")
    return client


@pytest.fixture
def tenant(acme):
    """`acme` with m1 version 1 as the domain's `default` assignment."""
    assign_default(acme, "m1", "1")
    return acme


def init(client, service_id, static_features=None, **fields):
    body = {"service_id": service_id, **fields}
    if static_features is not None:
        body["static_features"] = static_features
    return client.post("/v2/clients/acme/domains/d1/service/init", json=body)


def init_ok(client, service_id, static_features=None, **fields):
    r = init(client, service_id, static_features, **fields)
    assert r.status_code == 202, r.get_json()
    return r.get_json()


def get_service(client, service_id):
    r = client.get(f"/v2/clients/acme/domains/d1/service/{service_id}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def wait_for_status(client, service_id, status):
    return wait_for(lambda: get_service(client, service_id)["status"] == status)


def version_jobs(client, model_id="m1", version="1"):
    r = client.get(f"/v2/models/{model_id}/versions/{version}/jobs")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def jobs_by_service(client, model_id="m1", version="1"):
    found: dict[str, list[dict[str, Any]]] = {}
    for job in reversed(version_jobs(client, model_id, version)):  # oldest first
        found.setdefault(job["service_id"], []).append(job)
    return found


def iso(delta):
    return (datetime.now(UTC) + delta).isoformat()


def list_ids(client):
    r = client.get("/v2/clients/acme/domains/d1/services")
    assert r.status_code == 200, r.get_json()
    return [s["service_id"] for s in r.get_json()]


# --- init -----------------------------------------------------------------------------------


def test_init_answers_202_and_stores_provided_and_resolved_features(tenant):
    r = init(tenant, "s1", {"max_batch": 8})
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert set(body) == {"service_id", "job_id"}
    assert body["service_id"] == "s1" and body["job_id"]
    service = get_service(tenant, "s1")
    assert set(service) == SERVICE_FIELDS
    assert (service["client_id"], service["domain_id"], service["service_id"]) == (
        "acme",
        "d1",
        "s1",
    )
    assert service["status"] in ("initializing", "available")
    assert service["departure_datetime"] is None
    assert service["provided_features"] == {"max_batch": 8}
    assert service["resolved_features"] == {"region": "eu", "max_batch": 8, "weights": [0.5, 0.5]}


def test_init_runs_an_inference_job_through_the_default_assignment(tenant):
    default = tenant.get(f"{D}/assignments/default").get_json()
    job_id = init_ok(tenant, "s1", {"max_batch": 8, "region": "us"})["job_id"]
    r = tenant.get(f"/v2/jobs/{job_id}")
    assert r.status_code == 200, r.get_json()
    job = r.get_json()
    resolved = {"region": "us", "max_batch": 8, "weights": [0.5, 0.5]}
    assert (job["job_type"], job["model_id"], job["model_version"]) == ("inference", "m1", "1")
    assert job["input"] == resolved
    assert job["assignment_id"] == default["assignment_id"]
    assert (job["client_id"], job["domain_id"], job["service_id"]) == ("acme", "d1", "s1")
    done = wait_for_job(tenant, job_id)
    assert (done["status"], done["output"]) == ("success", resolved)
    wait_for_status(tenant, "s1", "available")


def test_service_is_initializing_until_its_init_job_succeeds(acme, impls):
    create_model(acme, "slow", inference="hold")
    assign_default(acme, "slow")
    job_id = init_ok(acme, "s1", {"max_batch": 1})["job_id"]
    wait_for_job(acme, job_id, ("started",))
    assert get_service(acme, "s1")["status"] == "initializing"
    impls.release.set()
    assert wait_for_job(acme, job_id)["status"] == "success"
    wait_for_status(acme, "s1", "available")


def test_service_is_failed_when_its_init_job_fails(acme):
    create_model(acme, "broken", inference="fail")
    assign_default(acme, "broken")
    job_id = init_ok(acme, "s1", {"max_batch": 1})["job_id"]
    job = wait_for_job(acme, job_id)
    assert job["status"] == "failure"
    assert "refused" in job["error"]["message"]
    wait_for_status(acme, "s1", "failed")


def test_without_a_default_assignment_the_service_is_available_and_no_job_runs(acme):
    r = init(acme, "s1", {"max_batch": 1})
    assert r.status_code == 202, r.get_json()
    assert r.get_json() == {"service_id": "s1"}
    service = get_service(acme, "s1")
    assert service["status"] == "available"
    assert service["resolved_features"] == {"region": "eu", "max_batch": 1, "weights": [0.5, 0.5]}
    assert version_jobs(acme) == []


def test_only_an_active_domain_default_assignment_starts_an_init_job(acme):
    target = {"model_id": "m1", "model_version": "1"}
    acme.put(f"{D}/assignments/other", json=target)
    assign_default(acme)
    acme.put(f"{D}/assignments/default", json={**target, "status": "archived"})
    assert init_ok(acme, "s1", {"max_batch": 1}) == {"service_id": "s1"}
    assert acme.put(f"{D}/service/s1/assignments/default", json=target).status_code == 201
    assert init_ok(acme, "s2", {"max_batch": 1}) == {"service_id": "s2"}
    assert version_jobs(acme) == []


def test_duplicate_service_id_is_409_and_starts_no_job(tenant):
    job_id = init_ok(tenant, "s1", {"max_batch": 1})["job_id"]
    message = assert_envelope(init(tenant, "s1", {"max_batch": 2}), 409)["message"]
    assert "s1" in message
    assert get_service(tenant, "s1")["provided_features"] == {"max_batch": 1}
    assert [j["job_id"] for j in version_jobs(tenant)] == [job_id]


def test_init_in_an_inactive_domain_is_422_and_stores_nothing(tenant):
    assert tenant.put(D, json={"status": "inactive"}).status_code == 200
    assert "d1" in assert_envelope(init(tenant, "s1", {"max_batch": 1}), 422)["message"]
    assert list_ids(tenant) == []
    assert version_jobs(tenant) == []
    tenant.put(D, json={"status": "active"})
    assert "job_id" in init_ok(tenant, "s1", {"max_batch": 1})


def test_init_in_an_unknown_domain_is_404(tenant):
    r = tenant.post("/v2/clients/acme/domains/nope/service/init", json={"service_id": "s1"})
    assert "nope" in assert_envelope(r, 404)["message"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"static_features": {"max_batch": 1}},
        {"service_id": "s1", "static_features": [1]},
        {"service_id": "s1", "static_features": None},
        {"service_id": "s1", "departure_datetime": "2030-01-01T00:00:00"},
        {"service_id": "s1", "departure_datetime": "tomorrow"},
        # in range as written, out of range once moved to UTC (was a 500)
        {"service_id": "s1", "departure_datetime": "0001-01-01T00:00:00+01:00"},
        {"service_id": "s1", "departure_datetime": "9999-12-31T23:59:59-01:00"},
        {"service_id": "s1", "job_id": "x"},
        {"service_id": 7},
        {"service_id": "bad id"},
    ],
)
def test_init_with_a_malformed_body_is_400(tenant, body):
    assert_envelope(tenant.post(f"{D}/service/init", json=body), 400)
    assert list_ids(tenant) == []


def test_init_resolves_against_the_default_versions_frozen_feature_schema(tenant):
    frozen = [
        {
            "name": "tier",
            "mandatory": True,
            "json_schema": {"type": "string", "enum": ["gold", "basic"], "default": "basic"},
        },
        {"name": "region", "mandatory": True, "json_schema": {"type": "string", "enum": ["eu"]}},
    ]
    r = tenant.post("/v2/models/m1/new_version", json={"feature_schema": frozen})
    assert r.status_code == 201, r.get_json()
    activate(tenant, "m1", "2")
    assign_default(tenant, "m1", "2")
    job_id = init_ok(tenant, "s1", {"region": "eu"})["job_id"]
    assert get_service(tenant, "s1")["resolved_features"] == {"tier": "basic", "region": "eu"}
    job = wait_for_job(tenant, job_id)
    assert (job["model_version"], job["input"]) == ("2", {"tier": "basic", "region": "eu"})
    # The domain's own definitions are not in force: max_batch is unknown, region "us" invalid.
    message = assert_envelope(init(tenant, "s2", {"max_batch": 1, "region": "us"}), 422)["message"]
    assert "max_batch" in message and "region" in message
    assert "region" in assert_envelope(init(tenant, "s3", {}), 422)["message"]
    assert list_ids(tenant) == ["s1"]


def test_init_whose_features_fail_the_models_input_schema_is_422_and_stores_nothing(acme):
    contract = {
        "input_schema": {
            "type": "object",
            "properties": {"region": {"const": "eu"}},
            "required": ["region"],
        }
    }
    create_model(acme, "strict", handler_contracts={"inference": contract})
    assign_default(acme, "strict")
    message = assert_envelope(init(acme, "s1", {"max_batch": 1, "region": "us"}), 422)["message"]
    assert "region" in message
    assert list_ids(acme) == []
    assert version_jobs(acme, "strict") == []
    assert "job_id" in init_ok(acme, "s2", {"max_batch": 1})


# --- read, list ---------------------------------------------------------------------------


def test_get_an_unknown_service_or_domain_is_404(tenant):
    init_ok(tenant, "s1", {"max_batch": 1})
    assert_envelope(tenant.get("/v2/clients/acme/domains/d1/service/nope"), 404)
    assert_envelope(tenant.get("/v2/clients/acme/domains/nope/service/s1"), 404)
    assert_envelope(tenant.get("/v2/clients/acme/domains/nope/services"), 404)


def test_list_services_of_one_domain_in_creation_order(tenant):
    assert tenant.post(f"{C}/domains", json={"domain_id": "d2"}).status_code == 201
    tenant.post(f"{C}/domains/d2/service/init", json={"service_id": "elsewhere"})
    for service_id in ("sz", "sa", "sm"):
        init_ok(tenant, service_id, {"max_batch": 1})
    r = tenant.get("/v2/clients/acme/domains/d1/services")
    assert r.status_code == 200
    services = r.get_json()
    assert [s["service_id"] for s in services] == ["sz", "sa", "sm"]
    assert all(set(s) == SERVICE_FIELDS for s in services)
    r = tenant.get("/v2/clients/acme/domains/d1/services?page=2&page_size=2")
    assert [s["service_id"] for s in r.get_json()] == ["sm"]


# --- update -------------------------------------------------------------------------------


def test_update_replaces_features_re_resolves_them_and_starts_no_job(tenant):
    job_id = init_ok(tenant, "s1", {"max_batch": 1, "region": "us"})["job_id"]
    wait_for_status(tenant, "s1", "available")
    before = get_service(tenant, "s1")
    r = tenant.put(
        "/v2/clients/acme/domains/d1/service/s1", json={"static_features": {"max_batch": 4}}
    )
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["provided_features"] == {"max_batch": 4}
    assert body["resolved_features"] == {"region": "eu", "max_batch": 4, "weights": [0.5, 0.5]}
    assert body["status"] == "available"
    assert body["created_at"] == before["created_at"]
    assert get_service(tenant, "s1") == body
    assert [j["job_id"] for j in version_jobs(tenant)] == [job_id]


def test_update_sets_and_clears_the_departure_and_keeps_features(tenant):
    init_ok(tenant, "s1", {"max_batch": 3})
    path = f"{D}/service/s1"
    r = tenant.put(path, json={"departure_datetime": "2031-05-01T12:00:00+02:00"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["departure_datetime"].startswith("2031-05-01T10:00:00")
    assert r.get_json()["departure_datetime"].endswith("Z")
    assert r.get_json()["provided_features"] == {"max_batch": 3}
    r = tenant.put(path, json={"departure_datetime": None})
    assert r.get_json()["departure_datetime"] is None
    assert tenant.put(path, json={}).get_json()["provided_features"] == {"max_batch": 3}


def test_update_resolves_against_the_frozen_feature_schema_in_force(tenant):
    init_ok(tenant, "s1", {"max_batch": 3})
    frozen = [{"name": "tier", "mandatory": False, "json_schema": {"enum": ["a", "b"]}}]
    tenant.post("/v2/models/m1/new_version", json={"feature_schema": frozen})
    activate(tenant, "m1", "2")
    patch = [{"service_id": "s1", "static_features": {"max_batch": None, "tier": "a"}}]
    r = tenant.put(
        f"{D}/assignments/default",
        json={"model_id": "m1", "model_version": "2", "service_updates": patch},
    )
    assert r.status_code == 200, r.get_json()
    path = f"{D}/service/s1"
    assert tenant.put(path, json={"static_features": {"tier": "b"}}).get_json()[
        "resolved_features"
    ] == {"tier": "b"}
    message = assert_envelope(tenant.put(path, json={"static_features": {"max_batch": 2}}), 422)
    assert "max_batch" in message["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"static_features": "x"},
        {"departure_datetime": "2030-01-01"},
        {"service_id": "s2"},
        {"status": "available"},
    ],
)
def test_update_with_a_malformed_body_is_400(tenant, body):
    init_ok(tenant, "s1", {"max_batch": 3})
    before = get_service(tenant, "s1")
    assert_envelope(tenant.put(f"{D}/service/s1", json=body), 400)
    after = get_service(tenant, "s1")
    assert after["provided_features"] == before["provided_features"]
    assert after["departure_datetime"] is None


def test_update_an_unknown_service_is_404(tenant):
    assert_envelope(tenant.put(f"{D}/service/nope", json={"static_features": {}}), 404)


# --- delete -------------------------------------------------------------------------------


def test_delete_is_204_then_404_and_keeps_the_jobs(tenant):
    job_id = init_ok(tenant, "s1", {"max_batch": 1})["job_id"]
    init_ok(tenant, "s2", {"max_batch": 1})
    wait_for_job(tenant, job_id)
    r = tenant.delete("/v2/clients/acme/domains/d1/service/s1")
    assert r.status_code == 204 and r.get_data() == b""
    assert_envelope(tenant.get(f"{D}/service/s1"), 404)
    assert_envelope(tenant.delete(f"{D}/service/s1"), 404)
    assert list_ids(tenant) == ["s2"]
    job = tenant.get(f"/v2/jobs/{job_id}").get_json()
    assert (job["service_id"], job["status"]) == ("s1", "success")


def test_delete_removes_the_services_own_assignments_only(tenant):
    target = {"model_id": "m1", "model_version": "1"}
    init_ok(tenant, "s1", {"max_batch": 1})
    init_ok(tenant, "s2", {"max_batch": 1})
    for service_id in ("s1", "s2"):
        r = tenant.put(f"{D}/service/{service_id}/assignments/k", json=target)
        assert r.status_code == 201
    tenant.put(f"{D}/service/s1/assignments/k", json=target)  # a second revision
    assert tenant.delete(f"{D}/service/s1").status_code == 204
    init_ok(tenant, "s1", {"max_batch": 1})  # the same id again starts with no assignments
    assert tenant.get(f"{D}/service/s1/assignments?include_archived=true").get_json() == []
    assert_envelope(tenant.get(f"{D}/service/s1/assignments/k/revisions"), 404)
    assert tenant.get(f"{D}/service/s2/assignments/k").status_code == 200
    assert tenant.get(f"{D}/assignments/default").status_code == 200


# --- re-initialise all --------------------------------------------------------------------


@pytest.fixture
def populated(tenant):
    """Services s-a, s-b (departing next year) and s-gone (departed), their init jobs done."""
    for service_id, features, departure in (
        ("s-a", {"max_batch": 1}, None),
        ("s-b", {"max_batch": 2, "region": "us"}, iso(timedelta(days=365))),
        ("s-gone", {"max_batch": 3}, iso(-timedelta(seconds=1))),
    ):
        job_id = init_ok(tenant, service_id, features, departure_datetime=departure)["job_id"]
        wait_for_job(tenant, job_id)
    return tenant


def reinit(client):
    return client.post("/v2/clients/acme/domains/d1/services/init")


def test_reinit_all_starts_a_fresh_job_for_every_staying_service(populated):
    before = {s["service_id"]: s for s in populated.get(f"{D}/services").get_json()}
    # Changing the domain's defaults must not leak into stored features or job inputs.
    features = [dict(f) for f in FEATURES]
    features[0] = {**FEATURES[0], "json_schema": {"type": "string", "default": "ap"}}
    assert populated.put(f"{D}/features", json={"features": features}).status_code == 200
    r = reinit(populated)
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert set(body) == {"dispatched_services", "reinitializing_services"}
    assert sorted(body["dispatched_services"]) == ["s-a", "s-b"]
    assert body["reinitializing_services"] == body["dispatched_services"]
    jobs = jobs_by_service(populated)
    assert {sid: len(found) for sid, found in jobs.items()} == {"s-a": 2, "s-b": 2, "s-gone": 1}
    default_id = populated.get(f"{D}/assignments/default").get_json()["assignment_id"]
    for service_id in ("s-a", "s-b"):
        fresh = jobs[service_id][-1]
        assert fresh["input"] == before[service_id]["resolved_features"]
        assert fresh["assignment_id"] == default_id
        assert (fresh["client_id"], fresh["domain_id"]) == ("acme", "d1")
        wait_for_job(populated, fresh["job_id"])
        wait_for_status(populated, service_id, "available")
    for service_id, service in before.items():
        after = get_service(populated, service_id)
        assert after["provided_features"] == service["provided_features"]
        assert after["resolved_features"] == service["resolved_features"]


def test_service_status_follows_the_reinit_job(populated):
    create_model(populated, "broken", inference="fail")
    assign_default(populated, "broken")
    assert reinit(populated).status_code == 202
    wait_for_status(populated, "s-a", "failed")
    wait_for_status(populated, "s-b", "failed")
    assert get_service(populated, "s-gone")["status"] == "available"
    assign_default(populated, "m1")  # failed services are re-initialised too
    assert sorted(reinit(populated).get_json()["dispatched_services"]) == ["s-a", "s-b"]
    wait_for_status(populated, "s-a", "available")
    wait_for_status(populated, "s-b", "available")


def test_only_the_init_job_moves_the_service_status(tenant):
    create_model(tenant, "broken", inference="fail")
    wait_for_job(tenant, init_ok(tenant, "s1", {"max_batch": 1})["job_id"])
    target = {"model_id": "broken", "model_version": "1"}
    assert tenant.put(f"{D}/service/s1/assignments/k", json=target).status_code == 201
    r = tenant.post(f"{D}/service/s1/assignments/k/jobs", json={"input": {}})
    assert r.status_code == 202, r.get_json()
    assert wait_for_job(tenant, r.get_json()["job_id"])["status"] == "failure"
    assert get_service(tenant, "s1")["status"] == "available"


def test_reinit_uses_the_current_default_assignment(populated):
    create_model(populated, "m2")
    revision = assign_default(populated, "m2")
    assert reinit(populated).status_code == 202
    jobs = jobs_by_service(populated, "m2")
    assert sorted(jobs) == ["s-a", "s-b"]
    assert {j["assignment_id"] for found in jobs.values() for j in found} == {
        revision["assignment_id"]
    }


def test_reinit_with_no_services_dispatches_nothing(tenant):
    r = reinit(tenant)
    assert r.status_code == 202, r.get_json()
    assert r.get_json() == {"dispatched_services": [], "reinitializing_services": []}


def test_reinit_without_a_default_assignment_is_422(acme):
    init_ok(acme, "s1", {"max_batch": 1})
    assert "default" in assert_envelope(reinit(acme), 422)["message"]
    target = {"model_id": "m1", "model_version": "1"}
    acme.put(f"{D}/assignments/default", json=target)
    acme.put(f"{D}/assignments/default", json={**target, "status": "archived"})
    assert_envelope(reinit(acme), 422)
    assert version_jobs(acme) == []


def test_reinit_in_an_inactive_domain_is_422(populated):
    populated.put(D, json={"status": "inactive"})
    assert "d1" in assert_envelope(reinit(populated), 422)["message"]
    assert {sid: len(j) for sid, j in jobs_by_service(populated).items()} == {
        "s-a": 1,
        "s-b": 1,
        "s-gone": 1,
    }


def test_reinit_in_an_unknown_domain_is_404(tenant):
    assert_envelope(tenant.post("/v2/clients/acme/domains/nope/services/init"), 404)


def test_reinit_checks_every_input_first_and_changes_nothing_on_failure(acme):
    for service_id, region in (("s-eu", "eu"), ("s-us", "us"), ("s-eu2", "eu")):
        init_ok(acme, service_id, {"max_batch": 1, "region": region})
    contract = {"input_schema": {"properties": {"region": {"const": "eu"}}}}
    create_model(acme, "strict", handler_contracts={"inference": contract})
    assign_default(acme, "strict")
    message = assert_envelope(reinit(acme), 422)["message"]
    assert "s-us" in message and "s-eu" not in message
    assert version_jobs(acme, "strict") == []
    assert {s["status"] for s in acme.get(f"{D}/services").get_json()} == {"available"}


def test_reinit_commits_in_batches_so_other_writers_go_on(tenant, monkeypatch):
    """Re-initialising a big domain commits REINIT_BATCH services per transaction, so the
    write lock is free between batches: on SQLite one transaction held it for seconds and
    every other writer waited (bench/reinit.py). Seen from another connection, the first
    batch is committed while the second is being written."""
    for n in range(5):
        wait_for_job(tenant, init_ok(tenant, f"s{n}", {"max_batch": 1})["job_id"])
    monkeypatch.setattr(service_instances, "REINIT_BATCH", 2)
    original, calls, seen = service_instances._start_init_job, [], []

    def start(*args):
        calls.append(args[1].service_id)
        if len(calls) == 3:  # the first service of the second batch
            # s0's jobs, not its status: the fresh init job may already have completed.
            reader = threading.Thread(target=lambda: seen.append(jobs_by_service(tenant)["s0"]))
            reader.start()
            reader.join(10)
        return original(*args)

    monkeypatch.setattr(service_instances, "_start_init_job", start)
    r = reinit(tenant)
    assert r.status_code == 202, r.get_json()
    assert len(r.get_json()["dispatched_services"]) == 5 and calls == [f"s{n}" for n in range(5)]
    assert len(seen[0]) == 2, "the first batch was not committed"
    assert len({j["job_id"] for j in sum(jobs_by_service(tenant).values(), [])}) == 10


def test_a_refused_reinit_names_twenty_problems_and_counts_the_rest(tenant, monkeypatch):
    for n in range(23):
        init_ok(tenant, f"s{n:02d}", {"max_batch": 1})
    problem = service_instances.Unprocessable("input is not what the model takes")

    def refuse(*args, **kwargs):
        raise problem

    monkeypatch.setattr(service_instances.jobs, "check_input", refuse)
    message = assert_envelope(reinit(tenant), 422)["message"]
    assert message.count("input is not what the model takes") == 20
    assert message.endswith("and 3 more services")
