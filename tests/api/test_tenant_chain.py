"""Jobs a tenant's job triggers carry that tenant: they hold its data, so only it reads them."""

from __future__ import annotations

from tests.helpers import activate, make_token, model_body, wait_for, wait_for_job


def test_triggered_jobs_inherit_the_tenant_of_their_parent(client):
    for model_id in ("src", "dst"):
        assert client.post("/v2/models", json=model_body(model_id)).status_code == 201
        activate(client, model_id)
    client.post(
        "/v2/models/src/event-subscriptions",
        json={
            "trigger_event": "inference_complete",
            "target_model_id": "dst",
            "target_action": "inference",
            "input_source": "trigger_output",
        },
    )
    for client_id in ("acme", "other"):
        client.post("/v2/clients", json={"client_id": client_id, "name": client_id})
    client.post("/v2/clients/acme/domains", json={"domain_id": "d"})
    client.post(
        "/v2/clients/acme/domains/d/assignments",
        json={"assignment_key": "k", "model_id": "src", "model_version": "1"},
    )
    r = client.post("/v2/clients/acme/domains/d/assignments/k/jobs", json={"input": {"x": 1}})
    assert r.status_code == 202
    wait_for_job(client, r.get_json()["job_id"])

    def triggered():
        jobs = client.get("/v2/models/dst/versions/1/jobs").get_json()
        return jobs[0] if jobs else None

    child = wait_for(triggered)
    assert (child["client_id"], child["domain_id"]) == ("acme", "d")
    assert child["trigger"]["parent_job_id"] == r.get_json()["job_id"]
    other = make_token(scope="streamline/read_models", client_id="other")
    assert client.get(f"/v2/jobs/{child['job_id']}", token=other).status_code == 403
    assert client.get("/v2/models/dst/versions/1/jobs", token=other).get_json() == []
    acme = make_token(scope="streamline/read_models", client_id="acme")
    assert client.get(f"/v2/jobs/{child['job_id']}", token=acme).status_code == 200
