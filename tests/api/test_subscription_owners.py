"""Who a subscription belongs to, whatever route makes it (5, 5.4): one made by a tenant's
token is that tenant's own — `subscribe: true` on the direct inference route and `POST
…/event-subscriptions` included — and only tokens with no client (operators) and admins make,
change or delete global ones. No tenant can make a job run in another tenant's name with an
input of its own choosing: a global subscription's job runs for the tenant of the job that
fired it only when its input is that job's output, never with a stored input."""

from __future__ import annotations

import json

import pytest

from tests.helpers import (
    Client,
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

ACME, EVIL = "acme", "evil"
EVIL_INPUT = {"from": "EVIL-CHOSEN-INPUT"}
SUBS = "/v2/models/m/event-subscriptions"
TENANT = (
    "read_models",
    "manage_models",
    "run_inference",
    "run_training",
    "complete_jobs",
    "read_domains",
    "manage_domains",
    "init_services",
)
OPERATOR = scoped("read_models", "manage_models", "run_inference", "run_training")
STORED = {
    "trigger_event": "training_complete",
    "target_model_id": "m",
    "target_action": "inference",
    "input_source": "stored",
}


def machine(client_id: str) -> str:
    return scoped(*TENANT, client_id=client_id)


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
    return seed(client)


def seed(client):
    """Model m (echo, active) assigned as `default` in acme's and evil's domain d."""
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    activate(client, "m")
    for tenant in (ACME, EVIL):
        add_tenant(client, tenant, "d", default="m")
    return client


def acme_retrains(client) -> list[dict]:
    """acme trains m through its assignment (version 2) and an operator activates it: what
    the transition started, as the admin sees it."""
    r = client.post(
        f"/v2/clients/{ACME}/domains/d/assignments/default/jobs",
        json={"job_type": "training", "input": {"acme": "training data"}},
        token=machine(ACME),
    )
    assert r.status_code == 202, r.get_json()
    training = wait_for_job(client, r.get_json()["job_id"])
    assert (training["client_id"], training["model_version"]) == (ACME, "2")
    r = client.post("/v2/models/m/versions/2/new_status", json={"status": "active"})
    assert r.status_code == 200, r.get_json()
    return [wait_for_job(client, e["job_id"]) for e in r.get_json()["triggered_events"]]


def jobs_for(client, client_id) -> list[dict]:
    found = []
    for version in client.get("/v2/models/m/versions").get_json():
        url = f"/v2/models/m/versions/{version['version']}/jobs?page_size=1000"
        found += [j for j in client.get(url).get_json() if j["client_id"] == client_id]
    return found


def test_a_tenants_direct_subscribe_is_its_own(world):
    """The attack: evil's direct `subscribe` replayed evil's input as a job of acme's."""
    r = world.post(
        "/v2/models/m/versions/1/inference",
        json={"input": EVIL_INPUT, "subscribe": True},
        token=machine(EVIL),
    )
    assert r.status_code == 202, r.get_json()
    [sub] = world.get(SUBS).get_json()
    assert (sub["client_id"], sub["input"]) == (EVIL, EVIL_INPUT)
    assert "domain_id" not in sub  # made on no domain's route
    for token in (machine(ACME), OPERATOR):
        assert world.get(SUBS, token=token).get_json() == []
        assert_envelope(world.get(f"{SUBS}/{sub['id']}", token=token), 403)
    [replay] = acme_retrains(world)
    assert (replay["client_id"], replay["input"]) == (EVIL, EVIL_INPUT)
    assert replay["trigger"]["parent_job_id"] is None  # acme's training is not named to evil
    assert all(EVIL_INPUT != j["input"] for j in jobs_for(world, ACME))
    assert_envelope(world.get(f"/v2/jobs/{replay['job_id']}", token=machine(ACME)), 403)
    r = world.get(f"/v2/jobs/{replay['job_id']}", token=machine(EVIL))
    assert r.status_code == 200 and r.get_json()["output"] == EVIL_INPUT


def test_a_tenants_subscription_on_the_subscriptions_route_is_its_own(world):
    r = world.post(SUBS, json={**STORED, "input": EVIL_INPUT}, token=machine(EVIL))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["client_id"] == EVIL
    assert world.get(SUBS, token=machine(ACME)).get_json() == []
    [replay] = acme_retrains(world)
    assert (replay["client_id"], replay["input"]) == (EVIL, EVIL_INPUT)
    assert jobs_for(world, ACME) and all(EVIL_INPUT != j["input"] for j in jobs_for(world, ACME))


@pytest.mark.parametrize(
    "token",
    [OPERATOR, scoped("admin"), make_token(groups=["admin", f"client:{ACME}"])],
    ids=["operator", "admin", "admin-group"],
)
def test_operators_and_admins_make_global_subscriptions(world, token):
    r = world.post(
        "/v2/models/m/versions/1/inference",
        json={"input": {"g": 1}, "subscribe": True},
        token=token,
    )
    assert r.status_code == 202, r.get_json()
    r = world.post(SUBS, json={**STORED, "input": {"g": 2}}, token=token)
    assert r.status_code == 201, r.get_json()
    listed = world.get(SUBS, token=machine(ACME)).get_json()
    assert sorted(s["input"]["g"] for s in listed) == [1, 2]
    assert not any("client_id" in s for s in listed)


def test_a_global_stored_subscription_runs_for_no_tenant(world):
    """Its input is the operator's, not the firing job's output: the job is nobody's, and
    names no tenant's job as its parent."""
    r = world.post(SUBS, json={**STORED, "input": {"op": 1}}, token=OPERATOR)
    assert r.status_code == 201, r.get_json()
    [job] = acme_retrains(world)
    trigger = job["trigger"]
    assert (job["client_id"], job["input"], trigger["parent_job_id"]) == (None, {"op": 1}, None)


def test_a_global_subscription_passing_the_output_on_runs_for_the_firing_tenant(world):
    sub = {**STORED, "input_source": "trigger_output"}
    r = world.post(SUBS, json=sub, token=OPERATOR)
    assert r.status_code == 201, r.get_json()
    [job] = acme_retrains(world)
    assert (job["client_id"], job["domain_id"]) == (ACME, "d")
    assert job["trigger"]["parent_job_id"] is not None


def test_a_token_of_several_clients_cannot_subscribe_outside_an_assignment(world):
    token = make_token(
        scope="streamline/run_inference streamline/manage_models",
        groups=[f"client:{ACME}", f"client:{EVIL}"],
    )
    body = {"input": {"x": 1}, "subscribe": True}
    r = world.post("/v2/models/m/versions/1/inference", json=body, token=token)
    message = assert_envelope(r, 403)["message"]
    assert "several clients" in message and "assignment" in message
    assert_envelope(world.post(SUBS, json={**STORED, "input": {}}, token=token), 403)
    assert world.get(SUBS).get_json() == []
    r = world.post("/v2/models/m/versions/1/inference", json={"input": {}}, token=token)
    assert r.status_code == 202, r.get_json()  # without `subscribe`, as before


def test_a_subscription_cannot_belong_to_a_client_that_does_not_exist(world):
    token = machine("nobody")
    body = {"input": {"x": 1}, "subscribe": True}
    r = world.post("/v2/models/m/versions/1/inference", json=body, token=token)
    assert "client 'nobody' does not exist" in assert_envelope(r, 422)["message"]
    assert world.get(SUBS).get_json() == []


@pytest.mark.parametrize("who", ["evil", "acme-human"])
def test_a_tenant_cannot_change_or_delete_a_global_subscription(world, who):
    human = make_token(scope="streamline/manage_models", groups=[f"client:{ACME}"])
    token = machine(EVIL) if who == "evil" else human
    sub = world.post(SUBS, json={**STORED, "input": {"op": 1}}, token=OPERATOR).get_json()
    path = f"{SUBS}/{sub['id']}"
    assert_envelope(world.put(path, json={"input": EVIL_INPUT}, token=token), 403)
    assert_envelope(world.put(path, json={"bogus": 1}, token=token), 403)  # before the body
    assert_envelope(world.delete(path, token=token), 403)
    assert world.get(path).get_json() == sub
    r = world.put(path, json={"label": "operator's"}, token=OPERATOR)
    assert r.status_code == 200, r.get_json()


def test_a_tenant_changes_and_deletes_its_own(world):
    r = world.post(SUBS, json={**STORED, "input": {"e": 1}}, token=machine(EVIL))
    path = f"{SUBS}/{r.get_json()['id']}"
    r = world.put(path, json={"status": "paused"}, token=machine(EVIL))
    assert r.status_code == 200 and r.get_json()["client_id"] == EVIL
    assert world.delete(path, token=machine(EVIL)).status_code == 204


@pytest.fixture
def capped(make_app, impls):
    app = make_app({"PIE_MAX_CLIENT_SUBSCRIPTIONS": 3}, plugins=[impls])
    yield app
    impls.release.set()


def test_one_client_owns_a_bounded_number_of_subscriptions_per_model(capped):
    client = seed(Client(capped.test_client()))
    url = f"/v2/clients/{EVIL}/domains/d/assignments/default/jobs"
    for n in range(3):
        r = client.post(url, json={"input": {"n": n}, "subscribe": True}, token=machine(EVIL))
        assert r.status_code == 202, r.get_json()
    r = client.post(url, json={"input": {"n": 3}, "subscribe": True}, token=machine(EVIL))
    message = assert_envelope(r, 422)["message"]
    assert "PIE_MAX_CLIENT_SUBSCRIPTIONS=3" in message
    assert_envelope(client.post(SUBS, json={**STORED, "input": {}}, token=machine(EVIL)), 422)
    listed = client.get(SUBS).get_json()
    assert sorted(s["input"]["n"] for s in listed) == [0, 1, 2]
    # Nothing was started for the refused request; other owners are not affected.
    assert len(jobs_for(client, EVIL)) == 3
    r = client.post(
        f"/v2/clients/{ACME}/domains/d/assignments/default/jobs",
        json={"input": {}, "subscribe": True},
        token=machine(ACME),
    )
    assert r.status_code == 202, r.get_json()
    assert client.post(SUBS, json={**STORED, "input": {}}, token=OPERATOR).status_code == 201
    # Deleting one makes room again.
    evil_sub = next(s for s in listed if s["client_id"] == EVIL)
    assert client.delete(f"{SUBS}/{evil_sub['id']}", token=machine(EVIL)).status_code == 204
    r = client.post(url, json={"input": {"n": 4}, "subscribe": True}, token=machine(EVIL))
    assert r.status_code == 202, r.get_json()
    assert json.loads(client.get(SUBS).headers["X-Pagination"])["total"] == 5
    wait_for(lambda: all(j["status"] == "success" for j in jobs_for(client, EVIL)))


def test_a_job_of_no_client_does_not_pass_its_output_to_a_tenants_subscription(world):
    """A tenant's own subscription passing the output on fires only for that tenant's jobs:
    a job of no client (evil's direct inference) cannot put evil's input into acme's jobs."""
    sub = {**STORED, "trigger_event": "inference_complete", "input_source": "trigger_output"}
    r = world.post(SUBS, json={**sub, "target_model_id": "m"}, token=machine(ACME))
    assert r.status_code == 201 and r.get_json()["client_id"] == ACME
    r = world.post(
        "/v2/models/m/versions/1/inference", json={"input": EVIL_INPUT}, token=machine(EVIL)
    )
    job_id = r.get_json()["inference_job_id"]
    wait_for_job(world, job_id)
    r = world.post(
        f"/v2/clients/{ACME}/domains/d/assignments/default/jobs",
        json={"input": {"acme": 1}},
        token=machine(ACME),
    )
    own = wait_for_job(world, r.get_json()["job_id"])

    def chained():
        jobs = jobs_for(world, ACME)
        return jobs if len(jobs) >= 3 else None  # acme's job, its chained job, that one's

    jobs = wait_for(chained)
    assert all(EVIL_INPUT not in (j["input"], j["output"]) for j in jobs)
    assert any(j["trigger"] and j["trigger"]["parent_job_id"] == own["job_id"] for j in jobs)
