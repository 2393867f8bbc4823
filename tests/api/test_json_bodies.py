"""A property test of the JSON body parser through the HTTP API (POST /v2/models and the
completion callback): hypothesis writes JSON *text* — non-finite and overflowing numbers,
integers around Python's 4300-digit limit, deep nesting, any Unicode (non-BMP, escaped pairs,
lone surrogate escapes), NUL, repeated keys (also spelled differently: "a" and "\\u0061"),
byte order marks and other encodings. Whatever is sent: never a 5xx; every response is strict
JSON; a body is accepted exactly when a strict parser reads it one way (RFC 8259 UTF-8 without
BOM, I-JSON: finite numbers, unique keys, whole Unicode characters; plus PIE's nesting and NUL
rules), and then the API stores and serves exactly what was sent."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import marshmallow as ma
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pie import HandlerType, hookimpl
from tests.helpers import model_body, strict_json

JSON = {"Content-Type": "application/json"}
SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
MAX_DEPTH = 64  # pie.jsonio.MAX_JSON_DEPTH, the documented limit


# --- JSON text ---------------------------------------------------------------------------

ODD_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999999",
    "-1e400",
    "1.7976931348623157e308",
    "1.7976931348623159e308",  # rounds past the largest double
    "4.9e-324",
    "1e-999999",  # underflows to 0.0: finite, fine
    "-0",
    "-0.0",
    "1E+2",
    "0." + "1" * 500,
]
ODD_STRINGS = [
    '"\\ud800"',
    '"\\uDFFF"',
    '"x\\ud83d"',
    '"\\ude00y"',
    '"\\ud83d\\ude00"',  # a pair: one character
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\\\ud800"',  # an escaped backslash: the six characters \ud800, fine
    '"\\u2028\\u2029"',
    '"\\uFEFF"',
]
integers = st.one_of(
    st.integers().map(str),
    st.integers(min_value=4290, max_value=4310).map(lambda n: "9" * n),
    st.integers(min_value=4290, max_value=4310).map(lambda n: "-1" + "0" * (n - 1)),
)
floats = st.floats(allow_nan=False, allow_infinity=False).map(repr)
strings = st.one_of(
    st.text().map(json.dumps),  # ASCII with escapes (non-BMP as surrogate pairs)
    st.text().map(lambda s: json.dumps(s, ensure_ascii=False)),  # raw UTF-8
    st.sampled_from(ODD_STRINGS),
)
scalars = st.one_of(
    st.sampled_from(["null", "true", "false"]),
    integers,
    floats,
    st.sampled_from(ODD_NUMBERS),
    strings,
)
keys = st.one_of(st.sampled_from(['"a"', '"\\u0061"', '"b"', '"\\ud800"', '"\\u0000"']), strings)


def containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arrays = st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]")
    objects = st.lists(st.tuples(keys, children), max_size=4).map(
        lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
    )
    return st.one_of(arrays, objects)


def nested(pair: tuple[str, int]) -> str:
    document, depth = pair
    return "[" * depth + document + "]" * depth


documents = st.one_of(
    st.recursive(scalars, containers, max_leaves=12),
    st.tuples(st.recursive(scalars, containers, max_leaves=3), st.integers(55, 70)).map(nested),
)
whitespace = st.sampled_from(["", " ", "\n", "\t", "\r\n  "])
encodings = st.sampled_from(
    ["utf-8"] * 8 + ["utf-8-sig", "utf-16", "utf-16-le", "utf-32-be", "latin-1"]
)


def encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="surrogatepass" if "utf" in encoding else "replace")


# --- the reference: what a strict parser accepts -----------------------------------------


def _refuse(name: str) -> Any:
    raise ValueError(name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("repeated key")
    return dict(pairs)


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def whole_characters(value: Any) -> bool:
    """No NUL (PIE's rule, for Postgres) and no lone surrogate in any string or key."""
    if isinstance(value, str):
        return "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return all(map(whole_characters, value)) and all(map(whole_characters, value.values()))
    if isinstance(value, list):
        return all(map(whole_characters, value))
    return True


def reference(body: bytes) -> tuple[bool, Any]:
    """(accepted, value) for a body, judged independently of PIE's code."""
    try:
        text = body.decode("utf-8")  # strict: a BOM stays, and json refuses it
        value = json.loads(
            text, parse_constant=_refuse, parse_float=_finite, object_pairs_hook=_unique
        )
    except (ValueError, RecursionError):
        return False, None
    if depth(value) > MAX_DEPTH or not whole_characters(value):
        return False, None
    return True, value


def same(a: Any, b: Any) -> bool:
    """JSON equality that also tells 1 from 1.0 and true, -0.0 from 0.0, and key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return a == b


def checked(response: Any) -> Any:
    """The invariants of every response: below 500, strict JSON, errors in the envelope."""
    assert response.status_code < 500, response.data
    body = strict_json(response.data)
    if response.status_code >= 400:
        assert body["success"] is False and body["message"], body
    return body


# --- POST /v2/models ---------------------------------------------------------------------

ids = itertools.count()


@SETTINGS
@given(document=documents, encoding=encodings, before=whitespace, after=whitespace)
def test_a_models_metadata(client, document, encoding, before, after):
    model_id = f"m{next(ids)}"
    prefix = json.dumps(model_body(model_id))[:-1]
    text = f'{before}{prefix}, "metadata": {{"v": {document}}}}}{after}'
    body = encode(text, encoding)
    accepted, value = reference(body)
    r = client.post("/v2/models", data=body, headers=JSON)
    checked(r)
    assert r.status_code == (201 if accepted else 400), (text[:300], encoding, r.data[:300])
    if accepted:
        assert same(strict_json(r.data)["metadata"]["v"], value["metadata"]["v"])
        stored = checked(client.get(f"/v2/models/{model_id}"))
        assert same(stored["metadata"]["v"], value["metadata"]["v"])


@SETTINGS
@given(document=documents, encoding=encodings)
def test_a_whole_body(client, document, encoding):
    """Any JSON as the whole body: a 400 unless a strict parser reads it (and then the
    schema decides); never a 5xx, always strict JSON."""
    body = encode(document, encoding)
    r = client.post("/v2/models", data=body, headers=JSON)
    checked(r)
    if not reference(body)[0]:
        assert r.status_code == 400, (document[:300], r.data[:300])


# --- the completion callback -------------------------------------------------------------


class ParkedSchema(ma.Schema):
    pass


class Parked(HandlerType):
    """Dispatch does nothing: the job waits, started, for its callback."""

    name = "parked"
    schema = ParkedSchema

    def dispatch(self, handler: dict[str, Any], job: Any, payload: dict[str, Any]) -> None:
        return None


class ParkedPlugin:
    @hookimpl
    def pie_register_handler_types(self, app: Any) -> list[type[HandlerType]]:
        return [Parked]


@pytest.fixture
def app(make_app):
    return make_app(plugins=[ParkedPlugin()])


@SETTINGS
@given(document=documents, encoding=encodings)
def test_a_completions_output(client, document, encoding):
    if client.get("/v2/models/parked").status_code == 404:
        handler = {"type": "parked"}
        body = model_body("parked", handlers={"training": handler, "inference": handler})
        assert client.post("/v2/models", json=body).status_code == 201
        assert (
            client.post(
                "/v2/models/parked/versions/1/new_status", json={"status": "active"}
            ).status_code
            == 200
        )
    r = client.post("/v2/models/parked/versions/1/inference", json={"input": {}})
    job_id = r.get_json()["inference_job_id"]
    text = '{"status": "success", "output": {"v": ' + document + "}}"
    body = encode(text, encoding)
    accepted, value = reference(body)
    r = client.post(f"/v2/models/parked/versions/1/jobs/{job_id}/complete", data=body, headers=JSON)
    checked(r)
    assert r.status_code == (200 if accepted else 400), (text[:300], encoding, r.data[:300])
    job = checked(client.get(f"/v2/jobs/{job_id}"))
    if accepted:
        assert job["status"] == "success"
        assert same(job["output"]["v"], value["output"]["v"])
    else:
        assert job["status"] in ("pending", "started") and job["output"] is None
