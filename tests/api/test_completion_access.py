"""Who may complete a job (6.3, 6.4): its own callback token, or `complete_jobs` with access
to the job's client (admins always); a job of no client, `complete_jobs` of a token of no
client (an operator's). Another tenant's `complete_jobs` token cannot forge a tenant's output
or fire its subscriptions, no tenant's can forge a global job's, and each is refused before
the body is read."""

from __future__ import annotations

import pytest

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

ACME, OTHER = "acme", "other"
FORGED = {"status": "success", "output": {"forged": True}}


@pytest.fixture
def impls() -> Implementations:
    return Implementations()


@pytest.fixture
def app(make_app, impls):
    app = make_app({"PIE_IN_PROCESS_WORKERS": 8}, plugins=[impls])
    yield app
    impls.release.set()


def hold_model(client, model_id):
    body = model_body(
        model_id,
        handlers={
            "training": {"type": "in_process", "value": "echo"},
            "inference": {"type": "in_process", "value": "hold"},
        },
    )
    assert client.post("/v2/models", json=body).status_code == 201
    activate(client, model_id)


@pytest.fixture
def held(client):
    """acme's job on model `src` (held `started`), whose success would fire a subscription
    onto `dst`; returns the completion path."""
    hold_model(client, "src")
    assert client.post("/v2/models", json=model_body("dst")).status_code == 201
    activate(client, "dst")
    r = client.post(
        "/v2/models/src/event-subscriptions",
        json={
            "trigger_event": "inference_complete",
            "target_model_id": "dst",
            "target_action": "inference",
            "input_source": "trigger_output",
        },
    )
    assert r.status_code == 201, r.get_json()
    add_tenant(client, ACME, "d", default="src")
    add_tenant(client, OTHER)
    r = client.post(f"/v2/clients/{ACME}/domains/d/assignments/default/jobs", json={"input": {}})
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["job_id"]
    wait_for_job(client, job_id, ("started",))
    return f"/v2/models/src/versions/1/jobs/{job_id}/complete", job_id


STRANGERS = {
    "other-machine": scoped("complete_jobs", "read_models", client_id=OTHER),
    "other-human": make_token(groups=[f"client:{OTHER}"]),
    "no-client": scoped("complete_jobs"),
    "other-both": make_token(
        scope="streamline/complete_jobs", client_id=OTHER, groups=[f"client:{OTHER}"]
    ),
}


@pytest.mark.parametrize("who", list(STRANGERS))
@pytest.mark.parametrize("body", [FORGED, {"bogus": 1}], ids=["forged", "invalid"])
def test_a_stranger_cannot_complete_a_tenants_job(client, held, who, body):
    path, job_id = held
    assert_envelope(client.post(path, json=body, token=STRANGERS[who]), 403)
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert (job["status"], job["output"]) == ("started", None)
    assert client.get("/v2/models/dst/versions/1/jobs").get_json() == []


@pytest.mark.parametrize(
    "token",
    [
        scoped("complete_jobs", client_id=ACME),
        make_token(scope="streamline/complete_jobs", groups=[f"client:{ACME}"]),
        scoped("admin"),
    ],
    ids=["acme-machine", "acme-group", "admin"],
)
def test_the_tenant_or_an_admin_completes_it(client, held, token):
    path, job_id = held
    r = client.post(path, json=FORGED, token=token)
    assert r.status_code == 200, r.get_json()
    [event] = r.get_json()["triggered_events"]
    assert wait_for_job(client, event["job_id"])["client_id"] == ACME


def test_the_jobs_own_callback_token_completes_it(app, client, held):
    path, job_id = held
    token = app.extensions["pie"].callback_token(job_id)
    r = client.post(path, json=FORGED, token=token)
    assert r.status_code == 200, r.get_json()
    assert client.get(f"/v2/jobs/{job_id}").get_json()["output"] == {"forged": True}


@pytest.fixture
def global_job(client, held):
    """A job of no client (started on the direct route), held `started`; its completion
    path."""
    r = client.post("/v2/models/src/versions/1/inference", json={"input": {}})
    job_id = r.get_json()["inference_job_id"]
    wait_for_job(client, job_id, ("started",))
    return f"/v2/models/src/versions/1/jobs/{job_id}/complete", job_id


@pytest.mark.parametrize(
    "token",
    [scoped("complete_jobs"), scoped("admin"), make_token(groups=["admin", f"client:{ACME}"])],
    ids=["operator", "admin", "admin-group"],
)
def test_an_operator_or_an_admin_completes_a_job_of_no_client(client, global_job, token):
    path, _ = global_job
    r = client.post(path, json=FORGED, token=token)
    assert r.status_code == 200, r.get_json()


TENANTS = {
    "acme-machine": scoped("complete_jobs", "read_models", client_id=ACME),
    "acme-group": make_token(scope="streamline/complete_jobs", groups=[f"client:{ACME}"]),
    "other-both": STRANGERS["other-both"],
}


@pytest.mark.parametrize("who", list(TENANTS))
@pytest.mark.parametrize("body", [FORGED, {"bogus": 1}], ids=["forged", "invalid"])
def test_a_tenant_cannot_complete_a_job_of_no_client(client, global_job, who, body):
    """A job of no client is everybody's: a tenant's `complete_jobs` would forge its output
    for every tenant (and feed it to the global subscriptions)."""
    path, job_id = global_job
    message = assert_envelope(client.post(path, json=body, token=TENANTS[who]), 403)["message"]
    assert "no client" in message
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert (job["status"], job["output"]) == ("started", None)
    assert client.get("/v2/models/dst/versions/1/jobs").get_json() == []
    # It still reads the job, as every read_models token does.
    assert client.get(f"/v2/jobs/{job_id}", token=TENANTS["acme-machine"]).status_code == 200


def test_the_callback_token_of_a_job_of_no_client_completes_it(app, client, global_job):
    path, job_id = global_job
    r = client.post(path, json=FORGED, token=app.extensions["pie"].callback_token(job_id))
    assert r.status_code == 200, r.get_json()


def test_an_unknown_job_is_still_404(client, held):
    path = "/v2/models/src/versions/1/jobs/01a00000-0000-7000-8000-000000000000/complete"
    assert_envelope(client.post(path, json=FORGED, token=STRANGERS["other-machine"]), 404)
