"""The models list and a model's page: what they show, and who may act on versions."""

from __future__ import annotations

import pytest

from tests.console.helpers import signed_in
from tests.helpers import ADMIN, activate, model_body, scoped

CONTRACTS = {
    "inference": {
        "input_schema": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "what to read"}},
            "required": ["text"],
        }
    }
}


@pytest.fixture
def chain(client):
    client.post("/v2/models", json=model_body("src", name="Source", handler_contracts=CONTRACTS))
    lam = {"type": "lambda", "arn": "arn:aws:lambda:us-east-1:123456789012:function:f"}
    client.post(
        "/v2/models",
        json=model_body("dst", name="Target", handlers={"training": lam, "inference": lam}),
    )
    client.put("/v2/models/dst/job_policy", json={"inference": {"timeout_seconds": 30}})
    activate(client, "src")
    body = {
        "trigger_event": "training_complete",
        "target_model_id": "dst",
        "target_action": "inference",
        "input_source": "stored",
        "input": {"x": 1},
        "label": "nightly",
    }
    sub = client.post("/v2/models/src/event-subscriptions", json=body).get_json()
    return client, sub


def test_the_list_shows_status_latest_version_and_handler_types(app, chain):
    page = signed_in(app, scoped("read_models")).text("/ui/models")
    assert 'href="/ui/models/src"' in page and 'href="/ui/models/dst"' in page
    assert "status-active" in page and "status-pending" in page
    assert "lambda" in page and "in_process" in page


def test_search_narrows_the_list(app, chain):
    console = signed_in(app, scoped("read_models"))
    page = console.text("/ui/models?q=targ")
    assert "/ui/models/dst" in page and "/ui/models/src" not in page
    assert "No models match" in console.text("/ui/models?q=%25zzz")


def test_the_model_page(app, chain):
    _, sub = chain
    console = signed_in(app, scoped("read_models"))
    page = console.text("/ui/models/src")
    assert "<code>text</code>" in page and "what to read" in page  # the contract, as a table
    assert sub["id"] in page and "nightly" in page and "training_complete" in page
    assert "→ training" not in page  # read_models only: no lifecycle actions
    target = console.text("/ui/models/dst")
    assert sub["id"] in target  # a subscription in
    assert "timeout_seconds" in target  # the job policy


def test_lifecycle_actions_for_managers(app, chain):
    client, _ = chain
    console = signed_in(app, scoped("read_models", "manage_models"))
    page = console.text("/ui/models/dst")
    assert "→ training" in page and "→ active" in page and "→ failed" in page
    response = console.post("/ui/models/dst/versions/1/status", {"status": "active"})
    assert response.status_code == 303
    assert client.get("/v2/models/dst").get_json()["status"] == "active"
    assert "→ training" not in console.text("/ui/models/dst")  # active is final


def test_lifecycle_errors_are_the_api_errors(app, chain):
    console = signed_in(app, ADMIN)
    bad = console.post("/ui/models/src/versions/1/status", {"status": "pending"})
    assert bad.status_code == 422 and "allowed" in bad.get_data(as_text=True).lower()
    assert console.post("/ui/models/src/versions/1/status", {"status": "x"}).status_code == 400
    assert console.post("/ui/models/src/versions/9/status", {"status": "failed"}).status_code == 404


def test_a_reader_cannot_change_a_version(app, chain):
    client, _ = chain
    console = signed_in(app, scoped("read_models"))
    response = console.post("/ui/models/dst/versions/1/status", {"status": "failed"})
    assert response.status_code == 403
    assert client.get("/v2/models/dst/versions/1").get_json()["status"] == "pending"


def test_model_pages_are_one_statement_per_list(app, chain, statements):
    console = signed_in(app, scoped("read_models"))
    statements.clear()
    console.get("/ui/models")
    assert len(statements) == 1
    statements.clear()
    console.get("/ui/models/src")
    assert len(statements) == 3  # the model, its versions, its subscriptions in and out
