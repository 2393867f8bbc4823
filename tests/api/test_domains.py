"""Domains and their feature contracts (contract 7.2): create, list, read, status, the feature
definitions (Draft 2020-12), the re-initialisation report, and feature resolution."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import assert_envelope

DOMAIN_FIELDS = {"client_id", "domain_id", "status", "features", "created_at", "updated_at"}
# Feature contracts shaped like real ones: enums, numeric ranges, fixed-length arrays,
# prefixItems tuples, oneOf unions, objects with local $refs.
REGION = {
    "name": "region",
    "mandatory": True,
    "json_schema": {"type": "string", "enum": ["eu-west-1", "us-east-1"], "default": "eu-west-1"},
}
THRESHOLD = {
    "name": "threshold",
    "mandatory": False,
    "json_schema": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
}
MAX_BATCH = {
    "name": "max_batch",
    "mandatory": True,
    "json_schema": {"type": "integer", "minimum": 1, "exclusiveMaximum": 1000},
}
WEIGHTS = {
    "name": "weights",
    "mandatory": False,
    "json_schema": {
        "type": "array",
        "items": {"type": "number"},
        "minItems": 3,
        "maxItems": 3,
        "default": [0.2, 0.3, 0.5],
    },
}
WINDOW = {
    "name": "window",
    "mandatory": False,
    "json_schema": {
        "type": "array",
        "prefixItems": [
            {"type": "string", "enum": ["hour", "day"]},
            {"type": "integer", "minimum": 1},
        ],
        "items": False,
        "minItems": 2,
    },
}
MODE = {
    "name": "mode",
    "mandatory": False,
    "json_schema": {
        "oneOf": [{"type": "string", "enum": ["auto"]}, {"type": "integer", "minimum": 1}],
        "default": "auto",
    },
}
ENABLED = {
    "name": "enabled",
    "mandatory": False,
    "json_schema": {"type": "boolean", "default": True},
}
LABEL = {
    "name": "label",
    "mandatory": False,
    "json_schema": {"type": ["string", "null"], "default": None},
}
BOUNDS = {
    "name": "bounds",
    "mandatory": False,
    "json_schema": {
        "$defs": {"pct": {"type": "number", "minimum": 0, "maximum": 100}},
        "type": "object",
        "properties": {"low": {"$ref": "#/$defs/pct"}, "high": {"$ref": "#/$defs/pct"}},
        "required": ["low", "high"],
        "additionalProperties": False,
        "default": {"low": 10, "high": 90},
    },
}
FEATURES = [REGION, THRESHOLD, MAX_BATCH, WEIGHTS, WINDOW, MODE, ENABLED, LABEL, BOUNDS]
DEFAULTS = {
    "region": "eu-west-1",
    "threshold": 0.5,
    "weights": [0.2, 0.3, 0.5],
    "mode": "auto",
    "enabled": True,
    "label": None,
    "bounds": {"low": 10, "high": 90},
}
C = "/v2/clients/acme"
D = f"{C}/domains/d1"


def feature(name, json_schema, mandatory=False):
    return {"name": name, "json_schema": json_schema, "mandatory": mandatory}


@pytest.fixture
def acme(client):
    r = client.post("/v2/clients", json={"client_id": "acme", "name": "Acme"})
    assert r.status_code == 201, r.get_json()
    return client


def create_domain(client, domain_id="d1", features=None, client_id="acme", **fields):
    body = {"domain_id": domain_id, "features": FEATURES if features is None else features}
    r = client.post(f"/v2/clients/{client_id}/domains", json={**body, **fields})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def init(client, service_id, static_features=None, **fields):
    body = {"service_id": service_id, **fields}
    if static_features is not None:
        body["static_features"] = static_features
    return client.post(f"{D}/service/init", json=body)


def init_ok(client, service_id, static_features=None, **fields):
    r = init(client, service_id, static_features, **fields)
    assert r.status_code == 202, r.get_json()
    return client.get(f"{D}/service/{service_id}").get_json()


def domain_ids(client, client_id="acme"):
    r = client.get(f"/v2/clients/{client_id}/domains")
    assert r.status_code == 200, r.get_json()
    return [d["domain_id"] for d in r.get_json()]


def put_features(client, features):
    return client.put(f"{D}/features", json={"features": features})


def iso(delta):
    return (datetime.now(UTC) + delta).isoformat()


# --- create, read, list, status -----------------------------------------------------------


def test_create_domain_with_an_id(acme):
    r = acme.post(f"{C}/domains", json={"domain_id": "d1", "features": FEATURES})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert set(body) == DOMAIN_FIELDS
    assert (body["client_id"], body["domain_id"], body["status"]) == ("acme", "d1", "active")
    assert body["features"] == FEATURES
    assert body["created_at"].endswith("Z")
    assert acme.get(D).get_json() == body


def test_create_domain_without_an_id_generates_one(acme):
    first = acme.post(f"{C}/domains", json={}).get_json()
    second = acme.post(f"{C}/domains", json={"features": [REGION]}).get_json()
    assert first["domain_id"] and second["domain_id"]
    assert first["domain_id"] != second["domain_id"]
    assert first["features"] == []
    r = acme.get(f"{C}/domains/{second['domain_id']}")
    assert r.status_code == 200 and r.get_json()["features"] == [REGION]


def test_create_domain_inactive(acme):
    assert create_domain(acme, status="inactive")["status"] == "inactive"


def test_duplicate_domain_id_is_409_within_a_client_only(acme):
    create_domain(acme, features=[REGION])
    assert (
        "d1" in assert_envelope(acme.post(f"{C}/domains", json={"domain_id": "d1"}), 409)["message"]
    )
    assert acme.get(D).get_json()["features"] == [REGION]
    acme.post("/v2/clients", json={"client_id": "other", "name": "Other"})
    assert create_domain(acme, client_id="other", features=[])["domain_id"] == "d1"


def test_list_domains_shows_only_this_clients_domains_in_creation_order(acme):
    acme.post("/v2/clients", json={"client_id": "other", "name": "Other"})
    for domain_id in ("dz", "da", "dm"):
        create_domain(acme, domain_id, features=[])
    create_domain(acme, "dx", features=[], client_id="other")
    assert domain_ids(acme) == ["dz", "da", "dm"]
    assert domain_ids(acme, "other") == ["dx"]


def test_unknown_domain_is_404(acme):
    create_domain(acme)
    acme.post("/v2/clients", json={"client_id": "other", "name": "Other"})
    for path in (f"{C}/domains/nope", "/v2/clients/other/domains/d1", f"{C}/domains/nope/features"):
        assert_envelope(acme.get(path), 404)
    assert_envelope(acme.put(f"{C}/domains/nope", json={"status": "inactive"}), 404)
    assert_envelope(acme.put(f"{C}/domains/nope/features", json={"features": []}), 404)


def test_put_domain_changes_its_status(acme):
    created = create_domain(acme)
    r = acme.put(D, json={"status": "inactive"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "inactive"
    assert body["features"] == FEATURES and body["created_at"] == created["created_at"]
    assert acme.get(D).get_json()["status"] == "inactive"
    assert acme.put(D, json={"status": "active"}).get_json()["status"] == "active"


@pytest.mark.parametrize(
    "body", [{}, {"status": "paused"}, {"status": None}, {"status": "active", "features": []}]
)
def test_put_domain_with_an_invalid_body_is_400(acme, body):
    create_domain(acme)
    assert_envelope(acme.put(D, json=body), 400)
    assert acme.get(D).get_json()["status"] == "active"


@pytest.mark.parametrize(
    "body",
    [
        {"domain_id": "d1", "status": "paused"},
        {"domain_id": "d1", "features": {"region": {}}},
        {"domain_id": "d1", "other": 1},
        {"domain_id": "-d1", "features": []},
    ],
)
def test_create_domain_with_an_invalid_body_is_400(acme, body):
    assert_envelope(acme.post(f"{C}/domains", json=body), 400)
    assert domain_ids(acme) == []


# --- feature definitions ------------------------------------------------------------------

INVALID_SCHEMAS = {
    "unknown-type": {"type": "text"},
    "minimum-not-a-number": {"type": "number", "minimum": "zero"},
    "required-not-an-array": {"type": "object", "required": "low"},
    "prefixItems-not-an-array": {"type": "array", "prefixItems": {"type": "string"}},
    "enum-not-an-array": {"enum": "eu-west-1"},
}
BAD_DEFAULTS = {
    "outside-the-enum": {"type": "string", "enum": ["eu", "us"], "default": "ap"},
    "below-the-minimum": {"type": "integer", "minimum": 1, "default": 0},
    "wrong-length": {"type": "array", "minItems": 3, "maxItems": 3, "default": [1, 2]},
    "extra-tuple-item": {
        "type": "array",
        "prefixItems": [{"type": "string"}],
        "items": False,
        "default": ["a", "b"],
    },
    "matches-both-oneOf-branches": {
        "oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}],
        "default": 3,
    },
    "wrong-type": {"type": "boolean", "default": "true"},
}


@pytest.mark.parametrize("schema", INVALID_SCHEMAS.values(), ids=INVALID_SCHEMAS.keys())
def test_a_feature_schema_that_is_not_draft_2020_12_is_422(acme, schema):
    body = {"domain_id": "d1", "features": [REGION, feature("broken", schema)]}
    assert "broken" in assert_envelope(acme.post(f"{C}/domains", json=body), 422)["message"]
    assert domain_ids(acme) == []


@pytest.mark.parametrize("schema", BAD_DEFAULTS.values(), ids=BAD_DEFAULTS.keys())
def test_a_default_that_fails_its_own_schema_is_422(acme, schema):
    body = {"domain_id": "d1", "features": [feature("tuned", schema)]}
    assert "tuned" in assert_envelope(acme.post(f"{C}/domains", json=body), 422)["message"]
    assert domain_ids(acme) == []


def test_duplicate_feature_names_are_422(acme):
    twin = feature("region", {"type": "string"})
    body = {"domain_id": "d1", "features": [REGION, THRESHOLD, twin]}
    message = assert_envelope(acme.post(f"{C}/domains", json=body), 422)["message"]
    assert "region" in message and "duplicate" in message
    assert domain_ids(acme) == []


def test_every_invalid_definition_is_named(acme):
    body = {
        "domain_id": "d1",
        "features": [
            feature("first", {"type": "text"}),
            feature("second", {"type": "integer", "default": "x"}),
        ],
    }
    message = assert_envelope(acme.post(f"{C}/domains", json=body), 422)["message"]
    assert "first" in message and "second" in message


@pytest.mark.parametrize(
    "definition",
    [
        {"name": "f", "json_schema": {}, "mandatory": "yes"},
        {"name": "f", "json_schema": {}, "mandatory": 1},
        {"name": "f", "json_schema": {}, "mandatory": "true"},
        {"name": "f", "json_schema": {}, "mandatory": None},
        {"name": "f", "json_schema": {}},
        {"json_schema": {}, "mandatory": True},
        {"name": "", "json_schema": {}, "mandatory": True},
        {"name": "f", "mandatory": True},
        {"name": "f", "json_schema": ["not", "an", "object"], "mandatory": True},
        {"name": "f", "json_schema": {}, "mandatory": True, "description": "unknown field"},
    ],
)
def test_malformed_feature_definitions_are_400(acme, definition):
    body = {"domain_id": "d1", "features": [definition]}
    message = assert_envelope(acme.post(f"{C}/domains", json=body), 400)["message"]
    assert "features" in message
    assert domain_ids(acme) == []


def test_get_features_returns_the_definitions(acme):
    create_domain(acme)
    r = acme.get(f"{D}/features")
    assert r.status_code == 200
    assert r.get_json() == FEATURES


def test_put_features_replaces_the_list(acme):
    create_domain(acme)
    r = put_features(acme, [THRESHOLD, REGION])
    assert r.status_code == 200, r.get_json()
    assert r.get_json() == {
        "features": [THRESHOLD, REGION],
        "unchanged_services": [],
        "services_requiring_reinitialization": [],
    }
    assert acme.get(f"{D}/features").get_json() == [THRESHOLD, REGION]
    assert acme.get(D).get_json()["features"] == [THRESHOLD, REGION]


@pytest.mark.parametrize(
    "features",
    [
        [REGION, feature("region", {"type": "string"})],
        [feature("x", {"type": "text"})],
        [feature("x", {"type": "integer", "minimum": 5, "default": 1})],
    ],
    ids=["duplicate", "bad-schema", "bad-default"],
)
def test_put_invalid_features_is_422_and_keeps_the_old_list(acme, features):
    create_domain(acme)
    assert_envelope(put_features(acme, features), 422)
    assert acme.get(f"{D}/features").get_json() == FEATURES


@pytest.mark.parametrize("body", [{}, {"features": None}, {"features": [{"name": "x"}]}])
def test_put_malformed_features_is_400(acme, body):
    create_domain(acme)
    assert_envelope(acme.put(f"{D}/features", json=body), 400)
    assert acme.get(f"{D}/features").get_json() == FEATURES


def test_put_features_reports_which_services_need_reinitialisation(acme):
    region = feature("region", {"type": "string", "enum": ["eu", "us"], "default": "eu"}, True)
    threshold = feature("threshold", {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5})
    create_domain(acme, features=[region, threshold])
    init_ok(acme, "s1-defaults", {})
    init_ok(acme, "s2-explicit", {"region": "us", "threshold": 0.7})
    init_ok(acme, "s3-too-high", {"region": "eu", "threshold": 0.9})
    init_ok(acme, "s4-leaving-later", {"region": "eu"}, departure_datetime=iso(timedelta(days=9)))
    init_ok(acme, "s5-departed", {}, departure_datetime=iso(-timedelta(minutes=1)))
    before = {s["service_id"]: s for s in acme.get(f"{D}/services").get_json()}

    new_region = copy.deepcopy(region)
    new_region["json_schema"]["default"] = "us"  # changes s1's resolution
    new_threshold = copy.deepcopy(threshold)
    new_threshold["json_schema"]["maximum"] = 0.8  # s3 no longer validates
    tier = feature("tier", {"type": "string"})  # optional, no default: changes nothing
    r = put_features(acme, [new_region, new_threshold, tier])
    assert r.status_code == 200, r.get_json()
    report = r.get_json()
    assert set(report) == {"features", "unchanged_services", "services_requiring_reinitialization"}
    assert report["features"] == [new_region, new_threshold, tier]
    assert sorted(report["unchanged_services"]) == ["s2-explicit", "s4-leaving-later"]
    assert sorted(report["services_requiring_reinitialization"]) == ["s1-defaults", "s3-too-high"]
    # The report changes no service.
    after = {s["service_id"]: s for s in acme.get(f"{D}/services").get_json()}
    assert after == before


def test_removed_or_new_mandatory_features_require_reinitialisation(acme):
    a = feature("a", {"type": "integer", "default": 1})
    b = feature("b", {"type": "integer"})
    create_domain(acme, features=[a, b])
    init_ok(acme, "uses-b", {"b": 2})
    init_ok(acme, "only-a", {})
    report = put_features(acme, [a]).get_json()  # `b` is no longer defined
    assert report["services_requiring_reinitialization"] == ["uses-b"]
    assert report["unchanged_services"] == ["only-a"]
    report = put_features(acme, [a, b, feature("c", {"type": "string"}, True)]).get_json()
    assert sorted(report["services_requiring_reinitialization"]) == ["only-a", "uses-b"]
    assert report["unchanged_services"] == []


# --- feature resolution (service init and update) -----------------------------------------


def test_omitted_features_take_their_schema_defaults(acme):
    create_domain(acme)
    service = init_ok(acme, "s1", {"max_batch": 10})
    assert service["provided_features"] == {"max_batch": 10}
    assert service["resolved_features"] == {**DEFAULTS, "max_batch": 10}
    assert "window" not in service["resolved_features"]  # optional and without a default


def test_caller_values_win_over_defaults_even_when_falsy(acme):
    create_domain(acme)
    provided = {
        "region": "us-east-1",
        "threshold": 0,
        "max_batch": 999,
        "weights": [0, 0, 0],
        "window": ["day", 7],
        "mode": 4,
        "enabled": False,
        "label": "",
        "bounds": {"low": 0, "high": 100},
    }
    service = init_ok(acme, "s1", provided)
    assert service["provided_features"] == provided
    assert service["resolved_features"] == provided


def test_a_falsy_default_is_still_a_default(acme):
    create_domain(
        acme,
        features=[
            feature("zero", {"type": "integer", "default": 0}, True),
            feature("off", {"type": "boolean", "default": False}, True),
            feature("none", {"type": "null", "default": None}, True),
            feature("empty", {"type": "array", "maxItems": 0, "default": []}, True),
        ],
    )
    service = init_ok(acme, "s1", {})
    assert service["resolved_features"] == {"zero": 0, "off": False, "none": None, "empty": []}


def test_a_mandatory_feature_without_a_default_must_be_given(acme):
    create_domain(acme)
    message = assert_envelope(init(acme, "s1", {}), 422)["message"]
    assert "max_batch" in message
    assert_envelope(acme.get(f"{D}/service/s1"), 404)


INVALID_VALUES = {
    "enum": ("region", "ap-south-1"),
    "enum-case": ("region", "EU-WEST-1"),
    "string-type": ("region", 1),
    "above-maximum": ("threshold", 1.5),
    "below-minimum": ("threshold", -0.1),
    "number-as-string": ("threshold", "0.5"),
    "exclusive-maximum": ("max_batch", 1000),
    "integer-minimum": ("max_batch", 0),
    "not-an-integer": ("max_batch", 2.5),
    "array-too-short": ("weights", [0.5, 0.5]),
    "array-too-long": ("weights", [0.1, 0.2, 0.3, 0.4]),
    "array-item-type": ("weights", [0.1, "0.2", 0.7]),
    "tuple-extra-item": ("window", ["day", 7, 1]),
    "tuple-first-item": ("window", ["week", 1]),
    "tuple-order": ("window", [7, "day"]),
    "tuple-too-short": ("window", ["day"]),
    "oneOf-neither": ("mode", "manual"),
    "oneOf-below-branch-minimum": ("mode", 0),
    "boolean-type": ("enabled", "false"),
    "nullable-type": ("label", 3),
    "ref-maximum": ("bounds", {"low": 10, "high": 120}),
    "required-property": ("bounds", {"low": 10}),
    "additional-property": ("bounds", {"low": 1, "high": 2, "mid": 1.5}),
}


@pytest.mark.parametrize("name, value", INVALID_VALUES.values(), ids=INVALID_VALUES.keys())
def test_a_value_failing_its_feature_schema_is_422_naming_it(acme, name, value):
    create_domain(acme)
    message = assert_envelope(init(acme, "s1", {"max_batch": 5, name: value}), 422)["message"]
    assert name in message
    assert_envelope(acme.get(f"{D}/service/s1"), 404)


def test_one_of_is_exclusive(acme):
    schedule = feature(
        "schedule",
        {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "integer", "multipleOf": 5}]},
    )
    create_domain(acme, features=[schedule])
    assert init(acme, "s1", {"schedule": 3}).status_code == 202
    assert init(acme, "s2", {"schedule": -5}).status_code == 202
    assert "schedule" in assert_envelope(init(acme, "s3", {"schedule": 10}), 422)["message"]


def test_prefix_items_follow_draft_2020_12(acme):
    """Under Draft 7 `items: false` would reject every non-empty array."""
    create_domain(acme)
    service = init_ok(acme, "s1", {"max_batch": 1, "window": ["hour", 24]})
    assert service["resolved_features"]["window"] == ["hour", 24]


def test_undefined_features_are_422_naming_them(acme):
    create_domain(acme)
    message = assert_envelope(init(acme, "s1", {"max_batch": 1, "colour": "red"}), 422)["message"]
    assert "colour" in message
    assert_envelope(acme.get(f"{D}/service/s1"), 404)


def test_a_domain_without_features_accepts_only_empty_features(acme):
    create_domain(acme, features=[])
    assert init_ok(acme, "s1", {})["resolved_features"] == {}
    assert "anything" in assert_envelope(init(acme, "s2", {"anything": 1}), 422)["message"]


def test_the_422_names_each_failing_feature(acme):
    create_domain(acme)
    provided = {
        "region": "mars",
        "threshold": 2,
        "weights": [1],
        "window": ["day", 1, 2],
        "mode": "manual",
        "bounds": {"low": -1, "high": 5},
        "colour": "red",
    }  # and the mandatory max_batch is missing
    message = assert_envelope(init(acme, "s1", provided), 422)["message"]
    for name in (*provided, "max_batch"):
        assert name in message, name
    assert "enabled" not in message and "label" not in message


def test_update_re_resolves_the_replaced_features(acme):
    create_domain(acme)
    created = init_ok(acme, "s1", {"max_batch": 10, "threshold": 0.9})
    r = acme.put(f"{D}/service/s1", json={"static_features": {"max_batch": 20, "mode": 3}})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["provided_features"] == {"max_batch": 20, "mode": 3}
    assert body["resolved_features"] == {**DEFAULTS, "max_batch": 20, "mode": 3}
    assert body["created_at"] == created["created_at"]
    assert acme.get(f"{D}/service/s1").get_json() == body


def test_an_update_failing_resolution_is_422_naming_each_feature_and_changes_nothing(acme):
    create_domain(acme)
    created = init_ok(acme, "s1", {"max_batch": 10})
    bad = {"region": "mars", "weights": [], "colour": 1}
    message = assert_envelope(acme.put(f"{D}/service/s1", json={"static_features": bad}), 422)[
        "message"
    ]
    for name in ("region", "weights", "colour", "max_batch"):
        assert name in message, name
    assert acme.get(f"{D}/service/s1").get_json() == created
