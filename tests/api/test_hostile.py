"""Hostile input: nothing a caller sends may produce a 500 or stall a worker."""

from __future__ import annotations

import json
import time

import pytest

from pie.jsonio import MAX_JSON_DEPTH, json_depth
from tests.helpers import activate, assert_envelope, model_body

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5000, 200_000])
def test_deeply_nested_json_is_400(client, depth):
    body = '{"input": ' + "[" * depth + "]" * depth + "}"
    r = client.post("/v2/models/m/versions/1/inference", data=body, headers=JSON)
    assert "nests deeper" in assert_envelope(r, 400)["message"]


def test_nesting_within_the_limit_is_accepted(client):
    metadata = {}
    for _ in range(MAX_JSON_DEPTH - 3):
        metadata = {"a": metadata}
    r = client.post("/v2/models", json=model_body(metadata=metadata))
    assert r.status_code == 201, r.get_json()


def test_json_depth_counts_without_recursion():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert json_depth(deep) == MAX_JSON_DEPTH + 1  # stops counting past the limit
    assert json_depth({"a": [1, {"b": 2}]}) == 3
    assert json_depth(7) == 0


def test_catastrophic_pattern_does_not_stall(client):
    schema = {
        "type": "object",
        "properties": {"s": {"type": "string", "pattern": "^(a|aa)+$"}},
        "patternProperties": {"^(b|bb)+$": {"type": "string"}},
    }
    body = model_body("rx", handler_contracts={"inference": {"input_schema": schema}})
    assert client.post("/v2/models", json=body).status_code == 201
    activate(client, "rx")
    start = time.monotonic()
    r = client.post(
        "/v2/models/rx/versions/1/inference",
        json={"input": {"s": "a" * 5000 + "!", "b" * 5000 + "!": 1}},
    )
    elapsed = time.monotonic() - start
    assert "took too long" in assert_envelope(r, 422)["message"]
    assert elapsed < 5, elapsed


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/a%2Fb",
        "/v2/models/%E2%9C%93",
        "/v2/models/x'%20OR%201=1--",
        "/v2/models/" + "a" * 5000,
        "/v2/models/m/versions/%F0%9F%92%A5",
    ],
)
def test_odd_path_parameters_are_404(client, path):
    assert_envelope(client.get(path), 404)


@pytest.mark.parametrize("path", ["/v2/jobs/%00", "/v2/models/a%00b/versions"])
def test_nul_in_a_path_parameter_is_400(client, path):
    assert "NUL" in assert_envelope(client.get(path), 400)["message"]


@pytest.mark.parametrize("page_size", ["100000000000000000000", "-1", "0", "abc"])
def test_bad_page_size_is_400(client, page_size):
    assert_envelope(client.get(f"/v2/models?page_size={page_size}"), 400)


def test_body_over_the_limit_is_413(make_app):
    from tests.helpers import Client

    client = Client(make_app({"PIE_MAX_BODY_BYTES": 2048}).test_client())
    r = client.post("/v2/models", json=model_body(metadata={"x": "y" * 5000}))
    assert_envelope(r, 413)


@pytest.mark.parametrize(
    "body",
    [
        {"id": "m\u0000", "name": "n", "description": "d"},
        {"name": "a\u0000b", "description": "d"},
        {"name": "n", "description": "d", "metadata": {"k\u0000": 1}},
    ],
)
def test_nul_characters_in_bodies_are_400(client, body):
    r = client.post("/v2/models", json={**model_body(None), **body})
    assert "NUL" in assert_envelope(r, 400)["message"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_nul_and_depth_checks_hold_in_every_json_encoding(client, encoding):
    """The checks skip their walk when the body's bytes rule the problem out; a body in
    another encoding must not slip past that shortcut (UTF-16/32 are refused outright)."""
    utf8 = encoding == "utf-8"
    nul = json.dumps({**model_body(None), "name": "a\u0000b"}).encode(encoding)
    r = client.post("/v2/models", data=nul, headers=JSON)
    assert ("NUL" if utf8 else "Invalid JSON") in assert_envelope(r, 400)["message"]
    deep = json.dumps({**model_body(None), "metadata": nested(MAX_JSON_DEPTH + 5)})
    r = client.post("/v2/models", data=deep.encode(encoding), headers=JSON)
    assert ("nests deeper" if utf8 else "Invalid JSON") in assert_envelope(r, 400)["message"]
    assert client.get("/v2/models").get_json() == []
    fine = json.dumps(model_body(None, metadata=nested(MAX_JSON_DEPTH - 3)))
    r = client.post("/v2/models", data=fine.encode(encoding), headers=JSON)
    assert r.status_code == (201 if utf8 else 400), r.get_json()


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value
