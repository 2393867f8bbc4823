"""Model versions: new_version, list, read and the status lifecycle (contract section 4)."""

import itertools
import json
import threading

import pytest

from tests.helpers import VERSION_FIELDS, Client, assert_envelope, model_body

STATUSES = ("pending", "training", "active", "failed")
ALLOWED = {
    "pending": {"training", "active", "failed"},
    "training": {"active", "failed"},
    "failed": {"pending", "training"},
    "active": set(),
}
# How to reach each starting status from `pending` through allowed transitions.
PATH_TO = {
    "pending": [],
    "training": ["training"],
    "failed": ["training", "failed"],
    "active": ["training", "active"],
}
ECHO = {"type": "in_process", "value": "echo"}
FEATURES = [
    {
        "name": "route",
        "json_schema": {"type": "string", "enum": ["air", "sea"], "default": "air"},
        "mandatory": True,
    },
    {"name": "weight", "json_schema": {"type": "number", "minimum": 0}, "mandatory": False},
]


@pytest.fixture
def model(client):
    r = client.post("/v2/models", json=model_body("m1"))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def new_version(client, body=None, model_id="m1"):
    r = client.post(f"/v2/models/{model_id}/new_version", json=body if body is not None else {})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def move(client, status, version="1", model_id="m1"):
    return client.post(
        f"/v2/models/{model_id}/versions/{version}/new_status", json={"status": status}
    )


def walk(client, statuses, version="1"):
    for status in statuses:
        r = move(client, status, version)
        assert r.status_code == 200, r.get_json()


def get_version(client, version, model_id="m1"):
    r = client.get(f"/v2/models/{model_id}/versions/{version}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


# --- new_version --------------------------------------------------------------------------


def test_new_version_auto_numbers(client, model):
    body = new_version(client)
    assert body["version"]["version"] == "2"
    assert body["model"]["latest_version"] == "2"
    assert new_version(client)["version"]["version"] == "3"


def test_auto_number_follows_largest_integer_version(client, model):
    assert new_version(client, {"version": "7"})["model"]["latest_version"] == "7"
    assert new_version(client, {"version": "2.0.0"})["model"]["latest_version"] == "2.0.0"
    assert new_version(client, {"version": "99-beta"})["version"]["version"] == "99-beta"
    body = new_version(client)
    assert body["version"]["version"] == "8"
    assert body["model"]["latest_version"] == "8"
    assert new_version(client)["version"]["version"] == "9"


def test_auto_number_ignores_non_integer_versions(client, model):
    for version in ("1.5", "10a", "v20", "3.0"):
        new_version(client, {"version": version})
    assert new_version(client)["version"]["version"] == "2"


def test_new_version_with_explicit_string(client, model):
    body = new_version(client, {"version": "2.0.0", "description": "semver"})
    version = body["version"]
    assert set(version) == VERSION_FIELDS
    assert version["version"] == "2.0.0" and version["model_id"] == "m1"
    assert version["status"] == "pending" and version["description"] == "semver"
    assert get_version(client, "2.0.0") == version


def test_new_version_duplicate_is_409(client, model):
    new_version(client, {"version": "2.0.0"})
    for taken in ("1", "2.0.0"):
        r = client.post("/v2/models/m1/new_version", json={"version": taken})
        assert taken in assert_envelope(r, 409)["message"]
    assert client.get("/v2/models/m1").get_json()["latest_version"] == "2.0.0"


def test_new_version_duplicate_of_auto_number_is_409(client, model):
    new_version(client)  # "2"
    assert_envelope(client.post("/v2/models/m1/new_version", json={"version": "2"}), 409)


def test_new_version_stores_description_metadata_and_features(client, model):
    body = new_version(
        client, {"description": "retrained", "metadata": {"auc": 0.91}, "feature_schema": FEATURES}
    )
    version = body["version"]
    assert version["description"] == "retrained"
    assert version["metadata"] == {"auc": 0.91}
    assert version["feature_schema"] == FEATURES
    assert get_version(client, "2") == version


def test_new_version_defaults(client, model):
    version = new_version(client)["version"]
    assert version["description"] == "" and version["metadata"] == {}
    assert version["feature_schema"] is None and version["status"] == "pending"


@pytest.mark.parametrize(
    "features, hint",
    [
        ([{"name": "a", "json_schema": {"type": 5}, "mandatory": True}], "json_schema"),
        ([{"name": "a", "json_schema": {"minimum": "zero"}, "mandatory": True}], "json_schema"),
        (
            [{"name": "a", "json_schema": {"type": "integer", "default": "x"}, "mandatory": False}],
            "default",
        ),
        (
            [
                {"name": "a", "json_schema": {"type": "string"}, "mandatory": True},
                {"name": "a", "json_schema": {"type": "number"}, "mandatory": True},
            ],
            "duplicate",
        ),
    ],
    ids=["bad-type", "bad-keyword", "default-fails-schema", "duplicate-name"],
)
def test_invalid_feature_schema_is_422(client, model, features, hint):
    r = client.post("/v2/models/m1/new_version", json={"feature_schema": features})
    assert hint in assert_envelope(r, 422)["message"]
    assert client.get("/v2/models/m1").get_json()["latest_version"] == "1"
    assert_envelope(client.get("/v2/models/m1/versions/2"), 404)


@pytest.mark.parametrize(
    "feature",
    [
        {"name": "a", "json_schema": {}},
        {"name": "a", "mandatory": True},
        {"json_schema": {}, "mandatory": True},
        {"name": "a", "json_schema": "string", "mandatory": True},
        {"name": "a", "json_schema": {}, "mandatory": "yes"},
        {"name": "", "json_schema": {}, "mandatory": True},
        {"name": "a", "json_schema": {}, "mandatory": True, "extra": 1},
    ],
)
def test_malformed_feature_definition_is_400(client, model, feature):
    r = client.post("/v2/models/m1/new_version", json={"feature_schema": [feature]})
    assert "json.feature_schema" in assert_envelope(r, 400)["message"]


@pytest.mark.parametrize(
    "body",
    [{"version": 2}, {"metadata": []}, {"description": None}, {"colour": "red"}],
)
def test_new_version_bad_body_is_400(client, model, body):
    assert_envelope(client.post("/v2/models/m1/new_version", json=body), 400)


def test_new_version_invalid_version_string_is_400(client, model):
    r = client.post("/v2/models/m1/new_version", json={"version": "has space"})
    assert "json.version" in assert_envelope(r, 400)["message"]


def test_new_version_snapshots_current_handlers(client, model):
    walk(client, ["failed"])  # so the model update below leaves version 1 alone
    handlers = {"training": {"type": "ecs_task", "value": "ml/train"}, "inference": ECHO}
    contracts = {"training": {"output_schema": {"type": "object"}}}
    update = model_body(None, handlers=handlers, handler_contracts=contracts)
    assert client.put("/v2/models/m1", json=update).status_code == 200
    version = new_version(client)["version"]
    assert version["handlers"] == handlers and version["handler_contracts"] == contracts
    v1 = get_version(client, "1")
    assert v1["handlers"] == {"training": ECHO, "inference": ECHO}
    assert v1["handler_contracts"] is None


def test_new_version_on_active_model_keeps_model_active(client, model):
    walk(client, ["active"])
    body = new_version(client)
    assert body["model"]["status"] == "active"
    assert body["version"]["status"] == "pending"


def test_transitions_answer_the_model_as_stored(client, model):
    """The model in a transition's answer is what a read returns after it: the first
    activation's status and time, and later transitions' unchanged model."""
    first = client.post("/v2/models/m1/versions/1/new_status", json={"status": "active"})
    assert first.status_code == 200 and first.get_json()["model"]["status"] == "active"
    stored = client.get("/v2/models/m1").get_json()
    assert first.get_json()["model"] == stored
    assert first.get_json()["model"]["updated_at"] == first.get_json()["version"]["updated_at"]
    new_version(client)  # moves the model's latest_version
    stored = client.get("/v2/models/m1").get_json()
    second = client.post("/v2/models/m1/versions/2/new_status", json={"status": "training"})
    assert second.get_json()["model"] == stored == client.get("/v2/models/m1").get_json()
    repeat = client.post("/v2/models/m1/versions/2/new_status", json={"status": "training"})
    assert repeat.status_code == 200 and repeat.get_json()["model"] == stored


def test_new_version_unknown_model_is_404(client):
    assert_envelope(client.post("/v2/models/nope/new_version", json={}), 404)


# --- list and get -------------------------------------------------------------------------


def test_list_versions_newest_first(client, model):
    for body in ({"version": "5"}, {}, {"version": "1.1"}, {}):
        new_version(client, body)
    r = client.get("/v2/models/m1/versions")
    assert r.status_code == 200
    assert [v["version"] for v in r.get_json()] == ["7", "1.1", "6", "5", "1"]
    assert all(set(v) == VERSION_FIELDS for v in r.get_json())


def test_list_versions_paginated(client, model):
    for _ in range(4):
        new_version(client)
    pages = []
    for page in (1, 2, 3):
        r = client.get(f"/v2/models/m1/versions?page={page}&page_size=2")
        assert r.status_code == 200
        meta = json.loads(r.headers["X-Pagination"])
        assert meta["total"] == 5 and meta["total_pages"] == 3
        pages += [v["version"] for v in r.get_json()]
    assert pages == ["5", "4", "3", "2", "1"]
    assert_envelope(client.get("/v2/models/m1/versions?page_size=0"), 400)


def test_list_versions_only_of_that_model(client, model):
    client.post("/v2/models", json=model_body("m2"))
    new_version(client, model_id="m2")
    assert [v["version"] for v in client.get("/v2/models/m1/versions").get_json()] == ["1"]
    assert [v["model_id"] for v in client.get("/v2/models/m2/versions").get_json()] == ["m2"] * 2


def test_list_versions_unknown_model_is_404(client):
    assert_envelope(client.get("/v2/models/nope/versions"), 404)


def test_get_version(client, model):
    version = get_version(client, "1")
    assert set(version) == VERSION_FIELDS
    assert version["model_id"] == "m1" and version["version"] == "1"
    assert version["handlers"] == model["handlers"]
    assert version["created_at"].endswith("Z") and version["updated_at"].endswith("Z")


def test_get_unknown_version_is_404(client, model):
    assert "9" in assert_envelope(client.get("/v2/models/m1/versions/9"), 404)["message"]
    assert_envelope(client.get("/v2/models/nope/versions/1"), 404)


# --- new_status ---------------------------------------------------------------------------


@pytest.mark.parametrize("start, target", list(itertools.product(STATUSES, STATUSES)))
def test_transition(client, model, start, target):
    walk(client, PATH_TO[start])
    before = get_version(client, "1")
    r = move(client, target)
    if target == start or target in ALLOWED[start]:
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        assert set(body) == {"model", "version", "triggered_events"}
        assert body["triggered_events"] == []
        assert body["version"]["status"] == target
        assert body["version"]["version"] == "1" and body["model"]["id"] == "m1"
        if target == start:
            assert body["version"] == before  # a no-op changes nothing
    else:
        message = assert_envelope(r, 422)["message"]
        assert start in message and target in message
        for allowed in ALLOWED[start]:
            assert allowed in message.split("allowed")[-1], message
        if not ALLOWED[start]:
            assert "none" in message
        assert get_version(client, "1") == before
    model_status = client.get("/v2/models/m1").get_json()["status"]
    ever_active = start == "active" or (target == "active" and r.status_code == 200)
    assert model_status == ("active" if ever_active else "pending")


def test_model_becomes_active_with_first_active_version_and_stays(client, model):
    body = move(client, "active").get_json()
    assert body["model"]["status"] == "active" and body["version"]["status"] == "active"
    new_version(client)
    walk(client, ["training", "failed"], version="2")
    assert client.get("/v2/models/m1").get_json()["status"] == "active"
    new_version(client)
    walk(client, ["training", "active"], version="3")
    assert client.get("/v2/models/m1").get_json()["status"] == "active"
    statuses = {v["version"]: v["status"] for v in client.get("/v2/models/m1/versions").get_json()}
    assert statuses == {"1": "active", "2": "failed", "3": "active"}


def test_model_stays_pending_until_a_version_is_active(client, model):
    walk(client, ["training", "failed", "pending", "training"])
    assert client.get("/v2/models/m1").get_json()["status"] == "pending"
    new_version(client)
    walk(client, ["active"], version="2")
    assert client.get("/v2/models/m1").get_json()["status"] == "active"
    assert get_version(client, "1")["status"] == "training"


def test_status_change_touches_only_that_version(client, model):
    new_version(client)
    walk(client, ["training"], version="2")
    assert get_version(client, "1")["status"] == "pending"
    assert get_version(client, "2")["status"] == "training"


def test_transition_updates_updated_at(client, model):
    before = get_version(client, "1")
    after = move(client, "training").get_json()["version"]
    assert after["updated_at"] >= before["updated_at"]
    assert after["created_at"] == before["created_at"]


@pytest.mark.parametrize("body", [{}, {"status": "done"}, {"status": None}, {"status": 1}])
def test_new_status_bad_body_is_400(client, model, body):
    r = client.post("/v2/models/m1/versions/1/new_status", json=body)
    assert "json.status" in assert_envelope(r, 400)["message"]


def test_new_status_unknown_version_or_model_is_404(client, model):
    assert_envelope(move(client, "training", version="9"), 404)
    assert_envelope(move(client, "training", model_id="nope"), 404)


def test_racing_training_to_active(app, client, model):
    walk(client, ["training"])
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    results: list = [None] * threads_count

    def race(index: int) -> None:
        own = Client(app.test_client())
        barrier.wait(timeout=30)
        r = move(own, "active")
        results[index] = (r.status_code, r.get_json())

    threads = [threading.Thread(target=race, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(not thread.is_alive() for thread in threads)
    for status_code, body in results:
        assert status_code == 200, body
        assert body["version"]["status"] == "active"
        assert body["model"]["status"] == "active"
        assert body["triggered_events"] == []
    assert get_version(client, "1")["status"] == "active"
    assert client.get("/v2/models/m1").get_json()["status"] == "active"
    assert [v["version"] for v in client.get("/v2/models/m1/versions").get_json()] == ["1"]
