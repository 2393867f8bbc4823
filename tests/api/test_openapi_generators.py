"""The served OpenAPI document reads cleanly in client generators (issue 18): operation ids,
the pagination header's JSON, the error envelope's `success`, the named handler union,
public operations, servers, license, schema names, and request defaults."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest

from pie.api.openapi import (
    OPERATION_IDS,
    finish,
    generated_name,
    operations,
    reachable,
    unique_name,
)

ROOT = Path(__file__).resolve().parents[2]
# Names client generators define themselves: a schema with one of them breaks the client.
GENERATOR_NAMES = {"Client", "AuthenticatedClient", "Configuration", "ApiClient", "Types"}


@pytest.fixture
def spec(anon):
    return anon.get("/openapi.json").get_json()


def test_every_operation_has_a_unique_readable_operation_id(spec):
    ids = [operation.get("operationId") for _, _, operation in operations(spec)]
    assert None not in ids
    assert len(ids) == len(set(ids)) >= 50
    assert all(name[0].islower() and name.isalnum() for name in ids), ids
    by_route = {(m, p): op["operationId"] for m, p, op in operations(spec)}
    version = "/v2/models/{model_id}/versions/{model_version}"
    assert by_route[("get", "/v2/models")] == "listModels"
    assert by_route[("post", "/v2/models")] == "createModel"
    assert by_route[("get", "/v2/models/{model_id}")] == "getModel"
    assert by_route[("post", f"{version}/new_status")] == "setVersionStatus"
    assert by_route[("post", f"{version}/inference")] == "runInference"


def test_every_explicit_operation_id_names_a_served_operation(spec):
    served = {(method, path) for method, path, _ in operations(spec)}
    assert not set(OPERATION_IDS) - served


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("get", "/v2/webhooks", "listWebhooks"),
        ("post", "/v2/webhooks", "createWebhook"),
        ("get", "/v2/webhooks/{webhook_id}", "getWebhook"),
        ("put", "/v2/webhooks/{webhook_id}", "updateWebhook"),
        ("delete", "/v2/webhooks/{webhook_id}", "deleteWebhook"),
        ("post", "/v2/webhooks/{webhook_id}/rotate", "rotateWebhook"),
        ("get", "/v2/webhooks/{webhook_id}/deliveries", "listDeliveries"),
        ("put", "/v2/clients/{client_id}/settings", "replaceSettings"),
        ("post", "/v2/reindex", "reindex"),
    ],
)
def test_a_route_added_later_gets_a_generated_operation_id(method, path, expected):
    assert unique_name(method, path, set()) == expected


def test_a_generated_operation_id_that_is_taken_names_the_parents():
    path = "/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments"
    assert unique_name("get", path, set()) == "listAssignments"
    assert unique_name("get", path, {"listAssignments"}) == "listServiceAssignments"
    words = ["domains", "service", "assignments"]
    assert generated_name("get", path, words) == "listDomainServiceAssignments"
    taken = {"listAssignments", "listServiceAssignments", "listDomainServiceAssignments"}
    taken.add("listClientDomainServiceAssignments")
    assert unique_name("get", path, taken) == "listClientDomainServiceAssignmentsGet"


def test_an_explicit_operation_id_is_kept():
    document = {"paths": {"/v2/things": {"get": {"operationId": "browseThings"}}}}
    assert finish(document)["paths"]["/v2/things"]["get"]["operationId"] == "browseThings"


def test_finishing_leaves_apispecs_own_dict_alone():
    document = {"paths": {"/v2/things": {"get": {"responses": {}}}}}
    finish(document)
    assert document == {"paths": {"/v2/things": {"get": {"responses": {}}}}}


def test_x_pagination_is_declared_as_json_content(spec):
    seen = 0
    for _, _, operation in operations(spec):
        for response in operation["responses"].values():
            header = response.get("headers", {}).get("X-Pagination")
            if header is None:
                continue
            seen += 1
            header = spec["components"]["headers"]["PAGINATION"] if "$ref" in header else header
            assert "schema" not in header
            assert set(header["content"]) == {"application/json"}
            assert "$ref" in header["content"]["application/json"]["schema"]
    assert seen >= 10


def test_no_schema_says_always_false_with_an_enum(spec):
    assert "[false]" not in json.dumps(spec["components"]["schemas"], separators=(",", ":"))


@pytest.mark.parametrize("component", ["Error", "Unhealthy", "BlockedAssignment"])
def test_success_is_a_plain_boolean_documented_as_always_false(spec, component):
    success = spec["components"]["schemas"][component]["properties"]["success"]
    assert success["type"] == "boolean" and "enum" not in success and "const" not in success
    assert success["default"] is False and "false" in success["description"]
    assert "success" in spec["components"]["schemas"][component]["required"]


def test_the_handler_union_is_one_named_component(spec):
    schemas = spec["components"]["schemas"]
    union = schemas["Handler"]
    assert union["discriminator"]["propertyName"] == "type"
    assert sorted(option["$ref"] for option in union["oneOf"]) == sorted(
        union["discriminator"]["mapping"].values()
    )
    assert set(union["discriminator"]["mapping"]) == {
        "lambda",
        "ecs_task",
        "in_process",
        "http",
        "celery",
    }
    for side in ("training", "inference"):
        assert schemas["Handlers"]["properties"][side] == {"$ref": "#/components/schemas/Handler"}


@pytest.mark.parametrize(
    ("component", "fields"),
    [
        ("Model", {"handler_contracts", "latest_version", "job_policy"}),
        ("ModelVersion", {"handler_contracts", "feature_schema"}),
        ("Job", {"attempts", "deadline_at", "heartbeat_at", "progress", "progress_message"}),
    ],
)
def test_fields_always_in_responses_are_required(spec, component, fields):
    """Every response of the suite is checked against these (tests/openapi_check.py)."""
    schema = spec["components"]["schemas"][component]
    assert fields <= set(schema["required"])
    assert set(schema["required"]) == set(schema["properties"])


@pytest.mark.parametrize(
    ("component", "optional"),
    [
        ("Subscription", {"input", "warnings", "client_id", "domain_id", "service_id"}),
        ("CompletionResult", {"warnings"}),
        ("TriggeredEvent", {"job_id", "error"}),
        ("ServiceInitResult", {"job_id"}),
    ],
)
def test_fields_only_sometimes_in_responses_stay_optional(spec, component, optional):
    schema = spec["components"]["schemas"][component]
    assert set(schema["properties"]) - set(schema.get("required", [])) == optional


def test_public_operations_say_security_is_empty(spec):
    public = [(m, p) for m, p, op in operations(spec) if op["security"] == []]
    assert public == [("get", "/v2/health")]


def test_servers_are_relative_and_the_license_is_setup_cfgs(spec):
    assert spec["servers"] == [{"url": "/"}]
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert spec["info"]["license"]["identifier"] == setup["metadata"]["license"] == "MIT"


def test_no_schema_is_named_like_a_generators_own_class(spec):
    schemas = spec["components"]["schemas"]
    assert not GENERATOR_NAMES & set(schemas)
    for name, schema in schemas.items():
        lowered = {prop.lower() for prop in schema.get("properties", {})}
        assert name.lower() not in lowered, name
    assert {"TenantClient", "FeatureList"} <= set(schemas)


def test_no_request_schema_has_a_default(spec):
    schemas = spec["components"]["schemas"]
    bodies = [op.get("requestBody", {}) for _, _, op in operations(spec)]
    names = reachable(bodies, schemas)
    assert {"ModelCreate", "NewVersion", "Handlers", "HttpHandler"} <= set(names)
    for name in names:
        for prop_name, prop in schemas[name].get("properties", {}).items():
            assert "default" not in prop, (name, prop_name)
    described = schemas["NewVersion"]["properties"]["description"]["description"]
    assert described == 'Default: `""`.'
    mode = schemas["HttpHandler"]["properties"]["mode"]["description"]
    assert mode.endswith('(Default: `"callback"`.)'), mode
