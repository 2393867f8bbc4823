"""Hostile JSON Schemas (issue 14): a schema never makes the server fetch a URL or read a file,
never recurses into a 500, and one request's schema work is bounded — on every route that
takes a schema, and on every route that applies one."""

from __future__ import annotations

import http.server
import sys
import threading
import time
from typing import Any

import pytest

from pie.db import connection
from pie.tables import ModelVersion, RegisteredModel
from tests.helpers import activate, assert_envelope, model_body

C = "/v2/clients/acme"
SLOW = "^(a|aa)+$"  # backtracks on "aaaa…!" until the pattern timeout stops it


class Listener:
    """An HTTP server on 127.0.0.1 that records every request it gets."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                hits.append(self.path)
                body = b'{"type": "string"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# Python's audit hooks see every open() and urllib request in the process; a hook cannot be
# removed, so one is installed once and records only while a test watches.
WATCHED: dict[str, list[str]] = {}


def _audit(event: str, args: tuple) -> None:
    if not WATCHED:
        return
    if event == "open" and isinstance(args[0], str) and args[0] in WATCHED["paths"]:
        WATCHED["opened"].append(args[0])
    elif event == "urllib.Request":
        WATCHED["requested"].append(args[0])


sys.addaudithook(_audit)


@pytest.fixture
def outside(tmp_path):
    """A listener and a local file that a schema might name, and what touched them."""
    secret = tmp_path / "schema.json"
    secret.write_text('{"type": "string"}')
    listener = Listener()
    WATCHED.update(paths=[str(secret)], opened=[], requested=[])
    yield listener, str(secret)
    touched = (listener.hits, WATCHED["opened"], WATCHED["requested"])
    WATCHED.clear()
    listener.close()
    assert touched == ([], [], []), f"a schema reached outside the server: {touched}"


def hostile_schemas(url: str, path: str) -> dict[str, dict[str, Any]]:
    chain: dict[str, Any] = {f"s{i}": {"$ref": f"#/$defs/s{i + 1}"} for i in range(60)}
    chain["s60"] = {"type": "string"}
    return {
        "http reference": {"$ref": f"{url}/remote.json"},
        "https reference": {"$ref": "https://127.0.0.1:9/remote.json"},
        "file reference": {"$ref": f"file://{path}"},
        "ftp reference": {"$ref": "ftp://127.0.0.1/remote.json"},
        "urn reference": {"$ref": "urn:example:remote"},
        "relative reference": {"$ref": "remote.json"},
        "relative path reference": {"$ref": "../../etc/passwd"},
        "reference in a property": {"properties": {"a": {"$ref": f"{url}/property.json"}}},
        "reference in unused $defs": {"$defs": {"a": {"$ref": f"{url}/defs.json"}}},
        "$id makes a relative reference remote": {"$id": f"{url}/root.json", "$ref": "other.json"},
        "$id of a local file": {"$id": f"file://{path}", "$ref": "sibling.json"},
        "embedded $id makes a relative reference remote": {
            "$defs": {"a": {"$id": f"{url}/dir/", "$ref": "x.json"}},
            "$ref": "#/$defs/a",
        },
        "absolute reference to an undeclared $id": {"$ref": f"{url}/nowhere#/$defs/a"},
        "remote $dynamicRef": {"$dynamicRef": f"{url}/dynamic.json#meta"},
        "$dynamicRef to its own anchor": {"$dynamicAnchor": "meta", "$dynamicRef": "#meta"},
        "$dynamicRef to the root": {"$dynamicRef": "#"},
        "$ref to the root": {"$ref": "#"},
        "$defs loop": {
            "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
            "$ref": "#/$defs/a",
        },
        "loop through allOf and not": {
            "$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"not": {"$ref": "#/$defs/a"}}},
            "$ref": "#/$defs/a",
        },
        "loop through an anchor": {"$anchor": "top", "anyOf": [{"$ref": "#top"}]},
        "chain of 60 references": {"$defs": chain, "$ref": "#/$defs/s0"},
        "reference to a list": {"$ref": "#/enum", "enum": [1]},
        "reference to a string": {"$ref": "#/title", "title": "x"},
        "reference into a const holding a remote one": {
            "$ref": "#/const",
            "const": {"$ref": f"{url}/const.json"},
        },
        "reference into a default that is no schema": {
            "$ref": "#/default",
            "default": {"properties": 5},
        },
        "reference to nowhere": {"$ref": "#/$defs/missing"},
        "pointer through a string": {"$ref": "#/title/x", "title": "abc"},
        "$id that is not a URI": {"$id": "http://[::1", "$ref": "#"},
        "$id declared twice": {
            "$id": f"{url}/s.json",
            "$defs": {"a": {"$id": f"{url}/s.json", "type": "string"}},
            "$ref": f"{url}/s.json",
        },
        "reference to a missing anchor": {"$ref": "#missing"},
        "remote $schema": {"$schema": f"{url}/metaschema.json"},
        "older $schema inside a subschema": {
            "properties": {"a": {"$schema": "http://json-schema.org/draft-07/schema#"}}
        },
        "$vocabulary with a remote $schema": {
            "$schema": f"{url}/metaschema.json",
            "$vocabulary": {f"{url}/vocabulary": True},
        },
        "$vocabulary alone": {"$vocabulary": {f"{url}/vocabulary": True}},
        "$schema naming an embedded metaschema": {
            "$schema": "urn:example:meta",
            "$defs": {"meta": {"$id": "urn:example:meta", "$vocabulary": {}}},
        },
        "huge enum": {"enum": list(range(20_000))},
        "deep nesting": _nested(70),
        "format that is not a string": {"format": {"$ref": f"{url}/format.json"}},
        "invalid pattern": {"pattern": "(?<"},
        "invalid patternProperties key": {"patternProperties": {"[": {}}},
        "pattern that is not a string": {"pattern": 5},
        "pattern with deeply nested groups": {"pattern": "(" * 5000 + ")" * 5000},
        "slow pattern with a default it rejects": {"pattern": SLOW, "default": "a" * 5000 + "!"},
    }


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"not": schema}
    return schema


def _feature(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "f", "mandatory": False, "json_schema": schema}]


ROUTES = {
    "POST /v2/models": lambda s: (
        "POST",
        "/v2/models",
        model_body(None, handler_contracts={"inference": {"input_schema": s}}),
    ),
    "PUT /v2/models/{id}": lambda s: (
        "PUT",
        "/v2/models/base",
        model_body(None, handler_contracts={"training": {"output_schema": s}}),
    ),
    "POST /v2/models/{id}/new_version": lambda s: (
        "POST",
        "/v2/models/base/new_version",
        {"feature_schema": _feature(s)},
    ),
    "POST /v2/clients/{id}/domains": lambda s: ("POST", f"{C}/domains", {"features": _feature(s)}),
    "PUT /v2/clients/{id}/domains/{id}/features": lambda s: (
        "PUT",
        f"{C}/domains/d0/features",
        {"features": _feature(s)},
    ),
}
# A default is applied when a schema is registered, so these are refused there too.
EVALUATED_AT_REGISTRATION = {"slow pattern with a default it rejects"}
FEATURE_ROUTES = [r for r in ROUTES if "clients" in r or "new_version" in r]


@pytest.fixture
def targets(client):
    """What the routes refer to: model `base`, client `acme` with domain `d0`."""
    assert client.post("/v2/models", json=model_body("base")).status_code == 201
    assert client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"}).status_code == 201
    assert client.post(f"{C}/domains", json={"domain_id": "d0"}).status_code == 201
    return client


@pytest.mark.parametrize("route", ROUTES)
def test_every_route_refuses_every_hostile_schema(targets, outside, route):
    listener, path = outside
    for name, schema in hostile_schemas(listener.url, path).items():
        if name in EVALUATED_AT_REGISTRATION and route not in FEATURE_ROUTES:
            continue
        method, url, body = ROUTES[route](schema)
        start = time.monotonic()
        r = targets.request(method, url, json=body)
        elapsed = time.monotonic() - start
        assert_envelope(r, 400 if name == "deep nesting" else 422)
        assert elapsed < 10, (name, elapsed)


def test_a_refused_reference_is_named(targets, outside):
    listener, _ = outside
    schema = {"properties": {"a": {"$ref": f"{listener.url}/remote.json"}}}
    r = targets.post(
        "/v2/models",
        json=model_body("m", handler_contracts={"inference": {"input_schema": schema}}),
    )
    message = assert_envelope(r, 422)["message"]
    assert f"{listener.url}/remote.json" in message and "properties/a" in message


STORED = {
    "remote reference": lambda url, path: {"$ref": f"{url}/remote.json"},
    "file reference": lambda url, path: {"$ref": f"file://{path}"},
    "$id makes a relative reference remote": lambda url, path: {
        "$id": f"{url}/root.json",
        "properties": {"a": {"$ref": "other.json"}},
    },
    "$ref to the root": lambda url, path: {"$ref": "#"},
    "$defs loop": lambda url, path: {
        "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
        "$ref": "#/$defs/a",
    },
    "$dynamicRef": lambda url, path: {"$dynamicAnchor": "m", "$dynamicRef": "#m"},
    "reference to a list": lambda url, path: {"$ref": "#/enum", "enum": [1]},
}


@pytest.mark.parametrize("name", STORED)
def test_a_stored_schema_is_checked_again_when_applied(client, outside, name):
    """Schemas stored before these checks existed (or written by hand) are refused when
    applied: a 422, never a fetch, a file read or a 500."""
    listener, path = outside
    assert client.post("/v2/models", json=model_body("m")).status_code == 201
    activate(client, "m")
    contracts = {"inference": {"input_schema": STORED[name](listener.url, path)}}
    with connection():
        RegisteredModel.update(handler_contracts=contracts).execute()
        ModelVersion.update(handler_contracts=contracts).execute()
    r = client.post("/v2/models/m/versions/1/inference", json={"input": {"a": 1}})
    assert "the schema cannot be applied" in assert_envelope(r, 422)["message"]


# --- the cost of applying a schema: one budget per request, and no quadratic keyword --------

BUDGET = {"PIE_SCHEMA_BUDGET_SECONDS": 0.5}
BACKTRACKING = "a" * 5000 + "!"


@pytest.fixture
def budgeted(make_app):
    from tests.helpers import Client

    return Client(make_app(BUDGET).test_client())


def model_taking(client, model_id: str, value_schema: dict[str, Any], side: str = "input") -> None:
    schema = {"type": "object", "properties": {"v": value_schema}}
    contracts = {"inference": {f"{side}_schema": schema}}
    r = client.post("/v2/models", json=model_body(model_id, handler_contracts=contracts))
    assert r.status_code == 201, r.get_json()
    activate(client, model_id)


def infer(client, model_id: str, value: Any) -> tuple[Any, float]:
    start = time.monotonic()
    r = client.post(f"/v2/models/{model_id}/versions/1/inference", json={"input": {"v": value}})
    return r, time.monotonic() - start


def test_the_budget_bounds_all_the_checks_of_one_request(budgeted):
    """Ten backtracking patterns over 30 strings: each search stops at the pattern timeout,
    but all of them together would take 30 seconds; the request stops at its budget."""
    model_taking(budgeted, "m", {"type": "array", "items": {"allOf": [{"pattern": SLOW}] * 10}})
    r, elapsed = infer(budgeted, "m", [BACKTRACKING] * 30)
    assert "PIE_SCHEMA_BUDGET_SECONDS" in assert_envelope(r, 422)["message"]
    assert elapsed < 15, elapsed
    r, _ = infer(budgeted, "m", ["aa"])  # the next request has a budget of its own
    assert r.status_code == 202, r.get_json()


def test_the_budget_spans_every_schema_a_request_registers(budgeted):
    features = [
        {
            "name": f"f{i}",
            "mandatory": False,
            "json_schema": {"pattern": SLOW, "default": BACKTRACKING},
        }
        for i in range(30)
    ]
    assert budgeted.post("/v2/clients", json={"client_id": "acme", "name": "A"}).status_code == 201
    start = time.monotonic()
    r = budgeted.post(f"{C}/domains", json={"features": features})
    assert "PIE_SCHEMA_BUDGET_SECONDS" in assert_envelope(r, 422)["message"]
    assert time.monotonic() - start < 15


def test_output_warnings_of_an_in_process_job_are_budgeted(budgeted):
    from tests.helpers import wait_for_job

    model_taking(
        budgeted, "m", {"type": "array", "items": {"allOf": [{"pattern": SLOW}] * 10}}, "output"
    )
    r, _ = infer(budgeted, "m", [BACKTRACKING] * 30)  # echo: the output is the input
    job = wait_for_job(budgeted, r.get_json()["inference_job_id"], timeout=30)
    assert job["status"] == "success"
    assert any("PIE_SCHEMA_BUDGET_SECONDS" in w for w in job["warnings"]), job["warnings"]


def test_unique_items_takes_linear_time(client):
    model_taking(client, "m", {"type": "array", "uniqueItems": True})
    items = [{"id": i, "name": "x"} for i in range(3000)]
    r, elapsed = infer(client, "m", [*items, {"name": "x", "id": 0}])
    assert "non-unique elements" in assert_envelope(r, 422)["message"]
    assert elapsed < 5, elapsed  # jsonschema compares every pair: 14 s


def test_unique_items_keeps_json_equality(client):
    model_taking(client, "m", {"type": "array", "uniqueItems": True})
    assert infer(client, "m", [1, True, "1", [1], {"a": 1}, None, False, 0])[0].status_code == 202
    for duplicated in ([1, 1.0], [{"a": [1, {"b": 2}]}, {"a": [1.0, {"b": 2}]}], [[True], [True]]):
        assert_envelope(infer(client, "m", duplicated)[0], 422)


def test_unevaluated_items_takes_linear_time(client):
    model_taking(client, "m", {"type": "array", "items": {}, "unevaluatedItems": False})
    r, elapsed = infer(client, "m", list(range(50_000)))
    assert r.status_code == 202, r.get_json()
    assert elapsed < 5, elapsed  # jsonschema's list lookups: about 20 s


def test_unevaluated_properties_takes_linear_time(client):
    model_taking(client, "m", {"patternProperties": {"^x": {}}, "unevaluatedProperties": False})
    r, elapsed = infer(client, "m", {f"x{i}": i for i in range(30_000)})
    assert r.status_code == 202, r.get_json()
    assert elapsed < 5, elapsed


def test_a_dollar_schema_inside_the_document_keeps_the_pattern_timeout(client):
    """A subschema naming a dialect used to switch jsonschema to its stock validator, whose
    `pattern` runs Python's re with no timeout."""
    dialect = "https://json-schema.org/draft/2020-12/schema"
    model_taking(client, "m", {"$schema": dialect, "pattern": "^(a|a)*$"})
    r, elapsed = infer(client, "m", "a" * 24 + "b")
    assert "took too long" in assert_envelope(r, 422)["message"]
    assert elapsed < 5, elapsed


def test_additional_properties_keeps_the_pattern_timeout(client):
    """jsonschema matches patternProperties with Python's re for additionalProperties."""
    model_taking(
        client, "m", {"patternProperties": {"^(a|a)*$": {}}, "additionalProperties": False}
    )
    r, elapsed = infer(client, "m", {"a" * 26 + "b": 1})
    assert "took too long" in assert_envelope(r, 422)["message"]
    assert elapsed < 5, elapsed


def test_a_422_lists_a_bounded_number_of_violations(client):
    model_taking(client, "m", {"type": "array", "items": {"enum": list(range(1000))}})
    r, elapsed = infer(client, "m", [-1] * 5000)
    message = assert_envelope(r, 422)["message"]
    assert len(message) < 100_000 and "further violations not listed" in message
    assert elapsed < 10, elapsed


def test_recursive_schemas_still_apply_to_deep_values(client):
    tree = {
        "$id": "urn:example:tree",  # a resource of its own: its references start from here
        "$dynamicAnchor": "node",
        "type": "object",
        "properties": {"child": {"$dynamicRef": "#node"}, "leaf": {"$ref": "#/$defs/leaf"}},
        "$defs": {"leaf": {"type": "integer"}},
    }
    model_taking(client, "m", tree)
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(55):
        value = {"child": value}
    assert infer(client, "m", value)[0].status_code == 202
    value["child"]["leaf"] = "one"
    assert (
        "is not of type 'integer'" in assert_envelope(infer(client, "m", value)[0], 422)["message"]
    )


def test_schemas_are_limited_in_size(make_app):
    from tests.helpers import Client

    client = Client(make_app({"PIE_SCHEMA_MAX_BYTES": 1000}).test_client())
    small = {"enum": list(range(100))}  # 400 bytes
    large = {"enum": list(range(300))}  # 1500 bytes
    contracts = {"inference": {"input_schema": small}}
    assert (
        client.post("/v2/models", json=model_body("a", handler_contracts=contracts)).status_code
        == 201
    )
    contracts = {"inference": {"input_schema": large}}
    r = client.post("/v2/models", json=model_body("b", handler_contracts=contracts))
    assert "PIE_SCHEMA_MAX_BYTES" in assert_envelope(r, 422)["message"]
