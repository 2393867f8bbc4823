"""Every error path answers the contract's envelope: {"success": false, "message": "..."}."""

import io
import json
import logging

import pytest

from tests.helpers import ADMIN, assert_envelope, make_token, model_body, scoped

AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture
def model(client):
    r = client.post("/v2/models", json=model_body("m1"))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


# --- 400 ----------------------------------------------------------------------------------


def test_malformed_json_is_400(client):
    r = client.raw.post(
        "/v2/models", data='{"name": ', headers={**AUTH, "Content-Type": "application/json"}
    )
    assert_envelope(r, 400)


@pytest.mark.parametrize(
    "content_type, data",
    [
        ("text/plain", '{"name": "x"}'),
        ("application/x-www-form-urlencoded", "name=x&description=y"),
    ],
)
def test_wrong_content_type_is_400(client, content_type, data):
    r = client.raw.post("/v2/models", data=data, headers={**AUTH, "Content-Type": content_type})
    body = assert_envelope(r, 400)
    assert "JSON" in body["message"]


@pytest.mark.parametrize("payload", [[1, 2], "a string", 5, True])
def test_non_object_body_is_400(client, payload):
    assert_envelope(client.post("/v2/models", json=payload), 400)


def test_missing_required_field_names_the_field(client):
    body = model_body(handlers={"training": {"type": "lambda"}, "inference": {"type": "lambda"}})
    message = assert_envelope(client.post("/v2/models", json=body), 400)["message"]
    assert "json.handlers.training.arn: Missing data for required field." in message
    assert "json.handlers.inference.arn: Missing data for required field." in message


def test_several_problems_are_joined_with_semicolons(client):
    message = assert_envelope(client.post("/v2/models", json={"name": 1}), 400)["message"]
    parts = message.split("; ")
    assert "json.name: Not a valid string." in parts
    assert "json.description: Missing data for required field." in parts
    assert "json.handlers: Missing data for required field." in parts


def test_wrong_type_is_400(client):
    r = client.post("/v2/models", json=model_body(metadata="not an object"))
    assert "json.metadata" in assert_envelope(r, 400)["message"]


def test_enum_out_of_range_is_400(client, model):
    r = client.post("/v2/models/m1/versions/1/new_status", json={"status": "done"})
    assert "json.status" in assert_envelope(r, 400)["message"]


def test_unknown_field_is_400(client):
    r = client.post("/v2/models", json=model_body(colour="blue"))
    assert "json.colour: Unknown field." in assert_envelope(r, 400)["message"]


def test_invalid_model_id_is_400(client):
    r = client.post("/v2/models", json=model_body("-starts-with-dash"))
    assert "json.id" in assert_envelope(r, 400)["message"]


@pytest.mark.parametrize(
    "query, field",
    [
        ("page_size=0", "page_size"),
        ("page_size=1001", "page_size"),
        ("page_size=abc", "page_size"),
        ("page=0", "page"),
        ("page=x", "page"),
    ],
)
def test_bad_pagination_is_400(client, query, field):
    r = client.get(f"/v2/models?{query}")
    assert f"query.{field}" in assert_envelope(r, 400)["message"]


# --- 401 / 403 ----------------------------------------------------------------------------


def test_missing_token_is_401(anon):
    assert_envelope(anon.get("/v2/models"), 401)


def test_bad_token_is_401(client):
    assert_envelope(
        client.get(
            "/v2/models", token=make_token(secret="another-secret-0123456789abcdefghijklmn")
        ),
        401,
    )


def test_missing_permission_is_403(client):
    r = client.post("/v2/models", json=model_body(), token=scoped("read_models"))
    assert "manage_models" in assert_envelope(r, 403)["message"]


# --- 404 ----------------------------------------------------------------------------------


def test_unknown_model_is_404(client):
    assert "nope" in assert_envelope(client.get("/v2/models/nope"), 404)["message"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v2/models/m1/versions/9"),
        ("POST", "/v2/models/m1/versions/9/new_status"),
    ],
)
def test_unknown_version_is_404(client, model, method, path):
    r = client.request(method, path, json={"status": "training"} if method == "POST" else None)
    assert "9" in assert_envelope(r, 404)["message"]


@pytest.mark.parametrize("path", ["/v2/nothing-here", "/nope", "/v2/models/m1/extra/segments"])
def test_unknown_url_is_404(client, path):
    assert_envelope(client.get(path), 404)


# --- 405 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("PATCH", "/v2/models", {"GET", "POST"}),
        ("DELETE", "/v2/models", {"GET", "POST"}),
        ("POST", "/v2/models/m1", {"GET", "PUT", "DELETE"}),
        ("GET", "/v2/models/m1/new_version", {"POST"}),
    ],
)
def test_wrong_method_is_405_with_allow(client, method, path, allowed):
    r = client.request(method, path)
    assert_envelope(r, 405)
    allow = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allowed <= allow
    assert method not in allow


# --- 409 ----------------------------------------------------------------------------------


def test_duplicate_model_is_409(client, model):
    assert "m1" in assert_envelope(client.post("/v2/models", json=model_body("m1")), 409)["message"]


def test_duplicate_version_is_409(client, model):
    r = client.post("/v2/models/m1/new_version", json={"version": "1"})
    assert_envelope(r, 409)


# --- 413 ----------------------------------------------------------------------------------


OVER_THE_LIMIT = "request body is larger than the limit of 1000 bytes (PIE_MAX_BODY_BYTES)"


@pytest.fixture
def small(make_app):
    from tests.helpers import Client

    return Client(make_app({"PIE_MAX_BODY_BYTES": 1000}).test_client())


def body_of_size(model_id, size):
    """A model's JSON body of exactly `size` bytes (its description pads it)."""
    body = json.dumps(model_body(model_id, description=""))
    body = body.replace('"description": ""', f'"description": "{"x" * (size - len(body))}"')
    assert len(body.encode()) == size
    return body


def streamed(client, body):
    """POST `body` without a Content-Length (chunked), to a server that ends the input
    stream itself, as gunicorn and werkzeug's server say they do (wsgi.input_terminated)."""
    headers = {**AUTH, "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    return client.raw.post(
        "/v2/models",
        input_stream=io.BytesIO(body.encode()),
        headers=headers,
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_body_over_limit_is_413(small):
    assert small.post("/v2/models", json=model_body("ok")).status_code == 201
    r = small.post("/v2/models", json=model_body("big", description="x" * 2000))
    assert assert_envelope(r, 413)["message"] == OVER_THE_LIMIT
    assert small.get("/v2/models/big").status_code == 404


def test_a_body_of_exactly_the_limit_is_accepted(small):
    headers = {**AUTH, "Content-Type": "application/json"}
    r = small.raw.post("/v2/models", data=body_of_size("edge", 1000), headers=headers)
    assert r.status_code == 201, r.get_json()
    assert r.request.content_length == 1000


@pytest.mark.parametrize("size", [1001, 5000])
def test_a_streamed_body_over_the_limit_is_413(small, size):
    r = streamed(small, body_of_size("big", size))
    assert r.request.content_length is None
    assert assert_envelope(r, 413)["message"] == OVER_THE_LIMIT
    assert small.get("/v2/models/big").status_code == 404


@pytest.mark.parametrize("size", [999, 1000])
def test_a_streamed_body_up_to_the_limit_is_accepted(small, size):
    r = streamed(small, body_of_size("edge", size))
    assert r.status_code == 201, r.get_json()
    assert small.get("/v2/models/edge").status_code == 200


# --- 422 ----------------------------------------------------------------------------------


def test_invalid_handler_contracts_is_422(client):
    contracts = {"training": {"input_schema": {"type": 5}}}
    r = client.post("/v2/models", json=model_body(handler_contracts=contracts))
    assert "handler_contracts.training.input_schema" in assert_envelope(r, 422)["message"]


def test_a_handler_destination_the_guard_refuses_is_422(client):
    handler = {"type": "http", "url": "http://169.254.169.254/latest/meta-data/"}
    body = model_body("m2", handlers={"training": handler, "inference": handler})
    message = assert_envelope(client.post("/v2/models", json=body), 422)["message"]
    assert message.startswith("handlers.training.url: 169.254.169.254 is a cloud metadata")


def test_illegal_transition_is_422(client, model):
    r = client.post("/v2/models/m1/versions/1/new_status", json={"status": "active"})
    assert r.status_code == 200
    r = client.post("/v2/models/m1/versions/1/new_status", json={"status": "pending"})
    assert_envelope(r, 422)


def test_invalid_feature_schema_is_422(client, model):
    features = [
        {"name": "n", "json_schema": {"type": "integer", "default": "x"}, "mandatory": True}
    ]
    r = client.post("/v2/models/m1/new_version", json={"feature_schema": features})
    assert "feature_schema" in assert_envelope(r, 422)["message"]


# --- 500 ----------------------------------------------------------------------------------

SECRET_DETAIL = "kaboom-internal-detail-8f3a"


def _explode(*args, **kwargs):
    raise RuntimeError(SECRET_DETAIL)


@pytest.mark.parametrize(
    "target, method, path, body",
    [
        ("pie.services.registry.get_model", "GET", "/v2/models/m1", None),
        ("pie.services.registry.create_model", "POST", "/v2/models", model_body("m2")),
        ("pie.services.lifecycle.set_status", "POST", "/v2/models/m1/versions/1/new_status",
         {"status": "training"}),
    ],
)  # fmt: skip
def test_unexpected_error_is_500_without_leaking(
    client, model, monkeypatch, caplog, target, method, path, body
):
    monkeypatch.setattr(target, _explode)
    with caplog.at_level(logging.ERROR):
        r = client.request(method, path, json=body)
    assert_envelope(r, 500)
    text = r.get_data(as_text=True)
    assert SECRET_DETAIL not in text
    assert "Traceback" not in text and "RuntimeError" not in text
    assert SECRET_DETAIL in caplog.text  # the traceback goes to the log instead
