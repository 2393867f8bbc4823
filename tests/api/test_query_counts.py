"""Query counts per request on the hot routes: a regression guard that does not depend on
timing. Each figure is the number of SQL statements the route sends (BEGIN/COMMIT aside)."""

from __future__ import annotations

import pytest

from pie.db import connection, is_postgres
from pie.tables import Job
from tests.helpers import activate, model_body, scoped, wait_for_job


@pytest.fixture
def ready(client):
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    activate(client, "m")
    job_id = client.post("/v2/models/m/versions/1/inference", json={"input": {"a": 1}}).get_json()[
        "inference_job_id"
    ]
    wait_for_job(client, job_id)
    return client, job_id


def count(statements: list[str], call) -> int:
    statements.clear()
    response = call()
    assert response.status_code < 300, response.get_json()
    return len(statements)


def test_reads_are_one_statement(ready, statements):
    client, job_id = ready
    assert count(statements, lambda: client.get("/v2/models/m")) == 1
    assert count(statements, lambda: client.get(f"/v2/jobs/{job_id}")) == 1
    assert count(statements, lambda: client.get("/v2/models/m/versions/1")) == 1


def test_new_version_is_two_statements(ready, statements):
    client, _ = ready
    assert count(statements, lambda: client.post("/v2/models/m/new_version", json={})) == 2


def test_status_change_without_subscriptions_is_two_statements(ready, statements):
    client, _ = ready
    client.post("/v2/models/m/new_version", json={"version": "2"})
    path = "/v2/models/m/versions/2/new_status"
    assert count(statements, lambda: client.post(path, json={"status": "failed"})) == 2


def test_completion_is_two_statements(ready, statements):
    """The job with its version's contracts and whether its model has subscribers (one
    join), the update; on Postgres the subscriptions are read after the job's row lock
    (jobs.lock_for_completion), one more."""
    client, job_id = ready
    with connection():
        Job.update(status="started", output=None, completed_at=None).where(
            Job.job_id == job_id
        ).execute()
    path = f"/v2/models/m/versions/1/jobs/{job_id}/complete"
    body = {"status": "success", "output": {"a": 1}}
    assert count(statements, lambda: client.post(path, json=body)) == (3 if is_postgres() else 2)
    assert count(statements, lambda: client.post(path, json=body)) == 1  # the stored result


@pytest.mark.parametrize("subscriptions", [10, 400])
def test_fan_out_statements_do_not_grow_per_subscription(ready, statements, subscriptions):
    client, _ = ready
    sub = {
        "trigger_event": "training_complete",
        "target_model_id": "m",
        "target_action": "inference",
        "input_source": "stored",
        "input": {},
    }
    for _ in range(subscriptions):
        client.post("/v2/models/m/event-subscriptions", json=sub)
    client.post("/v2/models/m/new_version", json={"version": "2"})
    client.post("/v2/models/m/versions/2/new_status", json={"status": "training"})
    path = "/v2/models/m/versions/2/new_status"
    sent = count(statements, lambda: client.post(path, json={"status": "active"}))
    # version and model (one join), transition (the model is already active), parent job,
    # subscriptions, target version, one batched insert per 200 jobs
    assert sent == 6 + (subscriptions - 1) // 200, "\n".join(s[:90] for s in statements)


def test_a_tenants_token_adds_one_cached_lookup_and_an_operators_none(ready, statements):
    """Whether a tenant's client is suspended is read once, then remembered for a few
    seconds (pie.services.tenants.CLIENT_STATUS_SECONDS); tokens of no client read nothing."""
    client, job_id = ready
    assert client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"}).status_code == 201
    tenant = scoped("read_models", client_id="acme")
    assert count(statements, lambda: client.get("/v2/models/m", token=tenant)) == 2
    assert count(statements, lambda: client.get("/v2/models/m", token=tenant)) == 1
    assert count(statements, lambda: client.get(f"/v2/jobs/{job_id}", token=tenant)) == 1
    operator = scoped("read_models")
    assert count(statements, lambda: client.get("/v2/models/m", token=operator)) == 1


def test_a_page_of_any_jobs_is_one_select(ready, statements):
    """GET /v2/jobs: one statement whatever the filters and the depth, and for a tenant's
    token too (its client keys are ranges of one UNION ALL)."""
    client, job_id = ready
    assert client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"}).status_code == 201
    tenant = scoped("read_models", client_id="acme")
    client.get("/v2/jobs", token=tenant)  # reads the client's status, then remembers it
    for query, token in [
        ("", "default"),
        (f"?model_id=m&status=success&after={job_id}&page_size=1", "default"),
        ("?created_after=2020-01-01T00:00:00Z&job_type=inference", "default"),
        ("?status=success", tenant),
        ("?client_id=acme", tenant),
    ]:
        assert count(statements, lambda q=query, t=token: client.get(f"/v2/jobs{q}", token=t)) == 1
        assert statements[0].lstrip("(").startswith("SELECT"), statements[0][:80]
