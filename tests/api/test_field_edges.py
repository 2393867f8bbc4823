"""Every field of every request body, and every query parameter, generated from the served
/openapi.json, set in turn to values at the edges of JSON and of its type (huge and negative
integers, floats at the limits, empty, NUL and very long strings, datetimes that leave the
representable range once moved to UTC, wrong containers) answers below 500, in strict JSON,
with the envelope on every error. A field or route added later is swept too.

Bodies start from the valid ones of the tenant-boundary test, sent by an admin with tenant A's
real ids, so each edge value reaches the checks behind the first one it could fail."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.api.test_tenant_boundary import BODIES
from tests.helpers import strict_json
from tests.tenant_world import Parked, World, build_world, fill, operations, served_spec

SPEC = served_spec()


def deep(levels: int) -> Any:
    value: Any = []
    for _ in range(levels):
        value = [value]
    return value


EDGES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**31,
    2**63,  # one past a signed 64-bit column
    -(2**63) - 1,
    10**30,
    1.5,
    -1.7976931348623157e308,
    5e-324,
    "",
    " ",
    "\x00",
    "a\nb",
    "é🙂\u202e",
    "x" * 20_000,
    "0001-01-01T00:00:00+01:00",  # a valid text whose UTC value is before year 1
    "9999-12-31T23:59:59-01:00",  # and after year 9999
    "9999-12-31T23:59:59.999999Z",
    "1970-01-01T00:00:00Z",
    [],
    [None],
    {},
    {"": None},
    deep(60),
]
QUERY_EDGES = ["", "0", "-1", "1.5", "true", "99999999999999999999", "x" * 2000, "%00", "é"]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = SPEC["components"]["schemas"][name]
    return schema


def body_schema(operation: dict[str, Any]) -> dict[str, Any]:
    return resolve(operation["requestBody"]["content"]["application/json"]["schema"])


def field_paths(schema: dict[str, Any], base: Any, prefix: tuple[str, ...] = ()) -> list[tuple]:
    """The dotted paths of the schema's properties, and of those one level down inside a
    property the base body fills with an object."""
    found = []
    for name, sub in resolve(schema).get("properties", {}).items():
        found.append((*prefix, name))
        inner = base.get(name) if isinstance(base, dict) else None
        if isinstance(inner, dict) and not prefix:
            found += field_paths(resolve(sub), inner, (name,))
    return found


def with_value(body: Any, path: tuple[str, ...], value: Any) -> Any:
    body = dict(body or {})
    if len(path) == 1:
        body[path[0]] = value
    else:
        body[path[0]] = with_value(body.get(path[0]), path[1:], value)
    return body


def check(response: Any, what: str) -> str | None:
    """What is wrong with one answer, or None."""
    if response.status_code >= 500:
        return f"{what} -> {response.status_code}: {response.get_data(as_text=True)[:300]}"
    if response.status_code == 204:
        return None
    try:
        body = strict_json(response.get_data())
    except ValueError as exc:
        return f"{what} -> not strict JSON ({exc})"
    if response.status_code >= 400 and not (
        isinstance(body, dict) and body.get("success") is False and body.get("message")
    ):
        return f"{what} -> {response.status_code} without the envelope: {body!r:.300}"
    return None


@pytest.fixture(scope="module")
def worlds() -> dict[str, World]:
    return {}


@pytest.fixture
def world(worlds: dict[str, World], make_module_app: Callable[..., Any]) -> Iterator[World]:
    if "current" not in worlds:
        parked = Parked()
        app = make_module_app({"PIE_IN_PROCESS_WORKERS": 4}, plugins=[parked])
        worlds["current"] = build_world(app, parked)
    yield worlds["current"]
    if worlds["current"].dirty:
        del worlds["current"]


def base_body(world: World, method: str, path: str, ids: dict[str, str]) -> Any:
    body = BODIES[(method, path)]
    return body(world, ids) if callable(body) else body


BODY_OPERATIONS = [(m, p) for m, p, op in operations(SPEC) if "requestBody" in op]
QUERY_OPERATIONS = [
    (m, p, [q["name"] for q in op.get("parameters", []) if q["in"] == "query"])
    for m, p, op in operations(SPEC)
]


@pytest.mark.parametrize(
    "method, path", BODY_OPERATIONS, ids=[f"{m.upper()} {p}" for m, p in BODY_OPERATIONS]
)
def test_every_body_field_at_its_edges_answers_in_the_envelope(world, method, path):
    ids = world.bindings_for(path)[0]
    url = fill(path, ids)
    base = base_body(world, method, path, ids)
    paths = field_paths(body_schema(SPEC["paths"][path][method]), base)
    assert paths, f"{method.upper()} {path}: its body schema lists no properties"
    wrong = []
    for field in paths:
        for value in EDGES:
            r = world.client.request(method.upper(), url, json=with_value(base, field, value))
            if r.status_code < 300:
                world.dirty = True
            problem = check(r, f"{method.upper()} {url} {'.'.join(field)}={value!r:.60}")
            if problem:
                wrong.append(problem)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "method, path, names",
    [q for q in QUERY_OPERATIONS if q[2]],
    ids=[f"{m.upper()} {p}" for m, p, names in QUERY_OPERATIONS if names],
)
def test_every_query_parameter_at_its_edges_answers_in_the_envelope(world, method, path, names):
    url = fill(path, world.bindings_for(path)[0])
    body = base_body(world, method, path, world.bindings_for(path)[0]) if method != "get" else None
    wrong = []
    for name in names:
        for value in QUERY_EDGES:
            query = f"{name}={quote(value, safe='%')}"
            r = world.client.request(method.upper(), f"{url}?{query}", json=body)
            if r.status_code < 300 and method != "get":
                world.dirty = True
            problem = check(r, f"{method.upper()} {url}?{query:.80}")
            if problem:
                wrong.append(problem)
    assert not wrong, "\n".join(wrong)


def test_the_sweep_reaches_every_body_and_some_nested_fields():
    assert len(BODY_OPERATIONS) >= 20
    nested = [
        f
        for m, p in BODY_OPERATIONS
        for f in field_paths(body_schema(SPEC["paths"][p][m]), BODIES.get((m, p)) or {})
        if len(f) > 1
    ]
    assert nested  # e.g. the handlers of a model body
