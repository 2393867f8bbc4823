"""No user JSON Schema is checked or applied while a write transaction is open (issue 14): a
slow schema would hold the database's write lock, and every writer would wait for it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pie import contracts
from pie.db import database
from tests.helpers import Implementations, activate, model_body, scoped, wait_for_job

C = "/v2/clients/acme"
D = f"{C}/domains/d1"
FEATURE = {"name": "f", "mandatory": True, "json_schema": {"type": "string", "default": "a"}}
OBJECT = {"type": "object"}
CONTRACTS = {
    "inference": {"input_schema": OBJECT, "output_schema": {"type": "object", "required": ["x"]}},
    "training": {"input_schema": OBJECT},
}


@pytest.fixture
def impls():
    return Implementations()


@pytest.fixture
def app(make_app, impls):
    app = make_app(plugins=[impls])
    yield app
    impls.release.set()


@pytest.fixture
def applied(monkeypatch):
    """(function, whether a transaction was open) for every schema check and application;
    the services call them through the `contracts` module, so wrapping them there sees all."""
    seen: list[tuple[str, bool]] = []
    for name in ("violations", "schema_problems"):
        original = getattr(contracts, name)

        def spy(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            seen.append((_name, database.in_transaction()))
            return _original(*args, **kwargs)

        monkeypatch.setattr(contracts, name, spy)
    return seen


def ok(response: Any, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200, 201, 202)), response.get_json()
    return response.get_json()


def test_no_schema_is_applied_inside_a_transaction(client, applied, impls):
    ok(client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"}))
    ok(client.post(f"{C}/domains", json={"domain_id": "d1", "features": [FEATURE]}))
    ok(client.post("/v2/models", json=model_body("m1", handler_contracts=CONTRACTS)))
    ok(client.put("/v2/models/m1", json=model_body(None, handler_contracts=CONTRACTS)))
    activate(client, "m1")
    ok(client.post("/v2/models/m1/new_version", json={"feature_schema": [FEATURE]}))
    activate(client, "m1", "2")
    ok(client.post(f"{D}/service/init", json={"service_id": "s1"}))
    ok(client.put(f"{D}/assignments/default", json={"model_id": "m1", "model_version": "2"}))
    ok(client.post(f"{D}/service/init", json={"service_id": "s2"}))
    ok(client.put(f"{D}/service/s1", json={"static_features": {"f": "b"}}))
    ok(client.put(f"{D}/features", json={"features": [FEATURE]}))
    ok(client.post(f"{D}/services/init"))
    job = ok(
        client.post("/v2/models/m1/versions/2/inference", json={"input": {}, "subscribe": True})
    )
    trained = ok(
        client.post(f"{D}/assignments/default/jobs", json={"job_type": "training", "input": {}})
    )
    hold_handler = {"type": "in_process", "value": "hold"}
    held = model_body("m2", handlers={"training": hold_handler, "inference": hold_handler})
    ok(client.post("/v2/models", json={**held, "handler_contracts": CONTRACTS}))
    activate(client, "m2")
    hold = ok(client.post("/v2/models/m2/versions/1/inference", json={"input": {}}))
    path = f"/v2/models/m2/versions/1/jobs/{hold['inference_job_id']}/complete"
    done = ok(client.post(path, json={"status": "success", "output": {"y": 1}}))
    assert done["warnings"]  # the output_schema was applied
    sub = {
        "trigger_event": "inference_complete",
        "target_model_id": "m1",
        "target_action": "inference",
        "input_source": "stored",
        "input": {},
    }
    created = ok(client.post("/v2/models/m1/event-subscriptions", json=sub))
    ok(client.put(f"/v2/models/m1/event-subscriptions/{created['id']}", json={"input": {"z": 1}}))
    wait_for_job(client, job["inference_job_id"])
    wait_for_job(client, trained["job_id"])
    assert {name for name, _ in applied} == {"violations", "schema_problems"}
    assert [entry for entry in applied if entry[1]] == [], applied


def test_features_replaced_while_a_service_changes_are_resolved_again(client, applied, monkeypatch):
    """PUT …/features resolves the services before its transaction; a service changed in
    between is read again, and the report is about its new features."""
    enum = {**FEATURE, "json_schema": {"type": "string", "enum": ["a"]}}
    ok(client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"}))
    ok(client.post(f"{C}/domains", json={"domain_id": "d1", "features": [FEATURE]}))
    ok(client.post(f"{D}/service/init", json={"service_id": "s1", "static_features": {"f": "x"}}))
    original, changed = contracts.violations, threading.Event()

    def change_s1_once(*args: Any, **kwargs: Any) -> Any:
        if not changed.is_set():
            changed.set()
            other = client.raw.application.test_client()
            token = scoped("admin")
            writer = threading.Thread(
                target=other.put,
                args=(f"{D}/service/s1",),
                kwargs={
                    "json": {"static_features": {"f": "a"}},
                    "headers": {"Authorization": f"Bearer {token}"},
                },
            )
            writer.start()
            writer.join(10)  # a writer blocked by a held write lock would not finish
        return original(*args, **kwargs)

    monkeypatch.setattr(contracts, "violations", change_s1_once)
    report = ok(client.put(f"{D}/features", json={"features": [enum]}))
    assert report["unchanged_services"] == ["s1"], report
