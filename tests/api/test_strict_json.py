"""Strict JSON in and out: bodies with NaN, infinities, overflowing numbers, over-long integers,
repeated keys or lone surrogates are 400s; no response holds NaN or Infinity, not even for a
row an earlier version stored with one."""

from __future__ import annotations

import json

import pytest

from pie.db import database
from tests.helpers import (
    Implementations,
    activate,
    assert_envelope,
    model_body,
    strict_json,
    wait_for_job,
)

JSON = {"Content-Type": "application/json"}
# (JSON text of a value, what the 400 says)
REFUSED = [
    ("NaN", "NaN, which is not JSON"),
    ("Infinity", "Infinity, which is not JSON"),
    ("-Infinity", "-Infinity, which is not JSON"),
    ("1e999999", "the number 1e999999, which is too large"),
    ("-1e400", "the number -1e400, which is too large"),
    ("1" + "0" * 5000, "an integer of more than 4300 digits"),
    ("-" + "9" * 4301, "an integer of more than 4300 digits"),
    ('{"a": 1, "a": 2}', "repeats the key 'a'"),
    ('[{"k": {"x": 1, "y": 2, "x": 1}}]', "repeats the key 'x'"),
    ('"\\ud800"', "lone UTF-16 surrogate"),
    ('"a\\uDC00b"', "lone UTF-16 surrogate"),
    ('{"\\ud83d": 1}', "lone UTF-16 surrogate"),
]


@pytest.fixture
def impls() -> Implementations:
    return Implementations()


@pytest.fixture
def app(make_app, impls):
    app = make_app(plugins=[impls])
    yield app
    impls.release.set()


def with_metadata(value: str) -> str:
    """A model body whose metadata holds `value` (JSON text, spliced in unparsed)."""
    return json.dumps(model_body("m1", metadata={"v": "SLOT"})).replace('"SLOT"', value)


@pytest.mark.parametrize(("value", "message"), REFUSED)
def test_a_body_strict_parsers_cannot_read_is_400(client, value, message):
    r = client.post("/v2/models", data=with_metadata(value), headers=JSON)
    assert message in assert_envelope(r, 400)["message"]
    assert client.get("/v2/models").get_json() == []


@pytest.mark.parametrize(("value", "message"), REFUSED)
def test_a_completion_strict_parsers_cannot_read_is_400(client, impls, value, message):
    body = model_body("m1")
    body["handlers"]["inference"] = {"type": "in_process", "value": "hold"}
    assert client.post("/v2/models", json=body).status_code == 201
    activate(client, "m1")
    r = client.post("/v2/models/m1/versions/1/inference", json={"input": {}})
    job_id = r.get_json()["inference_job_id"]
    wait_for_job(client, job_id, ("started",))
    text = '{"status": "success", "output": {"v": SLOT}}'.replace("SLOT", value)
    r = client.post(f"/v2/models/m1/versions/1/jobs/{job_id}/complete", data=text, headers=JSON)
    assert message in assert_envelope(r, 400)["message"]
    assert client.get(f"/v2/jobs/{job_id}").get_json()["status"] == "started"


def test_numbers_at_the_limits_are_stored_exactly(client):
    """The control: the largest finite double, a 4300-digit integer, -0.0 and an escaped
    surrogate pair are JSON, and come back as sent."""
    big = int("7" * 4300)
    text = with_metadata(
        '{"max": 1.7976931348623157e308, "big": BIG, "neg_zero": -0.0, "pair": "\\ud83d\\ude00"}'
    ).replace("BIG", str(big))
    assert client.post("/v2/models", data=text, headers=JSON).status_code == 201
    metadata = strict_json(client.get("/v2/models/m1").data)["metadata"]["v"]
    assert metadata == {"max": 1.7976931348623157e308, "big": big, "neg_zero": 0.0, "pair": "😀"}
    assert str(metadata["neg_zero"]) == "-0.0"


def test_a_utf8_byte_order_mark_is_400(client):
    text = b"\xef\xbb\xbf" + json.dumps(model_body("m1")).encode()
    assert (
        "Invalid JSON"
        in assert_envelope(client.post("/v2/models", data=text, headers=JSON), 400)["message"]
    )


def test_request_get_json_follows_the_same_rules(app):
    """For a plugin or a view that reads request.get_json() itself: Flask's JSON provider
    refuses what the body parser refuses, as a ValueError (get_json makes it a 400)."""
    from flask import request
    from werkzeug.exceptions import BadRequest

    with app.app_context():
        with pytest.raises(ValueError, match="the JSON body has NaN"):
            app.json.loads('{"a": NaN}')
        with pytest.raises(ValueError, match="repeats the key 'a'"):
            app.json.loads(b'{"a": 1, "a": 2}')
        assert app.json.loads('{"a": 1.5}') == {"a": 1.5}
    with app.test_request_context(data='{"a": Infinity}', headers=JSON):
        with pytest.raises(BadRequest):
            request.get_json()
        assert request.get_json(silent=True) is None


def test_responses_never_hold_nan(app):
    """Flask's JSON is strict: encoding a NaN raises (the caller sees a 500 envelope) instead
    of sending a bare NaN."""
    with app.app_context(), pytest.raises(ValueError):
        app.json.dumps({"v": float("nan")})


@pytest.mark.parametrize("stored", ["NaN", "Infinity", "-Infinity"])
def test_rows_stored_with_non_finite_numbers_are_served_as_null(client, stored):
    """Rows an earlier version stored with NaN or an infinity (it accepted them) are read as
    null: the model, the model list and the job are strict JSON, with a 200."""
    assert client.post("/v2/models", json=model_body("m1", metadata={"v": 1.5})).status_code == 201
    activate(client, "m1")
    job_id = client.post("/v2/models/m1/versions/1/inference", json={"input": {"x": 1}}).get_json()[
        "inference_job_id"
    ]
    wait_for_job(client, job_id)
    param = database.param
    text = f'{{"v":{stored},"w":[{stored}]}}'
    database.execute_sql(f"UPDATE models SET metadata = {param}", [text])
    text = f'{{"x":{stored}}}'
    database.execute_sql(f"UPDATE jobs SET output = {param}, input = {param}", [text, text])
    for path in (
        "/v2/models/m1",
        "/v2/models",
        f"/v2/jobs/{job_id}",
        "/v2/models/m1/versions/1/jobs",
    ):
        r = client.get(path)
        assert r.status_code == 200, r.data
        strict_json(r.data)
    assert client.get("/v2/models/m1").get_json()["metadata"] == {"v": None, "w": [None]}
    job = client.get(f"/v2/jobs/{job_id}").get_json()
    assert job["output"] == {"x": None} and job["input"] == {"x": None}


def test_an_in_process_output_with_nan_fails_the_job_readably(make_app):
    """An implementation that returns NaN fails its job (nothing non-JSON is stored)."""

    class Nan:
        from pie import hookimpl

        @hookimpl
        def pie_register_in_process_handlers(self, app):
            return {"nan": lambda job_input: {"score": float("nan")}}

    from tests.helpers import Client

    client = Client(make_app(plugins=[Nan()]).test_client())
    body = model_body("m1")
    body["handlers"]["inference"] = {"type": "in_process", "value": "nan"}
    assert client.post("/v2/models", json=body).status_code == 201
    activate(client, "m1")
    job_id = client.post("/v2/models/m1/versions/1/inference", json={"input": {}}).get_json()[
        "inference_job_id"
    ]
    job = wait_for_job(client, job_id)
    assert job["status"] == "failure", job
    assert "not JSON compliant" in job["error"]["message"]
    strict_json(client.get(f"/v2/jobs/{job_id}").data)
