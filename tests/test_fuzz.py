"""Fuzzing the API from its own contract: schemathesis generates requests for every operation
in the served /openapi.json as admin and as a tenant (a machine token with a client_id and
every other scope, on a richly seeded tenant whose real ids the path parameters often take),
for the job routes with a job's callback token, and chains operations statefully as the
tenant; no 5xx, and every response matches the documented status codes, content type and
schema. PIE_FUZZ_EXAMPLES raises the bound (default 20)."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import ADMIN, Client, activate, model_body
from tests.tenant_world import A, Parked, World, build_world, machine

EXAMPLES = int(os.environ.get("PIE_FUZZ_EXAMPLES", "20"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)

schema = schemathesis.pytest.from_fixture("fuzz_schema")
tenant_schema = schemathesis.pytest.from_fixture("tenant_fuzz_schema")


@pytest.fixture
def fuzz_app(make_app):
    app = make_app()
    client = Client(app.test_client())
    # Some data for generated ids to land on now and then.
    client.post("/v2/models", json=model_body("m"))
    activate(client, "m")
    client.post("/v2/clients", json={"client_id": "c", "name": "C"})
    client.post("/v2/clients/c/domains", json={"domain_id": "d"})
    return app


@pytest.fixture
def fuzz_schema(fuzz_app):
    return schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)


@schema.parametrize()
@SETTINGS
def test_api_conforms_to_its_contract(case):
    response = case.call(headers={"Authorization": f"Bearer {ADMIN}"})
    case.validate_response(response, checks=CHECKS)


@pytest.fixture
def world(make_app) -> World:
    parked = Parked()
    return build_world(make_app({"PIE_IN_PROCESS_WORKERS": 8}, plugins=[parked]), parked)


def land_on_real_ids(schema: Any, world: World) -> Any:
    """Generated path parameters, or now and then tenant A's real ids for that path (its
    client, domains, services, keys, jobs, subscriptions), so requests get past the 404s."""

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        real = world.bindings_for(context.operation.path)
        return st.sampled_from([path_parameters, *real]) if path_parameters else st.just({})

    return schema


@pytest.fixture
def tenant_fuzz_schema(world):
    app = world.client.raw.application
    return land_on_real_ids(schemathesis.openapi.from_wsgi("/openapi.json", app), world)


@tenant_schema.parametrize()
@SETTINGS
def test_api_conforms_to_its_contract_as_a_tenant(case):
    response = case.call(headers={"Authorization": f"Bearer {machine(A)}"})
    case.validate_response(response, checks=CHECKS)


# The operations a callback token may use (every other one refuses it: see
# tests/api/test_tenant_boundary.py, which walks them all with one).
@tenant_schema.include(path_regex=r"/jobs/\{job_id\}").parametrize()
@SETTINGS
def test_api_conforms_to_its_contract_with_a_callback_token(case, world):
    token = world.callback_token(world.open_job)
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    case.validate_response(response, checks=CHECKS)


def test_api_conforms_to_its_contract_in_sequences_as_a_tenant(tenant_fuzz_schema):
    """Stateful: schemathesis chains operations by the ids their responses carry (a created
    domain is read, updated, gets services and assignments, runs jobs), as tenant A.

    The server keeps its state from one scenario to the next, so Hypothesis cannot replay a
    scenario exactly, and says so (FlakyStrategyDefinition) when a replayed prefix meets
    another state. As in schemathesis' own runner, failures are therefore recorded when they
    happen, not replayed, and a run that Hypothesis stops that way is followed by another."""
    token = machine(A)
    failures: list[str] = []
    scenarios = 0

    class AsTenant(tenant_fuzz_schema.as_state_machine()):
        def setup(self) -> None:
            nonlocal scenarios
            scenarios += 1

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": {"Authorization": f"Bearer {token}"}}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            try:
                case.validate_response(response, checks=CHECKS)
            except (Failure, FailureGroup) as exc:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {exc}"
                )

    for _ in range(5):
        try:
            AsTenant.run(settings=settings(SETTINGS, stateful_step_count=10))
        except FlakyStrategyDefinition:
            pass
        if failures or scenarios >= EXAMPLES:
            break
    assert failures == []
    assert scenarios >= EXAMPLES
