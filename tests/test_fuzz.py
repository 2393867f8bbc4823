"""Fuzzing the API from its own contract: schemathesis generates requests for every operation
in the served /openapi.json (admin token); no 5xx, and every response matches the documented
status codes, content type and schema. PIE_FUZZ_EXAMPLES raises the bound (default 20)."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import ADMIN, Client, activate, model_body

EXAMPLES = int(os.environ.get("PIE_FUZZ_EXAMPLES", "20"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

schema = schemathesis.pytest.from_fixture("fuzz_schema")


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
@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
def test_api_conforms_to_its_contract(case):
    response = case.call(headers={"Authorization": f"Bearer {ADMIN}"})
    case.validate_response(response, checks=CHECKS)
