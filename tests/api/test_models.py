"""/v2/models: list, create, read, replace, delete (contract sections 3 and 9)."""

import json
import uuid

import pytest

from tests.helpers import MODEL_FIELDS, assert_envelope, model_body

LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:my-model"
ECHO = {"type": "in_process", "value": "echo"}


def create(client, model_id="m1", **overrides):
    r = client.post("/v2/models", json=model_body(model_id, **overrides))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def versions(client, model_id="m1"):
    r = client.get(f"/v2/models/{model_id}/versions")
    assert r.status_code == 200, r.get_json()
    return {v["version"]: v for v in r.get_json()}


def set_status(client, status, model_id="m1", version="1"):
    r = client.post(f"/v2/models/{model_id}/versions/{version}/new_status", json={"status": status})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def pagination(response):
    return json.loads(response.headers["X-Pagination"])


# --- list ---------------------------------------------------------------------------------


def test_list_empty(client):
    r = client.get("/v2/models")
    assert r.status_code == 200
    assert r.get_json() == []
    assert pagination(r)["total"] == 0


def test_list_returns_models(client):
    created = [create(client, f"m{i}") for i in range(3)]
    r = client.get("/v2/models")
    assert r.status_code == 200
    assert sorted(m["id"] for m in r.get_json()) == ["m0", "m1", "m2"]
    assert {m["id"]: m for m in r.get_json()} == {m["id"]: m for m in created}


def test_list_pagination(client):
    for i in range(5):
        create(client, f"m{i}")
    full = client.get("/v2/models").get_json()
    pages = []
    for page in (1, 2, 3):
        r = client.get(f"/v2/models?page={page}&page_size=2")
        assert r.status_code == 200
        meta = pagination(r)
        assert meta["total"] == 5 and meta["total_pages"] == 3 and meta["page"] == page
        pages.append([m["id"] for m in r.get_json()])
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sum(pages, []) == [m["id"] for m in full]
    assert sorted(sum(pages, [])) == [f"m{i}" for i in range(5)]
    r = client.get("/v2/models?page=4&page_size=2")
    assert r.status_code in (200, 404)
    if r.status_code == 200:
        assert r.get_json() == []


def test_list_order_is_stable(client):
    for model_id in ["zeta", "alpha", "Mid", "0first", "beta"]:
        create(client, model_id)
    orders = [[m["id"] for m in client.get("/v2/models").get_json()] for _ in range(3)]
    assert orders[0] == orders[1] == orders[2]
    single = [
        client.get(f"/v2/models?page={p}&page_size=1").get_json()[0]["id"] for p in range(1, 6)
    ]
    assert single == orders[0]


def test_list_default_page_size_is_100_and_max_is_1000(client):
    for i in range(101):
        create(client, f"m{i:03d}")
    r = client.get("/v2/models")
    assert len(r.get_json()) == 100
    assert pagination(r)["total"] == 101 and pagination(r)["total_pages"] == 2
    assert len(client.get("/v2/models?page=2").get_json()) == 1
    assert len(client.get("/v2/models?page_size=1000").get_json()) == 101


# --- create -------------------------------------------------------------------------------


def test_create_returns_the_model(client):
    body = create(client, "m1", metadata={"team": "risk", "n": 3})
    assert set(body) == MODEL_FIELDS
    assert body["id"] == "m1"
    assert body["name"] == "Model one" and body["description"] == "a test model"
    assert body["handlers"] == {"training": ECHO, "inference": ECHO}
    assert body["handler_contracts"] is None
    assert body["metadata"] == {"team": "risk", "n": 3}
    assert body["status"] == "pending"
    assert body["latest_version"] == "1"
    for stamp in ("created_at", "updated_at"):
        assert body[stamp].endswith("Z")


def test_create_generates_a_uuid7_id(client):
    first = create(client, None)
    second = create(client, None)
    for body in (first, second):
        assert uuid.UUID(body["id"]).version == 7
    assert first["id"] != second["id"]
    assert client.get(f"/v2/models/{first['id']}").get_json()["id"] == first["id"]


def test_create_makes_pending_version_1(client):
    contracts = {"inference": {"input_schema": {"type": "object"}}}
    create(client, handler_contracts=contracts)
    found = versions(client)
    assert list(found) == ["1"]
    v1 = found["1"]
    assert v1["status"] == "pending"
    assert v1["model_id"] == "m1"
    assert v1["handlers"] == {"training": ECHO, "inference": ECHO}
    assert v1["handler_contracts"] == contracts
    assert v1["metadata"] == {} and v1["description"] == "" and v1["feature_schema"] is None


def test_metadata_defaults_to_empty_object(client):
    body = model_body("m1")
    assert "metadata" not in body
    assert create(client, "m1")["metadata"] == {}
    assert client.get("/v2/models/m1").get_json()["metadata"] == {}


@pytest.mark.parametrize(
    "handler",
    [
        {"type": "lambda", "arn": LAMBDA_ARN},
        {"type": "lambda", "arn": LAMBDA_ARN, "version": "live"},
        {"type": "lambda", "arn": LAMBDA_ARN, "version": "$LATEST"},
        {"type": "lambda", "arn": LAMBDA_ARN, "version": "7"},
        {"type": "lambda", "arn": "arn:aws:lambda:eu-west-2:123456789012:function:f:prod"},
        {"type": "ecs_task", "value": "ml-cluster/my-model"},
        {"type": "ecs_task", "value": "ml-cluster/my-model:3"},
        {"type": "in_process", "value": "echo"},
    ],
)
def test_valid_handlers_are_stored(client, handler):
    body = create(client, handlers={"training": handler, "inference": ECHO})
    assert body["handlers"]["training"] == handler
    stored = client.get("/v2/models/m1").get_json()
    assert stored["handlers"] == {"training": handler, "inference": ECHO}
    assert versions(client)["1"]["handlers"]["training"] == handler


@pytest.mark.parametrize(
    "handler, field",
    [
        ({"type": "lambda"}, "arn"),
        ({"type": "lambda", "arn": "not-an-arn"}, "arn"),
        ({"type": "lambda", "arn": "arn:aws:s3:::bucket"}, "arn"),
        ({"type": "lambda", "arn": LAMBDA_ARN, "version": "has space"}, "version"),
        ({"type": "lambda", "arn": 5}, "arn"),
        ({"type": "ecs_task"}, "value"),
        ({"type": "ecs_task", "value": "just-a-cluster"}, "value"),
        ({"type": "ecs_task", "value": "cluster/family/extra"}, "value"),
        ({"type": "ecs_task", "value": "/family"}, "value"),
        ({"type": "ecs_task", "value": "cluster/"}, "value"),
        ({"type": "in_process", "value": "no-such-implementation"}, "value"),
        ({"type": "in_process"}, "value"),
        ({"type": "in_process", "value": ""}, "value"),
        ({"type": "carrier_pigeon", "value": "x"}, "type"),
        ({"value": "echo"}, "type"),
        ({"type": None, "value": "echo"}, "type"),
        ({"type": "in_process", "value": "echo", "extra": 1}, "extra"),
        ({"type": "lambda", "arn": LAMBDA_ARN, "value": "x"}, "value"),
    ],
)
def test_malformed_handler_is_400(client, handler, field):
    r = client.post(
        "/v2/models", json=model_body(handlers={"training": ECHO, "inference": handler})
    )
    assert f"json.handlers.inference.{field}" in assert_envelope(r, 400)["message"]
    assert client.get("/v2/models/m1").status_code == 404


KNOWN_TYPES = "Known handler types: celery, ecs_task, http, in_process, lambda."
TYPE_PROBLEMS = [
    ({"value": "echo"}, f"Missing data for required field. {KNOWN_TYPES}"),
    ({"type": None, "value": "echo"}, f"Field may not be null. {KNOWN_TYPES}"),
    ({"type": 5, "value": "echo"}, f"Not a valid string: got a number. {KNOWN_TYPES}"),
    ({"type": 1.5, "value": "echo"}, f"Not a valid string: got a number. {KNOWN_TYPES}"),
    ({"type": True, "value": "echo"}, f"Not a valid string: got a boolean. {KNOWN_TYPES}"),
    ({"type": ["lambda"], "value": "echo"}, f"Not a valid string: got an array. {KNOWN_TYPES}"),
    ({"type": {"a": 1}, "value": "echo"}, f"Not a valid string: got an object. {KNOWN_TYPES}"),
    ({"type": "pigeon", "value": "x"}, f"Unknown handler type 'pigeon'. {KNOWN_TYPES}"),
    ({"type": "", "value": "x"}, f"Unknown handler type ''. {KNOWN_TYPES}"),
]


@pytest.mark.parametrize(("handler", "expected"), TYPE_PROBLEMS)
def test_a_handler_without_a_valid_type_says_why_and_lists_the_types(client, handler, expected):
    r = client.post(
        "/v2/models", json=model_body(handlers={"training": handler, "inference": ECHO})
    )
    assert assert_envelope(r, 400)["message"] == f"json.handlers.training.type: {expected}"


@pytest.mark.parametrize(("handler", "expected"), TYPE_PROBLEMS)
def test_a_replacement_handler_without_a_valid_type_says_why(client, handler, expected):
    create(client)
    r = client.put(
        "/v2/models/m1", json=replacement(handlers={"training": ECHO, "inference": handler})
    )
    assert assert_envelope(r, 400)["message"] == f"json.handlers.inference.type: {expected}"
    assert client.get("/v2/models/m1").get_json()["handlers"] == OLD_HANDLERS


@pytest.mark.parametrize("handler", ["echo", 5, [], None])
def test_handler_must_be_an_object(client, handler):
    r = client.post(
        "/v2/models", json=model_body(handlers={"training": handler, "inference": ECHO})
    )
    assert "json.handlers.training" in assert_envelope(r, 400)["message"]


@pytest.mark.parametrize(
    "handlers",
    [{"training": ECHO}, {"inference": ECHO}, {}, {"training": ECHO, "inference": ECHO, "x": ECHO}],
)
def test_both_handlers_are_required_and_nothing_else(client, handlers):
    assert_envelope(client.post("/v2/models", json=model_body(handlers=handlers)), 400)


@pytest.mark.parametrize("field", ["name", "description", "handlers"])
def test_create_required_fields(client, field):
    body = model_body()
    del body[field]
    r = client.post("/v2/models", json=body)
    assert f"json.{field}: Missing data for required field." in assert_envelope(r, 400)["message"]


def test_create_with_contracts(client):
    contracts = {
        "training": {"input_schema": {"type": "object", "required": ["rows"]}},
        "inference": {
            "input_schema": {"type": "object", "properties": {"x": {"type": "number"}}},
            "output_schema": {"type": "object"},
        },
    }
    assert create(client, handler_contracts=contracts)["handler_contracts"] == contracts


@pytest.mark.parametrize(
    "contracts",
    [
        {"training": {"input_schema": {"type": 5}}},
        {"inference": {"output_schema": {"properties": {"x": {"minimum": "zero"}}}}},
        {"inference": {"input_schema": {"required": "x"}}},
    ],
)
def test_create_with_invalid_contract_is_422(client, contracts):
    r = client.post("/v2/models", json=model_body(handler_contracts=contracts))
    assert "handler_contracts" in assert_envelope(r, 422)["message"]
    assert client.get("/v2/models/m1").status_code == 404


@pytest.mark.parametrize("model_id", ["-dash-first", "has space", "a/b", "x" * 129, "ünï"])
def test_create_with_invalid_id_is_400(client, model_id):
    r = client.post("/v2/models", json=model_body(model_id))
    assert "json.id" in assert_envelope(r, 400)["message"]


@pytest.mark.parametrize("model_id", ["A", "0", "x" * 128, "a.b_c-D9"])
def test_create_with_edge_ids(client, model_id):
    assert create(client, model_id)["id"] == model_id
    assert client.get(f"/v2/models/{model_id}").status_code == 200


def test_create_duplicate_is_409(client):
    create(client, name="first")
    assert_envelope(client.post("/v2/models", json=model_body(name="second")), 409)
    assert client.get("/v2/models/m1").get_json()["name"] == "first"


# --- get ----------------------------------------------------------------------------------


def test_get_model(client):
    created = create(client)
    r = client.get("/v2/models/m1")
    assert r.status_code == 200
    assert r.get_json() == created


def test_get_unknown_model_is_404(client):
    create(client)
    assert_envelope(client.get("/v2/models/m2"), 404)


# --- put ----------------------------------------------------------------------------------

NEW_HANDLERS = {
    "training": {"type": "ecs_task", "value": "ml/train:2"},
    "inference": {"type": "lambda", "arn": LAMBDA_ARN, "version": "live"},
}
OLD_HANDLERS = {"training": ECHO, "inference": ECHO}


def replacement(**overrides):
    body = model_body(None, name="Renamed", description="new words", handlers=NEW_HANDLERS)
    body.update(overrides)
    return body


def test_put_pending_model_updates_in_place(client):
    created = create(client, metadata={"a": 1})
    r = client.put("/v2/models/m1", json=replacement(metadata={"b": 2}))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["name"] == "Renamed" and body["description"] == "new words"
    assert body["handlers"] == NEW_HANDLERS
    assert body["metadata"] == {"b": 2}
    assert body["status"] == "pending" and body["latest_version"] == "1"
    assert body["created_at"] == created["created_at"]
    assert client.get("/v2/models/m1").get_json() == body
    found = versions(client)
    assert list(found) == ["1"]
    assert found["1"]["handlers"] == NEW_HANDLERS and found["1"]["status"] == "pending"


def test_put_is_full_replacement(client):
    contracts = {"inference": {"input_schema": {"type": "object"}}}
    create(client, metadata={"a": 1}, handler_contracts=contracts)
    body = client.put("/v2/models/m1", json=replacement()).get_json()
    assert body["metadata"] == {}
    assert body["handler_contracts"] is None
    assert versions(client)["1"]["handler_contracts"] is None


def test_put_pending_model_leaves_non_pending_versions(client):
    create(client)
    set_status(client, "failed")
    r = client.post("/v2/models/m1/new_version", json={})
    assert r.status_code == 201
    assert client.put("/v2/models/m1", json=replacement()).status_code == 200
    found = versions(client)
    assert found["1"]["status"] == "failed" and found["1"]["handlers"] == OLD_HANDLERS
    assert found["2"]["status"] == "pending" and found["2"]["handlers"] == NEW_HANDLERS


def test_put_active_model_creates_a_new_version(client):
    create(client)
    set_status(client, "training")
    set_status(client, "active")
    contracts = {"inference": {"input_schema": {"type": "object", "required": ["x"]}}}
    r = client.put("/v2/models/m1", json=replacement(handler_contracts=contracts))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "active"
    assert body["latest_version"] == "2"
    assert body["handlers"] == NEW_HANDLERS
    found = versions(client)
    assert set(found) == {"1", "2"}
    assert found["1"]["status"] == "active"
    assert found["1"]["handlers"] == OLD_HANDLERS and found["1"]["handler_contracts"] is None
    assert found["2"]["status"] == "pending"
    assert found["2"]["handlers"] == NEW_HANDLERS and found["2"]["handler_contracts"] == contracts
    # A second update makes version 3; version 2 keeps the first update's snapshot.
    again = replacement(handlers=OLD_HANDLERS)
    assert client.put("/v2/models/m1", json=again).get_json()["latest_version"] == "3"
    found = versions(client)
    assert found["2"]["handlers"] == NEW_HANDLERS and found["3"]["handlers"] == OLD_HANDLERS


def test_put_invalid_contract_is_422_and_changes_nothing(client):
    created = create(client)
    contracts = {"inference": {"input_schema": {"type": 5}}}
    r = client.put("/v2/models/m1", json=replacement(handler_contracts=contracts))
    assert "handler_contracts" in assert_envelope(r, 422)["message"]
    assert client.get("/v2/models/m1").get_json() == created
    assert versions(client)["1"]["handlers"] == OLD_HANDLERS


@pytest.mark.parametrize("field", ["name", "description", "handlers"])
def test_put_required_fields(client, field):
    create(client)
    body = replacement()
    del body[field]
    r = client.put("/v2/models/m1", json=body)
    assert f"json.{field}: Missing data for required field." in assert_envelope(r, 400)["message"]


def test_put_malformed_handler_is_400(client):
    create(client)
    body = replacement(handlers={"training": {"type": "lambda"}, "inference": ECHO})
    r = client.put("/v2/models/m1", json=body)
    assert "json.handlers.training.arn" in assert_envelope(r, 400)["message"]


def test_put_unknown_model_is_404(client):
    assert_envelope(client.put("/v2/models/nope", json=replacement()), 404)


# --- delete -------------------------------------------------------------------------------


def test_delete_model(client):
    create(client)
    client.post("/v2/models/m1/new_version", json={"version": "2.0.0"})
    create(client, "other")
    r = client.delete("/v2/models/m1")
    assert r.status_code == 204
    assert r.get_data() == b""
    assert_envelope(client.get("/v2/models/m1"), 404)
    assert_envelope(client.get("/v2/models/m1/versions"), 404)
    assert_envelope(client.get("/v2/models/m1/versions/1"), 404)
    assert_envelope(client.delete("/v2/models/m1"), 404)
    assert [m["id"] for m in client.get("/v2/models").get_json()] == ["other"]
    assert list(versions(client, "other")) == ["1"]


def test_delete_then_recreate_starts_fresh(client):
    create(client)
    set_status(client, "active")
    client.post("/v2/models/m1/new_version", json={"version": "9"})
    assert client.delete("/v2/models/m1").status_code == 204
    body = create(client)
    assert body["status"] == "pending" and body["latest_version"] == "1"
    found = versions(client)
    assert list(found) == ["1"] and found["1"]["status"] == "pending"
    new = client.post("/v2/models/m1/new_version", json={}).get_json()
    assert new["version"]["version"] == "2"


def test_delete_unknown_model_is_404(client):
    assert_envelope(client.delete("/v2/models/nope"), 404)
